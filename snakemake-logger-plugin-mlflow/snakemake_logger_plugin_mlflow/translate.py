"""What to log for one job: a pure translation of its spool entry, no store, no files.

An entry (written by :mod:`.events` when the job ends) holds what Snakemake said of the job
(rule, wildcards, files, threads, resources, attempt, how it ended, the digests of its
outputs) and the lines of the job's own record (:mod:`.channel`). :func:`translate` turns it
into a :class:`Plan`; :mod:`.jobs` sends a plan to the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .channel import (
    ATTEMPT_TAG,
    ERROR_TAG,
    HOST_TAG,
    INVOCATION_TAG,
    JOB_KEY_TAG,
    JOBID_TAG,
    KIND_TAG,
    LOGGER_METRIC,
    MESSAGE_PREFIX,
    PARENT_TAG,
    PID_TAG,
    RECORD_SUFFIX,
    RENAMED_TAG,
    RESOURCE_TAG,
    RULE_TAG,
    SHA_TAG,
    THREADS_TAG,
    WARNINGS_TAG,
    WILDCARD_TAG,
)
from .digest import sha256_path
from .direct import source_tags
from .values import MAX_TAG, fit_keys, flatten_params, redact, redact_values

CONTEXT_TAG = "mlflow.data.context"  # MLflow's own: an input tag saying what the dataset was for
# why a run was ended KILLED (the value of its KILLED_TAG)
NO_END_EVENT = "the job ended without an end event reaching snakemake (killed?)"


@dataclass
class Plan:
    """Everything one job's run gets, in the store's terms."""

    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    model_metrics: list[tuple[str, str, float]] = field(default_factory=list)  # (dir, key, v)
    inputs: list[Mapping[str, Any]] = field(default_factory=list)  # record lines
    artifacts: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    models: list[tuple[str, str]] = field(default_factory=list)  # (dir, name)
    status: str = "FINISHED"
    warnings: list[str] = field(default_factory=list)


def run_name(entry: Mapping[str, Any]) -> str:
    return " ".join([entry["rule"], *map(str, entry.get("wildcards", {}).values())])


def entry_source(entry: Mapping[str, Any]) -> dict[str, str]:
    """The source tags of a job's run: the Snakefile (or the job's script) and the commit."""
    return source_tags(entry.get("source") or entry["snakefile"], entry.get("commit"))


def base_tags(entry: Mapping[str, Any], source: Mapping[str, str]) -> dict[str, str]:
    """What Snakemake says of the job: rule, wildcards, threads, resources, its invocation."""
    tags = {
        KIND_TAG: "job",
        JOB_KEY_TAG: entry["key"],
        RULE_TAG: entry["rule"],
        JOBID_TAG: str(entry["jobid"]),
        ATTEMPT_TAG: str(entry.get("attempt", 1)),
        THREADS_TAG: str(entry.get("threads", 1)),
        HOST_TAG: entry.get("host", ""),
        INVOCATION_TAG: entry["parent"],
        PARENT_TAG: entry["parent"],
    }
    tags |= {WILDCARD_TAG + str(k): str(v) for k, v in entry.get("wildcards", {}).items()}
    tags |= entry.get("tags", {})  # the scheduler's job id, when an executor said it
    for key, value in entry.get("resources", {}).items():
        if not str(key).startswith("_") and key != "tmpdir":
            tags[RESOURCE_TAG + str(key)] = str(value)
    return tags | dict(source)


def fitted_tags(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Tags with every key MLflow takes; an output digest whose path had to be renamed keeps
    the path in its value as ``sha256sum`` prints it (``<digest>  <path>``)."""
    out, renamed = fit_keys(tags)
    for fitted, original in list(renamed.items()):
        if original.startswith(SHA_TAG):
            out[fitted] = f"{out[fitted]}  {original[len(SHA_TAG) :]}"
    return {k: str(v)[:MAX_TAG] for k, v in out.items()}, renamed


def translate(entry: Mapping[str, Any], source: Mapping[str, str]) -> Plan:
    """The plan for one job's run; ``source`` are the run's source tags."""
    plan = Plan(tags=base_tags(entry, source), status=entry["status"])
    names: dict[str, str] = {}
    for line in entry.get("record", []):
        if not isinstance(line, dict):
            plan.warnings.append(f"not a JSON object: {str(line)[:200]}")
            continue
        try:
            _line(plan, line, names)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            plan.warnings.append(f"{type(exc).__name__}: {exc}: {str(line)[:200]}")
    for i, path in enumerate(entry.get("output", [])):
        digest = entry.get("sha256", {}).get(path)
        if digest:
            plan.tags[SHA_TAG + path] = digest
        size = entry.get("bytes", {}).get(path)
        if size is not None:
            plan.metrics.setdefault(f"output.{names.get(path, i)}.bytes", float(size))
    if entry.get("end_ms") and entry.get("start_ms"):
        plan.metrics.setdefault("seconds", (entry["end_ms"] - entry["start_ms"]) / 1000)
    if plan.status != "FINISHED" and ERROR_TAG not in plan.tags:
        plan.tags[ERROR_TAG] = entry.get("error") or "the job failed: see its log"
    plan.params, renamed_params = fit_keys(plan.params)
    plan.metrics, renamed_metrics = fit_keys(plan.metrics)
    plan.tags, renamed_tags = fitted_tags(plan.tags)
    renamed = renamed_params | renamed_metrics | renamed_tags
    if renamed:
        plan.tags[RENAMED_TAG] = json.dumps(renamed)[:MAX_TAG]
    return plan


