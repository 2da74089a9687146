"""The tracking store: where it is, whether it answers, and values fit to be logged.

Imports MLflow; the writer process imports it (the standard-library side is :mod:`.direct`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import time
from pathlib import Path

from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException

from . import direct
from .channel import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    HOST_TAG,
    HTTP_RETRY_DEFAULTS,
    KIND_TAG,
    PARENT_TAG,
    PID_START_TAG,
    PID_TAG,
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

STORE_ERRORS = (MlflowException, OSError, RequestException)


class StoreError(Exception):
    """The tracking store cannot be used; the message is one line naming it and why."""


# What a SQL backend says when a row's unique key was taken (SQLite, PostgreSQL, MySQL):
# MLflow's server answers 400 BAD_REQUEST. Where a concurrent request took it (two requests
# logging one new dataset at once both insert it), the same request sent again finds it.
_CONFLICT = re.compile(
    r"UNIQUE constraint failed|duplicate key value violates unique constraint|Duplicate entry"
)


def conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is the store's refusal of a row whose unique key was taken: where only
    a concurrent request can have taken it, the same request sent again succeeds."""
    return isinstance(exc, MlflowException) and bool(_CONFLICT.search(str(exc)))


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


def _rows(db: Path, run_id: str) -> dict[str, list]:
    """Every table of a SQLite store, its rows sorted, with times and ``run_id`` blanked."""
    out = {}
    with contextlib.closing(sqlite3.connect(db)) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = con.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            rows = [
                tuple(
                    None if n.endswith("_time") else str(v).replace(run_id, "<run>")
                    for n, v in zip(names, row)
                )
                for row in cursor
            ]
            out[table] = sorted(rows, key=repr)
    return out


