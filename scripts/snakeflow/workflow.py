"""Helpers the Snakefile calls while it is parsed.

Standard library only (and the logger plugin's names): the Snakefile is parsed on every
``snakemake`` call, including a no-op one, so nothing here may import mlflow, pandas or
sklearn. Tracking itself is the logger plugin's (``snakemake_logger_plugin_mlflow``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from snakemake_logger_plugin_mlflow.channel import (
    DEFAULT_TRACKING_URI,
    EXPERIMENT_ENV,
    RECORD_SUFFIX,
    TRACKING_URI_ENV,
)

from . import urls

# What a working copy of the workflow needs (profiles/default turns the logger plugin on);
# the tests and the benchmark copy these.
WORKFLOW_FILES = ("Snakefile", "config.yaml", "schemas", "envs", "scripts", "report", "profiles")

_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def coerce_cli_values(config: dict, schema_path: str | os.PathLike[str]) -> dict:
    """Give nested ``--config`` values their schema types before validation.

    Snakemake reads ``--config download="{attempts: 2}"`` with YAML's BaseLoader, so nested
    scalars arrive as strings ("2"). Where the schema asks for a number, boolean or null
    and the string reads as one in YAML, use that value; anything else is left for the
    schema to reject with its usual message.
    """
    import json

    import yaml  # already imported by Snakemake itself

    schema = json.loads(Path(schema_path).read_text())

    def walk(value, sub):
        if isinstance(value, dict):
            props = sub.get("properties", {})
            return {k: walk(v, props.get(k, {})) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, sub.get("items", {})) for v in value]
        wanted = sub.get("type", [])
        wanted = [wanted] if isinstance(wanted, str) else wanted
        kinds = tuple(t for w in wanted if w in _TYPES for t in _flat(_TYPES[w]))
        if isinstance(value, str) and kinds and "string" not in wanted:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            if isinstance(parsed, kinds) and not (isinstance(parsed, bool) and bool not in kinds):
                return parsed
        return value

    config.update(walk(dict(config), schema))
    return config


# What validate keeps of the last config that passed: its key and the config, defaults filled.
VALIDATED = Path(".snakemake/snakeflow/validated.json")


def validate(config: dict, schema_path: str | os.PathLike[str]) -> dict:
    """``snakemake.utils.validate(config, schema_path)``: the schema's defaults filled in
    (as plain dicts: Snakemake reads the schema into OrderedDicts, whose repr would make
    an empty default and ``{}`` differ as params), a WorkflowError naming the key for a
    config that does not fit.

    The schema check imports jsonschema and its helpers (0.1 s, on every ``snakemake``
    call, the no-op included). So the outcome of the last check is kept in ``VALIDATED``,
    keyed by the config, the schema's bytes and Snakemake's version: the same config again
    gets the same filled-in config without the import; anything else is checked anew. A
    config that holds a credential in a URL (``snakeflow.urls.redact`` changes it) is never
    kept on disk, nor is one JSON cannot hold exactly (e.g. a tuple): those are always
    checked.
    """
    import hashlib
    import json

    import snakemake

    try:
        given = json.dumps(config, sort_keys=True)
        keep = json.loads(given) == config and _secret_free(config)
    except (TypeError, ValueError):
        keep = False
    if keep:
        digest = hashlib.sha256(given.encode())
        digest.update(Path(schema_path).read_bytes())
        digest.update(snakemake.__version__.encode())
        key = digest.hexdigest()
        try:
            kept = json.loads(VALIDATED.read_text())
        except (OSError, ValueError):
            kept = {}
        if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept["config"], dict):
            config.clear()
            config.update(kept["config"])
            return config
    from snakemake.utils import validate as check

    check(config, str(schema_path))
    filled = _plain(config)
    config.clear()
    config.update(filled)
    if keep:
        try:
            VALIDATED.parent.mkdir(parents=True, exist_ok=True)
            tmp = VALIDATED.with_name(f".{VALIDATED.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"key": key, "config": config}))
            tmp.replace(VALIDATED)
        except OSError:
            pass  # a read-only working directory: checked again next time
    return config


def _plain(value):
    """``value`` with every dict (OrderedDicts too) a plain dict, in the same order."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _secret_free(value) -> bool:
    """No string in ``value`` is a URL that ``urls.redact`` would change."""
    if isinstance(value, dict):
        return all(_secret_free(v) for v in value.values())
    if isinstance(value, list):
        return all(_secret_free(v) for v in value)
    return not isinstance(value, str) or urls.redact(value) == value


