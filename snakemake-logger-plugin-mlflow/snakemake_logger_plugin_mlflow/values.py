"""Values fit to be logged: keys MLflow accepts, flattened params, URLs without secrets.

Standard library only. MLflow rejects a param, metric or tag key with characters outside
``[/\\w.\\- :]``, one that is not a normalised relative path, or one longer than 250
characters; such a key in a single ``log_batch`` fails the whole call. :func:`fit_key`
turns any key into one MLflow takes, so the caller can keep the original in the value.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MAX_KEY = 250  # MLflow's MAX_ENTITY_KEY_LENGTH
MAX_PARAM = 6000  # MLflow's MAX_PARAM_VAL_LENGTH
MAX_TAG = 5000  # below MLflow's MAX_TAG_VAL_LENGTH (8000), for every backend
BATCH_PARAMS_TAGS = 100  # MLflow's MAX_PARAMS_TAGS_PER_BATCH
BATCH_METRICS = 1000  # MLflow's MAX_METRICS_PER_BATCH
BATCH_ENTITIES = 1000  # MLflow's MAX_ENTITIES_PER_BATCH

_BAD_CHAR = re.compile(r"[^/\w.\- :]")


def _not_unique(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))


def fit_key(key: str) -> str:
    """``key`` as MLflow accepts it: bad characters as ``_``, path-like parts flattened,
    shortened to 250 characters with a digest of the original. Unchanged if it was fine."""
    fitted = _BAD_CHAR.sub("_", str(key))
    if _not_unique(fitted):
        fitted = fitted.replace("/", "_")
        if _not_unique(fitted):
            fitted = "_" + fitted
    if len(fitted) > MAX_KEY:
        digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
        fitted = fitted[: MAX_KEY - 17] + "_" + digest
    return fitted


_SECRET_PARAM = re.compile(
    r"sig|signature|token|key|secret|pass|pwd|credential|auth|session|x-amz-|x-goog-",
    re.IGNORECASE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def redact_url(text: str) -> str:
    """A URL without its user info (a password, or a token given as the user) and without
    the values of secret query parameters or its fragment (the same output as the jobs'
    own redactor in the snakeflow project, which a test there keeps equal)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"REDACTED@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "REDACTED" if _SECRET_PARAM.search(k) else v) for k, v in pairs],
            quote_via=quote,
            safe="/",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str) -> str:
    """``text`` with every URL in it stripped of its password and secret query values."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_values(value: Any) -> Any:
    """``value`` (nested mappings and lists) with every URL string redacted."""
    if isinstance(value, Mapping):
        return {str(k): redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
        out[prefix] = text[:MAX_PARAM]


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow params: ``{"clean": {"dropna": "any"}}`` → ``clean.dropna``."""
    out: dict[str, str] = {}
    _flatten("", params, out)
    return out


def fit_keys(items: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``items`` with every key fitted; and ``{fitted: original}`` for the keys that changed.

    Two originals that fit to the same key keep both: the second gets a digest suffix.
    """
    out: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for key, value in items.items():
        fitted = fit_key(key)
        if fitted in out and fitted != key:
            digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
            fitted = fitted[: MAX_KEY - 17] + "_" + digest
        out[fitted] = value
        if fitted != key:
            renamed[fitted] = str(key)
    return out, renamed
