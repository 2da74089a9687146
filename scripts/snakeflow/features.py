"""Features and estimators: which columns a model uses, its preprocessing, the classifier.

pandas and scikit-learn only (no MLflow): train and the grid search (search) share it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .errors import UserError

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


def make_estimator(name: str, path: str, params: dict[str, Any], *, seed: int, threads: int):
    """Import ``path`` (e.g. ``sklearn.ensemble.RandomForestClassifier``) and build it.

    ``random_state`` and ``n_jobs`` are filled from the seed and the job's threads (when
    more than one) if the estimator takes them and the config does not set them.
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
    if not is_classifier(estimator) or not hasattr(estimator, "predict_proba"):
        raise UserError(f"models.{name}.estimator: {path} is not a classifier with predict_proba")
    return estimator


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


def read_frame(path: Path, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and label of a split CSV; the label keeps its CSV text (e.g. "1", "setosa")."""
    frame = pd.read_csv(path, converters={target: str})
    if target not in frame.columns:
        raise UserError(f"target column '{target}' is not in {path}; check target")
    return frame.drop(columns=[target]), frame[target]
