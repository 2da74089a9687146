"""The parent run of one ``snakemake`` invocation, and runs that their process left RUNNING.

Imports MLflow (through :mod:`.store`); used by the snakemake process only.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from .channel import (
    HOST_TAG,
    KILLED_TAG,
    KIND_TAG,
    LOGGER_METRIC,
    MESSAGE_PREFIX,
    PARENT_TAG,
    PID_START_TAG,
    PID_TAG,
    RENAMED_TAG,
)
from .direct import process_start
from .store import terminate
from .values import BATCH_PARAMS_TAGS, MAX_TAG, fit_keys, flatten_params, redact_values


def start(
    client: MlflowClient, experiment_id: str, *, tags: Mapping[str, str], run_name: str
) -> str:
    """Create the parent run of this invocation (RUNNING; ``tags`` from
    :func:`.direct.parent_tags`) and return its id: one store call, so that it holds the
    first job back as little as it can (the config follows later)."""
    return client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id


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
    started = process_start(int(tags[PID_TAG]))
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
