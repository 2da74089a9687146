"""register: pick the best model by a metric; if it passes the gate, register it as the
challenger, and promote it to champion if it beats the champion on the same test split.

The default gate is the task's (``snakeflow.learners``); what register says (reasons, the
model card, the model's description) is built by ``snakeflow.cards``; the registry calls
are in :func:`promote` and :func:`main` alone."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snakeflow import cards, record, registry
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path
from snakeflow.learners import task_for
from snakeflow.metrics import better


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
    threshold_source: str = "register.threshold"  # or the task's default (learners.BASELINE)
    baseline: dict[str, float | None] | None = None  # regression: the mean predictor's metrics
    # the champion's model directory when the champion is this decision's best model (predict
    # then loads it without the Model Registry); None when the champion is an earlier one's
    champion_dir: str | None = None


def split_baseline(results: list[dict]) -> dict[str, float | None] | None:
    """The metrics of predicting the test split's mean, as evaluate wrote them (the same in
    every regression result: one test split); None for classification results."""
    return next((r["baseline"] for r in results if r.get("baseline")), None)


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
    kind = task_for(task)
    lower = kind.lower_is_better(metric)
    candidates = {r["model"]: r["metrics"].get(metric) for r in results}
    unknown = [r["model"] for r in results if metric not in r["metrics"]]
    if unknown:
        raise UserError(
            f"register.metric: '{metric}' is not among the metrics "
            f"({', '.join(sorted(results[0]['metrics']))})"
        )
    gate = kind.gate(metric, threshold, baseline)
    common = dict(
        model_name=model_name,
        alias=alias,
        metric=metric,
        threshold=gate.threshold,
        candidates=candidates,
        task=task,
        threshold_source=gate.source,
        baseline=baseline,
    )
    scored = {m: v for m, v in candidates.items() if v is not None and not math.isnan(v)}
    if not scored:
        return Decision(
            **common, best=None, value=None, passed=False, reason=cards.no_score(metric)
        )
    best = (min if lower else max)(sorted(scored), key=scored.get)
    value = scored[best]
    if gate.threshold is None:
        reason = cards.undefined_gate(best, metric, value)
        return Decision(**common, best=best, value=value, passed=False, reason=reason)
    passed = gate.passes(value, lower)
    reason = cards.gate_result(best, metric, value, gate, passed, lower)
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


def champion_score(
    model_name: str,
    alias: str,
    test_csv: Path,
    target: str,
    metric: str,
    task: str = "classification",
):
    """The champion's ``metric`` on ``test_csv`` (the split the challenger was scored on),
    its probabilities aligned to the classes of the split and of the champion."""
    from snakeflow import models
    from snakeflow.features import read_frame

    kind = task_for(task)
    _, _, pipeline = models.load_champion(model_name, alias)
    features, labels = read_frame(test_csv, target, task)
    classes = kind.classes(labels, pipeline)
    predicted, proba = kind.predict(pipeline, features, classes)
    return kind.metrics(labels, predicted, proba, classes)[metric]


def _crown(decision: Decision, version, challenger: str, model_dir: str) -> None:
    """Make ``version`` the champion (the challenger alias goes): promoted, from
    ``model_dir``."""
    registry.set_alias(decision.model_name, decision.alias, version.version)
    registry.delete_alias(decision.model_name, challenger)
    decision.promoted = True
    decision.champion_dir = model_dir


def promote(decision: Decision, model, params, test_csv: Path, model_dir: str) -> None:
    """Register the best model (saved in ``model_dir``) as challenger; make it champion if
    there is none, or if it beats the champion by ``min_delta`` on the same test split.
    Fills in ``decision``."""
    name, alias, challenger = decision.model_name, decision.alias, params.challenger_alias
    champion = registry.champion_version(name, alias)
    if champion is not None and champion.tags.get("snakeflow.model_id") == model.model_id:
        decision.version = decision.champion_version = str(champion.version)
        decision.champion_dir = model_dir
        decision.reason += cards.already(alias, champion.version)
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
        _crown(decision, version, challenger, model_dir)
        decision.reason += cards.first_champion(version.version, alias)
        return
    decision.champion_version = str(champion.version)
    decision.champion_score = champion_score(
        name, alias, test_csv, params.target, decision.metric, decision.task
    )
    compared = cards.versus(
        decision.metric,
        decision.value,
        alias,
        champion.version,
        decision.champion_score,
        params.min_delta,
    )
    if better(decision.value, decision.champion_score, decision.metric, params.min_delta):
        _crown(decision, version, challenger, model_dir)
        decision.reason += cards.promoted(version.version, alias, compared)
    else:
        registry.set_alias(name, challenger, version.version)
        decision.reason += cards.kept(
            version.version, challenger, alias, champion.version, compared
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
            promote(decision, model, params, Path(snakemake.input.test), best["model_dir"])
            card = json.loads((Path(best["model_dir"]) / registry.CARD).read_text())
            registry.describe(
                decision.model_name,
                decision.version,
                cards.model_card(card, best["metrics"], decision),
                {
                    "snakeflow.decision": decision.reason[:5000],
                    "snakeflow.challenger_score": str(decision.value),
                    "snakeflow.champion_score": str(decision.champion_score),
                },
            )
            registry.describe_model(
                decision.model_name,
                cards.model_description(card, best["metrics"], decision, params.challenger_alias),
            )
        else:
            decision.reason += cards.nothing_registered(decision.alias)
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
