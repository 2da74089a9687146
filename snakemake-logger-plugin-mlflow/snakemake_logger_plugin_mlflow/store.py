"""The tracking store: where it is, whether it answers, and values fit to be logged.

Imports MLflow; the plugin imports this module only once jobs are about to run.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException

from .channel import (
    CACHE_ENV,
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    EXPERIMENT_ENV,
    HTTP_RETRY_DEFAULTS,
    TRACKING_URI_ENV,
)
from .values import redact

# Error codes of a request the store understood and refused: sending it again cannot help.
_REFUSED = {
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_STATE",
    "MALFORMED_REQUEST",
}

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
STORE_ERRORS = (MlflowException, OSError, RequestException)


class StoreError(Exception):
    """The tracking store cannot be used; the message is one line naming it and why."""


def resolve_uri(uri: str | None, workdir: str | os.PathLike[str] = ".") -> str:
    """``uri`` (or MLFLOW_TRACKING_URI, or SQLite in the working directory), with a relative
    SQLite path made absolute so that every process opens the same database."""
    uri = uri or os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        rel = uri[len(prefix) :]
        if rel and rel != ":memory:" and not rel.startswith("file:"):
            uri = prefix + str(Path(workdir).resolve() / rel)
    return uri


def experiment_name(name: str | None = None) -> str:
    return name or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        return str(os.getuid())


def refused(exc: BaseException) -> bool:
    """Whether the store answered and rejected the request as invalid (never retried), as
    opposed to not answering or failing (retried)."""
    if isinstance(exc, MlflowException):
        code = getattr(exc, "error_code", "")
        if code in _REFUSED:
            return True
        return isinstance(exc, RestException) and "Changing param values" in str(exc)
    return isinstance(exc, (TypeError, ValueError))


def terminate(client: MlflowClient, run_id: str, status: str, end_ms: int | None = None) -> None:
    """End a run with ``status``: what ``client.set_terminated`` sends, without the
    ``get_run`` and the "View run at" line on stdout it adds for a tracking server."""
    from mlflow.entities import RunStatus

    store = client._tracking_client.store
    store.update_run_info(
        run_id, RunStatus.from_string(status), end_ms or int(time.time() * 1000), None
    )


def error(exc: BaseException, uri: str) -> StoreError:
    """A one-line StoreError naming the tracking URI (redacted) and the first line of ``exc``."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    if "readonly database" in text or "read-only" in text:
        reason = "the database is read-only"
    elif re.search(r"\b401\b", text) or "Unauthorized" in text or "credentials" in text.lower():
        # a status code, not digits of a run id or a timestamp in a quoted SQL statement
        reason = (
            "401 Unauthorized: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or MLFLOW_TRACKING_TOKEN) in the environment"
        )
    elif "Max retries exceeded" in text or "Connection refused" in text:
        reason = "cannot connect (is the tracking server running?)"
    return StoreError(f"MLflow tracking store {redact(uri)} is not usable: {reason[:300]}")


@contextmanager
def _sqlite_lock(uri: str) -> Iterator[None]:
    """Serialise the creation of a fresh SQLite store between concurrent invocations.

    MLflow creates and migrates a fresh SQLite database on first use; two processes doing
    that at once corrupt it. Only snakemake processes write now, but two invocations may
    start together in one directory.
    """
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///file:"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<absolute path>`` URI, else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix + "/") or "?" in uri:
        return None
    return Path(uri[len(prefix) :])


def _empty_store() -> Path:
    """An empty, migrated SQLite store of this MLflow version, made once per user."""
    import mlflow

    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "snakemake-logger-plugin-mlflow"
    )
    empty = Path(root) / f"empty-mlflow-{mlflow.__version__}.db"
    if not empty.exists():
        empty.parent.mkdir(parents=True, exist_ok=True)
        tmp = empty.with_name(f".{empty.name}.{os.getpid()}.partial")
        tmp.unlink(missing_ok=True)
        MlflowClient(f"sqlite:///{tmp}").search_experiments()  # MLflow's own migrations
        os.replace(tmp, empty)
    return empty


def _fresh_sqlite(uri: str) -> bool:
    """Make the missing SQLite database of ``uri`` as a copy of the empty store; True if
    made. MLflow creates a new database through every one of its schema migrations (1-2 s;
    an existing one opens in well under 1 s), so that is done once per MLflow version."""
    db = _sqlite_path(uri)
    if db is None or db.exists():
        return False
    try:
        empty = _empty_store()
        db.parent.mkdir(parents=True, exist_ok=True)
        tmp = db.with_name(f".{db.name}.{os.getpid()}.partial")
        shutil.copyfile(empty, tmp)
        os.replace(tmp, db)
    except (OSError, MlflowException, sqlite3.Error):
        return False  # MLflow makes it, the slow way
    return True


def _default_experiment_here(client: MlflowClient, uri: str) -> None:
    """Give the copied store's Default experiment the artifact location MLflow gives it in
    this store (the empty one was made elsewhere)."""
    store = client._tracking_client.store
    location = store._get_artifact_location(0)
    with contextlib.closing(sqlite3.connect(str(_sqlite_path(uri)))) as con, con:
        con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
        )


def connect(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client of the store at ``uri`` and the id of experiment ``name`` (created if new).

    A check that the store is usable, not only reachable: a read-only SQLite file or a
    server that refuses the credentials fails here. Raises StoreError.
    """
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        with _sqlite_lock(uri):
            copied = _fresh_sqlite(uri)
            client = MlflowClient(uri)
            if copied:
                _default_experiment_here(client, uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = client.create_experiment(name)
                except MlflowException:  # created meanwhile by another process
                    experiment = client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
                    experiment_id = experiment.experiment_id
            else:
                experiment_id = experiment.experiment_id
            if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:
                # the UI opens it in the model-training view, not the GenAI one
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return client, experiment_id
    except STORE_ERRORS as exc:
        raise error(exc, uri) from exc