def _flat(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def export_tracking_env(config: dict) -> None:
    """Hand ``mlflow.tracking_uri`` and ``mlflow.experiment`` from the config to the MLflow
    logger plugin and to the jobs that use the Model Registry, through MLflow's own
    environment variables (values already in the environment win). The plugin resolves the
    URI (a relative SQLite path against the working directory) before any job starts."""
    mlflow = config["mlflow"]
    os.environ.setdefault(TRACKING_URI_ENV, mlflow["tracking_uri"] or DEFAULT_TRACKING_URI)
    os.environ.setdefault(EXPERIMENT_ENV, mlflow["experiment"])


def logs(rule: str, stem: str) -> dict[str, str]:
    """A rule's ``log:`` files: ``log`` (the step's own text log, ``log[0]``) and ``record``
    (its job record, which the MLflow logger plugin logs when the job ends)."""
    return {"log": f"logs/{rule}/{stem}.log", "record": f"logs/{rule}/{stem}{RECORD_SUFFIX}"}


LEGACY = ("dataset", "data_url", "data_sha256", "target")  # the seed's single-dataset keys
DATA_URL_ENV = "SNAKEFLOW_DATA_URL"  # the legacy data_url, kept out of the command line
SECTIONS = ("clean", "features", "split", "register")  # what a dataset may override
TASKS = ("classification", "regression")
NAME = "[A-Za-z0-9_-]+"  # a dataset name (schemas/config.schema.json, $defs.name)


def resolve_datasets(config: dict) -> dict[str, dict]:
    """Every configured dataset with its settings complete, written back to
    ``config["datasets"]`` (so jobs read the same): a dataset's own ``clean``, ``features``,
    ``split`` and ``register`` keys over the top-level ones, ``task`` and ``predict_url``
    from the top level when unset, ``register.model_name`` the dataset's name when unset.

    The seed's single-dataset keys (``dataset``, ``data_url``, ``data_sha256``, ``target``,
    and ``SNAKEFLOW_DATA_URL``) still work: when any is set, the invocation runs that one
    dataset, the one ``dataset`` names (default: the only one configured), with the others
    in place of its url, sha256 and target. Stops with one line on what cannot run.
    """
    chosen = _fold_legacy(config)
    if not chosen:
        _stop("no dataset configured: add one, e.g. datasets: {titanic: {url: <URL>, target: y}}")
    resolved = {}
    for name, entry in chosen.items():
        spec = {
            "url": entry["url"],
            "sha256": entry.get("sha256"),
            "target": entry["target"],
            "task": entry.get("task") or config["task"],
            "models": entry.get("models"),
            "predict_url": entry.get("predict_url") or config["predict_url"],
        }
        for section in SECTIONS:
            spec[section] = {**config[section], **(entry.get(section) or {})}
        spec["register"]["model_name"] = spec["register"]["model_name"] or name
        resolved[name] = spec
    _check_datasets(config, resolved)
    config["datasets"] = resolved
    return resolved


def _fold_legacy(config: dict) -> dict[str, dict]:
    given = {k: config.get(k) for k in LEGACY if config.get(k) is not None}
    if os.environ.get(DATA_URL_ENV):
        given["data_url"] = os.environ[DATA_URL_ENV]
    datasets = config.get("datasets") or {}
    if not given:
        return datasets
    name = given.get("dataset")
    if name is None:
        if len(datasets) != 1:
            _stop(
                f"{', '.join(sorted(given))}: {len(datasets)} datasets are configured "
                f"({', '.join(sorted(datasets))}); name one with dataset=<name>, or set "
                "datasets.<name>.url and .target instead"
            )
        name = next(iter(datasets))
    entry = dict(datasets.get(name) or {})
    for key, field in (("data_url", "url"), ("data_sha256", "sha256"), ("target", "target")):
        if key in given:
            entry[field] = given[key]
    missing = [k for k in ("url", "target") if not entry.get(k)]
    if missing:
        _stop(
            f"dataset '{name}' has no {' or '.join(missing)}: configured datasets are "
            f"{', '.join(sorted(datasets)) or 'none'}; give data_url= and target=, or write "
            f"it as datasets: {{{name}: {{url: <CSV URL>, target: <column>}}}}"
        )
    return {name: entry}


def _check_datasets(config: dict, datasets: dict[str, dict]) -> None:
    """Parse-time checks that need no data: listed models exist and suit an explicit task,
    registered model names are not shared, the metric suits an explicit task."""
    owners: dict[str, str] = {}
    for name, spec in datasets.items():
        for model in spec["models"] or []:
            if model not in config["models"]:
                _stop(
                    f"datasets.{name}.models: no model '{model}' in models "
                    f"({', '.join(sorted(config['models']))})"
                )
            kind = config["models"][model]["task"]
            if spec["task"] in TASKS and kind != spec["task"]:
                _stop(
                    f"datasets.{name}.models: '{model}' is a {kind} model "
                    f"(models.{model}.task) and dataset '{name}' is a {spec['task']} task"
                )
        registered = spec["register"]["model_name"]
        if registered in owners:
            _stop(
                f"register.model_name '{registered}' is used by datasets '{owners[registered]}' "
                f"and '{name}': set datasets.<name>.register.model_name for each"
            )
        owners[registered] = name
        metric = spec["register"]["metric"]
        if metric and spec["task"] in TASKS and metric not in METRICS[spec["task"]]:
            _stop(
                f"register.metric '{metric}' is not a {spec['task']} metric (dataset "
                f"'{name}'): use one of {', '.join(METRICS[spec['task']])}"
            )
        if spec["task"] in TASKS and not models_of(config, spec, spec["task"]):
            _stop(f"dataset '{name}' is a {spec['task']} task and no model in models is one")


# Names as the steps record them (snakeflow.metrics); here for parse-time checks only.
METRICS = {
    "classification": ("roc_auc", "accuracy", "balanced_accuracy", "f1", "log_loss"),
    "regression": (
        "root_mean_squared_error",
        "mean_absolute_error",
        "r2_score",
        "mean_absolute_percentage_error",
        "max_error",
    ),
}


def models_of(config: dict, spec: dict, task: str) -> list[str]:
    """The models a dataset trains: those it lists, else every model of its task."""
    if spec["models"]:
        return sorted(spec["models"])
    return sorted(m for m, s in config["models"].items() if s["task"] == task)


def dataset(datasets: dict[str, dict], name: str) -> dict:
    """The settings of dataset ``name``; a name that is not configured (a target such as
    ``data/clean/<name>.csv``) stops snakemake with one line listing the configured ones."""
    if name not in datasets:
        _stop(f"dataset '{name}' is not configured; configured: {', '.join(sorted(datasets))}")
    return datasets[name]


def setting(datasets: dict[str, dict], *keys: str):
    """Param function: ``datasets.<wildcards.dataset>.<keys...>`` (one dataset's setting, so a
    change to it reruns only that dataset's jobs)."""

    def value(wildcards):
        out = dataset(datasets, wildcards.dataset)
        for key in keys:
            out = out[key]
        return out

    return value


def task_of(datasets: dict[str, dict], checkpoint):
    """Param function: the dataset's task, as configured or, for ``auto``, as its clean job
    decided it (read from the clean checkpoint's task file, so that it is known before
    the jobs that depend on it are planned)."""

    def task(wildcards):
        return decided_task(datasets, checkpoint, wildcards.dataset)

    return task


def decided_task(datasets: dict[str, dict], checkpoint, name: str) -> str:
    import json

    spec = dataset(datasets, name)
    if spec["task"] in TASKS:
        return spec["task"]
    path = checkpoint.get(dataset=name).output.task
    return json.loads(Path(path).read_text())["task"]


def metric_of(datasets: dict[str, dict], checkpoint):
    """Param function: ``register.metric`` of the dataset, or its task's default."""

    def metric(wildcards):
        chosen = dataset(datasets, wildcards.dataset)["register"]["metric"]
        return chosen or METRICS[decided_task(datasets, checkpoint, wildcards.dataset)][0]

    return metric


def dataset_models(config: dict, datasets: dict[str, dict], checkpoint, template: str):
    """Input function for register: ``template`` for each model the dataset trains."""

    def files(wildcards):
        spec = dataset(datasets, wildcards.dataset)
        task = decided_task(datasets, checkpoint, wildcards.dataset)
        return [
            template.format(dataset=wildcards.dataset, model=m)
            for m in models_of(config, spec, task)
        ]

    return files


def download_input(datasets: dict[str, dict]):
    """Input function: a local dataset URL is an input of download (an edit reruns it)."""

    def src(wildcards):
        path = urls.local_path(dataset(datasets, wildcards.dataset)["url"])
        return {"src": path} if path else {}

    return src


def url_digest(datasets: dict[str, dict]):
    """Param function, rerun trigger for download: a digest of the URL, never the URL (it
    may hold secrets)."""

    def digest(wildcards):
        return urls.url_digest(dataset(datasets, wildcards.dataset)["url"])

    return digest


def predict_input(datasets: dict[str, dict], default: str):
    """Input function: the CSV predict scores, the dataset's ``predict_url`` (a local path or
    file:// URL), else ``default`` (its test split)."""

    def csv(wildcards):
        url = dataset(datasets, wildcards.dataset)["predict_url"]
        return (urls.local_path(url) or url) if url else default.format(**wildcards)

    return csv


def one_of(names) -> str:
    """A wildcard constraint that matches exactly the given names."""
    import re

    return "|".join(re.escape(n) for n in sorted(names))


def model_setting(config: dict, key: str):
    """Input function for a train param: ``models.<wildcards.model>.<key>`` from config.

    Passing each model's own settings as params makes a change to one model's settings
    retrain only that model.
    """

    def setting(wildcards):
        spec = config["models"][wildcards.model]
        return spec.get(key, {}) if key == "params" else spec[key]

    return setting


def model_params(config: dict, datasets: dict[str, dict], checkpoint) -> dict:
    """The params search and train share: one model of one dataset, its settings and the
    dataset's (so a change to either reruns exactly that model's jobs of that dataset)."""
    return {
        "dataset": "{dataset}",
        "target": setting(datasets, "target"),
        "task": task_of(datasets, checkpoint),
        "estimator": model_setting(config, "estimator"),
        "model_params": model_setting(config, "params"),
        "metric": metric_of(datasets, checkpoint),
        "drop": setting(datasets, "features", "drop"),
        "infer_drop": setting(datasets, "features", "infer_drop"),
        "seed": setting(datasets, "split", "seed"),
    }


def grid_points(config: dict, model: str) -> dict[str, dict]:
    """The points of ``models.<model>.grid``: a stable id -> the point's parameter values.

    An id is a digest of the point's values, so changing one value makes a new point (and a
    new search job) while the others keep their ids and their finished jobs.
    """
    import hashlib
    import itertools
    import json

    grid = config["models"][model].get("grid") or {}
    if not grid:
        return {}
    keys = sorted(grid)
    points = {}
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        digest = hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()
        points[f"p{digest[:10]}"] = point
    return points


def all_points(config: dict) -> list[str]:
    """Every grid point id of every model (the ``point`` wildcard's values)."""
    return sorted({p for m in config["models"] for p in grid_points(config, m)})


def check_grids(config: dict) -> None:
    """Stop at parse time, with one line naming the model and key, on a grid that cannot run:
    a value that is not a list, an empty list, or more points than ``cv.max_points``. A grid
    key may also be in the model's ``params``: the grid's value wins for its point (as in
    scikit-learn's own grid search), and the search and train runs record what it replaced."""
    for name, spec in config["models"].items():
        grid = spec.get("grid") or {}
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                _stop(f"models.{name}.grid.{key}: give a non-empty list of values, e.g. [1, 2]")
        points = 1
        for values in grid.values():
            points *= len(values)
        if points > config["cv"]["max_points"]:
            _stop(
                f"models.{name}.grid: {points} points, more than cv.max_points "
                f"({config['cv']['max_points']}); shrink the grid or raise cv.max_points"
            )


DATA_RULES = frozenset({"download", "clean", "split"})  # rules whose jobs use no model


def models_may_run(workflow) -> bool:
    """Whether this invocation may run a job that uses ``models`` (jobs added once the clean
    checkpoint has run are upstream of a target job, so the target jobs' rules say so)."""
    dag = getattr(workflow, "dag", None)
    if dag is None:
        return True
    rules = {job.rule.name for job in dag.targetjobs}
    rules |= {job.rule.name for job in dag.needrun_jobs()}
    return not rules <= DATA_RULES


def check_estimators(config: dict, workflow=None) -> None:
    """onstart: every model's estimator is of its ``task`` (a classifier or a regressor) and
    takes every key of its grid. Imports the estimators (scikit-learn: about 1 s), so it runs
    only when jobs are about to run, never at parse time, and only when a job that uses the
    models may run (not for ``snakemake data/clean/<dataset>.csv``); an estimator that does
    not import is reported by its own job."""
    import importlib

    if workflow is not None and not models_may_run(workflow):
        return

    try:
        from sklearn.base import is_classifier, is_regressor
    except ImportError:  # snakemake runs without scikit-learn (--use-conda): jobs check
        return

    for name, spec in sorted(config["models"].items()):
        module, _, cls = spec["estimator"].rpartition(".")
        try:
            estimator = getattr(importlib.import_module(module), cls)()
        except Exception:
            continue
        kind = "regression" if is_regressor(estimator) else "classification"
        if not (is_classifier(estimator) or is_regressor(estimator)):
            _stop(f"models.{name}: {spec['estimator']} is neither a classifier nor a regressor")
        if kind != spec["task"]:
            word = "regressor" if kind == "regression" else "classifier"
            _stop(f"models.{name}: {spec['estimator']} is a {word}; set models.{name}.task: {kind}")
        accepted = estimator.get_params()
        for key in spec.get("grid") or {}:
            if key not in accepted:
                _stop(f"models.{name}.grid.{key}: {cls} has no parameter '{key}'")


def _stop(message: str) -> None:
    print(f"snakeflow error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def point_setting(config: dict):
    """Input function for a search job's params: the values of its grid point."""

    def point(wildcards):
        return grid_points(config, wildcards.model)[wildcards.point]

    return point


def search_results(config: dict, template: str):
    """Input function for train: the CV results of every grid point of the model (none
    for a model without a grid)."""

    def results(wildcards):
        points = grid_points(config, wildcards.model)
        return [template.format(**wildcards, point=p) for p in sorted(points)]

    return results


def end_rate_timers() -> None:
    """onsuccess/onerror: let snakemake exit as soon as its work is done.

    Snakemake's scheduler (``JobScheduler._schedule_reevalutation``, for the default
    ``--max-jobs-per-timespan 100/1s``) starts a non-daemon ``threading.Timer`` after each
    scheduling round; once the last job has ended, the interpreter waits for the last of
    them before it exits: up to 1 s after "Elapsed time" on every invocation that ran a
    job. These hooks run when the scheduler is done, so that wait is all the timer has
    left to do; it is cancelled (no other timer is touched).
    """
    import threading

    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        name = getattr(function, "__qualname__", "")
        if isinstance(thread, threading.Timer) and "._schedule_reevalutation." in name:
            thread.cancel()
