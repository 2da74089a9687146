"""Classification metrics: one definition for evaluate, the grid search and the registry."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

LOWER_IS_BETTER = {"log_loss"}


def better(a: float, b: float, metric: str, min_delta: float = 0.0) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric`` by at least ``min_delta``."""
    return (b - a if metric in LOWER_IS_BETTER else a - b) >= min_delta


METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss")


def compute_metrics(y_true, y_pred, proba: np.ndarray, classes) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1, ROC AUC and log loss of one model's predictions.

    Binary: F1 and ROC AUC of the second class (``classes[1]``, e.g. "1" or "yes").
    Multiclass: macro F1 and one-vs-rest macro ROC AUC. A metric that is undefined for
    this test set (e.g. ROC AUC when it holds a single class) is NaN.
    """
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
