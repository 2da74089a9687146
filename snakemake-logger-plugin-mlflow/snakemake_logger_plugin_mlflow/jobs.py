"""One MLflow run per Snakemake job, logged from a spool entry; logging it twice is harmless.

An entry (see :mod:`.tracker`) holds what Snakemake said of the job (rule, wildcards, files,
threads, resources, how it ended) and the lines of the job's own record (:mod:`.channel`).
:func:`log_entry` finds the job's run by its key tag (or creates it), adds only what the run
does not have yet, and ends it: replaying an entry after a crash never makes a second run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
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
from mlflow.tracking import MlflowClient

from .channel import (
    JOB_KEY_TAG,
    KIND_TAG,
    LOGGED_TAG,
    MODEL_PATH_TAG,
    MODEL_UUID_TAG,
    RECORD_SUFFIX,
    SHA_TAG,
)
from .invocation import source_tags
from .store import MAX_TAG, flatten_params, redact

CHUNK = 1 << 20
BATCH = 100


def sha256_path(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, or of a directory's files (relative names and contents)."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_path(child).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def run_name(entry: Mapping[str, Any]) -> str:
    return " ".join([entry["rule"], *map(str, entry.get("wildcards", {}).values())])


def base_tags(entry: Mapping[str, Any]) -> dict[str, str]:
    """What Snakemake says of the job: rule, wildcards, threads, resources, its invocation."""
    tags = {
        KIND_TAG: "job",
        JOB_KEY_TAG: entry["key"],
        "snakemake.rule": entry["rule"],
        "snakemake.jobid": str(entry["jobid"]),
        "snakemake.threads": str(entry.get("threads", 1)),
        "snakeflow.host": entry.get("host", ""),
        "snakeflow.invocation": entry["parent"],
        "mlflow.parentRunId": entry["parent"],
    }
    tags |= {f"snakemake.wildcards.{k}": str(v) for k, v in entry.get("wildcards", {}).items()}
    tags |= entry.get("tags", {})  # the scheduler's job id, when an executor said it
    for key, value in entry.get("resources", {}).items():
        if not str(key).startswith("_") and key != "tmpdir":
            tags[f"snakemake.resources.{key}"] = str(value)
    return tags | source_tags(entry.get("source") or entry["snakefile"], entry.get("commit"))


def find_run(client: MlflowClient, experiment_id: str, key: str):
    runs = client.search_runs(
        [experiment_id], f"tags.`{JOB_KEY_TAG}` = '{key}'", max_results=1, order_by=None
    )
    return runs[0] if runs else None


def open_run(client: MlflowClient, entry: Mapping[str, Any]):
    """The job's run: found by its key, else created RUNNING with the job's tags."""
    run = find_run(client, entry["experiment_id"], entry["key"])
    if run is None:
        run = client.create_run(
            entry["experiment_id"],
            start_time=entry.get("start_ms"),
            tags=base_tags(entry),
            run_name=run_name(entry),
        )
    return run


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


def _dataset_input(line: Mapping[str, Any]) -> tuple[DatasetInput, str]:
    source = str(line["input"])
    digest = line.get("digest")
    if source.startswith(("http://", "https://")):
        kind, where = "http", json.dumps({"url": redact(source)})
    else:
        path = Path(source).resolve()
        digest = digest or (sha256_path(path) if path.exists() else "")
        kind, where = "local", json.dumps({"uri": str(path)})
    dataset = Dataset(
        name=str(line.get("name", Path(source).stem)),
        digest=(digest or "")[:32],
        source_type=kind,
        source=where,
    )
    context = str(line.get("context", "input"))
    return DatasetInput(dataset, [InputTag("mlflow.data.context", context)]), digest or ""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_on_parent(client, parent_id: str, inputs: list, outputs: list) -> None:
    """The invocation's run lists the datasets its jobs read and the models they made."""
    if not inputs and not outputs:
        return
    parent = client.get_run(parent_id)
    have = {(i.dataset.name, i.dataset.digest) for i in parent.inputs.dataset_inputs}
    new = [i for i in inputs if (i.dataset.name, i.dataset.digest) not in have]
    if new:
        client.log_inputs(parent_id, new)
    have_models = {o.model_id for o in (parent.outputs.model_outputs if parent.outputs else [])}
    new_models = [o for o in outputs if o.model_id not in have_models]
    if new_models:
        client.log_outputs(parent_id, new_models)


def log_entry(client: MlflowClient, entry: Mapping[str, Any], models: Models) -> str:
    """Log one finished job to its run (found or created) and end it; return the run id."""
    run = open_run(client, entry)
    run_id, experiment_id = run.info.run_id, entry["experiment_id"]
    if run.data.tags.get(LOGGED_TAG) == "1" and run.info.status != "RUNNING":
        return run_id
    have_params, have_metrics = dict(run.data.params), dict(run.data.metrics)
    ts = entry.get("end_ms") or _now_ms()
    params: dict[str, str] = {}
    metrics: list[Metric] = []
    tags = base_tags(entry)
    status = entry["status"]
    warnings = []
    names: dict[str, str] = {}
    others: list[tuple[str, Metric]] = []  # (run id, metric) for a model's training run
    parent_inputs: list[DatasetInput] = []  # the invocation's run shows them too
    parent_models: list[LoggedModelOutput] = []

    def metric(key, value, model_id=None):
        if key not in have_metrics:
            metrics.append(Metric(key, float(value), ts, 0, model_id=model_id))

    for line in entry.get("record", []):
        if not isinstance(line, dict):
            warnings.append(str(line)[:200])
            continue
        try:
            if "params" in line:
                params |= flatten_params(line["params"])
            elif "metrics" in line:
                model = models.find(experiment_id, line["model"]) if line.get("model") else None
                for key, value in line["metrics"].items():
                    metric(key, value, model.model_id if model else None)
                    if model is not None and model.source_run_id != run_id:
                        m = Metric(key, float(value), ts, 0, model_id=model.model_id)
                        others.append((model.source_run_id, m))
            elif "tags" in line:
                tags |= {str(k): str(v)[:MAX_TAG] for k, v in line["tags"].items()}
            elif "input" in line:
                dataset_input, digest = _dataset_input(line)
                context = dataset_input.tags[0].value
                have = {
                    (i.dataset.digest, t.value)
                    for i in run.inputs.dataset_inputs
                    for t in i.tags
                    if t.key == "mlflow.data.context"
                }
                if (dataset_input.dataset.digest, context) not in have:
                    client.log_inputs(run_id, [dataset_input])
                parent_inputs.append(dataset_input)
                if digest:
                    tags[f"input.{context}.sha256"] = digest
            elif "artifact" in line:
                target = run_id
                if line.get("model"):
                    model = models.find(experiment_id, line["model"])
                    target = model.source_run_id if model else run_id
                if Path(line["artifact"]).exists():
                    client.log_artifact(target, line["artifact"], line.get("artifact_path"))
            elif "model" in line:
                model = models.log(experiment_id, run_id, line["model"], line.get("name", "model"))
                tags["snakeflow.model_id"] = model.model_id
                parent_models.append(LoggedModelOutput(model.model_id, step=0))
            elif "status" in line:
                status = line["status"]
                if line.get("error"):
                    tags["snakeflow.error"] = str(line["error"])[:MAX_TAG]
            elif "outputs" in line:
                names |= {str(path): str(name) for name, path in line["outputs"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            warnings.append(f"{type(exc).__name__}: {exc}: {str(line)[:200]}")
    for i, path in enumerate(entry.get("output", [])):
        if Path(path).exists():
            tags[SHA_TAG + path] = sha256_path(path)
            metric(f"output.{names.get(path, i)}.bytes", _bytes(Path(path)))
    if entry.get("end_ms") and entry.get("start_ms"):
        metric("seconds", (entry["end_ms"] - entry["start_ms"]) / 1000)
    if status != "FINISHED" and "snakeflow.error" not in tags:
        tags["snakeflow.error"] = entry.get("error") or "the job failed: see its log"
    if warnings:
        tags["snakeflow.record_warnings"] = " | ".join(warnings)[:MAX_TAG]
    new_params = [Param(k, v) for k, v in params.items() if k not in have_params]
    tag_items = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, max(len(new_params), len(metrics), len(tag_items)), BATCH):
        client.log_batch(
            run_id,
            metrics=metrics[i : i + BATCH],
            params=new_params[i : i + BATCH],
            tags=tag_items[i : i + BATCH],
        )
    for other_run, m in others:
        if client.get_run(other_run).data.metrics.get(m.key) != m.value:
            client.log_batch(other_run, metrics=[m])
    for path in entry.get("log", []):
        if Path(path).is_file() and not path.endswith(RECORD_SUFFIX):
            client.log_artifact(run_id, path, "logs")
    for path in entry.get("benchmark", []):
        if Path(path).is_file():
            client.log_artifact(run_id, path, "benchmarks")
    _log_on_parent(client, entry["parent"], parent_inputs, parent_models)
    client.log_batch(run_id, tags=[RunTag(LOGGED_TAG, "1")])
    client.set_terminated(run_id, status, end_time=entry.get("end_ms"))
    return run_id