def _line(plan: Plan, line: Mapping[str, Any], names: dict[str, str]) -> None:
    if "params" in line:
        plan.params |= flatten_params(line["params"])
    elif "metrics" in line:
        for key, value in line["metrics"].items():
            plan.metrics.setdefault(str(key), float(value))
            if line.get("model"):
                plan.model_metrics.append((str(line["model"]), str(key), float(value)))
    elif "tags" in line:
        plan.tags |= {str(k): str(v)[:MAX_TAG] for k, v in line["tags"].items()}
    elif "input" in line:
        plan.inputs.append(line)
    elif "artifact" in line:
        model = str(line["model"]) if line.get("model") else None
        plan.artifacts.append((str(line["artifact"]), line.get("artifact_path"), model))
    elif "model" in line:
        plan.models.append((str(line["model"]), str(line.get("name", "model"))))
    elif "status" in line:
        plan.status = str(line["status"])
        if line.get("error"):
            plan.tags[ERROR_TAG] = str(line["error"])[:MAX_TAG]
    elif "outputs" in line:
        names |= {str(path): str(name) for name, path in line["outputs"].items()}
    elif "source" not in line:
        plan.warnings.append(f"unknown record line: {str(line)[:200]}")


def log_files(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, artifact dir) of the job's log and benchmark files (not its record)."""
    files = [(p, "logs") for p in entry.get("log", []) if not p.endswith(RECORD_SUFFIX)]
    return files + [(p, "benchmarks") for p in entry.get("benchmark", [])]


def warnings_tag(warnings: list[str]) -> dict[str, str]:
    return {WARNINGS_TAG: " | ".join(warnings)[:MAX_TAG]} if warnings else {}


@dataclass(frozen=True)
class DatasetLine:
    """A record's ``input`` line as an MLflow dataset: what ``log_inputs`` stores."""

    name: str
    digest: str  # MLflow's dataset digest: the first 32 characters of the full one
    source_type: str  # "http" or "local"
    source: str  # JSON: {"url": ...} (redacted) or {"uri": absolute path}
    context: str  # the mlflow.data.context input tag
    sha256: str  # the full digest ("" if unknown)


def dataset_line(line: Mapping[str, Any]) -> DatasetLine:
    """A record's ``input`` line as a dataset; a local file's digest is taken if the line
    has none."""
    source = str(line["input"])
    digest = line.get("digest")
    if source.startswith(("http://", "https://")):
        kind, where = "http", json.dumps({"url": redact(source)})
    else:
        path = Path(source).resolve()
        digest = digest or (sha256_path(path) if path.exists() else "")
        kind, where = "local", json.dumps({"uri": str(path)})
    return DatasetLine(
        name=str(line.get("name", Path(source).stem)),
        digest=(digest or "")[:32],
        source_type=kind,
        source=where,
        context=str(line.get("context", "input")),
        sha256=digest or "",
    )


def config_plan(config: Mapping[str, Any]) -> tuple[Any, dict[str, str], dict[str, str]]:
    """The workflow's config as logged on the invocation's run: (``config.json``'s content,
    with URLs redacted; its flattened params, keys fitted; ``{fitted key: original}``)."""
    safe = json.loads(json.dumps(redact_values(config), default=str))
    params, renamed = fit_keys(flatten_params(safe))
    return safe, params, renamed


def config_json(safe: Any) -> str:
    """``config.json`` as MLflow's ``log_dict`` writes it."""
    return json.dumps(safe, indent=2, default=str)


def stats_metrics(stats: Mapping[str, float]) -> dict[str, float]:
    """What tracking cost an invocation, as its run's ``mlflow_logger.*`` metrics."""
    return {f"{LOGGER_METRIC}{k}": float(v) for k, v in stats.items()}


def orphan_reason(tags: Mapping[str, str]) -> str:
    """Why a later invocation ends an invocation's runs KILLED (its KILLED_TAG)."""
    return (
        f"snakemake process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} "
        "ended without closing this run (killed?); marked by a later invocation"
    )[:MAX_TAG]


def reaped(killed: int) -> str:
    return f"{MESSAGE_PREFIX}: marked {killed} orphaned MLflow run(s) KILLED"
