"""register: pick the best model by a metric; if it passes the gate, register it as the
challenger, and promote it to champion if it beats the champion on the same test split."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snakeflow import record, registry
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path
from snakeflow.metrics import LOWER_IS_BETTER, better

DEFAULT_THRESHOLD = 0.75  # classification's gate when register.threshold is null
BASELINE = "the baseline: predicting the test split's mean"


@dataclass
class Decision:
    """The outcome of the registration gate, as written to registration.json."""

    model_name: str
    alias: str
    metric: str
    threshold: float | None
    candidates: dict[str, float | None]
    best: str | None
    value: float | None
    passed: bool
    registered: bool = False
    version: str | None = None
    reason: str = ""
    mlflow: dict[str, str] = field(default_factory=dict)
    champion_version: str | None = None  # the champion before this decision
    champion_score: float | None = None  # its score on the same test split
    promoted: bool = False  # the new version is now the champion
    task: str = "classification"
    threshold_source: str = "register.threshold"  # or the default, or BASELINE
    baseline: dict[str, float | None] | None = None  # regression: the mean predictor's metrics


def split_baseline(results: list[dict]) -> dict[str, float | None] | None:
    """The metrics of predicting the test split's mean, as evaluate wrote them (the same in
    every regression result: one test split); None for classification results."""
    return next((r["baseline"] for r in results if r.get("baseline")), None)


def _gate(
    metric: str, threshold: float | None, task: str, baseline: dict | None
) -> tuple[float | None, bool, str]:
    """(threshold, strict, where it came from). Without ``threshold``: 0.75 for
    classification; for regression the baseline's value of ``metric``, to beat strictly
    (None if the baseline does not define it)."""
    if threshold is not None:
        return threshold, False, "register.threshold"
    if task == "regression":
        value = (baseline or {}).get(metric)
        defined = value is not None and not math.isnan(value)
        return (value if defined else None), True, BASELINE
    return DEFAULT_THRESHOLD, False, f"the default for {task}, register.threshold is null"


def decide(
    results: list[dict],
    *,
    metric: str,
    threshold: float | None,
    model_name: str,
    alias: str,
    task: str = "classification",
    baseline: dict[str, float | None] | None = None,
) -> Decision:
    """Choose the best model by ``metric`` and apply the gate (``>= threshold``, or ``<=``
    for a metric where lower is better such as log_loss or root_mean_squared_error).

    Without a ``threshold``: 0.75 for classification; for regression the best model must
    beat ``baseline`` (the metrics of predicting the test split's mean, from evaluate):
    RMSE below the test target's standard deviation, R² above 0, and so on. Pure: no
    MLflow calls.
    """
    lower = metric in LOWER_IS_BETTER
    candidates = {r["model"]: r["metrics"].get(metric) for r in results}
    unknown = [r["model"] for r in results if metric not in r["metrics"]]
    if unknown:
        raise UserError(
            f"register.metric: '{metric}' is not among the metrics "
            f"({', '.join(sorted(results[0]['metrics']))})"
        )
    limit, strict, source = _gate(metric, threshold, task, baseline)
    common = dict(
        model_name=model_name,
        alias=alias,
        metric=metric,
        threshold=limit,
        candidates=candidates,
        task=task,
        threshold_source=source,
        baseline=baseline,
    )
    scored = {m: v for m, v in candidates.items() if v is not None and not math.isnan(v)}
    if not scored:
        return Decision(
            **common,
            best=None,
            value=None,
            passed=False,
            reason=f"no model has a defined {metric} on the test split",
        )
    best = (min if lower else max)(sorted(scored), key=scored.get)
    value = scored[best]
    if limit is None:
        return Decision(
            **common,
            best=best,
            value=value,
            passed=False,
            reason=(
                f"{best} has {metric}={value:.4f}, but {BASELINE} has no {metric} to beat "
                "(e.g. a constant target, or a zero for a percentage error): set "
                "register.threshold"
            ),
        )
    if strict:
        passed, op = (value < limit, "<") if lower else (value > limit, ">")
    else:
        passed, op = (value <= limit, "<=") if lower else (value >= limit, ">=")
    shown = f"{limit:.4f}" if source == BASELINE else f"{limit}"
    reason = (
        f"{best} has {metric}={value:.4f}, {'meets' if passed else 'misses'} the gate "
        f"{metric} {op} {shown} ({source})"
    )
    return Decision(**common, best=best, value=value, passed=passed, reason=reason)


def write_table(results: list[dict], path: Path) -> None:
    """All models' metrics as a TSV table (one row per model), for the report."""
    names = sorted({k for r in results for k in r["metrics"]})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["model", *names])
        for r in sorted(results, key=lambda r: r["model"]):
            writer.writerow([r["model"], *(_fmt(r["metrics"].get(n)) for n in names)])


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


