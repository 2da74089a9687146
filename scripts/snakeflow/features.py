"""Features and estimators: which columns a model uses, its preprocessing, the estimator.

pandas and scikit-learn only (no MLflow): train and the grid search (search) share it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .errors import UserError
from .learners import task_for

ID_NAME = re.compile(r"(^|[_\s-])id$|^id[_\s-]|^index$|^unnamed: ?0$", re.IGNORECASE)
CAMEL_ID = re.compile(r"[a-z0-9](Id|ID)$")  # PassengerId, userID


@dataclass
class FeaturePlan:
    """Which columns the model uses, and why the others are dropped."""

    numeric: list[str]
    categorical: list[str]
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> list[str]:
        return self.numeric + self.categorical


def plan_features(
    frame: pd.DataFrame, target: str, drop: list[str], infer: bool = True
) -> FeaturePlan:
    """Split the feature columns of ``frame`` into numeric and categorical ones.

    Dropped: ``drop`` (names the frame lacks are ignored, so settings for one dataset do
    not break another) and, with ``infer``, id-like columns (an id name, or unique
    integers) and free text (text columns that are mostly unique or long).
    """
    numeric, categorical, dropped = [], [], {}
    rows = len(frame)
    for col in frame.columns:
        if col == target:
            continue
        values = frame[col]
        if col in drop:
            dropped[col] = "configured"
            continue
        is_number = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        unique = values.nunique(dropna=True)
        if infer and (ID_NAME.search(str(col)) or CAMEL_ID.search(str(col))):
            dropped[col] = "id-like name"
        elif (
            infer
            and is_number
            and pd.api.types.is_integer_dtype(values)
            and rows >= 20
            and (unique == rows)
        ):
            dropped[col] = "id-like: unique integers"
        elif infer and not is_number and rows >= 20 and unique > 0.5 * rows:
            dropped[col] = "free text: mostly unique values"
        elif infer and not is_number and values.dropna().astype(str).str.len().mean() > 50:
            dropped[col] = "free text: long values"
        elif is_number:
            numeric.append(col)
        else:
            categorical.append(col)
    if not numeric and not categorical:
        raise UserError(
            f"no feature columns left after dropping {sorted(dropped)}; "
            "check features.drop and features.infer_drop"
        )
    return FeaturePlan(numeric, categorical, dropped)


def overridden(params: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The fixed ``params`` a grid ``point`` replaces (the point's value wins): what the
    search and train runs record as ``overrides``."""
    return {k: params[k] for k in point if k in params}


def make_estimator(
    name: str,
    path: str,
    params: dict[str, Any],
    *,
    seed: int,
    threads: int,
    task: str = "classification",
    dataset: str | None = None,
):
    """Import ``path`` (e.g. ``sklearn.ensemble.RandomForestClassifier``) and build it.

    ``random_state`` and ``n_jobs`` are filled from the seed and the job's threads (when
    more than one) if the estimator takes them and the config does not set them. The
    estimator must be of the dataset's ``task``: a classifier with ``predict_proba``, or a
    regressor; anything else is a UserError naming the model and ``dataset``.
    """
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(
            f"models.{name}.estimator: cannot import '{path}'; give a full class path "
            "such as sklearn.linear_model.LogisticRegression"
        ) from exc
    accepted = inspect.signature(cls).parameters
    params = dict(params)
    if "random_state" in accepted:
        params.setdefault("random_state", seed)
    if "n_jobs" in accepted and threads > 1:
        params.setdefault("n_jobs", threads)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise UserError(f"models.{name}.params: {path} rejects them: {exc}") from exc
    _check_kind(estimator, name, path, task, dataset)
    return estimator


def _check_kind(estimator, name: str, path: str, task: str, dataset: str | None) -> None:
    """UserError unless ``estimator`` is a model of ``task`` (see :func:`make_estimator`)."""
    wanted = task_for(task).estimator_kind
    kind = "classifier" if is_classifier(estimator) else None
    kind = kind or ("regressor" if is_regressor(estimator) else None)
    if kind is None:
        raise UserError(f"models.{name}.estimator: {path} is neither a classifier nor a regressor")
    if kind != wanted:
        where = f"dataset '{dataset}'" if dataset else "the dataset"
        listed = f"datasets.{dataset}.models" if dataset else "datasets.<name>.models"
        raise UserError(
            f"models.{name}: {path} is a {kind}; {where} is a {task} task: list {wanted}s "
            f"for it ({listed}) or set its task"
        )
    if kind == "classifier" and not hasattr(estimator, "predict_proba"):
        raise UserError(f"models.{name}.estimator: {path} is not a classifier with predict_proba")


def build_pipeline(plan: FeaturePlan, estimator) -> Pipeline:
    """Preprocessing (impute + scale numbers, impute + one-hot categories) and estimator."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    transformers = []
    if plan.numeric:
        transformers.append(("numeric", numeric, plan.numeric))
    if plan.categorical:
        transformers.append(("categorical", categorical, plan.categorical))
    pre = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", pre), ("model", estimator)])


def read_frame(
    path: Path, target: str, task: str = "classification"
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a split CSV (UserError if it lacks ``target``). The target
    keeps its CSV text (a class label such as "1" or "setosa"), unless the task's target is
    a number (regression): then float64, and UserError naming the column at the first value
    that is not a finite number (a missing one included)."""
    kind = task_for(task)
    frame = pd.read_csv(path, converters={target: str})
    if target not in frame.columns:
        raise UserError(f"target column '{target}' is not in {path}; check target")
    labels = frame[target]
    if kind.numeric_target:
        labels = numeric_target(labels, target, path)
    return frame.drop(columns=[target]), labels


def numeric_target(text: pd.Series, target: str, path: Path) -> pd.Series:
    """The CSV text ``text`` as float64, or a UserError naming ``target`` and the first
    line whose value is not a finite number."""
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = int(bad.nonzero()[0][0])
        value = text.iloc[row]
        shown = "no value" if pd.isna(value) else repr(str(value)[:40])
        raise UserError(
            f"target column '{target}' must hold numbers for regression; {path} line "
            f"{row + 2} has {shown}: check target or set the task"
        )
    return numbers
