"""One MLflow run per Snakemake job attempt, sent from a :class:`~.translate.Plan`.

On a SQLite store, the job items a writer has queued are written together, in one
transaction (:meth:`JobWriter.write_many`, through :mod:`.bulk`). Elsewhere, a job of this
invocation costs the store three calls: ``create_run`` when it starts (its run id is kept),
one ``log_batch`` when it ends (more only past MLflow's batch limits) and ``update_run``;
its log and benchmark files go straight to the run's artifact store (a fourth request for
a tracking server that serves artifacts). An entry replayed from an earlier invocation is
found by its key tag first, and only what its run does not have yet is added, so logging
an entry twice never makes a second run. A value the store refuses as invalid is recorded
on the run as a warning, never retried.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from .bulk import Batch, Bulk, sqlite_store, valid
from .channel import JOB_KEY_TAG, MODEL_ID_TAG, MODEL_PATH_TAG, MODEL_UUID_TAG
from .sqljobs import Ledger, copy_atomic
from .store import conflict, refused, terminate
from .translate import (
    CONTEXT_TAG,
    Plan,
    base_tags,
    dataset_line,
    entry_source,
    fitted_tags,
    log_files,
    run_name,
    translate,
    warnings_tag,
)
from .values import BATCH_ENTITIES, BATCH_METRICS, BATCH_PARAMS_TAGS


def find_run(client: MlflowClient, experiment_id: str, key: str):
    runs = client.search_runs(
        [experiment_id], f"tags.`{JOB_KEY_TAG}` = '{key}'", max_results=1, order_by=None
    )
    return runs[0] if runs else None


def local_root(artifact_uri: str) -> Path | None:
    """The directory of a run's artifacts if they are on this file system, else None."""
    if artifact_uri.startswith("file://"):
        return Path(local_file_uri_to_path(artifact_uri))
    if "://" not in artifact_uri and ":" not in artifact_uri.split("/")[0]:
        return Path(artifact_uri)
    return None


