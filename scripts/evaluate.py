"""evaluate: score one trained model on the test split; metrics JSON and a plots directory.

Classification: confusion matrix, ROC and precision-recall curves. Regression: predicted
against actual, residuals, and the test rows with the largest errors.
"""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from snakeflow import models, record
from snakeflow.errors import UserError, run_main
from snakeflow.features import read_frame
from snakeflow.fileio import atomic_path
from snakeflow.metrics import baseline, compute_metrics, compute_regression_metrics

# What evaluate writes into the plots directory, by task.
PLOTS = {
    "classification": ("confusion_matrix.png", "roc.png", "pr.png"),
    "regression": ("predicted_vs_actual.png", "residuals.png", "worst_predictions.csv"),
}
WORST = 10  # rows in worst_predictions.csv


def plot_curves(y_true, y_pred, proba, classes, name: str, confusion: Path, roc: Path, pr: Path):
    """Confusion matrix, ROC and precision-recall curves (one-vs-rest per class) as PNGs."""
    classes = list(classes)
    y_true = np.asarray(y_true)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    skm.ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=classes, ax=ax, colorbar=False
    )
    ax.set_title(f"{name}: confusion matrix (test split)")
    _save(fig, confusion)
    shown = classes[1:] if len(classes) == 2 else classes
    onehot = label_binarize(y_true, classes=classes)
    if len(classes) == 2:
        onehot = np.hstack([1 - onehot, onehot])
    for path, kind in ((roc, "roc"), (pr, "pr")):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for cls in shown:
            i = classes.index(cls)
            if onehot[:, i].min() == onehot[:, i].max():
                continue  # class absent (or alone) in the test split: no curve
            if kind == "roc":
                skm.RocCurveDisplay.from_predictions(
                    onehot[:, i], proba[:, i], ax=ax, name=f"class {cls}"
                )
            else:
                skm.PrecisionRecallDisplay.from_predictions(
                    onehot[:, i], proba[:, i], ax=ax, name=f"class {cls}"
                )
        ax.set_title(f"{name}: {'ROC' if kind == 'roc' else 'precision-recall'} (test split)")
        _save(fig, path)


def plot_regression(y_true, y_pred, name: str, predicted_vs_actual: Path, residuals: Path):
    """Predicted against actual values (with the line of perfect predictions), and the
    residuals (actual - predicted) against the predicted values, as PNGs."""
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(y_true, y_pred, s=12, alpha=0.6)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"{name}: predicted vs actual (test split)")
    _save(fig, predicted_vs_actual)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(y_pred, y_true - y_pred, s=12, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title(f"{name}: residuals (test split)")
    _save(fig, residuals)


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


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def evaluate_model(model_dir: Path, test_csv: Path, target: str):
    """The classifier in ``model_dir`` on ``test_csv``: (y_true, y_pred, proba, classes)."""
    pipeline = models.load_local(model_dir)
    features, y_true = read_frame(test_csv, target)
    classes = list(pipeline.classes_)
    return y_true, pipeline.predict(features), pipeline.predict_proba(features), classes


def evaluate_regressor(model_dir: Path, test_csv: Path, target: str):
    """The regressor in ``model_dir`` on ``test_csv``: (y_true, y_pred, features)."""
    pipeline = models.load_local(model_dir)
    features, y_true = read_frame(test_csv, target, "regression")
    return y_true, np.asarray(pipeline.predict(features), dtype="float64"), features


def _defined(scores: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in scores.items()}


def evaluate(model_dir: Path, test_csv: Path, plots: Path, *, target: str, task: str, name: str):
    """Score the model in ``model_dir`` on ``test_csv`` and write the plots directory
    ``plots`` (atomically: the files of ``PLOTS[task]``, all or none).

    Returns what the metrics JSON holds (without ``model_dir``): ``model``, ``task``,
    ``metrics`` (None where undefined), ``test_rows``, and ``classes`` (classification) or
    ``baseline`` (regression: the metrics of predicting the test split's mean).
    """
    if task not in PLOTS:
        raise UserError(f"task: '{task}' is not one of {', '.join(PLOTS)}")
    with atomic_path(plots) as tmp:
        tmp.mkdir()
        files = [tmp / f for f in PLOTS[task]]
        if task == "regression":
            y_true, y_pred, features = evaluate_regressor(model_dir, test_csv, target)
            scores = compute_regression_metrics(y_true, y_pred)
            plot_regression(y_true, y_pred, name, *files[:2])
            worst = worst_predictions(y_true, y_pred, features)
            with atomic_path(files[2]) as csv_tmp:
                worst.to_csv(csv_tmp, index=False)
            extra = {"baseline": _defined(baseline(y_true))}
        else:
            y_true, y_pred, proba, classes = evaluate_model(model_dir, test_csv, target)
            scores = compute_metrics(y_true, y_pred, proba, classes)
            plot_curves(y_true, y_pred, proba, classes, name, *files)
            extra = {"classes": [str(c) for c in classes]}
    return {
        "model": name,
        "task": task,
        "metrics": _defined(scores),
        **extra,
        "test_rows": len(y_true),
    }


def main() -> None:
    out = snakemake.output
    name = snakemake.wildcards.model
    model_dir = snakemake.input.model
    with record.step(snakemake) as run:
        test_csv = Path(snakemake.input.test)
        run.input(test_csv, name=snakemake.params.dataset, context="test")
        result = evaluate(
            Path(model_dir),
            test_csv,
            Path(out.plots),
            target=snakemake.params.target,
            task=snakemake.params.task,
            name=name,
        )
        result["model_dir"] = str(model_dir)
        with atomic_path(out.metrics) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        finite = {k: v for k, v in result["metrics"].items() if v is not None}
        # Also on the training run and its logged model (an MLflow habit: the model's page
        # shows how it scored); the plugin resolves the model directory to both.
        run.metrics(finite, model=model_dir)
        if "baseline" in result:
            run.metrics(
                {f"baseline.{k}": v for k, v in result["baseline"].items() if v is not None}
            )
        for path in sorted(Path(out.plots).iterdir()):
            run.artifact(path, "plots")
            run.artifact(path, "evaluation", model=model_dir)
        run.tags({"snakeflow.model": name})


if __name__ == "__main__":
    run_main(main)
