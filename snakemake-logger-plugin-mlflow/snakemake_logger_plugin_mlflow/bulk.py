"""Many job runs in one transaction, for a SQLite tracking store.

MLflow's client API costs a job some 30 SQL statements and six commits on SQLite (about
50 ms a job on this project's bench machine), more than Snakemake spends on a trivial job.
For a SQLite store the writer therefore sends the jobs it has queued together: the rows the
client API would write (runs, tags, params, metrics, latest metrics), through MLflow's own
SQLAlchemy models and session, in one transaction per batch. Values are checked with
MLflow's own validation first; what it rejects, and anything beyond plain runs (datasets,
logged models), goes through the client API, one job at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, SourceType
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_batch_log_data
from sqlalchemy import insert, update

from .channel import USER_TAG


def sqlite_store(client) -> SqlAlchemyStore | None:
    """The client's store if it is MLflow's SQLAlchemy store on SQLite, else None."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if isinstance(store, SqlAlchemyStore) and getattr(store, "db_type", "") == "sqlite":
        return store
    return None


def valid(metrics: Mapping[str, float], params: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """Whether MLflow's own validation of a ``log_batch`` takes these values."""
    try:
        _validate_batch_log_data(
            [Metric(k, v, 0, 0) for k, v in metrics.items()],
            [Param(k, v) for k, v in params.items()],
            [RunTag(k, v) for k, v in tags.items()],
        )
    except Exception:
        return False
    return True


@dataclass
class Batch:
    """The rows of one transaction."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    changed_tags: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.ends or self.tags or self.changed_tags)


class Bulk:
    """Rows for runs of one experiment store, written in one transaction per batch."""

    def __init__(self, store: SqlAlchemyStore):
        self.store = store
        self.artifact_roots: dict[str, str] = {}  # experiment id -> artifact location

    def new_run(
        self, batch: Batch, experiment_id: str, name: str, start_ms: int, tags: dict[str, str]
    ) -> tuple[str, str]:
        """A RUNNING run's rows, as ``create_run`` writes them; returns (run id, artifact uri).
        ``tags`` gains the run name tag."""
        if experiment_id not in self.artifact_roots:
            experiment = self.store.get_experiment(experiment_id)
            self.artifact_roots[experiment_id] = experiment.artifact_location
        run_id = uuid.uuid4().hex
        artifact_uri = append_to_uri_path(
            self.artifact_roots[experiment_id], run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME
        )
        batch.runs.append(
            {
                "run_uuid": run_id,
                "name": name,
                "artifact_uri": artifact_uri,
                "experiment_id": int(experiment_id),
                "source_type": SourceType.to_string(SourceType.UNKNOWN),
                "source_name": "",
                "entry_point_name": "",
                "user_id": tags.get(USER_TAG, "unknown"),
                "status": RunStatus.to_string(RunStatus.RUNNING),
                "start_time": start_ms,
                "end_time": None,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": LifecycleStage.ACTIVE,
            }
        )
        tags[MLFLOW_RUN_NAME] = name
        self.add_tags(batch, run_id, tags, {})
        return run_id, artifact_uri

    @staticmethod
    def add_tags(batch: Batch, run_id: str, tags: Mapping[str, str], have: dict[str, str]) -> None:
        """Tags of ``run_id``; ``have``: the ones it has (changed ones are updated), which
        gains these."""
        for key, value in tags.items():
            row = {"run_uuid": run_id, "key": key, "value": value}
            if key not in have:
                batch.tags.append(row)
            elif have[key] != value:
                batch.changed_tags.append(row)
            have[key] = value

    def end_run(
        self,
        batch: Batch,
        run_id: str,
        status: str,
        end_ms: int,
        metrics: Mapping[str, float],
        params: Mapping[str, str],
    ) -> None:
        """A run's end: its params and metrics (a fresh run: none logged before), its status."""
        batch.params += [{"run_uuid": run_id, "key": k, "value": v} for k, v in params.items()]
        for key, value in metrics.items():
            is_nan, value = self.store.sanitize_metric_value(float(value))
            batch.metrics.append(
                {
                    "run_uuid": run_id,
                    "key": key,
                    "value": value,
                    "timestamp": end_ms,
                    "step": 0,
                    "is_nan": is_nan,
                }
            )
        batch.ends.append({"run_uuid": run_id, "status": status, "end_time": end_ms})

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction (nothing of it if it fails)."""
        with self.store.ManagedSessionMaker(read_only=False) as session:
            for model, rows in (
                (SqlRun, batch.runs),
                (SqlTag, batch.tags),
                (SqlParam, batch.params),
                (SqlMetric, batch.metrics),
                (SqlLatestMetric, batch.metrics),
            ):
                if rows:
                    session.execute(insert(model), rows)
            for model, rows in ((SqlTag, batch.changed_tags), (SqlRun, batch.ends)):
                if rows:
                    session.execute(update(model), rows)