def batches(metrics: list, params: list, tags: list):
    """(metrics, params, tags) slices that fit MLflow's log_batch limits."""
    while metrics or params or tags:
        p, params = params[:BATCH_PARAMS_TAGS], params[BATCH_PARAMS_TAGS:]
        t, tags = tags[:BATCH_PARAMS_TAGS], tags[BATCH_PARAMS_TAGS:]
        room = min(BATCH_METRICS, BATCH_ENTITIES - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield m, p, t


class Models:
    """Logged models by the MLmodel ``model_uuid`` of the directory they were logged from."""

    def __init__(self, client: MlflowClient):
        self.client = client
        self._by_uuid: dict[str, Any] = {}

    @staticmethod
    def uuid(model_dir: str | os.PathLike[str]) -> str | None:
        import yaml

        try:
            meta = yaml.safe_load((Path(model_dir) / "MLmodel").read_text())
        except (OSError, yaml.YAMLError):
            return None
        return str(meta.get("model_uuid")) if isinstance(meta, dict) else None

    def find(self, experiment_id: str, model_dir: str):
        """The LoggedModel logged from ``model_dir`` (as it is now), or None."""
        uuid = self.uuid(model_dir)
        if uuid is None:
            return None
        if uuid not in self._by_uuid:
            found = self.client.search_logged_models(
                [experiment_id], filter_string=f"tags.`{MODEL_UUID_TAG}` = '{uuid}'", max_results=1
            )
            if not found:
                return None
            self._by_uuid[uuid] = found[0]
        return self._by_uuid[uuid]

    def log(self, experiment_id: str, run_id: str, model_dir: str, name: str):
        """Log ``model_dir`` as a LoggedModel of ``run_id`` (once: found again if it exists)."""
        found = self.find(experiment_id, model_dir)
        if found is not None and found.status == LoggedModelStatus.READY:
            return found
        uuid = self.uuid(model_dir) or ""
        model = found or self.client.create_logged_model(
            experiment_id,
            name=name,
            source_run_id=run_id,
            tags={MODEL_UUID_TAG: uuid, MODEL_PATH_TAG: model_dir},
        )
        self.client.log_model_artifacts(model.model_id, model_dir)
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        self._by_uuid[uuid] = self.client.get_logged_model(model.model_id)
        return self._by_uuid[uuid]


def dataset_input(line: Mapping[str, Any]) -> tuple[DatasetInput, str]:
    """A record's ``input`` line as an MLflow dataset input, and its full digest."""
    found = dataset_line(line)
    dataset = Dataset(
        name=found.name, digest=found.digest, source_type=found.source_type, source=found.source
    )
    return DatasetInput(dataset, [InputTag(CONTEXT_TAG, found.context)]), found.sha256


class JobWriter:
    """Sends job entries to the store; keeps the run id of every run it created."""

    def __init__(self, client: MlflowClient, ledger: Ledger | None = None):
        self.client = client
        ledger = ledger or Ledger()
        store = sqlite_store(client)
        self.bulk = Bulk(store) if store is not None else None
        self.tags_of: dict[str, dict[str, str]] = {}  # key -> tags of a run written in bulk
        self.models = Models(client)
        self.runs = ledger.runs  # key -> (run id, artifact uri)
        self.ended = ledger.ended  # keys of the runs ended
        self.parent_inputs = ledger.parent_inputs  # parent -> {(name, digest)} it lists
        self.parent_models = ledger.parent_models  # parent -> {model id} it lists
        self.parent_lock = ledger.lock  # jobs on several writer threads share a parent
        self.inputs_lock = threading.Lock()  # one log_inputs at a time (see _log_inputs)

    def open(self, entry: Mapping[str, Any]) -> str:
        """Create the RUNNING run of a job of this invocation that started."""
        if entry["key"] in self.runs or entry["key"] in self.ended:
            return self.runs.get(entry["key"], ("",))[0]
        tags, _ = fitted_tags(base_tags(entry, entry_source(entry)))
        run = self.client.create_run(
            entry["experiment_id"],
            start_time=entry.get("start_ms"),
            tags=tags,
            run_name=run_name(entry),
        )
        self.runs[entry["key"]] = (run.info.run_id, run.info.artifact_uri)
        return run.info.run_id

    def reopen(self, entry: Mapping[str, Any]) -> None:
        """The RUNNING run of a job an earlier invocation started and never saw end (it
        was killed), made if its start was never logged; the reaper then ends it KILLED."""
        if find_run(self.client, entry["experiment_id"], entry["key"]) is None:
            self.open(entry)
            self.runs.pop(entry["key"], None)

    def write_many(self, items: list[tuple]) -> list[tuple]:
        """Write what it can of ``items`` (job items: start, tag, finish, in order) in one
        transaction (a SQLite store only); return the items left to write one by one, in
        order. Nothing of the batch is kept if the transaction fails."""
        if self.bulk is None:
            return items
        bulk, batch = self.bulk, Batch()
        new: dict[str, tuple[str, str]] = {}  # key -> (run id, artifact uri), this batch
        have: dict[str, dict[str, str]] = {}  # key -> its tags, as of this batch
        ended: list[str] = []
        left: list[tuple] = []
        deferred: set[str] = set()
        for item in items:
            kind, key = item[0], item[1] if isinstance(item[1], str) else item[1]["key"]
            run = new.get(key) or self.runs.get(key)
            bulk_run = key in have or key in self.tags_of
            if key in deferred or (kind != "start" and not bulk_run):
                if kind != "tag" or run is not None:  # a tag of no run is not logged
                    deferred.add(key)
                    left.append(item)
                continue
            if kind == "start":
                if run is not None or key in self.ended:
                    continue
                entry = item[1]
                tags, _ = fitted_tags(base_tags(entry, entry_source(entry)))
                if not valid({}, {}, tags):
                    deferred.add(key)
                    left.append(item)
                    continue
                new[key] = bulk.new_run(
                    batch, entry["experiment_id"], run_name(entry), entry["start_ms"], tags
                )
                have[key] = tags
                continue
            if key not in have:
                have[key] = dict(self.tags_of[key])
            tags_now = have[key]
            if kind == "tag":
                bulk.add_tags(batch, run[0], item[2], tags_now)
                continue
            entry = item[1]
            plan = translate(entry, entry_source(entry))
            tags = plan.tags | warnings_tag(plan.warnings)
            if (
                plan.models
                or plan.model_metrics
                or plan.inputs
                or any(model for _, _, model in plan.artifacts)
                or not valid(plan.metrics, plan.params, tags)
            ):
                deferred.add(key)
                left.append(item)
                continue
            bulk.add_tags(batch, run[0], tags, tags_now)
            end_ms = entry.get("end_ms") or 0
            bulk.end_run(batch, run[0], plan.status, end_ms, plan.metrics, plan.params)
            self._artifacts(entry, run[0], run[1], plan)
            ended.append(key)
        if batch:
            bulk.commit(batch)
        self.runs |= new
        self.tags_of |= {k: v for k, v in have.items() if k not in deferred}
        for key in ended:
            self.runs.pop(key, None)
            self.tags_of.pop(key, None)
            self.ended.add(key)
        return left

    def tag(self, key: str, tags: Mapping[str, str]) -> None:
        if key in self.runs:
            self._batch(self.runs[key][0], [], [], [RunTag(k, v) for k, v in tags.items()])

    def log(self, entry: Mapping[str, Any]) -> str:
        """Log one finished job attempt to its run and end it; return the run id."""
        client, key = self.client, entry["key"]
        have_params: dict[str, str] = {}
        have_metrics: dict[str, float] = {}
        have_inputs: set = set()
        if key in self.runs:
            run_id, artifact_uri = self.runs[key]
        else:  # from an earlier invocation, or its start was never logged
            run = find_run(client, entry["experiment_id"], key)
            if run is not None and run.info.status != "RUNNING":
                return run.info.run_id  # logged in full already: the status is set last
            if run is None:
                self.open(entry)
                run_id, artifact_uri = self.runs[key]
            else:
                run_id, artifact_uri = run.info.run_id, run.info.artifact_uri
                self.runs[key] = (run_id, artifact_uri)
                have_params, have_metrics = dict(run.data.params), dict(run.data.metrics)
                have_inputs = {
                    (i.dataset.digest, t.value)
                    for i in run.inputs.dataset_inputs
                    for t in i.tags
                    if t.key == CONTEXT_TAG
                }
        plan = translate(entry, entry_source(entry))
        self._models(entry, run_id, plan)
        self._inputs(entry, run_id, plan, have_inputs)
        ts = entry.get("end_ms") or 0
        metrics = [Metric(k, v, ts, 0) for k, v in plan.metrics.items() if k not in have_metrics]
        params = [Param(k, v) for k, v in plan.params.items() if k not in have_params]
        tags = [RunTag(k, v) for k, v in plan.tags.items()]
        plan.warnings += self._batch(run_id, metrics, params, tags)
        self._artifacts(entry, run_id, artifact_uri, plan)
        if plan.warnings:
            tag = warnings_tag(plan.warnings)
            self._batch(run_id, [], [], [RunTag(k, v) for k, v in tag.items()])
        terminate(client, run_id, plan.status, entry.get("end_ms"))
        self.runs.pop(key, None)
        self.ended.add(key)
        return run_id

    def _batch(self, run_id: str, metrics: list, params: list, tags: list) -> list[str]:
        """log_batch in as few calls as fit; what the store refuses is logged one by one and
        what it still refuses is returned as warnings."""
        warnings = []
        for m, p, t in batches(metrics, params, tags):
            try:
                self.client.log_batch(run_id, metrics=m, params=p, tags=t)
            except Exception as exc:
                if not refused(exc):
                    raise
                for one in (
                    [([x], [], []) for x in m]
                    + [([], [x], []) for x in p]
                    + [([], [], [x]) for x in t]
                ):
                    try:
                        self.client.log_batch(run_id, *one)
                    except Exception as exc:
                        if not refused(exc):
                            raise
                        item = (one[0] or one[1] or one[2])[0]
                        warnings.append(f"not logged: {item.key}: {str(exc).splitlines()[0]}")
        return warnings

    def _models(self, entry: Mapping[str, Any], run_id: str, plan: Plan) -> None:
        experiment_id = entry["experiment_id"]
        for model_dir, name in plan.models:
            model = self.models.log(experiment_id, run_id, model_dir, name)
            plan.tags[MODEL_ID_TAG] = model.model_id
            self._on_parent(entry["parent"], [], [LoggedModelOutput(model.model_id, step=0)])
        ts = entry.get("end_ms") or 0
        linked: dict[str, list[Metric]] = {}
        for model_dir, key, value in plan.model_metrics:
            model = self.models.find(experiment_id, model_dir)
            if model is None:
                continue
            plan.metrics.pop(key, None)  # logged linked to the model instead
            metric = Metric(key, value, ts, 0, model_id=model.model_id)
            linked.setdefault(run_id, []).append(metric)
            if model.source_run_id != run_id:
                linked.setdefault(model.source_run_id, []).append(metric)
        for target, metrics in linked.items():
            have = self.client.get_run(target).data.metrics if target != run_id else {}
            new = [m for m in metrics if have.get(m.key) != m.value]
            if new:
                self.client.log_batch(target, metrics=new)

    def _inputs(self, entry, run_id: str, plan: Plan, have: set) -> None:
        new, listed = [], []
        for line in plan.inputs:
            item, digest = dataset_input(line)
            context = item.tags[0].value
            if (item.dataset.digest, context) not in have:
                new.append(item)
            listed.append(item)
            if digest:
                plan.tags[f"input.{context}.sha256"] = digest
        if new:
            self._log_inputs(run_id, new)
        self._on_parent(entry["parent"], listed, [])

    def _log_inputs(self, run_id: str, inputs: list) -> None:
        """``log_inputs``, one at a time in this process: a dataset that two requests add
        at once is inserted twice by MLflow's server, and one of them is refused. A request
        of another process can still race this one: sent again, it finds the dataset."""
        with self.inputs_lock:
            try:
                self.client.log_inputs(run_id, inputs)
            except Exception as exc:
                if not conflict(exc):
                    raise
                self.client.log_inputs(run_id, inputs)

    def _on_parent(self, parent: str, inputs: list, outputs: list) -> None:
        """The invocation's run lists the datasets its jobs read and the models they made;
        what it lists is kept in memory, so a dataset is added once."""
        with self.parent_lock:
            self._add_to_parent(parent, inputs, outputs)

    def _add_to_parent(self, parent: str, inputs: list, outputs: list) -> None:
        seen = self.parent_inputs.setdefault(parent, set())
        new = [i for i in inputs if (i.dataset.name, i.dataset.digest) not in seen]
        if new:
            self._log_inputs(parent, new)
            seen |= {(i.dataset.name, i.dataset.digest) for i in new}
        models = self.parent_models.setdefault(parent, set())
        new_models = [o for o in outputs if o.model_id not in models]
        if new_models:
            self.client.log_outputs(parent, new_models)
            models |= {o.model_id for o in new_models}

    def _artifacts(self, entry, run_id: str, artifact_uri: str, plan: Plan) -> None:
        local = local_root(artifact_uri)
        repo = get_artifact_repository(artifact_uri) if local is None or plan.artifacts else None
        for path, where in log_files(entry):
            if not os.path.isfile(path):
                continue
            if local is not None:
                copy_atomic(path, local / where / os.path.basename(path))
            else:
                repo.log_artifact(path, where)
        for path, where, model_dir in plan.artifacts:
            if not Path(path).exists():
                continue
            model = self.models.find(entry["experiment_id"], model_dir) if model_dir else None
            if model is not None and model.source_run_id != run_id:
                self.client.log_artifact(model.source_run_id, path, where)
            else:
                repo.log_artifact(path, where)
