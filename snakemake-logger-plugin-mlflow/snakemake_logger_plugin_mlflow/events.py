"""From Snakemake's log events to work for the writer: one small handler per event.

Events arrive through :meth:`Events.on_event`, synchronously, in the thread that logs them
(Snakemake's main thread), so that what must happen before a job starts does: the store
check and the parent run (``run_info``, before any job: written straight into a SQLite
store by :mod:`.direct`, else made by the writer process, which this one waits for),
removing a job's stale record (``job_info``, before the job is spawned), and, when a job
ends, the digests of its outputs (before ``temp()`` deletes them) and its entry in the spool
(before anything is sent). Everything else that talks to the store runs in the writer's own
process (:mod:`.child`): the snakemake process never imports MLflow (about 1 s of CPU, and
its finalization at exit).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from . import direct, spool
from .channel import (
    EXPERIMENT_ENV,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    HTTP_RETRY_DEFAULTS,
    MESSAGE_PREFIX,
    PARENT_RUN_ENV,
    RECORD_SUFFIX,
    TRACKING_URI_ENV,
)
from .child import WriterProcess
from .digest import describe
from .writer import lanes_for

_ANNOTATION = re.compile(r" \([^()]*\)$")  # "path (temp)" in Snakemake's job_info
# What executors say when they submit a job: (pattern with jobid and external id, tag key)
SUBMITTED = [
    (re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)"), "slurm.job_id"),
    (re.compile(r"Submitted job (\d+) with external jobid '([^']+)'"), None),
]
END_OF_RUN = "Elapsed time:"  # Snakemake's last line of a run that got to its end
CLUSTER_ID_TAG = "cluster.job_id"


def paths(files) -> list[str]:
    """File names from a job_info field, without Snakemake's annotations (``(temp)``)."""
    out = []
    for f in [files] if isinstance(files, str) else files or []:
        f = str(f)
        # a file stat only for a name that ends like an annotation (one per job file costs)
        annotated = _ANNOTATION.search(f) is not None and not os.path.exists(f)
        out.append(_ANNOTATION.sub("", f) if annotated else f)
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


def find_workflow():
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


def hear_job_ends(workflow) -> None:
    """Make Snakemake log its job_finished events under ``--quiet progress``/``all`` too.

    Its scheduler logs a job's end only when it prints progress; its own handlers filter
    those events out under ``--quiet`` anyway, so what the user sees does not change.
    """
    scheduler = getattr(workflow, "scheduler", None)
    if scheduler is not None and getattr(scheduler, "print_progress", True) is False:
        scheduler.print_progress = True


def _now_ms() -> int:
    return int(time.time() * 1000)


