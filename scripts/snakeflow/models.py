"""MLflow models: save and log a fitted sklearn pipeline, register it, load the champion.

Used by train, evaluate, register and predict (their envs have scikit-learn, pandas and
skops); the download and clean steps never import it.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

from .errors import UserError
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


def signature(frame: pd.DataFrame, predictions, numeric: list[str], used: list[str]):
    """Input schema of raw CSV rows: every column by name, numbers as Any, text as string.

    Numeric columns accept ints and floats alike (pandas reads an integer column with a
    missing value as float); columns the model does not use are optional.
    """
    with warnings.catch_warnings():  # the integer-column hint: numbers are Any below
        warnings.simplefilter("ignore", UserWarning)
        outputs = infer_signature(frame.head(5), predictions).outputs
    specs = []
    for col in frame.columns:
        kind = AnyType() if col in numeric or col not in used else "string"
        specs.append(ColSpec(kind, col, required=col in used))
    return ModelSignature(inputs=Schema(specs), outputs=outputs)


def requirements() -> list[str]:
    """What the saved model needs to load, pinned to the versions that trained it.

    Given explicitly: MLflow would otherwise infer them by loading the model in a
    subprocess, twice per model (about 4 s each).
    """
    import sklearn

    return [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"pandas=={pd.__version__}",
    ]


def save_and_log(pipeline, frame: pd.DataFrame, dst: Path, sig: ModelSignature, name: str):
    """Save ``pipeline`` as an MLflow model in ``dst`` and log it to the active run.

    Serialised with skops (no pickle); the types skops must trust are those of this
    pipeline, recorded in the MLmodel file. Returns the ModelRecord written into ``dst``.
    """
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    kwargs = {
        "signature": sig,
        "input_example": frame.head(5),
        "skops_trusted_types": trusted,
        "pip_requirements": requirements(),
    }
    mlflow.sklearn.save_model(pipeline, str(dst), **kwargs)
    info = mlflow.sklearn.log_model(pipeline, name="model", **kwargs)
    record = ModelRecord(
        name=name,
        run_id=mlflow.active_run().info.run_id,
        model_id=info.model_id,
        model_uri=info.model_uri,
    )
    record.save(dst)
    return record


def load_local(model_dir: str | os.PathLike[str]):
    """The fitted sklearn pipeline saved in ``model_dir``."""
    return mlflow.sklearn.load_model(str(model_dir))


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


def load_champion(model_name: str, alias: str):
    """Load ``models:/<name>@<alias>``: (uri, model version, sklearn pipeline).

    UserError if no version holds the alias yet.
    """
    uri = f"models:/{model_name}@{alias}"
    version = champion_version(model_name, alias)
    if version is None:
        raise UserError(
            f"no version of registered model '{model_name}' has the alias '{alias}' yet: "
            "no model has passed the registration gate (see registration.json and "
            "register.threshold)"
        )
    return uri, version, mlflow.sklearn.load_model(uri)
