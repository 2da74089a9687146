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

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from .channel import KIND_TAG
from .store import MAX_TAG, flatten_params, redact, redact_values, user


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
    config: Mapping[str, Any] | None,
    command: str,
) -> str:
    """Create the parent run of this invocation (RUNNING) and return its id."""
    tags = {
        KIND_TAG: "invocation",
        "snakeflow.targets": " ".join(targets)[:MAX_TAG],
        "snakeflow.jobs": str(jobs),
        "snakeflow.host": socket.gethostname(),
        "snakeflow.pid": str(os.getpid()),
        "snakeflow.pid_start": _process_start(os.getpid()) or "",
        "snakemake.command": redact(command)[:MAX_TAG],
    } | source_tags(snakefile, commit)
    run = client.create_run(
        experiment_id, run_name=f"snakemake {time.strftime('%Y-%m-%d %H:%M:%S')}", tags=tags
    )
    run_id = run.info.run_id
    if config:
        safe = json.loads(json.dumps(redact_values(config), default=str))
        params = [Param(k, v) for k, v in flatten_params(safe).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i : i + 100])
        client.log_dict(run_id, safe, "config.json")
    return run_id


def _kill(client: MlflowClient, runs, reason: str) -> int:
    for run in runs:
        client.log_batch(run.info.run_id, tags=[RunTag("snakeflow.killed", reason[:MAX_TAG])])
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def running_children(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs(
        [experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'",
        max_results=10000,
    )


def end(client: MlflowClient, run_id: str, status: str) -> None:
    """Close the parent run; its job runs still RUNNING (no end event came) end KILLED."""
    experiment_id = client.get_run(run_id).info.experiment_id
    left = running_children(client, experiment_id, run_id)
    _kill(client, left, "the job ended without an end event reaching snakemake (killed?)")
    client.set_terminated(run_id, status)


def _alive(tags: Mapping[str, str]) -> bool:
    """Whether the snakemake process of an invocation still runs (unknown on other hosts)."""
    if tags.get("snakeflow.host") != socket.gethostname() or not tags.get("snakeflow.pid"):
        return True
    started = _process_start(int(tags["snakeflow.pid"]))
    return started is not None and started == tags.get("snakeflow.pid_start", started)


def reap_orphans(client: MlflowClient, experiment_id: str) -> int:
    """Mark runs of invocations whose snakemake process is gone as KILLED; return how many.

    A ``kill -9`` of snakemake leaves its runs RUNNING. Each invocation records its host,
    pid and the pid's start time; a RUNNING invocation on this host whose process no longer
    exists is ended KILLED with its RUNNING job runs, with a ``snakeflow.killed`` tag.
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
            f"snakemake process {tags.get('snakeflow.pid')} on {tags.get('snakeflow.host')} "
            "ended without closing this run (killed?); marked by a later invocation"
        )
        children = running_children(client, experiment_id, parent.info.run_id)
        killed += _kill(client, children, reason) + _kill(client, [parent], reason)
    if killed:
        print(f"snakeflow: marked {killed} orphaned MLflow run(s) KILLED", file=sys.stderr)
    return killed
