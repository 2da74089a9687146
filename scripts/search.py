"""search: score one grid point of one model by k-fold CV on the train split (stratified by
class for classification)."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import json
import math
import statistics
from pathlib import Path
from typing import Any

from sklearn.base import clone

from snakeflow import record
from snakeflow.errors import UserError, first_line, run_main
from snakeflow.features import (
    build_pipeline,
    make_estimator,
    overridden,
    plan_features,
    read_frame,
)
from snakeflow.fileio import atomic_path
from snakeflow.learners import task_for


def cross_validate(
    train_csv: Path,
    *,
    name: str,
    target: str,
    estimator: str,
    params: dict[str, Any],
    point: dict[str, Any],
    folds: int,
    metric: str,
    drop: list[str],
    infer_drop: bool,
    seed: int,
    threads: int = 1,
    task: str = "classification",
    dataset: str | None = None,
) -> dict[str, Any]:
    """Mean, standard deviation and per-fold values of ``metric`` for ``params | point``.

    k-fold on ``train_csv``, seeded so every point of every model sees the same folds (the
    task's ``cv_splitter``: stratified by class for classification, a shuffled ``KFold``
    for regression, scored on ``predict`` alone). The preprocessing is fitted inside each
    fold. Raises UserError if the train split is too small for ``folds`` folds, ``metric``
    is not one of the task's, or the estimator rejects the point.
    """
    kind = task_for(task)
    features, labels = read_frame(train_csv, target, task)
    splitter = kind.cv_splitter(labels, folds, seed)
    plan = plan_features(features.assign(**{target: labels}), target, drop, infer_drop)
    settings = dict(params) | dict(point)
    model = make_estimator(
        name, estimator, settings, seed=seed, threads=threads, task=task, dataset=dataset
    )
    pipeline = build_pipeline(plan, model)
    classes = kind.classes(labels)
    scores = []
    for fit_rows, val_rows in splitter.split(features, labels):
        fitted = clone(pipeline)
        try:
            fitted.fit(features.iloc[fit_rows], labels.iloc[fit_rows])
        except (ValueError, TypeError) as exc:
            raise UserError(f"models.{name}.grid: {point} fails: {first_line(exc)}") from exc
        predicted, proba = kind.predict(fitted, features.iloc[val_rows], classes)
        values = kind.metrics(labels.iloc[val_rows], predicted, proba, classes)
        if metric not in values:
            raise UserError(
                f"register.metric: '{metric}' is not a {task} metric ({', '.join(values)})"
            )
        scores.append(values[metric])
    finite = [s for s in scores if not math.isnan(s)]
    return {
        "model": name,
        "point": point,
        "metric": metric,
        "mean": statistics.fmean(finite) if finite else None,
        "std": statistics.pstdev(finite) if len(finite) > 1 else 0.0,
        "folds": scores,
    }


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        src = Path(snakemake.input.csv)
        run.input(src, name=params.dataset, context="train")
        result = cross_validate(
            src,
            name=snakemake.wildcards.model,
            target=params.target,
            estimator=params.estimator,
            params=params.model_params,
            point=params.point,
            folds=params.folds,
            metric=params.metric,
            drop=params.drop,
            infer_drop=params.infer_drop,
            seed=params.seed,
            threads=snakemake.threads,
            task=params.task,
            dataset=params.dataset,
        )
        result["point_id"] = snakemake.wildcards.point
        with atomic_path(snakemake.output.score) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        run.tags({"snakeflow.model": result["model"], "snakeflow.point": result["point_id"]})
        run.params({"point": params.point})
        if replaced := overridden(params.model_params, params.point):
            run.params({"overrides": replaced})
        metrics = {f"cv.{params.metric}.fold{i}": v for i, v in enumerate(result["folds"])}
        if result["mean"] is not None:
            metrics |= {
                f"cv.{params.metric}.mean": result["mean"],
                f"cv.{params.metric}.std": result["std"],
            }
        run.metrics(metrics)


if __name__ == "__main__":
    run_main(main)
