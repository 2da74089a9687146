"""The invocation's run written straight into a SQLite store, so that no job waits for MLflow.

Standard library only. Before its first job, an invocation needs its parent run's id (job
keys and ``SNAKEMAKE_MLFLOW_PARENT_RUN_ID`` carry it). Through MLflow that costs importing
MLflow and its SQL store (about 1.5 s of a cold start), which every first job would wait
for. For a SQLite store, :func:`open_parent` writes the experiment (if new) and the run
itself, in one transaction, as MLflow's ``create_experiment``/``create_run`` would, while
the writer process imports MLflow for everything else.

It does so only where it was shown to write what MLflow writes: when the empty store of
this MLflow version is made (:func:`.store.empty_store`), the same experiment and run are
made once by MLflow and once here, and every table of the two databases compared; the
outcome is kept beside the empty store (:func:`facts`). A database of any other schema
revision, a deleted experiment, workspaces, a server-side artifact root, or any error
(read-only, locked, not a database): :func:`open_parent` returns None and the plugin goes
through MLflow, with MLflow's own checks and messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import json
import os
import re
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .channel import (
    CACHE_ENV,
    COMMAND_TAG,
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    EXPERIMENT_ENV,
    HOST_TAG,
    JOBS_TAG,
    KIND_TAG,
    PID_START_TAG,
    PID_TAG,
    RUN_NAME_TAG,
    TARGETS_TAG,
    TRACKING_URI_ENV,
    USER_TAG,
)
from .values import MAX_TAG, redact

SQLITE = "sqlite:///"
# MLflow's settings under which its SQL store writes other rows than the ones below
_OTHER_STORE_ENV = ("MLFLOW_ENABLE_WORKSPACES", "_MLFLOW_SERVER_ARTIFACT_ROOT")


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


def process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of process ``pid``, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(tags: Mapping[str, str]) -> bool:
    """Whether the snakemake process of an invocation (its run's tags) still runs (unknown,
    so taken as alive, on other hosts)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG):
        return True
    started = process_start(int(tags[PID_TAG]))
    return started is not None and started == tags.get(PID_START_TAG, started)


def source_tags(source: str, commit: str | None) -> dict[str, str]:
    """The tags MLflow's run context providers would set, for what really runs."""
    tags = {USER_TAG: user(), "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def parent_tags(
    *,
    snakefile: str,
    commit: str | None,
    targets: list[str],
    jobs: int,
    command: str,
    pid: int | None = None,
) -> dict[str, str]:
    """The tags of an invocation's run: what it runs, and the process that runs it (for the
    reaping of runs whose process is gone)."""
    pid = pid or os.getpid()
    return {
        KIND_TAG: "invocation",
        TARGETS_TAG: " ".join(targets)[:MAX_TAG],
        JOBS_TAG: str(jobs),
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PID_START_TAG: process_start(pid) or "",
        COMMAND_TAG: redact(command)[:MAX_TAG],
    } | source_tags(snakefile, commit)


def run_name() -> str:
    return f"snakemake {time.strftime('%Y-%m-%d %H:%M:%S')}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<absolute path>`` URI, else None."""
    if not uri.startswith(SQLITE + "/") or "?" in uri:
        return None
    return Path(uri[len(SQLITE) :])


@contextmanager
def sqlite_lock(uri: str) -> Iterator[None]:
    """Serialise the creation of a fresh SQLite store between concurrent invocations.

    A fresh database is a copy of the empty store (or MLflow migrates it); two processes
    doing that at once would corrupt it. Two invocations may start together in one
    directory.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@functools.cache
def mlflow_version() -> str | None:
    """The installed MLflow's version, without importing it (read once per process): from
    its ``version.py`` (a millisecond), else from the package metadata (some 20 ms)."""
    import importlib.util

    with contextlib.suppress(ImportError, ValueError, OSError):
        spec = importlib.util.find_spec("mlflow")
        if spec is not None and spec.origin:
            text = (Path(spec.origin).parent / "version.py").read_text()
            found = re.search(r'^VERSION = "([^"]+)"', text, re.MULTILINE)
            if found:
                return found.group(1)
    from importlib import metadata  # itself some 10 ms of imports

    for dist in ("mlflow", "mlflow-skinny"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return None


def empty_store_path(version: str) -> Path:
    """Where the empty store of MLflow ``version`` is kept (one per user)."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "snakemake-logger-plugin-mlflow"
    )
    return Path(root) / f"empty-mlflow-{version}.db"


def facts_path(empty: Path) -> Path:
    return empty.with_suffix(".json")


