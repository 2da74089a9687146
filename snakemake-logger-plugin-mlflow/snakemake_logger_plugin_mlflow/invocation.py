"""The parent run of one ``snakemake`` invocation, and runs that their process left RUNNING.

Imports MLflow (through :mod:`.store`); used by the snakemake process only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from .channel import KILLED_TAG, KIND_TAG, PARENT_TAG, RENAMED_TAG
from .direct import alive
from .store import terminate
from .translate import NO_END_EVENT, config_json, config_plan, orphan_reason, reaped, stats_metrics
from .values import BATCH_PARAMS_TAGS, MAX_TAG


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
    safe, params, renamed = config_plan(config)
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=items[i : i + BATCH_PARAMS_TAGS])
    if renamed:
        value = json.dumps(renamed)[:MAX_TAG]
        client.log_batch(run_id, tags=[RunTag(RENAMED_TAG, value)])
    client.log_text(run_id, config_json(safe), "config.json")


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
        metrics = [Metric(k, v, now, 0) for k, v in stats_metrics(stats).items()]
        client.log_batch(run_id, metrics=metrics)
    experiment_id = client.get_run(run_id).info.experiment_id
    left = running_children(client, experiment_id, run_id)
    _kill(client, left, NO_END_EVENT)
    terminate(client, run_id, status)


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
        if alive(tags):
            continue
        reason = orphan_reason(tags)
        children = running_children(client, experiment_id, parent.info.run_id)
        killed += _kill(client, children, reason) + _kill(client, [parent], reason)
    if killed:
        print(reaped(killed), file=sys.stderr)
    return killed
