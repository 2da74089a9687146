"""Data sources: which kind a ``data_url`` is, and how to record it without its secrets."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from urllib.request import url2pathname

from .errors import UserError

SCHEMES = ("http", "https", "file")
REDACTED = "REDACTED"
# Query parameters that carry credentials: AWS/GCS/Azure signed URLs, API keys, tokens.
_SECRET_PARAM = re.compile(
    r"sig|signature|token|key|secret|pass|pwd|credential|auth|session|x-amz-|x-goog-",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class Source:
    """A resolved data source: ``kind`` is ``"http"`` (http/https) or ``"file"``."""

    kind: str
    location: str  # the URL for http, a filesystem path for file


def parse_source(url: str) -> Source:
    """Classify ``url`` as an http(s) URL or a local file (``file://`` URL or plain path).

    Raises UserError for any other scheme (ftp://, s3://, javascript:, ...).
    """
    match = _SCHEME.match(url)
    if not match or len(match.group(1)) == 1:  # no scheme (a drive letter is a path too)
        return Source("file", url)
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise UserError(
            f"data_url: unsupported scheme '{scheme}:' in {redact(url)}; "
            "use an http://, https:// or file:// URL or a local path"
        )
    parts = urlsplit(url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UserError(f"data_url: file:// URL with a remote host: {redact(url)}")
        return Source("file", url2pathname(parts.path))
    if not parts.hostname:
        raise UserError(f"data_url: no host in {redact(url)}")
    return Source("http", url)


def local_path(url: str) -> str | None:
    """The local file behind ``url``, or None for http(s) URLs and unsupported ones."""
    try:
        source = parse_source(url)
    except UserError:
        return None
    return source.location if source.kind == "file" else None


def redact(url: str) -> str:
    """``url`` with user info and credential-like query values replaced by ``REDACTED``."""
    match = _SCHEME.match(url)
    if not match or len(match.group(1)) == 1:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs],
            quote_via=quote,
            safe="/",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_digest(url: str) -> str:
    """sha256 of the URL: a rerun trigger that can be stored where the URL itself must not."""
    return hashlib.sha256(url.encode()).hexdigest()