def fatal(message: str) -> None:
    print(f"{MESSAGE_PREFIX}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


class Events:
    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        drain_timeout: float = 120.0,
        dryrun: bool = False,
        quiet: bool = False,
        cluster_id_tag: str | None = None,
    ):
        self.cluster_id_tag = cluster_id_tag or CLUSTER_ID_TAG
        self.drain_timeout = drain_timeout
        self.dryrun = dryrun
        self.quiet = quiet  # no progress lines (Snakemake's --quiet, --quiet progress)
        self.spool = spool.SPOOL_DIR.resolve()
        self.header: dict[str, Any] = {}
        self.jobs: dict[int, dict[str, Any]] = {}  # running jobs by jobid
        self.attempts: dict[int, int] = {}
        self.failed: set[int] = set()  # jobs whose last attempt failed
        self.error = False  # Snakemake reported an error that ends the run
        self.reached_end = False
        self.parent: str | None = None
        self.experiment_id: str | None = None
        self.uri: str | None = None
        self.commit: str | None = None
        self.closed = False
        self.writer = WriterProcess(tracking_uri, experiment, self.spool)
        self.host = socket.gethostname()
        self.handlers = {
            "workflow_started": self.workflow_started,
            "run_info": self.run_info,
            "job_info": self.job_info,
            "job_finished": lambda r: self.job_end(r.job_id, "FINISHED"),
            "job_error": lambda r: self.job_end(r.jobid, "FAILED"),
            "group_error": self.group_error,
            "error": self.on_error,
        }

    def on_event(self, record) -> None:
        if self.dryrun:
            return
        event = getattr(record, "event", None)
        if event is None:
            if self.parent is not None and isinstance(record.msg, str):
                if "ubmitted" in record.msg:
                    self.submitted(record.msg)
                elif record.msg.startswith(END_OF_RUN):
                    self.reached_end = True
            return
        handler = self.handlers.get(str(event))
        if handler is not None and (self.parent is not None or str(event) in self.early):
            handler(record)

    early = ("workflow_started", "run_info")

    # ------------------------------------------------------------------ handlers

    def workflow_started(self, record) -> None:
        self.header = {
            "cmd": getattr(record, "cmd", ""),
            "snakefile": str(getattr(record, "snakefile_main", None) or "Snakefile"),
        }
        self.spool = self.writer.spool = spool.SPOOL_DIR.resolve()
        if spool.has_pending(self.spool):
            self.writer.put("replay")

    def run_info(self, record) -> None:
        """Check the store and open the parent run (directly in SQLite, else in the writer
        process), before any job; exit 1 if the store is unusable."""
        stats = getattr(record, "stats", {}) or {}
        if self.parent is not None or not int(stats.get("total", 0) or 0):
            return  # logged again by a dry run's end, or an empty DAG: no run
        self.writer.start()  # it imports MLflow meanwhile: this process never does
        workflow = find_workflow()
        snakefile = str(self.header.get("snakefile") or "Snakefile")
        self.commit = git_commit(Path(snakefile).resolve().parent)
        targets: list[str] = []
        config = None
        if workflow is not None:
            hear_job_ends(workflow)
            config = dict(workflow.config)
            jobs = workflow.dag.targetjobs
            targets = sorted(
                {job.rule.name for job in jobs}
                | {str(f) for job in jobs for f in (job.output or job.input)}
            )
        tags = direct.parent_tags(
            snakefile=snakefile,
            commit=self.commit,
            targets=targets,
            jobs=int(stats.get("total", 0)),
            command=str(self.header.get("cmd") or ""),
        )
        name = direct.run_name()
        uri = direct.resolve_uri(self.writer.tracking_uri)
        experiment = direct.experiment_name(self.writer.experiment)
        kind = (EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        known = direct.facts()
        made = direct.open_parent(uri, experiment, tags=tags, run_name=name, kind=kind, known=known)
        if made is not None:  # a SQLite store: no wait for MLflow's import
            opened = {"uri": uri, "experiment": experiment, "experiment_id": made[0]}
            opened["parent"] = made[1]
        else:  # the writer process checks the store and makes the run through MLflow
            opened = self.writer.open_parent(tags=tags, run_name=name)
            if "error" in opened:
                fatal(opened["error"])
        self.uri, self.parent = opened["uri"], opened["parent"]
        self.experiment_id = opened["experiment_id"]
        for key, value in HTTP_RETRY_DEFAULTS.items():  # for jobs of one's own that use MLflow
            os.environ.setdefault(key, value)
        os.environ[TRACKING_URI_ENV] = self.uri
        os.environ[EXPERIMENT_ENV] = opened["experiment"]
        os.environ[PARENT_RUN_ENV] = self.parent
        settings = {"current": self.parent, "lanes": lanes_for(self.uri)}
        if made is not None and known.get("jobs"):  # job runs too, without MLflow
            settings["sql"] = str(direct.sqlite_path(uri))
        self.writer.settings(**settings)
        if config:
            self.writer.put("config", self.parent, config)
        self.writer.put("replay")
        self.writer.put("reap", self.experiment_id)

    def job_info(self, record) -> None:
        logs = paths(getattr(record, "log", []))
        for path in logs:  # a record left by an earlier run of this job is not this run's
            if path.endswith(RECORD_SUFFIX):
                Path(path).unlink(missing_ok=True)
        jobid = record.jobid
        attempt = self.attempts[jobid] = self.attempts.get(jobid, 0) + 1
        self.failed.discard(jobid)
        job = {
            "key": f"{self.parent}/{jobid}" + (f"/{attempt}" if attempt > 1 else ""),
            "jobid": jobid,
            "attempt": attempt,
            "rule": record.rule_name,
            "wildcards": dict(getattr(record, "wildcards", None) or {}),
            "input": paths(getattr(record, "input", [])),
            "output": paths(getattr(record, "output", [])),
            "log": logs,
            "benchmark": paths(getattr(record, "benchmark", None) or []),
            "threads": getattr(record, "threads", 1),
            "resources": {
                k: v
                for k, v in dict(getattr(record, "resources", None) or {}).items()
                if isinstance(v, (str, int, float))
            },
            "start_ms": _now_ms(),
        } | self.context()
        self.jobs[jobid] = job
        if job["output"] or job["log"]:
            # on disk first: if snakemake dies, the next invocation makes its run (KILLED)
            spool.put(self.spool, job)
            self.writer.put("start", job)

    def context(self) -> dict[str, Any]:
        """What every job entry of this invocation shares."""
        return {
            "parent": self.parent,
            "experiment_id": self.experiment_id,
            "snakefile": str(self.header.get("snakefile") or ""),
            "commit": self.commit,
            "host": self.host,
        }

    def submitted(self, message: str) -> None:
        """Tag a job's run with the scheduler's id for it, from the executor's message."""
        for pattern, key in SUBMITTED:
            found = pattern.search(message)
            if found and int(found.group(1)) in self.jobs:
                job = self.jobs[int(found.group(1))]
                tag = {key or self.cluster_id_tag: found.group(2)}
                job.setdefault("tags", {}).update(tag)
                self.writer.put("tag", job["key"], tag)

    def job_end(self, jobid: int, status: str) -> None:
        job = self.jobs.pop(jobid, None)
        if job is None:
            return
        if status == "FAILED":
            self.failed.add(jobid)
        if not job["output"] and not job["log"]:  # a target rule such as `all`: no run
            return
        record = [
            line
            for path in job["log"]
            if path.endswith(RECORD_SUFFIX)
            for line in spool.read_record(path)
        ]
        digests, sizes = describe(job["output"]) if status == "FINISHED" else ({}, {})
        entry = job | {
            "status": status,
            "end_ms": _now_ms(),
            "record": record,
            "sha256": digests,
            "bytes": sizes,
        }
        source = [line["source"] for line in record if isinstance(line, dict) and "source" in line]
        if source:
            entry["source"] = str(source[-1])
        spool.put(self.spool, entry)
        self.writer.put("finish", entry, entry=True)

    def group_error(self, record) -> None:
        for info in getattr(record, "job_error_info", None) or []:
            if isinstance(info, dict) and "jobid" in info:
                self.job_end(info["jobid"], "FAILED")

    def on_error(self, record) -> None:
        self.error = True

    # ------------------------------------------------------------------ the end

    def outcome(self) -> str:
        """The parent's status, as Snakemake's own outcome: FAILED if a job's last attempt
        failed, or Snakemake reported an error and did not get to its end; KILLED if it
        stopped before its end with jobs running; else FINISHED. (A failed attempt that a
        retry made good logs an error too: it does not fail the invocation.)"""
        if self.failed:
            return "FAILED"
        if self.reached_end and not self.jobs:
            return "FINISHED"
        return "FAILED" if self.error else "KILLED"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.parent is not None:
            status = self.outcome()
            for jobid in list(self.jobs):  # no end event came: the job did not finish
                self.jobs[jobid]["error"] = "snakemake ended before the job did"
                self.job_end(jobid, "KILLED")
            key = f"{self.parent}/end"
            entry = {
                "key": key,
                "kind": "invocation_end",
                "parent": self.parent,
                "status": status,
            }
            spool.put(self.spool, entry)
            self.writer.put("end", entry, entry=True)
        from .values import redact

        self.writer.drain(self.drain_timeout, redact(self.uri or ""), self.quiet)