SHORT = {
    "root_mean_squared_error": "RMSE",
    "mean_absolute_error": "MAE",
    "r2_score": "R²",
    "mean_absolute_percentage_error": "MAPE",
    "max_error": "max error",
}


def predicts(card: dict) -> str:
    """What the model predicts: "Classifier of `<target>` on the `<dataset>` data", or
    "Regressor of ..."."""
    kind = "Regressor" if card.get("task") == "regression" else "Classifier"
    return f"{kind} of `{card['target']}` on the `{card['dataset']}` data"


def error_summary(metrics: dict, baseline: dict | None) -> str:
    """A regressor's errors on the test split, and those of predicting the test split's
    mean: "test split: RMSE 1.2, MAE 0.9, ...; predicting its mean: RMSE 2.1, ..."."""
    errors = ", ".join(f"{SHORT.get(k, k)} {v:.4g}" for k, v in metrics.items() if v is not None)
    text = f"test split: {errors}"
    if baseline:
        text += "; predicting its mean: " + ", ".join(
            f"{SHORT.get(k, k)} {v:.4g}"
            for k, v in baseline.items()
            if v is not None and k != "r2_score"
        )
    return text


def model_card(card: dict, metrics: dict, decision: Decision) -> str:
    """A short model card in Markdown: what it predicts, data, label, features, estimator,
    scores, decision."""
    search = card.get("search")
    cv = (
        f"{search['metric']} {search['mean']:.4f} ± {search['std']:.4f} (CV), "
        f"best grid point {search['point_id']}: `{json.dumps(search['point'])}`"
        if search
        else "no grid search"
    )
    dropped = ", ".join(f"{k} ({v})" for k, v in card.get("dropped", {}).items()) or "none"
    scores = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
    op = "<=" if decision.metric in LOWER_IS_BETTER else ">="
    if decision.threshold_source == BASELINE:
        op = op[0]
    threshold = "undefined" if decision.threshold is None else decision.threshold
    regression = card.get("task") == "regression"
    lines = [
        f"# {decision.model_name}: {decision.best}",
        "",
        f"- **Predicts**: {predicts(card)}"
        + (f"; {error_summary(metrics, decision.baseline)}" if regression else ""),
        f"- **Data**: `{card['dataset']}`, train split sha256 `{card['train_sha256']}`, "
        f"{card['train_rows']} rows; label `{card['target']}`",
        f"- **Features**: numeric {', '.join(card['features']['numeric']) or 'none'}; "
        f"categorical {', '.join(card['features']['categorical']) or 'none'}; dropped {dropped}",
        f"- **Estimator**: `{card['estimator']}` with `{json.dumps(card['params'], default=str)}`",
        f"- **Cross-validation**: {cv}",
        f"- **Test split**: {scores}",
        f"- **Gate**: {decision.metric} {op} {threshold} ({decision.threshold_source}): "
        f"{'passed' if decision.passed else 'missed'}",
        f"- **Decision**: {decision.reason}",
    ]
    return "\n".join(lines) + "\n"


def model_description(card: dict, metrics: dict, decision: Decision, challenger: str) -> str:
    """The registered model's description: what it predicts (for a regressor, with the
    test errors of the version just registered) and what its aliases mean."""
    errors = (
        f"; version {decision.version} on the {error_summary(metrics, decision.baseline)}"
        if card.get("task") == "regression"
        else ""
    )
    return (
        f"{predicts(card)}, trained by snakeflow{errors}. `@{decision.alias}` is the version "
        f"in use; a newly registered version that does not beat it by register.min_delta on "
        f"{decision.metric} holds `@{challenger}`."
    )


def champion_score(
    model_name: str,
    alias: str,
    test_csv: Path,
    target: str,
    metric: str,
    task: str = "classification",
):
    """The champion's ``metric`` on ``test_csv`` (the split the challenger was scored on)."""
    import numpy as np

    from snakeflow import models
    from snakeflow.features import read_frame
    from snakeflow.metrics import compute_metrics, compute_regression_metrics

    _, _, pipeline = models.load_champion(model_name, alias)
    features, labels = read_frame(test_csv, target, task)
    if task == "regression":
        return compute_regression_metrics(labels, pipeline.predict(features))[metric]
    classes = sorted(set(labels) | set(map(str, pipeline.classes_)))
    proba = pipeline.predict_proba(features)
    ordered = np.zeros((len(features), len(classes)))
    for i, cls in enumerate(pipeline.classes_):
        ordered[:, classes.index(str(cls))] = proba[:, i]
    predicted = np.asarray([str(p) for p in pipeline.predict(features)])
    return compute_metrics(labels, predicted, ordered, classes)[metric]


