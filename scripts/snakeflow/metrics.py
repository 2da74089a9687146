"""Model metrics: one definition for evaluate, the grid search and the registry.

Classification: accuracy, balanced accuracy, F1, ROC AUC, log loss. Regression: the metrics
MLflow's default regressor evaluator logs, under its names (root_mean_squared_error, ...).
Which of them a dataset gets, and its default, is its task's (``snakeflow.learners``).
"""

from __future__ import annotations

import math

import numpy as np

LOWER_IS_BETTER = {
    "log_loss",
    "root_mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "max_error",
}


def better(a: float, b: float, metric: str, min_delta: float = 0.0) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric`` by at least ``min_delta``."""
    return (b - a if metric in LOWER_IS_BETTER else a - b) >= min_delta


METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = (
    "root_mean_squared_error",
    "mean_absolute_error",
    "r2_score",
    "mean_absolute_percentage_error",
    "max_error",
)


def compute_metrics(y_true, y_pred, proba: np.ndarray, classes) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1, ROC AUC and log loss of one model's predictions.

    Binary: F1 and ROC AUC of the second class (``classes[1]``, e.g. "1" or "yes").
    Multiclass: macro F1 and one-vs-rest macro ROC AUC. A metric that is undefined for
    this test set (e.g. ROC AUC when it holds a single class) is NaN.
    """
    from sklearn import metrics as skm  # here: split imports this module, not scikit-learn

    classes = list(classes)
    y_true = np.asarray(y_true)
    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
    }
    binary = len(classes) == 2
    if binary:
        out["f1"] = skm.f1_score(y_true, y_pred, pos_label=classes[1], zero_division=0)
    else:
        out["f1"] = skm.f1_score(y_true, y_pred, average="macro", labels=classes, zero_division=0)
    try:
        if binary:
            out["roc_auc"] = skm.roc_auc_score(y_true == classes[1], proba[:, 1])
        else:
            out["roc_auc"] = skm.roc_auc_score(
                y_true, proba, multi_class="ovr", average="macro", labels=classes
            )
    except ValueError:
        out["roc_auc"] = math.nan
    out["log_loss"] = skm.log_loss(y_true, proba, labels=classes)
    return {k: float(v) for k, v in out.items()}


def compute_regression_metrics(y_true, y_pred) -> dict[str, float]:
    """RMSE, MAE, R², MAPE and max error of one regressor's predictions (MLflow's names).

    NaN where a metric is undefined for these values: R² when ``y_true`` is constant (or a
    single row), MAPE when ``y_true`` holds a zero (scikit-learn would divide by its
    epsilon instead and report a huge number).
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    varies = len(y_true) > 1 and np.ptp(y_true) > 0
    out = {
        "root_mean_squared_error": skm.root_mean_squared_error(y_true, y_pred),
        "mean_absolute_error": skm.mean_absolute_error(y_true, y_pred),
        "r2_score": skm.r2_score(y_true, y_pred) if varies else math.nan,
        "mean_absolute_percentage_error": (
            math.nan if (y_true == 0).any() else skm.mean_absolute_percentage_error(y_true, y_pred)
        ),
        "max_error": skm.max_error(y_true, y_pred),
    }
    return {k: float(v) for k, v in out.items()}


def baseline(y_true) -> dict[str, float]:
    """Each regression metric of a constant prediction of the mean of ``y_true``: what a
    regressor must beat to be of use (its RMSE is the standard deviation of ``y_true``, its
    R² is 0)."""
    y_true = np.asarray(y_true, dtype="float64")
    return compute_regression_metrics(y_true, np.full(len(y_true), y_true.mean()))


def defined(scores: dict[str, float]) -> dict[str, float | None]:
    """``scores`` with None for each NaN (an undefined metric), as the JSON files hold them."""
    return {k: (None if math.isnan(v) else v) for k, v in scores.items()}
