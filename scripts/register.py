"""register: pick the best model by a metric; if it passes the gate, make it the champion."""

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

LOWER_IS_BETTER = {"log_loss"}


@dataclass
class Decision:
    """The outcome of the registration gate, as written to registration.json."""

    model_name: str
    alias: str
    metric: str
    threshold: float
    candidates: dict[str, float | None]
    best: str | None
    value: float | None
    passed: bool
    registered: bool = False
    version: str | None = None
    reason: str = ""
    mlflow: dict[str, str] = field(default_factory=dict)


def decide(
    results: list[dict], *, metric: str, threshold: float, model_name: str, alias: str
) -> Decision:
    """Choose the best model by ``metric`` and apply the gate (``>= threshold``, or ``<=``
    for a metric where lower is better such as log_loss). Pure: no MLflow calls."""
    lower = metric in LOWER_IS_BETTER
    candidates = {r["model"]: r["metrics"].get(metric) for r in results}
    unknown = [r["model"] for r in results if metric not in r["metrics"]]
    if unknown:
        raise UserError(
            f"register.metric: '{metric}' is not among the metrics "
            f"({', '.join(sorted(results[0]['metrics']))})"
        )
    scored = {m: v for m, v in candidates.items() if v is not None and not math.isnan(v)}
    if not scored:
        return Decision(
            model_name,
            alias,
            metric,
            threshold,
            candidates,
            None,
            None,
            False,
            reason=f"no model has a defined {metric} on the test split",
        )
    best = (min if lower else max)(sorted(scored), key=scored.get)
    value = scored[best]
    passed = value <= threshold if lower else value >= threshold
    op = "<=" if lower else ">="
    reason = (
        f"{best} has {metric}={value:.4f}, {'meets' if passed else 'misses'} the gate "
        f"{metric} {op} {threshold}"
    )
    return Decision(
        model_name, alias, metric, threshold, candidates, best, value, passed, reason=reason
    )


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
        )
        if decision.passed:
            best = next(r for r in results if r["model"] == decision.best)
            model = registry.logged_model(best["model_dir"])
            current = registry.champion_version(decision.model_name, decision.alias)
            decision.mlflow = {"run_id": model.source_run_id, "model_id": model.model_id}
            if current is not None and current.tags.get("snakeflow.model_id") == model.model_id:
                decision.version = str(current.version)
                decision.reason += f"; already {decision.alias} (version {current.version})"
            else:
                version = registry.register(
                    model.model_id,
                    decision.model_name,
                    decision.alias,
                    tags={
                        "snakeflow.model_id": model.model_id,
                        "snakeflow.model": decision.best,
                        decision.metric: str(decision.value),
                    },
                )
                decision.registered, decision.version = True, str(version.version)
                decision.reason += f"; registered version {version.version} as {decision.alias}"
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
            }
        )
        run.metrics(
            {f"{decision.metric}.{m}": v for m, v in decision.candidates.items() if v is not None}
        )
        run.metrics({"registered": int(decision.registered)})
        run.artifact(snakemake.output.registration)


if __name__ == "__main__":
    run_main(main)
