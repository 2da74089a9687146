"""evaluate's plots directory: one function per file, chosen by the task (``Task.plots``).

Classification: confusion matrix, ROC and precision-recall curves (one-vs-rest per class).
Regression: predicted against actual, residuals, and the test rows with the largest errors.
matplotlib (Agg), pandas and scikit-learn: only evaluate imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from .fileio import atomic_path
from .learners import Task

WORST = 10  # rows in worst_predictions.csv


@dataclass
class Scored:
    """One model's predictions on the test split, as the plots need them."""

    name: str
    y_true: Any
    y_pred: Any
    proba: Any  # (classification) one column per class of ``classes``
    classes: list[str]
    features: pd.DataFrame


def draw(task: Task, directory: Path, scored: Scored) -> None:
    """Write each file of ``task.plots`` into ``directory``, in that order."""
    for file in task.plots:
        PLOTS[file](scored, directory / file)


def confusion_matrix(scored: Scored, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    skm.ConfusionMatrixDisplay.from_predictions(
        np.asarray(scored.y_true), scored.y_pred, labels=scored.classes, ax=ax, colorbar=False
    )
    ax.set_title(f"{scored.name}: confusion matrix (test split)")
    _save(fig, path)


def roc(scored: Scored, path: Path) -> None:
    _curves(scored, path, "roc")


def pr(scored: Scored, path: Path) -> None:
    _curves(scored, path, "pr")


def _curves(scored: Scored, path: Path, kind: str) -> None:
    """ROC or precision-recall curves, one per class (binary: of the second class)."""
    classes = list(scored.classes)
    shown = classes[1:] if len(classes) == 2 else classes
    onehot = label_binarize(np.asarray(scored.y_true), classes=classes)
    if len(classes) == 2:
        onehot = np.hstack([1 - onehot, onehot])
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for cls in shown:
        i = classes.index(cls)
        if onehot[:, i].min() == onehot[:, i].max():
            continue  # class absent (or alone) in the test split: no curve
        display = skm.RocCurveDisplay if kind == "roc" else skm.PrecisionRecallDisplay
        display.from_predictions(onehot[:, i], scored.proba[:, i], ax=ax, name=f"class {cls}")
    ax.set_title(f"{scored.name}: {'ROC' if kind == 'roc' else 'precision-recall'} (test split)")
    _save(fig, path)


def predicted_vs_actual(scored: Scored, path: Path) -> None:
    """Predicted against actual values, with the line of perfect predictions."""
    y_true, y_pred = _floats(scored)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(y_true, y_pred, s=12, alpha=0.6)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"{scored.name}: predicted vs actual (test split)")
    _save(fig, path)


def residuals(scored: Scored, path: Path) -> None:
    """The residuals (actual - predicted) against the predicted values."""
    y_true, y_pred = _floats(scored)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(y_pred, y_true - y_pred, s=12, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title(f"{scored.name}: residuals (test split)")
    _save(fig, path)


def worst_predictions_csv(scored: Scored, path: Path) -> None:
    with atomic_path(path) as tmp:
        worst_predictions(scored.y_true, scored.y_pred, scored.features).to_csv(tmp, index=False)


def worst_predictions(y_true, y_pred, features: pd.DataFrame, n: int = WORST) -> pd.DataFrame:
    """The ``n`` test rows with the largest absolute error, largest first (ties: the earlier
    row): ``row`` (the row's 0-based position in the test split, i.e. line ``row + 2`` of
    the CSV), ``actual``, ``predicted``, ``error`` (actual - predicted), then the row's
    feature values as read."""
    actual = np.asarray(y_true, dtype="float64")
    predicted = np.asarray(y_pred, dtype="float64")
    table = pd.DataFrame(
        {
            "row": np.arange(len(actual)),
            "actual": actual,
            "predicted": predicted,
            "error": actual - predicted,
        }
    )
    table = pd.concat([table, features.reset_index(drop=True)], axis=1)
    order = np.argsort(-np.abs(table["error"].to_numpy()), kind="stable")
    return table.iloc[order[:n]].reset_index(drop=True)


# Every file a task may list in ``Task.plots`` -> the function that writes it.
PLOTS = {
    "confusion_matrix.png": confusion_matrix,
    "roc.png": roc,
    "pr.png": pr,
    "predicted_vs_actual.png": predicted_vs_actual,
    "residuals.png": residuals,
    "worst_predictions.csv": worst_predictions_csv,
}


def _floats(scored: Scored) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(scored.y_true, dtype="float64"), np.asarray(scored.y_pred, dtype="float64")


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
