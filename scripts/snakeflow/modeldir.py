"""A model directory saved by train (MLflow's format, sklearn flavor, skops), read without MLflow.

``mlflow.sklearn.load_model`` of a local skops model is ``skops.io.load`` of the file the
MLmodel names, trusting the types the MLmodel lists; this module does the same without
importing MLflow (1-2 s a job), for evaluate and for predict when this invocation's own
model is the champion. Only directories this workflow's train wrote are read here (their
trusted types are the ones train recorded); a model from the Model Registry goes through
MLflow (``snakeflow.models``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import skops.io
import yaml

from .errors import UserError


@lru_cache(maxsize=4)  # predict reads the columns and the pipeline: one read of MLmodel
def _conf(model_dir: Path) -> dict:
    try:
        return yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{model_dir} is not a model directory train wrote: {exc}") from exc


def load_pipeline(model_dir: str | os.PathLike[str]):
    """The fitted scikit-learn pipeline saved in ``model_dir``."""
    model_dir = Path(model_dir).resolve()
    flavor = _conf(model_dir).get("flavors", {}).get("sklearn", {})
    if flavor.get("serialization_format") != "skops":
        raise UserError(f"{model_dir} does not hold a skops-serialised scikit-learn model")
    return skops.io.load(model_dir / flavor["pickled_model"], trusted=flavor["skops_trusted_types"])


def input_columns(model_dir: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The columns the model's signature requires, and those it reads as numbers: what
    ``snakeflow.models.input_columns`` reads from a registered model."""
    conf = _conf(Path(model_dir).resolve())
    specs = json.loads((conf.get("signature") or {}).get("inputs") or "[]")
    required = [spec["name"] for spec in specs if spec.get("required", True)]
    return required, list((conf.get("metadata") or {}).get("numeric", []))
