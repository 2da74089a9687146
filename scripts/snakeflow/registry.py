"""The MLflow Model Registry: the only tracking-store access a step may have.

register and predict import this; no other step talks to the store. MLflow reads the store's
URI and the experiment from ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME``, which
the Snakefile (``workflow.export_tracking_env``) puts in every job's environment. MLflow
only: register does not load pandas, scikit-learn or skops.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from mlflow.environment_variables import MLFLOW_EXPERIMENT_NAME, MLFLOW_TRACKING_URI
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException

from .errors import UserError, first_line
from .urls import redact

# Set on every LoggedModel by the logger plugin: the ``model_uuid`` of the MLmodel it was
# logged from (snakemake_logger_plugin_mlflow.channel.MODEL_UUID_TAG; a test keeps the two equal).
MODEL_UUID_TAG = "snakemake.model_uuid"
STORE_ERRORS = (MlflowException, OSError, RequestException)
CARD = "card.json"  # in a saved model's directory: what the model card of its versions says


def client() -> MlflowClient:
    """A client of the store named by MLFLOW_TRACKING_URI, also made MLflow's default (for
    ``models:/`` URIs)."""
    import mlflow

    uri = MLFLOW_TRACKING_URI.get() or None
    if uri:
        mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def store_error(exc: BaseException) -> UserError:
    """One line naming the tracking store and the first line of what went wrong."""
    uri = MLFLOW_TRACKING_URI.get() or ""
    reason = first_line(exc)
    return UserError(f"MLflow tracking store {redact(uri)} is not usable: {reason[:300]}")


def _missing(exc: MlflowException) -> bool:
    """Whether ``exc`` says the registered model or alias does not exist (and nothing else)."""
    code = exc.error_code
    if code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
        return True
    return code == ErrorCode.Name(INVALID_PARAMETER_VALUE) and "not found" in exc.message


def champion_version(model_name: str, alias: str):
    """The model version holding ``alias``, or None if the model or the alias does not exist.

    Any other failure (store down, permission denied) is a UserError, never "no alias".
    """
    try:
        return client().get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise store_error(exc) from exc
    except (OSError, RequestException) as exc:
        raise store_error(exc) from exc


def model_uuid(model_dir: str | os.PathLike[str]) -> str:
    """The ``model_uuid`` that MLflow wrote into the MLmodel file of a saved model."""
    text = (Path(model_dir) / "MLmodel").read_text()
    found = re.search(r"^model_uuid: *'?([0-9A-Za-z-]+)'?\s*$", text, re.MULTILINE)
    if not found:
        raise UserError(f"{model_dir}/MLmodel has no model_uuid: not a model saved by MLflow")
    return found.group(1)


def logged_model(model_dir: str | os.PathLike[str], *, wait: float = 120.0):
    """The LoggedModel that the logger plugin logged from ``model_dir``.

    The plugin logs a job's record after the job ends, on its own thread; a step that runs
    right after may have to wait a moment. UserError if it does not appear within ``wait``
    seconds (the plugin is off, or the store is down).
    """
    uuid = model_uuid(model_dir)
    store = client()
    try:
        name = MLFLOW_EXPERIMENT_NAME.get() or "snakeflow"
        experiment = store.get_experiment_by_name(name)
        deadline = time.monotonic() + wait
        while True:
            found = []
            if experiment is not None:
                found = store.search_logged_models(
                    [experiment.experiment_id],
                    filter_string=f"tags.`{MODEL_UUID_TAG}` = '{uuid}'",
                    max_results=1,
                )
            if found and str(found[0].status) == "READY":
                return found[0]
            if time.monotonic() > deadline:
                raise UserError(
                    f"the model in {model_dir} is not in the tracking store after {wait:.0f} s: "
                    "run snakemake with the MLflow logger (profiles/default turns it on; "
                    "or --logger mlflow) so that trained models are logged"
                )
            time.sleep(0.5)
            experiment = experiment or store.get_experiment_by_name(name)
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc


def register(model_id: str, model_name: str, tags: dict[str, str]):
    """Register logged model ``model_id`` as a new version of ``model_name``."""
    import mlflow

    try:
        client()
        return mlflow.register_model(f"models:/{model_id}", model_name, tags=tags)
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc


def set_alias(model_name: str, alias: str, version: str | int) -> None:
    try:
        client().set_registered_model_alias(model_name, alias, str(version))
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc


def delete_alias(model_name: str, alias: str) -> None:
    """Remove ``alias`` from ``model_name`` (nothing if no version holds it)."""
    try:
        client().delete_registered_model_alias(model_name, alias)
    except MlflowException as exc:
        if not _missing(exc):
            raise store_error(exc) from exc
    except (OSError, RequestException) as exc:
        raise store_error(exc) from exc


def describe(model_name: str, version: str | int, text: str, tags: dict[str, str]) -> None:
    """Set the description (a model card) and tags of one version."""
    try:
        store = client()
        store.update_model_version(model_name, str(version), description=text)
        for key, value in tags.items():
            store.set_model_version_tag(model_name, str(version), key, value)
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc


def describe_model(model_name: str, text: str) -> None:
    try:
        client().update_registered_model(model_name, description=text)
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc
