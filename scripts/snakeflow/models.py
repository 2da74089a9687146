"""MLflow models: save a fitted sklearn pipeline locally, load the champion.

Used by train, register and predict (their envs have scikit-learn, pandas and skops);
evaluate reads train's model directory without MLflow (``snakeflow.modeldir``). Only
register (the champion, to compare a challenger with it) and predict (a champion from an
earlier invocation) reach the tracking store; the registry calls live in
``snakeflow.registry``.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

from . import registry
from .errors import UserError
from .learners import task_for
from .registry import champion_version

__all__ = ["load_champion", "save", "signature"]


def raw_types(raw_csv: str | os.PathLike[str], columns) -> dict[str, str]:
    """The MLflow type of each of ``columns`` as pandas reads them from the raw CSV (what a
    user of the model passes it): ``long`` for a column of integers without a missing value,
    ``double`` for other numbers, ``string`` for text."""
    wanted = set(columns)
    frame = pd.read_csv(raw_csv, usecols=lambda c: c in wanted)
    types = {}
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_integer_dtype(dtype):
            types[col] = "long"
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            types[col] = "double"
        else:
            types[col] = "string"
    return types


def signature(
    frame: pd.DataFrame,
    predictions,
    numeric: list[str],
    used: list[str],
    types: dict[str, str] | None = None,
    *,
    task: str = "classification",
):
    """Input schema of raw CSV rows: every column by name, typed as pandas reads the raw file
    (``types``, from :func:`raw_types`: integers as long, other numbers as double, text as
    string), so that ``pd.read_csv`` of a file like it predicts as it is, and ``mlflow models
    serve`` parses CSV rows with the same types. A missing value is accepted in any double or
    string column (the model imputes it). Without ``types``, every number is a double.
    Columns the model does not use are optional.

    Output: what ``infer_signature`` makes of the task's ``signature_output`` of
    ``predictions`` (a classifier's as they are; for a regressor one double, whatever dtype
    ``predictions`` has).
    """
    predictions = task_for(task).signature_output(predictions)
    with warnings.catch_warnings():  # the integer-column hint: types are set below
        warnings.simplefilter("ignore", UserWarning)
        outputs = infer_signature(frame.head(5), predictions).outputs
    specs = []
    for col in frame.columns:
        number = col in numeric or pd.api.types.is_numeric_dtype(frame[col])
        kind = (types or {}).get(col) or ("double" if number else "string")
        specs.append(ColSpec(kind, col, required=col in used))
    return ModelSignature(inputs=Schema(specs), outputs=outputs)


def example(frame: pd.DataFrame, sig: ModelSignature) -> pd.DataFrame:
    """The first rows of ``frame`` with the signature's types (the input example)."""
    rows = frame.head(5).copy()
    for spec in sig.inputs.inputs:
        if spec.name in rows.columns and str(spec.type) in ("long", "double"):
            rows[spec.name] = rows[spec.name].astype(
                "int64" if str(spec.type) == "long" else "float64"
            )
    return rows


# What a saved model needs to load: pip package -> the module it provides.
PINNED = {"mlflow": "mlflow", "scikit-learn": "sklearn", "skops": "skops", "pandas": "pandas"}


def requirements() -> list[str]:
    """What the saved model needs to load, pinned to the versions that trained it.

    Given explicitly: MLflow would otherwise infer them by loading the model in a
    subprocess, twice per model (about 4 s each).
    """
    return [f"{pkg}=={importlib.import_module(mod).__version__}" for pkg, mod in PINNED.items()]


def _seed_requirement_check() -> None:
    """Spare MLflow its scan of every installed distribution when it checks our requirements.

    Saving a model makes MLflow check the pip requirements against the environment
    (``warn_dependency_requirement_mismatches``); to map packages to modules it first reads
    the file list of every installed distribution (``packages_distributions``), 2-3 s per
    process. Ours are exactly the PINNED packages imported in this process, so the map needs
    only these. If MLflow renames its cache, this does nothing and the scan runs.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", False) is None:
        requirements_utils._MODULES_TO_PACKAGES = {mod: [pkg] for pkg, mod in PINNED.items()}


def save(
    pipeline, frame: pd.DataFrame, dst: Path, sig: ModelSignature, *, card: dict | None = None
) -> None:
    """Save ``pipeline`` to ``dst`` in MLflow's model format; no tracking store is involved.

    Serialised with skops (no pickle); the types skops must trust are those of this
    pipeline, recorded in the MLmodel file. The job records ``dst`` and the logger plugin
    logs it as a LoggedModel of the job's run.
    """
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    _seed_requirement_check()
    mlflow.sklearn.save_model(
        pipeline,
        str(dst),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=sig,
        input_example=example(frame, sig),
        skops_trusted_types=trusted,
        pip_requirements=requirements(),
        metadata={
            "numeric": [
                c for c in frame.columns if c in (card or {}).get("features", {}).get("numeric", [])
            ]
        },
    )
    if card is not None:
        (Path(dst) / registry.CARD).write_text(json.dumps(card, indent=2, default=str) + "\n")


def input_columns(uri: str) -> tuple[list[str], list[str]]:
    """The columns a model's signature requires, and those it reads as numbers."""
    try:
        registry.client()
        info = mlflow.models.get_model_info(uri)
    except registry.STORE_ERRORS as exc:
        raise registry.store_error(exc) from exc
    specs = info.signature.inputs.inputs if info.signature else []
    required = [spec.name for spec in specs if spec.required]
    return required, list((info.metadata or {}).get("numeric", []))


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
    try:
        registry.client()
        return uri, version, mlflow.sklearn.load_model(uri)
    except registry.STORE_ERRORS as exc:
        raise registry.store_error(exc) from exc
