"""What register says: the reason for its decision, the model card of a registered version
and the registered model's description. Pure text from plain values: no registry calls.

The decision is duck-typed (``register.Decision``: ``model_name``, ``alias``, ``metric``,
``threshold``, ``threshold_source``, ``best``, ``value``, ``passed``, ``version``,
``reason``, ``baseline``).
"""

from __future__ import annotations

import json

from .learners import BASELINE, gate_op, task_for
from .metrics import LOWER_IS_BETTER

# How the model card abbreviates a regressor's errors.
SHORT = {
    "root_mean_squared_error": "RMSE",
    "mean_absolute_error": "MAE",
    "r2_score": "R²",
    "mean_absolute_percentage_error": "MAPE",
    "max_error": "max error",
}


# The gate (register.decide)


def no_score(metric: str) -> str:
    return f"no model has a defined {metric} on the test split"


def undefined_gate(best: str, metric: str, value: float) -> str:
    return (
        f"{best} has {metric}={value:.4f}, but {BASELINE} has no {metric} to beat "
        "(e.g. a constant target, or a zero for a percentage error): set "
        "register.threshold"
    )


def gate_result(best: str, metric: str, value: float, gate, passed: bool, lower: bool) -> str:
    """ "<best> has <metric>=<value>, meets (misses) the gate <metric> <op> <threshold>
    (<source>)": a computed threshold (strict: the baseline) to 4 decimals."""
    shown = f"{gate.threshold:.4f}" if gate.strict else f"{gate.threshold}"
    return (
        f"{best} has {metric}={value:.4f}, {'meets' if passed else 'misses'} the gate "
        f"{metric} {gate.op(lower)} {shown} ({gate.source})"
    )


def nothing_registered(alias: str) -> str:
    return f"; nothing registered, {alias} left unchanged"


# Promotion (register.promote): each is appended to the gate's reason


def already(alias: str, version) -> str:
    return f"; already {alias} (version {version})"


def first_champion(version, alias: str) -> str:
    return f"; registered version {version} as {alias} (the first)"


def versus(metric: str, value: float, alias: str, champion, score: float, delta: float) -> str:
    """The comparison of a challenger with the champion (version ``champion``)."""
    return (
        f"{metric} {value:.4f} against {alias} version {champion}'s "
        f"{score:.4f} on the same test split (min_delta {delta})"
    )


def promoted(version, alias: str, compared: str) -> str:
    return f"; version {version} becomes {alias}: {compared}"


def kept(version, challenger: str, alias: str, champion, compared: str) -> str:
    return f"; version {version} stays {challenger}, {alias} stays version {champion}: {compared}"


# The model card and the registered model's description


def predicts(card: dict) -> str:
    """What the model predicts: "Classifier of `<target>` on the `<dataset>` data", or
    "Regressor of ..."."""
    kind = _task(card).estimator_kind.capitalize()
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


def model_card(card: dict, metrics: dict, decision) -> str:
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
    op = gate_op(decision.metric in LOWER_IS_BETTER, decision.threshold_source == BASELINE)
    threshold = "undefined" if decision.threshold is None else decision.threshold
    errors = f"; {error_summary(metrics, decision.baseline)}" if _task(card).card_errors else ""
    lines = [
        f"# {decision.model_name}: {decision.best}",
        "",
        f"- **Predicts**: {predicts(card)}{errors}",
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


def model_description(card: dict, metrics: dict, decision, challenger: str) -> str:
    """The registered model's description: what it predicts (for a regressor, with the
    test errors of the version just registered) and what its aliases mean."""
    errors = (
        f"; version {decision.version} on the {error_summary(metrics, decision.baseline)}"
        if _task(card).card_errors
        else ""
    )
    return (
        f"{predicts(card)}, trained by snakeflow{errors}. `@{decision.alias}` is the version "
        f"in use; a newly registered version that does not beat it by register.min_delta on "
        f"{decision.metric} holds `@{challenger}`."
    )


def _task(card: dict):
    """The task of a saved model's card (cards written before regression have none)."""
    return task_for(card.get("task") or "classification")