def direct_matches(empty: Path, workdir: Path) -> bool:
    """Whether :func:`.direct.open_parent` writes, from ``empty``, exactly what MLflow writes
    in a database it makes itself (every table compared): the same experiment, tags and run."""
    tags = direct.parent_tags(
        snakefile="Snakefile", commit="0" * 40, targets=["all"], jobs=1, command=""
    )
    kind = (EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    made, written = workdir / "made.db", workdir / "direct.db"
    client = MlflowClient(f"sqlite:///{made}")
    experiment_id = client.create_experiment("probe")
    client.set_experiment_tag(experiment_id, *kind)
    run = client.create_run(experiment_id, run_name="probe run", tags=tags)
    known = {"revision": direct.revision(made), "direct": True, "empty": str(empty)}
    opened = direct.open_parent(
        f"sqlite:///{written}", "probe", tags=tags, run_name="probe run", kind=kind, known=known
    )
    if opened is None or opened[0] != experiment_id:
        return False
    return _rows(made, run.info.run_id) == _rows(written, opened[1])


def _probe_jobs(experiment_id: str, parent: str, workdir: Path) -> list[tuple]:
    """Job items of one invocation, as the writer gets them: a job that ends (params,
    metrics with a NaN and an infinity, tags, a local and a URL input, a log, an artifact,
    an output digest), a job that is tagged and never ends (KILLED with the invocation)."""
    data, log, extra = workdir / "in.csv", workdir / "job.log", workdir / "extra.txt"
    data.write_text("a,b\n1,2\n")
    log.write_text("job log\n")
    extra.write_text("extra\n")
    common = {
        "parent": parent,
        "experiment_id": experiment_id,
        "snakefile": "Snakefile",
        "commit": "0" * 40,
        "host": "probe-host",
        "threads": 2,
        "resources": {"mem_mb": 100, "_nodes": 1, "tmpdir": "/tmp"},
        "start_ms": 1_000,
    }
    job = common | {
        "key": f"{parent}/1",
        "jobid": 1,
        "attempt": 1,
        "rule": "train",
        "wildcards": {"dataset": "d", "odd key~": "v"},
        "input": [str(data)],
        "output": ["out/model.bin"],
        "log": [str(log)],
        "benchmark": [],
    }
    record = [
        {"params": {"alpha": 0.5, "nested": {"depth": 3}}},
        {"metrics": {"accuracy": 0.75, "nan": float("nan"), "inf": float("inf")}},
        {"tags": {"stage": "probe"}},
        {"input": str(data), "context": "training"},
        {"input": "https://example.org/x.csv?token=secret", "digest": "ab" * 32, "name": "x"},
        {"artifact": str(extra), "artifact_path": "extras"},
        {"outputs": {"model": "out/model.bin"}},
    ]
    ended = job | {
        "status": "FINISHED",
        "end_ms": 2_000,
        "record": record,
        "sha256": {"out/model.bin": "cd" * 32},
        "bytes": {"out/model.bin": 42},
    }
    never = common | {
        "key": f"{parent}/2",
        "jobid": 2,
        "attempt": 1,
        "rule": "evaluate",
        "wildcards": {},
        "input": [],
        "output": ["out/eval.json"],
        "log": [],
        "benchmark": [],
    }
    return [
        ("start", job),
        ("start", never),
        ("tag", never["key"], {"slurm_jobid": "7"}),
        ("finish", ended),
    ]


def _labelled(db: Path, art: Path) -> dict[str, list]:
    """Every table of a SQLite store, its rows sorted, with times blanked and every id
    (run, dataset, input) replaced by a label made of what it names."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        labels = {r: f"<run {n}>" for r, n in con.execute("SELECT run_uuid, name FROM runs")}
        for uid, name, digest in con.execute("SELECT dataset_uuid, name, digest FROM datasets"):
            labels[uid] = f"<dataset {name} {digest}>"
        for uid, src, dest in con.execute(
            "SELECT input_uuid, source_id, destination_id FROM inputs"
        ):
            labels[uid] = f"<input {labels.get(src, src)} {labels.get(dest, dest)}>"
        out = {}
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = con.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            rows = []
            for row in cursor:
                values = []
                for name, value in zip(names, row):
                    text = str(value).replace(str(art), "<art>")
                    for uid, label in labels.items():
                        text = text.replace(uid, label)
                    values.append(None if name.endswith(("_time", "timestamp")) else text)
                rows.append(tuple(values))
            out[table] = sorted(rows, key=repr)
    files = {}
    for path in sorted(p for p in art.rglob("*") if p.is_file()):
        name = path.relative_to(art).as_posix()
        for uid, label in labels.items():
            name = name.replace(uid, label)
        files[name] = path.read_bytes()
    return {"tables": out, "files": files}


def jobs_match(empty: Path, workdir: Path) -> bool:
    """Whether :class:`.sqljobs.SqlJobs` writes, from ``empty``, exactly what MLflow's client
    API (this plugin's :class:`.jobs.JobWriter` and :mod:`.invocation`) writes: the same jobs
    (one finished, one KILLED at the end), config, end of the invocation and reaping of an
    orphaned invocation; every table and every artifact file compared."""
    from . import invocation
    from .jobs import JobWriter
    from .sqljobs import Ledger, SqlJobs

    config = {"model": {"C": 1.0}, "url": "https://u:p@example.org/d.csv", "odd'key": 1}
    stats = {"job_runs": 1, "writer_seconds": 0.5}
    # an invocation of this host whose process is gone (pid 1 started at another time)
    dead = {KIND_TAG: "invocation", HOST_TAG: socket.gethostname(), PID_TAG: "1"}
    dead[PID_START_TAG] = "-1"
    found = {}
    for way in ("mlflow", "sqljobs"):
        db, art = workdir / f"{way}-jobs.db", workdir / f"{way}-art"
        shutil.copyfile(empty, db)
        client = MlflowClient(f"sqlite:///{db}")
        experiment_id = client.create_experiment("probe", artifact_location=str(art))
        parent = client.create_run(experiment_id, run_name="probe run", tags={"a": "b"})
        orphan = client.create_run(experiment_id, run_name="orphan", tags=dead)
        child_tags = {PARENT_TAG: orphan.info.run_id}
        client.create_run(experiment_id, run_name="orphan's job", tags=child_tags)
        parent_id = parent.info.run_id
        items = _probe_jobs(experiment_id, parent_id, workdir)
        if way == "mlflow":
            invocation.log_config(client, parent_id, config)
            writer = JobWriter(client)
            writer.bulk = None  # the client API, call by call: the reference
            for item in items:
                if item[0] == "start":
                    writer.open(item[1])
                elif item[0] == "tag":
                    writer.tag(item[1], item[2])
                else:
                    writer.log(item[1])
            invocation.reap_orphans(client, experiment_id)
            invocation.end(client, parent_id, "FINISHED", stats)
        else:
            sql = SqlJobs(db, Ledger())
            done = (
                sql.log_config(parent_id, config)
                and not sql.write_many(items)
                and sql.reap(experiment_id) == 2
                and sql.end(parent_id, "FINISHED", stats)
            )
            sql.close()
            if not done:
                return False
        found[way] = _labelled(db, art)
    return found["mlflow"] == found["sqljobs"]


def empty_store() -> Path:
    """An empty, migrated SQLite store of this MLflow version, made once per user, with what
    is known of it beside it (:func:`.direct.facts`: its revision, and whether the plugin may
    write the invocation's run into a store of that revision itself)."""
    import tempfile

    import mlflow

    empty = direct.empty_store_path(mlflow.__version__)
    if not empty.exists() or "jobs" not in direct.facts(mlflow.__version__):
        empty.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=empty.parent, prefix=".making-") as tmp:
            made = Path(tmp, empty.name)
            MlflowClient(f"sqlite:///{made}").search_experiments()  # MLflow's own migrations
            facts = {"revision": direct.revision(made), "mlflow": mlflow.__version__}
            facts["direct"] = direct_matches(made, Path(tmp))
            facts["jobs"] = facts["direct"] and _safely(jobs_match, made, Path(tmp))
            os.replace(made, empty)
            fact_file = Path(tmp, "facts.json")
            fact_file.write_text(json.dumps(facts))
            os.replace(fact_file, direct.facts_path(empty))
    return empty


def _safely(probe, *args) -> bool:
    """A probe's answer; False if it fails (a store it cannot read, an MLflow it does not
    know): the plugin then goes through MLflow."""
    try:
        return bool(probe(*args))
    except Exception:
        return False


def _fresh_sqlite(uri: str) -> None:
    """Make the missing SQLite database of ``uri`` as a copy of the empty store. MLflow
    makes a new database through every one of its schema migrations (1-2 s; an existing
    one opens in well under 1 s), so that is done once per MLflow version. The empty store
    is also made (its facts completed) for an existing database if it is missing (or was
    made by an earlier version of this plugin): the next invocation may then go direct."""
    db = direct.sqlite_path(uri)
    if db is None or (db.exists() and "jobs" in direct.facts()):
        return
    with contextlib.suppress(OSError, MlflowException, sqlite3.Error):
        empty = empty_store()
        if not db.exists():
            direct.copy_empty(empty, db)  # else MLflow makes it, the slow way


def connect(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client of the store at ``uri`` and the id of experiment ``name`` (created if new).

    A check that the store is usable, not only reachable: a read-only SQLite file or a
    server that refuses the credentials fails here. Raises StoreError.
    """
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        with direct.sqlite_lock(uri):
            _fresh_sqlite(uri)
            client = MlflowClient(uri)
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
