"""evaluate: score one trained model on the test split; metrics JSON and plots."""

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
from snakeflow.fileio import atomic_path
from snakeflow.metrics import compute_metrics


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


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def evaluate_model(model_dir: Path, test_csv: Path, target: str):
    """The model in ``model_dir`` on ``test_csv``: (y_true, y_pred, proba, classes)."""
    pipeline = models.load_local(model_dir)
    frame = pd.read_csv(test_csv, converters={target: str})
    if target not in frame.columns:
        raise UserError(f"target column '{target}' is not in {test_csv}; check target")
    y_true = frame[target]
    features = frame.drop(columns=[target])
    classes = list(pipeline.classes_)
    return y_true, pipeline.predict(features), pipeline.predict_proba(features), classes


def main() -> None:
    out = snakemake.output
    name = snakemake.wildcards.model
    with record.step(snakemake) as run:
        test_csv = Path(snakemake.input.test)
        run.input(test_csv, name=snakemake.params.dataset, context="test")
        y_true, y_pred, proba, classes = evaluate_model(
            Path(snakemake.input.model), test_csv, snakemake.params.target
        )
        scores = compute_metrics(y_true, y_pred, proba, classes)
        plot_curves(
            y_true, y_pred, proba, classes, name, Path(out.confusion), Path(out.roc), Path(out.pr)
        )
        result = {
            "model": name,
            "metrics": {k: (None if math.isnan(v) else v) for k, v in scores.items()},
            "test_rows": len(y_true),
            "classes": [str(c) for c in classes],
            "model_dir": str(snakemake.input.model),
        }
        with atomic_path(out.metrics) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        finite = {k: v for k, v in scores.items() if not math.isnan(v)}
        # Also on the training run and its logged model (an MLflow habit: the model's page
        # shows how it scored); the plugin resolves the model directory to both.
        run.metrics(finite, model=snakemake.input.model)
        for path in (out.confusion, out.roc, out.pr):
            run.artifact(path, "plots")
            run.artifact(path, "evaluation", model=snakemake.input.model)
        run.tags({"snakeflow.model": name})


if __name__ == "__main__":
    run_main(main)