def facts(version: str | None = None) -> dict[str, Any]:
    """What is known of the empty store of this MLflow version: ``{"revision": schema
    revision, "direct": whether open_parent writes what MLflow writes, "jobs": whether
    :mod:`.sqljobs` writes job runs as MLflow's client API does}``, or {}."""
    version = version or mlflow_version()
    if version is None:
        return {}
    empty = empty_store_path(version)
    try:
        known = json.loads(facts_path(empty).read_text())
    except (OSError, ValueError):
        return {}
    return known | {"empty": str(empty)} if empty.exists() else {}


def writes_jobs(uri: str | None) -> bool:
    """Whether the store at ``uri`` (or MLflow's variable) is expected to need no MLflow
    for job runs: a SQLite store, and :mod:`.sqljobs` was shown to write this MLflow
    version's stores (``facts()["jobs"]``)."""
    return sqlite_path(resolve_uri(uri)) is not None and bool(facts().get("jobs"))


def revision(db: str | os.PathLike[str]) -> str | None:
    """The schema revision of a SQLite store (alembic's), or None."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def artifact_root() -> str:
    """The artifact root MLflow gives a SQLite store it opens here (``./mlruns``, absolute)."""
    return (Path.cwd() / "mlruns").as_posix()


def copy_empty(empty: Path, db: Path) -> None:
    """Make the missing database ``db`` as a copy of the empty store, its Default
    experiment's artifact location the one MLflow gives it here. Atomic."""
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.partial")
    shutil.copyfile(empty, tmp)
    try:
        with contextlib.closing(sqlite3.connect(tmp)) as con, con:
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (f"{artifact_root()}/0",),
            )
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _experiment(con: sqlite3.Connection, name: str, kind: tuple[str, str], now: int):
    """The id and artifact location of the active experiment ``name``, created if new, with
    the ``kind`` tag if it has none; None if it is deleted (or ambiguous)."""
    rows = con.execute(
        "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE name = ?",
        (name,),
    ).fetchall()
    if len(rows) > 1 or (rows and rows[0][2] != "active"):
        return None
    if rows:
        experiment_id, location = rows[0][0], rows[0][1]
    else:
        experiment_id = con.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
            "creation_time, last_update_time) VALUES (?, NULL, 'active', ?, ?)",
            (name, now, now),
        ).lastrowid
        location = f"{artifact_root()}/{experiment_id}"
        con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (location, experiment_id),
        )
    con.execute(
        "INSERT OR IGNORE INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)",
        (*kind, experiment_id),
    )
    return experiment_id, location


def open_parent(
    uri: str,
    experiment: str,
    *,
    tags: Mapping[str, str],
    run_name: str,
    kind: tuple[str, str],
    known: Mapping[str, Any] | None = None,
) -> tuple[str, str] | None:
    """Create the RUNNING run ``run_name`` with ``tags`` in experiment ``experiment`` of the
    SQLite store at ``uri`` (the experiment, with tag ``kind``, if new; the database, from
    the empty store, if missing): ``(experiment id, run id)``, or None where MLflow must do
    it. ``known``: :func:`facts` (read if not given)."""
    db = sqlite_path(uri)
    if db is None or any(os.environ.get(k) for k in _OTHER_STORE_ENV):
        return None
    known = facts() if known is None else known
    if not known.get("direct"):
        return None
    now = int(time.time() * 1000)
    run_id = uuid.uuid4().hex
    try:
        with sqlite_lock(uri):
            if not db.exists():
                copy_empty(Path(known["empty"]), db)
            con = sqlite3.connect(db, timeout=30, isolation_level=None)
            with contextlib.closing(con):
                con.execute("BEGIN IMMEDIATE")
                try:
                    row = con.execute("SELECT version_num FROM alembic_version").fetchall()
                    found = _experiment(con, experiment, kind, now)
                    if row != [(known["revision"],)] or found is None:
                        con.execute("ROLLBACK")
                        return None
                    experiment_id, location = found
                    con.execute(
                        "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                        "entry_point_name, user_id, status, start_time, end_time, "
                        "source_version, lifecycle_stage, artifact_uri, experiment_id, "
                        "deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, "
                        "NULL, '', 'active', ?, ?, NULL)",
                        (
                            run_id,
                            run_name,
                            tags.get(USER_TAG, "unknown"),
                            now,
                            f"{location}/{run_id}/artifacts",
                            experiment_id,
                        ),
                    )
                    con.executemany(
                        "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                        [
                            (k, v, run_id)
                            for k, v in ({RUN_NAME_TAG: run_name} | dict(tags)).items()
                        ],
                    )
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
    except (OSError, sqlite3.Error, KeyError):
        return None  # MLflow does it, and says what is wrong if something is
    return str(experiment_id), run_id
