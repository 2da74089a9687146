"""Each step's own work, called as functions in one process: no Snakemake, no job record.

    python step_work.py URL SCRATCH SCRIPTS_DIR RUN_DIR    # prints JSON: seconds by step

First the libraries of every step are imported (their cost is measured apart, per step and
in fresh processes, by step_imports.py); then each step's typed function is called as its
``main()`` calls it, in the pipeline's order, with the settings of RUN_DIR's config.yaml:
download, clean, split, train and evaluate of each model, register, predict. RUN_DIR is a
full run of the pipeline: register and predict talk to the Model Registry, so they work on
a copy of its tracking store (whose trained models the logger plugin logged), register under
a model name of their own, and predict with that champion. Seconds are summed per step;
``imported_by_work`` names the libraries a step's work still imported (LAZY misses them).
"""

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from step_imports import LAZY, import_step, third_party

MODEL_NAME = "bench-work"


def main(url: str, scratch: str, scripts: str, run_dir: str) -> dict:
    import yaml

    for step in LAZY:
        import_step(step, scripts)
    import clean
    import download
    import evaluate
    import predict
    import register
    import split
    import train
    from snakeflow import cards, models, registry

    run, d = Path(run_dir), Path(scratch)
    d.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (dataset, spec), *_ = config["datasets"].items()  # the run's one dataset
    config |= {"dataset": dataset, "target": spec["target"]}
    target, seed = config["target"], config["split"]["seed"]
    store = d / "store.db"
    shutil.copy2(run / "mlflow.db", store)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    os.environ["MLFLOW_EXPERIMENT_NAME"] = config["mlflow"]["experiment"]
    seconds: dict[str, float] = {}
    late: dict[str, set[str]] = {}  # libraries a step's work imported: missing from LAZY

    def clock(step, fn, /, *args, **kwargs):
        before = set(sys.modules)
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - started
        new = {m.split(".")[0] for m in set(sys.modules) - before if third_party(m)}
        late.setdefault(step, set()).update(new)
        return result

    clock("download", download.download_csv, url, d / "raw.csv")
    clock("clean", clean.clean_csv, d / "raw.csv", d / "clean.csv", target=target)
    clock(
        "split",
        split.split_csv,
        d / "clean.csv",
        d / "train.csv",
        d / "test.csv",
        target=target,
        test_size=config["split"]["test_size"],
        seed=seed,
    )
    for name, spec in sorted(config["models"].items()):
        model_dir = d / "models" / name
        clock("train", train_one, train, models, d / "train.csv", model_dir, name, spec, config)
        plots = d / "plots" / name
        clock("evaluate", evaluate_one, evaluate, model_dir, d / "test.csv", plots, name, target)

    def register_best():
        """register.py's main(): decide, register and promote, describe the version."""
        results = [json.loads(p.read_text()) for p in sorted(run.glob("results/*/metrics/*.json"))]
        settings = config["register"]
        decision = register.decide(
            results,
            metric=settings["metric"] or "roc_auc",  # the classification default
            threshold=settings["threshold"],
            model_name=MODEL_NAME,
            alias=settings["alias"],
        )
        best = next(r for r in results if r["model"] == decision.best)
        model_dir = run / best["model_dir"]
        model = registry.logged_model(model_dir, wait=0)
        params = SimpleNamespace(
            challenger_alias=settings["challenger_alias"],
            target=target,
            min_delta=settings["min_delta"],
        )
        test = run / "data" / "split" / config["dataset"] / "test.csv"
        register.promote(decision, model, params, test, str(model_dir))
        card = json.loads((model_dir / registry.CARD).read_text())
        text = cards.model_card(card, best["metrics"], decision)
        registry.describe(MODEL_NAME, decision.version, text, {"snakeflow.decision": "bench"})
        registry.describe_model(MODEL_NAME, "bench")
        register.write_table(results, d / "metrics.tsv")
        (d / "registration.json").write_text(json.dumps(dataclasses.asdict(decision)))

    clock("register", register_best)

    def predict_champion():
        """predict.py's main(): this run's champion, from its directory."""
        champion = predict.load_champion(
            d / "registration.json", MODEL_NAME, config["register"]["alias"]
        )
        predict.predict_csv(
            champion.pipeline,
            d / "test.csv",
            d / "predictions.csv",
            target=target,
            required=champion.required,
            numeric=champion.numeric,
        )

    clock("predict", predict_champion)
    return {"seconds": seconds, "imported_by_work": {k: sorted(v) for k, v in late.items()}}


def train_one(train, models, src: Path, dst: Path, name: str, spec: dict, config: dict) -> None:
    """train.py's main() for a model without a grid: fit, save in MLflow's model format."""
    from snakeflow.fileio import sha256_file

    features = config["features"]
    pipeline, plan, frame = train.train_model(
        src,
        name=name,
        target=config["target"],
        estimator=spec["estimator"],
        params=spec.get("params", {}),
        drop=features["drop"],
        infer_drop=features["infer_drop"],
        seed=config["split"]["seed"],
        dataset=config["dataset"],
    )
    sig = models.signature(frame, pipeline.predict(frame.head(5)), plan.numeric, plan.used)
    card = {
        "dataset": config["dataset"],
        "task": "classification",
        "train_sha256": sha256_file(src),
        "train_rows": len(frame),
        "target": config["target"],
        "features": {"numeric": plan.numeric, "categorical": plan.categorical},
        "dropped": plan.dropped,
        "estimator": spec["estimator"],
        "params": spec.get("params", {}),
        "search": None,
    }
    models.save(pipeline, frame, dst, sig, card=card)


def evaluate_one(evaluate, model_dir: Path, test: Path, plots: Path, name: str, target: str):
    """evaluate.py's main(): load the saved model, score it, plot, write the metrics."""
    result = evaluate.evaluate(
        model_dir, test, plots, target=target, task="classification", name=name
    )
    (plots.parent / f"{name}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
