"""From Snakemake's log events to MLflow: the invocation's run, a run per job, one writer.

Events arrive through :meth:`Tracker.on_event`, called synchronously in the thread that logs
them (Snakemake's main thread), so that what must happen before a job starts does: the store
check and the parent run (``run_info``, before any job), removing a job's stale record
(``job_info``, before the job is spawned), and saving a finished job's entry to the spool
(``job_finished``/``job_error``). Everything that talks to the store runs on one writer
thread, in order, retried while the store is down; :meth:`Tracker.close` waits for it (at
most ``drain_timeout`` seconds) and leaves what is not logged in the spool for the next
invocation. Nothing here imports MLflow until jobs are about to run.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import spool
from .channel import EXPERIMENT_ENV, PARENT_RUN_ENV, RECORD_SUFFIX, TRACKING_URI_ENV

_ANNOTATION = re.compile(r" \([^()]*\)$")  # "path (temp)" in Snakemake's job_info
# What executors say when they submit a job: (pattern with jobid and external id, tag key)
SUBMITTED = [
    (re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)"), "slurm.job_id"),
    (re.compile(r"Submitted job (\d+) with external jobid '([^']+)'"), "cluster.job_id"),
]


def _paths(files) -> list[str]:
    out = []
    for f in [files] if isinstance(files, str) else files or []:
        f = str(f)
        out.append(f if os.path.exists(f) or not _ANNOTATION.search(f) else _ANNOTATION.sub("", f))
    return out


def git_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit checked out in the git repository holding ``path``, or None."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _find_workflow():
    """The Snakemake Workflow object logging this event (for its config and targets), or None.

    The logger interface passes no workflow; ``run_info`` is logged by a Workflow method, so
    the object is ``self`` in a calling frame.
    """
    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        cls = type(obj)
        if cls.__name__ == "Workflow" and cls.__module__ == "snakemake.workflow":
            return obj
        frame = frame.f_back
    return None


def _as_dict(line) -> dict:
    return line if isinstance(line, dict) else {}


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        drain_timeout: float = 120.0,
        dryrun: bool = False,
        cluster_id_tag: str | None = None,
    ):
        self.cluster_id_tag = cluster_id_tag or "cluster.job_id"
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.drain_timeout = drain_timeout
        self.dryrun = dryrun
        self.spool = spool.SPOOL_DIR.resolve()
        self.header: dict[str, Any] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.parent: str | None = None
        self.experiment_id: str | None = None
        self.uri: str | None = None
        self.commit: str | None = None
        self.failed = False
        self.progress = (0, 0)
        self.queue: queue.Queue = queue.Queue()
        self.writer: threading.Thread | None = None
        self.stop = threading.Event()
        self.closed = False
        self.warned = False
        self.client = None

    # ------------------------------------------------------------------ events (main thread)

    def on_event(self, record) -> None:
        event = getattr(record, "event", None)
        if self.dryrun:
            return
        if event is None:
            if self.parent is not None and isinstance(record.msg, str) and "ubmitted" in record.msg:
                self._submitted(record.msg)
            return
        event = str(event)
        if event == "workflow_started":
            self.header = {
                "cmd": getattr(record, "cmd", ""),
                "snakefile": str(getattr(record, "snakefile_main", None) or "Snakefile"),
            }
            self.spool = spool.SPOOL_DIR.resolve()
            if spool.has_pending(self.spool):
                self._start_writer()
                self.queue.put(("replay",))
        elif event == "run_info":
            self._start_invocation(getattr(record, "stats", {}) or {})
        elif self.parent is None:
            return
        elif event == "job_info":
            self._job_info(record)
        elif event == "job_finished":
            self._job_end(record.job_id, "FINISHED")
        elif event == "job_error":
            self._job_end(record.jobid, "FAILED")
        elif event in ("error", "group_error"):
            self.failed = True
        elif event == "progress":
            self.progress = (record.done, record.total)

    def _start_invocation(self, stats: dict) -> None:
        """Check the store and open the parent run, before any job; exit 1 if unusable."""
        from . import invocation, store

        self.uri = store.resolve_uri(self.tracking_uri)
        name = store.experiment_name(self.experiment)
        workflow = _find_workflow()
        snakefile = str(self.header.get("snakefile") or "Snakefile")
        self.commit = git_commit(Path(snakefile).resolve().parent)
        targets: list[str] = []
        config = None
        if workflow is not None:
            config = dict(workflow.config)
            jobs = workflow.dag.targetjobs
            targets = sorted(
                {job.rule.name for job in jobs}
                | {str(f) for job in jobs for f in (job.output or job.input)}
            )
        try:
            client, self.experiment_id = store.connect(self.uri, name)
            self.parent = invocation.start(
                client,
                self.experiment_id,
                snakefile=snakefile,
                commit=self.commit,
                targets=targets,
                jobs=int(stats.get("total", 0)),
                config=config,
                command=str(self.header.get("cmd") or ""),
            )
        except store.StoreError as exc:
            self._fatal(str(exc))
        except store.STORE_ERRORS as exc:
            self._fatal(str(store.error(exc, self.uri)))
        os.environ[TRACKING_URI_ENV] = self.uri
        os.environ[EXPERIMENT_ENV] = name
        os.environ[PARENT_RUN_ENV] = self.parent
        self.client = client
        self._start_writer()
        self.queue.put(("replay",))
        self.queue.put(("reap",))

    @staticmethod
    def _fatal(message: str) -> None:
        print(f"snakeflow error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def _job_info(self, record) -> None:
        logs = _paths(getattr(record, "log", []))
        for path in logs:  # a record left by an earlier run of this job is not this run's
            if path.endswith(RECORD_SUFFIX):
                Path(path).unlink(missing_ok=True)
        job = {
            "key": f"{self.parent}/{record.jobid}",
            "jobid": record.jobid,
            "rule": record.rule_name,
            "wildcards": dict(getattr(record, "wildcards", None) or {}),
            "input": _paths(getattr(record, "input", [])),
            "output": _paths(getattr(record, "output", [])),
            "log": logs,
            "benchmark": _paths(getattr(record, "benchmark", None) or []),
            "threads": getattr(record, "threads", 1),
            "resources": {
                k: v
                for k, v in dict(getattr(record, "resources", None) or {}).items()
                if isinstance(v, (str, int, float))
            },
            "start_ms": _now_ms(),
        }
        self.jobs[record.jobid] = job
        if job["output"] or job["log"]:
            self.queue.put(("start", job))

    def _context(self) -> dict[str, Any]:
        """What every job entry of this invocation shares."""
        return {
            "parent": self.parent,
            "experiment_id": self.experiment_id,
            "snakefile": str(self.header.get("snakefile") or ""),
            "commit": self.commit,
            "host": socket.gethostname(),
        }

    def _submitted(self, message: str) -> None:
        """Tag a job's run with the scheduler's id for it, from the executor's message."""
        for pattern, key in SUBMITTED:
            key = self.cluster_id_tag if key == "cluster.job_id" else key
            found = pattern.search(message)
            if found and int(found.group(1)) in self.jobs:
                job = self.jobs[int(found.group(1))]
                job.setdefault("tags", {})[key] = found.group(2)
                self.queue.put(("tag", job["key"], {key: found.group(2)}))

    def _job_end(self, jobid: int, status: str) -> None:
        job = self.jobs.pop(jobid, None)
        if job is None:
            return
        if not job["output"] and not job["log"]:  # a target rule such as `all`: no run
            return
        entry = (
            job
            | self._context()
            | {
                "status": status,
                "end_ms": _now_ms(),
                "record": [
                    line
                    for path in job["log"]
                    if path.endswith(RECORD_SUFFIX)
                    for line in spool.read_record(path)
                ],
            }
        )
        source = [line["source"] for line in entry["record"] if "source" in _as_dict(line)]
        if source:
            entry["source"] = str(source[-1])
        spool.put(self.spool, entry)
        self.queue.put(("finish", entry["key"]))

    # ------------------------------------------------------------------ the writer thread

    def _start_writer(self) -> None:
        if self.writer is None:
            self.writer = threading.Thread(target=self._write, name="mlflow-writer", daemon=True)
            self.writer.start()

    def _client(self):
        from . import store

        if self.client is None:
            self.uri = self.uri or store.resolve_uri(self.tracking_uri)
            self.client, self.experiment_id = store.connect(
                self.uri, store.experiment_name(self.experiment)
            )
        return self.client

    def _write(self) -> None:
        from . import jobs

        models = None
        delay = 1.0
        while True:
            item = self.queue.get()
            if item is None:
                return
            while True:
                try:
                    client = self._client()
                    models = models or jobs.Models(client)
                    self._do(item, client, models)
                    delay = 1.0
                    break
                except Exception as exc:  # the store is down or failing: keep it, retry
                    if not self.warned:
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        print(
                            f"snakeflow warning: MLflow tracking store not answering "
                            f"({type(exc).__name__}: {reason[:200]}); job records are kept "
                            f"in {self.spool} and logged when it answers",
                            file=sys.stderr,
                            flush=True,
                        )
                        self.warned = True
                    if self.stop.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)
            self.queue.task_done()

    def _do(self, item: tuple, client, models) -> None:
        from . import invocation, jobs

        kind = item[0]
        if kind == "start":
            job = item[1]
            jobs.open_run(client, job | self._context())
        elif kind == "tag":
            run = jobs.find_run(client, self.experiment_id, item[1])
            if run is not None:
                client.set_tag(run.info.run_id, *next(iter(item[2].items())))
        elif kind in ("finish", "replay"):
            for entry in spool.pending(self.spool):
                if kind == "replay" or entry["key"] == item[1]:
                    self._log(client, entry, models)
        elif kind == "reap":
            invocation.reap_orphans(client, self.experiment_id)

    def _log(self, client, entry: dict, models) -> None:
        """Log one spool entry (a job, or the end of an invocation), then drop it."""
        from . import invocation, jobs

        if entry.get("kind") == "invocation_end":
            invocation.end(client, entry["parent"], entry["status"])
        else:
            jobs.log_entry(client, entry, models)
        spool.done(self.spool, entry["key"])

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.writer is None:
            return
        if self.parent is not None:
            done, total = self.progress
            status = "FAILED" if self.failed else "FINISHED" if done >= total else "KILLED"
            key = f"{self.parent}/end"
            spool.put(
                self.spool,
                {"key": key, "kind": "invocation_end", "parent": self.parent, "status": status},
            )
            self.queue.put(("finish", key))
        self.queue.put(None)
        self.writer.join(self.drain_timeout)
        if self.writer.is_alive():
            self.stop.set()
            left = len(spool.pending(self.spool))
            print(
                f"snakeflow warning: MLflow tracking store {self.uri} did not answer within "
                f"{self.drain_timeout:.0f} s; {left} job record(s) kept in {self.spool} are "
                "logged by the next snakemake invocation in this directory",
                file=sys.stderr,
                flush=True,
            )
            self.writer.join(5)
