"""Job runs, the invocation's config and end, and the reaping of orphans, written straight
into a SQLite store, so that the writer process needs no MLflow for a workflow's usual runs.

Standard library only. Importing MLflow and opening its SQL store costs the writer process
1.5-2 s of a cold start (and as much CPU, on a machine whose cores run the jobs); on a small
workflow that is most of what the invocation waits for at its end. Where the store is one
this module was shown to write exactly as MLflow's client API does (:func:`.store.empty_store`
runs the same jobs both ways once per MLflow version, and compares every table and every
artifact file: ``facts()["jobs"]``), :class:`SqlJobs` writes the rows MLflow would (runs,
tags, params, metrics, latest metrics, datasets and inputs) and copies the log files into
the run's artifact directory, a batch of job items in one transaction.

What it does not do, it leaves to MLflow, item by item: logged models and metrics linked to
them, a value MLflow might refuse (a key it does not take, a param longer than it allows),
an artifact root that is not a local directory, a run that is not active (deleted in the
UI), a run from an earlier invocation (a replay). A locked database raises :class:`Busy`
(an OSError: the writer retries it); any other SQLite error leaves the whole batch to
MLflow, which reports what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .channel import KILLED_TAG, KIND_TAG, MESSAGE_PREFIX, PARENT_TAG, RENAMED_TAG, USER_TAG
from .direct import alive
from .translate import (
    CONTEXT_TAG,
    NO_END_EVENT,
    base_tags,
    config_json,
    config_plan,
    dataset_line,
    entry_source,
    fitted_tags,
    log_files,
    orphan_reason,
    run_name,
    stats_metrics,
    translate,
    warnings_tag,
)
from .values import MAX_KEY, MAX_PARAM, MAX_TAG, fit_key

_MAX_FLOAT = sys.float_info.max


class Busy(OSError):
    """The database is locked by another process, or cannot be written now: retried."""


@dataclass
class Ledger:
    """What the writers of one process know of the runs they write (shared by this module's
    writer and MLflow's, so that either can end a run the other opened)."""

    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (run id, artifacts)
    ended: set[str] = field(default_factory=set)  # keys of the runs ended here
    parent_inputs: dict[str, set] = field(default_factory=dict)  # parent -> {(name, digest)}
    parent_models: dict[str, set] = field(default_factory=dict)  # parent -> {model id}
    lock: threading.Lock = field(default_factory=threading.Lock)


def key_ok(key: str) -> bool:
    """Whether MLflow takes ``key`` as a param, metric or tag key (:func:`.values.fit_key`
    leaves it as it is)."""
    return len(key) <= MAX_KEY and fit_key(key) == key


def metric_value(value: float) -> tuple[bool, float]:
    """(is_nan, stored value) as MLflow's SQL store keeps a metric value."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, _MAX_FLOAT if value > 0 else -_MAX_FLOAT
    return False, value


def local_dir(artifact_uri: str) -> Path | None:
    """The directory of a run's artifacts if it is a plain absolute local path, else None."""
    return (
        Path(artifact_uri) if artifact_uri.startswith("/") and "://" not in artifact_uri else None
    )


def copy_atomic(src: str, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a temporary file: no partial artifact is seen."""
    os.makedirs(dest.parent, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def write_atomic(text: str, dest: Path) -> None:
    os.makedirs(dest.parent, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)


class SqlJobs:
    """Writes job items and invocation items into the SQLite database ``db``."""

    def __init__(self, db: str | os.PathLike[str], ledger: Ledger):
        self.db = Path(db)
        self.ledger = ledger
        self.con: sqlite3.Connection | None = None
        self.locations: dict[str, str] = {}  # experiment id -> artifact location

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a locked database raises Busy, nothing of it is kept."""
        if self.con is None:
            self.con = sqlite3.connect(
                self.db, timeout=30, isolation_level=None, check_same_thread=False
            )
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            if con.in_transaction:  # not rolled back by the caller
                con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                raise Busy(str(exc)) from exc
            raise

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def _location(self, con: sqlite3.Connection, experiment_id: str) -> str | None:
        if experiment_id not in self.locations:
            row = con.execute(
                "SELECT artifact_location FROM experiments WHERE experiment_id = ? "
                "AND lifecycle_stage = 'active'",
                (int(experiment_id),),
            ).fetchone()
            if row is None or local_dir(row[0] or "") is None:
                return None
            self.locations[experiment_id] = row[0]
        return self.locations[experiment_id]

    @staticmethod
    def _active(con: sqlite3.Connection, run_id: str) -> bool:
        row = con.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,))
        return row.fetchone() == ("active",)

    @staticmethod
    def _tags(con: sqlite3.Connection, run_id: str, tags: Mapping[str, str]) -> None:
        con.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
            "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
            [(k, v, run_id) for k, v in tags.items()],
        )

    @staticmethod
    def _params(con: sqlite3.Connection, run_id: str, params: Mapping[str, str]) -> None:
        con.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(k, v, run_id) for k, v in params.items()],
        )

    @staticmethod
    def _metrics(
        con: sqlite3.Connection, run_id: str, metrics: Mapping[str, float], ts: int
    ) -> None:
        rows = []
        for key, value in metrics.items():
            is_nan, stored = metric_value(float(value))
            rows.append((key, stored, ts, run_id, 0, int(is_nan)))
        con.executemany(
            "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
            "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
            "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, excluded.value) "
            "> (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
            rows,
        )

    @staticmethod
    def _end(con: sqlite3.Connection, run_id: str, status: str, end_ms: int) -> None:
        con.execute(
            "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
            (status, end_ms, run_id),
        )

    def _inputs(
        self, con: sqlite3.Connection, experiment_id: str, run_id: str, lines: list
    ) -> None:
        """``log_inputs`` of datasets (deduplicated by name and digest, as MLflow does)."""
        seen: dict[tuple[str, str], Any] = {}
        for line in lines:
            seen.setdefault((line.name, line.digest), line)
        for (name, digest), line in seen.items():
            row = con.execute(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? "
                "AND digest = ?",
                (int(experiment_id), name, digest),
            ).fetchone()
            if row is None:
                dataset = uuid.uuid4().hex
                con.execute(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, "
                    "dataset_source_type, dataset_source, dataset_schema, dataset_profile) "
                    "VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    (dataset, int(experiment_id), name, digest, line.source_type, line.source),
                )
            else:
                dataset = row[0]
            if con.execute(
                "SELECT 1 FROM inputs WHERE source_type = 'DATASET' AND source_id = ? "
                "AND destination_type = 'RUN' AND destination_id = ?",
                (dataset, run_id),
            ).fetchone():
                continue
            edge = uuid.uuid4().hex
            con.execute(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, "
                "destination_id) VALUES (?, 'DATASET', ?, 'RUN', ?)",
                (edge, dataset, run_id),
            )
            con.execute(
                "INSERT INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)",
                (edge, CONTEXT_TAG, line.context),
            )

    # ------------------------------------------------------------------ job items

    def _new_run(self, con, entry: Mapping[str, Any]) -> tuple[str, str] | None:
        """A RUNNING run's rows, as ``create_run`` writes them: (run id, artifact dir)."""
        tags, _ = fitted_tags(base_tags(entry, entry_source(entry)))
        location = self._location(con, str(entry["experiment_id"]))
        if location is None or not all(key_ok(k) for k in tags):
            return None
        run_id = uuid.uuid4().hex
        name = run_name(entry)
        artifact_uri = f"{location}/{run_id}/artifacts"
        con.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', ?, "
            "'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
            (
                run_id,
                name,
                tags.get(USER_TAG, "unknown"),
                entry.get("start_ms"),
                artifact_uri,
                int(entry["experiment_id"]),
            ),
        )
        self._tags(con, run_id, tags | {"mlflow.runName": name})
        return run_id, artifact_uri

    def _finish(self, con, entry: Mapping[str, Any], run: tuple[str, str]) -> bool:
        """Log a finished job to its run and end it; False (nothing written) if MLflow must."""
        run_id, artifact_uri = run
        plan = translate(entry, entry_source(entry))
        where = local_dir(artifact_uri)
        if (
            where is None
            or plan.models
            or plan.model_metrics
            or any(model or not os.path.isfile(path) for path, _, model in plan.artifacts)
            or not self._active(con, run_id)
        ):
            return False
        datasets = [dataset_line(line) for line in plan.inputs]
        for line in datasets:
            if line.sha256:
                plan.tags[f"input.{line.context}.sha256"] = line.sha256
        tags = plan.tags | warnings_tag(plan.warnings)
        if not (
            all(key_ok(k) for k in [*tags, *plan.params, *plan.metrics])
            and all(len(v) <= MAX_PARAM for v in plan.params.values())
            and all(len(v) <= MAX_TAG for v in tags.values())
        ):
            return False
        end_ms = entry.get("end_ms") or 0
        if datasets:
            self._inputs(con, str(entry["experiment_id"]), run_id, datasets)
            self._on_parent(con, entry, datasets)
        self._params(con, run_id, plan.params)
        self._metrics(con, run_id, plan.metrics, end_ms)
        self._tags(con, run_id, tags)
        for path, folder in log_files(entry):
            if os.path.isfile(path):
                copy_atomic(path, where / folder / os.path.basename(path))
        for path, folder, _ in plan.artifacts:
            copy_atomic(path, where.joinpath(*filter(None, [folder])) / os.path.basename(path))
        self._end(con, run_id, plan.status, end_ms)
        return True

    def _on_parent(self, con, entry: Mapping[str, Any], datasets: list) -> None:
        """The invocation's run lists the datasets its jobs read (each once)."""
        parent = entry["parent"]
        seen = self.ledger.parent_inputs.setdefault(parent, set())
        new = [d for d in datasets if (d.name, d.digest) not in seen]
        if new:
            self._inputs(con, str(entry["experiment_id"]), parent, new)
            seen |= {(d.name, d.digest) for d in new}

    def write_many(self, items: list[tuple]) -> list[tuple]:
        """Write what it can of ``items`` (job items: start, tag, finish, in order) in one
        transaction; return the items left for MLflow, in order. Nothing of the batch is
        kept (in the database or in the ledger) if the transaction fails."""
        ledger = self.ledger
        new: dict[str, tuple[str, str]] = {}
        ended: list[str] = []
        left: list[tuple] = []
        deferred: set[str] = set()
        inputs_before = {k: set(v) for k, v in ledger.parent_inputs.items()}
        try:
            with ledger.lock, self._tx() as con:
                for item in items:
                    kind = item[0]
                    key = item[1] if isinstance(item[1], str) else item[1]["key"]
                    run = new.get(key) or ledger.runs.get(key)
                    if key in deferred or (kind != "start" and run is None):
                        if kind != "tag" or run is not None:  # a tag of no run is not logged
                            deferred.add(key)
                            left.append(item)
                        continue
                    if kind == "start":
                        if run is None and key not in ledger.ended:
                            made = self._new_run(con, item[1])
                            if made is None:
                                deferred.add(key)
                                left.append(item)
                            else:
                                new[key] = made
                    elif kind == "tag":
                        fits = all(key_ok(k) and len(v) <= MAX_TAG for k, v in item[2].items())
                        if fits and self._active(con, run[0]):
                            self._tags(con, run[0], item[2])
                        else:
                            deferred.add(key)
                            left.append(item)
                    elif self._finish(con, item[1], run):
                        ended.append(key)
                    else:
                        deferred.add(key)
                        left.append(item)
        except BaseException:
            ledger.parent_inputs.clear()
            ledger.parent_inputs.update(inputs_before)
            raise
        ledger.runs |= new
        for key in ended:
            ledger.runs.pop(key, None)
            ledger.ended.add(key)
        return left

    # ------------------------------------------------------------------ invocation items

    def log_config(self, run_id: str, config: Mapping[str, Any]) -> bool:
        """The workflow's config on the invocation's run (as :func:`.invocation.log_config`);
        False if MLflow must do it."""
        safe, params, renamed = config_plan(config)
        tags = {RENAMED_TAG: json.dumps(renamed)[:MAX_TAG]} if renamed else {}
        if not all(len(v) <= MAX_PARAM for v in params.values()):
            return False
        with self._tx() as con:
            row = con.execute(
                "SELECT artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
            if row is None or row[1] != "active" or local_dir(row[0]) is None:
                con.execute("ROLLBACK")
                return False
            known = dict(con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
            if any(known.get(k, v) != v for k, v in params.items()):
                con.execute("ROLLBACK")
                return False  # MLflow says which param may not change
            self._params(con, run_id, {k: v for k, v in params.items() if k not in known})
            self._tags(con, run_id, tags)
            write_atomic(config_json(safe), local_dir(row[0]) / "config.json")
        return True

    def _kill(self, con, runs: list[str], reason: str, now: int) -> None:
        for run_id in runs:
            self._tags(con, run_id, {KILLED_TAG: reason[:MAX_TAG]})
            self._end(con, run_id, "KILLED", now)

    @staticmethod
    def _running(con, experiment_id: int, tag: str, value: str) -> list[str]:
        """Active RUNNING runs of an experiment with tag ``tag`` = ``value``."""
        rows = con.execute(
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE r.experiment_id = ? AND r.status = 'RUNNING' AND "
            "r.lifecycle_stage = 'active' AND t.key = ? AND t.value = ?",
            (experiment_id, tag, value),
        )
        return [r[0] for r in rows]

    def end(self, run_id: str, status: str, stats: Mapping[str, float] | None = None) -> bool:
        """Close the invocation's run as :func:`.invocation.end` does; False if MLflow must."""
        now = int(time.time() * 1000)
        with self._tx() as con:
            row = con.execute(
                "SELECT experiment_id FROM runs WHERE run_uuid = ? AND lifecycle_stage = 'active'",
                (run_id,),
            ).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                return False
            if stats:
                self._metrics(con, run_id, stats_metrics(stats), now)
            self._kill(con, self._running(con, row[0], PARENT_TAG, run_id), NO_END_EVENT, now)
            self._end(con, run_id, status, now)
        return True

    def reap(self, experiment_id: str) -> int:
        """Mark runs of invocations whose snakemake process is gone KILLED, as
        :func:`.invocation.reap_orphans` does; return how many."""
        now, killed = int(time.time() * 1000), 0
        with self._tx() as con:
            for parent in self._running(con, int(experiment_id), KIND_TAG, "invocation"):
                tags = dict(
                    con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (parent,))
                )
                if alive(tags):
                    continue
                children = self._running(con, int(experiment_id), PARENT_TAG, parent)
                self._kill(con, [*children, parent], orphan_reason(tags), now)
                killed += len(children) + 1
        if killed:
            print(
                f"{MESSAGE_PREFIX}: marked {killed} orphaned MLflow run(s) KILLED", file=sys.stderr
            )
        return killed


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "disk i/o" in text or "unable to open" in text
