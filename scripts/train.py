"""train: fit one configured estimator, with its preprocessing, on the train split."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import json
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from snakeflow import models, record
from snakeflow.errors import UserError, first_line, run_main
from snakeflow.features import (
    FeaturePlan,
    build_pipeline,
    make_estimator,
    overridden,
    plan_features,
    read_frame,
)
from snakeflow.fileio import atomic_path, sha256_file
from snakeflow.metrics import LOWER_IS_BETTER


def train_model(
    train_csv: Path,
    *,
    name: str,
    target: str,
    estimator: str,
    params: dict[str, Any],
    drop: list[str],
    infer_drop: bool,
    seed: int,
    threads: int = 1,
    task: str = "classification",
    dataset: str | None = None,
) -> tuple[Pipeline, FeaturePlan, pd.DataFrame]:
    """Fit the model ``name`` on ``train_csv``; return the pipeline, its features and X.

    ``task`` is the dataset's: a classifier learns the target as text, a regressor as a
    number (UserError naming the column if it is not one, or if the estimator is not of
    the task).
    """
    features, labels = read_frame(train_csv, target, task)
    plan = plan_features(features.assign(**{target: labels}), target, drop, infer_drop)
    model = make_estimator(
        name, estimator, params, seed=seed, threads=threads, task=task, dataset=dataset
    )
    pipeline = build_pipeline(plan, model)
    try:
        pipeline.fit(features, labels)
    except (ValueError, TypeError) as exc:
        raise UserError(f"models.{name}: fitting {estimator} failed: {first_line(exc)}") from exc
    return pipeline, plan, features


def best_point(results: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The grid point with the best mean CV score: ties go to the smaller standard deviation,
    then to the smaller point id, so the choice never depends on file order."""
    scored = [r for r in results if r.get("mean") is not None]
    if not scored:
        return None
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return min(scored, key=lambda r: (sign * r["mean"], r["std"], r["point_id"]))


def main() -> None:
    params = snakemake.params
    name = snakemake.wildcards.model
    with record.step(snakemake) as run:
        src = Path(snakemake.input.csv)
        run.input(src, name=snakemake.params.dataset, context="train")
        results = [json.loads(Path(p).read_text()) for p in snakemake.input.search]
        best = best_point(results, params.metric)
        if results and best is None:
            raise UserError(f"models.{name}.grid: no point has a defined cv {params.metric}")
        if best is not None:
            run.params({"search.best_point": best["point_id"], "search.points": len(results)})
            run.params({f"search.best.{k}": v for k, v in best["point"].items()})
            if replaced := overridden(params.model_params, best["point"]):
                run.params({"search.overrides": replaced})
            run.metrics(
                {f"cv.{params.metric}.mean": best["mean"], f"cv.{params.metric}.std": best["std"]}
            )
        pipeline, plan, features = train_model(
            src,
            name=name,
            target=params.target,
            estimator=params.estimator,
            params=dict(params.model_params) | (best["point"] if best else {}),
            drop=params.drop,
            infer_drop=params.infer_drop,
            seed=params.seed,
            threads=snakemake.threads,
            task=params.task,
            dataset=params.dataset,
        )
        run.params(
            {
                "features.numeric": plan.numeric,
                "features.categorical": plan.categorical,
                "features.dropped": plan.dropped,
                "estimator.effective": pipeline.named_steps["model"].get_params(),
            }
        )
        run.metrics({"train_rows": len(features), "features": len(plan.used)})
        sig = models.signature(
            features,
            pipeline.predict(features.head(5)),
            plan.numeric,
            plan.used,
            models.raw_types(snakemake.input.raw, features.columns),
            task=params.task,
        )
        card = {
            "dataset": params.dataset,
            "task": params.task,
            "train_sha256": sha256_file(src),
            "train_rows": len(features),
            "target": params.target,
            "features": {"numeric": plan.numeric, "categorical": plan.categorical},
            "dropped": plan.dropped,
            "estimator": params.estimator,
            "params": dict(params.model_params) | (best["point"] if best else {}),
            "search": best and {k: best[k] for k in ("point_id", "point", "mean", "std", "metric")},
            "overrides": overridden(params.model_params, best["point"]) if best else {},
        }
        with atomic_path(snakemake.output.model) as tmp:
            models.save(pipeline, features, tmp, sig, card=card)
        run.model(snakemake.output.model)
        run.tags({"snakeflow.model": name})


if __name__ == "__main__":
    run_main(main)
