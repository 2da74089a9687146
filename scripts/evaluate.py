"""evaluate: score one trained model on the test split; metrics JSON and a plots directory.

What is scored and plotted is the task's (``snakeflow.learners``, ``snakeflow.plots``):
classification: confusion matrix, ROC and precision-recall curves; regression: predicted
against actual, residuals, and the test rows with the largest errors.
"""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import json
from pathlib import Path

from snakeflow import modeldir, record
from snakeflow.errors import run_main
from snakeflow.features import read_frame
from snakeflow.fileio import atomic_path
from snakeflow.learners import task_for
from snakeflow.metrics import defined
from snakeflow.plots import Scored, draw


def evaluate(model_dir: Path, test_csv: Path, plots: Path, *, target: str, task: str, name: str):
    """Score the model in ``model_dir`` on ``test_csv`` and write the plots directory
    ``plots`` (atomically: the files of the task's ``plots``, all or none).

    Returns what the metrics JSON holds (without ``model_dir``): ``model``, ``task``,
    ``metrics`` (None where undefined), then the task's ``summary`` (``classes`` for
    classification, ``baseline`` for regression: the metrics of predicting the test split's
    mean), and ``test_rows``.
    """
    kind = task_for(task)
    with atomic_path(plots) as tmp:
        tmp.mkdir()
        pipeline = modeldir.load_pipeline(model_dir)
        features, y_true = read_frame(test_csv, target, task)
        classes = kind.classes(model=pipeline)
        y_pred, proba = kind.predict(pipeline, features, classes)
        scores = kind.metrics(y_true, y_pred, proba, classes)
        draw(kind, tmp, Scored(name, y_true, y_pred, proba, classes, features))
    return {
        "model": name,
        "task": task,
        "metrics": defined(scores),
        **kind.summary(y_true, classes),
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
