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


def download_input(config: dict) -> dict[str, str]:
    """A local ``data_url`` is an input of download (so an edit to it reruns the step)."""
    path = urls.local_path(urls.data_url(config))
    return {"src": path} if path else {}


def data_url_digest(config: dict) -> str:
    """Rerun trigger for download: a digest of the URL, never the URL (it may hold secrets)."""
    return urls.url_digest(urls.data_url(config))


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


def check_grid_params(config: dict) -> None:
    """onstart: every grid parameter is one the estimator takes (imports the estimators, so
    it runs only when jobs are about to run, not at parse time)."""
    import importlib

    for name, spec in config["models"].items():
        grid = spec.get("grid") or {}
        if not grid:
            continue
        module, _, cls = spec["estimator"].rpartition(".")
        try:
            accepted = getattr(importlib.import_module(module), cls)().get_params()
        except Exception:  # an unknown estimator is reported by its train job
            continue
        for key in grid:
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
        return [template.format(model=wildcards.model, point=p) for p in sorted(points)]

    return results


def model_name(config: dict) -> str:
    """Registered model name: ``register.model_name``, else the dataset name."""
    return config["register"]["model_name"] or config["dataset"]


def predict_input(config: dict, default: str) -> str:
    """The CSV predict scores: ``predict_url`` (a local path or file:// URL) or ``default``."""
    url = config["predict_url"]
    return (urls.local_path(url) or url) if url else default