def promote(decision: Decision, model, params, test_csv: Path) -> None:
    """Register the best model as challenger; make it champion if there is none, or if it
    beats the champion by ``min_delta`` on the same test split. Fills in ``decision``."""
    name, alias, challenger = decision.model_name, decision.alias, params.challenger_alias
    champion = registry.champion_version(name, alias)
    if champion is not None and champion.tags.get("snakeflow.model_id") == model.model_id:
        decision.version = decision.champion_version = str(champion.version)
        decision.reason += f"; already {alias} (version {champion.version})"
        return
    held = registry.champion_version(name, challenger)
    if held is not None and held.tags.get("snakeflow.model_id") == model.model_id:
        version = held  # registered by an earlier run, not again
    else:
        version = registry.register(
            model.model_id,
            name,
            tags={
                "snakeflow.model_id": model.model_id,
                "snakeflow.model": decision.best,
                decision.metric: str(decision.value),
            },
        )
        decision.registered = True
    decision.version = str(version.version)
    if champion is None:
        registry.set_alias(name, alias, version.version)
        registry.delete_alias(name, challenger)
        decision.promoted = True
        decision.reason += f"; registered version {version.version} as {alias} (the first)"
        return
    decision.champion_version = str(champion.version)
    decision.champion_score = champion_score(
        name, alias, test_csv, params.target, decision.metric, decision.task
    )
    delta = params.min_delta
    versus = (
        f"{decision.metric} {decision.value:.4f} against {alias} version {champion.version}'s "
        f"{decision.champion_score:.4f} on the same test split (min_delta {delta})"
    )
    if better(decision.value, decision.champion_score, decision.metric, delta):
        registry.set_alias(name, alias, version.version)
        registry.delete_alias(name, challenger)
        decision.promoted = True
        decision.reason += f"; version {version.version} becomes {alias}: {versus}"
    else:
        registry.set_alias(name, challenger, version.version)
        decision.reason += (
            f"; version {version.version} stays {challenger}, {alias} stays version "
            f"{champion.version}: {versus}"
        )


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        results = [json.loads(Path(p).read_text()) for p in snakemake.input.metrics]
        decision = decide(
            results,
            metric=params.metric,
            threshold=params.threshold,
            model_name=params.model_name,
            alias=params.alias,
            task=params.task,
            baseline=split_baseline(results),
        )
        if decision.passed:
            best = next(r for r in results if r["model"] == decision.best)
            model = registry.logged_model(best["model_dir"])
            decision.mlflow = {"run_id": model.source_run_id, "model_id": model.model_id}
            promote(decision, model, params, Path(snakemake.input.test))
            card = json.loads((Path(best["model_dir"]) / registry.CARD).read_text())
            registry.describe(
                decision.model_name,
                decision.version,
                model_card(card, best["metrics"], decision),
                {
                    "snakeflow.decision": decision.reason[:5000],
                    "snakeflow.challenger_score": str(decision.value),
                    "snakeflow.champion_score": str(decision.champion_score),
                },
            )
            registry.describe_model(
                decision.model_name,
                model_description(card, best["metrics"], decision, params.challenger_alias),
            )
        else:
            decision.reason += f"; nothing registered, {decision.alias} left unchanged"
        print(decision.reason, file=sys.stderr)
        write_table(results, Path(snakemake.output.table))
        with atomic_path(snakemake.output.registration) as tmp:
            tmp.write_text(json.dumps(asdict(decision), indent=2) + "\n")
        run.tags(
            {
                "snakeflow.gate": "passed" if decision.passed else "failed",
                "snakeflow.gate_reason": decision.reason,
                "snakeflow.best_model": decision.best or "",
                "snakeflow.promoted": str(decision.promoted).lower(),
                "snakeflow.champion_version": decision.champion_version or "",
                "snakeflow.champion_score": str(decision.champion_score),
            }
        )
        run.metrics(
            {f"{decision.metric}.{m}": v for m, v in decision.candidates.items() if v is not None}
        )
        run.metrics({"registered": int(decision.registered), "promoted": int(decision.promoted)})
        run.artifact(snakemake.output.registration)


if __name__ == "__main__":
    run_main(main)
