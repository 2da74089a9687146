"""The MLflow Model Registry: which run and logged model a trained model is, and its versions.

MLflow only: the register step imports this and not ``snakeflow.models``, so it does not
load pandas, scikit-learn or skops (about 2 s per job) to talk to the registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .tracking import tracking_uri

TRACKING_FILE = "snakeflow.json"  # beside MLmodel: which run and logged model this is


@dataclass
class ModelRecord:
    """Where a trained model lives in MLflow; saved in the model directory."""

    name: str
    run_id: str
    model_id: str
    model_uri: str

    def save(self, model_dir: Path) -> None:
        (Path(model_dir) / TRACKING_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> ModelRecord:
        return cls(**json.loads((Path(model_dir) / TRACKING_FILE).read_text()))


def champion_version(model_name: str, alias: str):
    """The model version holding ``alias``, or None."""
    client = MlflowClient(tracking_uri())
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def register(record: ModelRecord, model_name: str, alias: str, tags: dict[str, str]):
    """Register ``record`` as a new version of ``model_name`` and point ``alias`` at it."""
    client = MlflowClient(tracking_uri())
    version = mlflow.register_model(record.model_uri, model_name, tags=tags)
    client.set_registered_model_alias(model_name, alias, version.version)
    return version
