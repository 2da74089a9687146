"""The parent run of one ``snakemake`` invocation, and runs that their process left RUNNING.

Imports MLflow (through :mod:`.store`); used by the snakemake process only.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from .channel import (
    COMMAND_TAG,
    HOST_TAG,
    JOBS_TAG,
    KILLED_TAG,
    KIND_TAG,
    LOGGER_METRIC,
    MESSAGE_PREFIX,
    PARENT_TAG,
    PID_START_TAG,
    PID_TAG,
    RENAMED_TAG,
    TARGETS_TAG,
)
from .store import terminate, user
from .values import BATCH_PARAMS_TAGS, MAX_TAG, fit_keys, flatten_params, redact, redact_values


def _process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of process ``pid``, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def source_tags(source: str, commit: str | None) -> dict[str, str]:
    """The tags MLflow's run context providers would set, for what really runs."""
    tags = {"mlflow.user": user(), "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def start(
    client: MlflowClient,
    experiment_id: str,
    *,
    snakefile: str,
    commit: str | None,
    targets: list[str],
    jobs: int,
    command: str,
    pid: int | None = None,
) -> str:
    """Create the parent run of this invocation (RUNNING) and return its id: one store call,
    so that it holds the first job back as little as it can (the config follows later)."""
    tags = {
        KIND_TAG: "invocation",
        TARGETS_TAG: " ".join(targets)[:MAX_TAG],
        JOBS_TAG: str(jobs),
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid or os.getpid()),
        PID_START_TAG: _process_start(pid or os.getpid()) or "",
        COMMAND_TAG: redact(command)[:MAX_TAG],
    } | source_tags(snakefile, commit)
    run = client.create_run(
        experiment_id, run_name=f"snakemake {time.strftime('%Y-%m-%d %H:%M:%S')}", tags=tags
    )
    return run.info.run_id


def log_config(client: MlflowClient, run_id: str, config: Mapping[str, Any]) -> None:
    """The workflow's config as the parent's params (keys MLflow rejects are fitted, the
    originals in a tag) and as ``config.json``."""
    safe = json.loads(json.dumps(redact_values(config), default=str))
    params, renamed = fit_keys(flatten_params(safe))
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=items[i : i + BATCH_PARAMS_TAGS])
    if renamed:
        value = json.dumps(renamed)[:MAX_TAG]
        client.log_batch(run_id, tags=[RunTag(RENAMED_TAG, value)])
    client.log_dict(run_id, safe, "config.json")


def _kill(client: MlflowClient, runs, reason: str) -> int:
    for run in runs:
        client.log_batch(run.info.run_id, tags=[RunTag(KILLED_TAG, reason[:MAX_TAG])])
        terminate(client, run.info.run_id, "KILLED")
    return len(runs)


def running_children(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs(
        [experiment_id],
        f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'",
        max_results=10000,
    )


def end(
    client: MlflowClient, run_id: str, status: str, stats: Mapping[str, float] | None = None
) -> None:
    """Close the parent run; its job runs still RUNNING (no end event came) end KILLED.
    ``stats``: what tracking cost this invocation (``job_runs`` logged, and the writers'
    ``writer_seconds`` and ``writer_cpu_seconds`` on them), logged as the run's
    ``mlflow_logger.*`` metrics."""
    if stats:
        now = int(time.time() * 1000)
        metrics = [Metric(f"{LOGGER_METRIC}{k}", float(v), now, 0) for k, v in stats.items()]
        client.log_batch(run_id, metrics=metrics)
    experiment_id = client.get_run(run_id).info.experiment_id
    left = running_children(client, experiment_id, run_id)
    _kill(client, left, "the job ended without an end event reaching snakemake (killed?)")
    terminate(client, run_id, status)


def _alive(tags: Mapping[str, str]) -> bool:
    """Whether the snakemake process of an invocation still runs (unknown on other hosts)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG):
        return True
    started = _process_start(int(tags[PID_TAG]))
    return started is not None and started == tags.get(PID_START_TAG, started)


def reap_orphans(client: MlflowClient, experiment_id: str) -> int:
    """Mark runs of invocations whose snakemake process is gone as KILLED; return how many.

    A ``kill -9`` of snakemake leaves its runs RUNNING. Each invocation records its host,
    pid and the pid's start time; a RUNNING invocation on this host whose process no longer
    exists is ended KILLED with its RUNNING job runs, with a ``snakemake.killed`` tag.
    Call it after the spool is replayed, so jobs that had finished are logged, not killed.
    """
    running = client.search_runs(
        [experiment_id],
        f"tags.`{KIND_TAG}` = 'invocation' and attributes.status = 'RUNNING'",
        max_results=10000,
    )
    killed = 0
    for parent in running:
        tags = parent.data.tags
        if _alive(tags):
            continue
        reason = (
            f"snakemake process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} "
            "ended without closing this run (killed?); marked by a later invocation"
        )
        children = running_children(client, experiment_id, parent.info.run_id)
        killed += _kill(client, children, reason) + _kill(client, [parent], reason)
    if killed:
        print(f"{MESSAGE_PREFIX}: marked {killed} orphaned MLflow run(s) KILLED", file=sys.stderr)
    return killed
