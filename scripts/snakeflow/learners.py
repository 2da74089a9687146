"""What differs between classification and regression, behind one small interface.

A step looks its dataset's task up once, ``kind = task_for(params.task)``, and asks it
rather than branching on the task's name:

======================  ==============================================================
``estimator_kind``      "classifier" or "regressor" (``features.make_estimator`` checks it)
``metric_names``        the metrics ``metrics`` returns; ``default_metric`` is the first
``lower_is_better``     whether a lower value of a metric is better
``numeric_target``      whether the target is read as a number (``features.read_frame``)
``split_plan``          how split stratifies the rows, and what it records about the target
``cv_splitter``         the grid search's folds
``classes``             the class list that probabilities are aligned to ([] for regression)
``predict``             predictions, and (classification) the probabilities in class order
``metrics``             the test metrics of those predictions (``snakeflow.metrics``)
``summary``             what evaluate adds to the metrics JSON (classes, or the baseline)
``plots``               the files evaluate writes into the plots directory (``snakeflow.plots``)
``gate``                register's gate when ``register.threshold`` is null, or the given one
``signature_output``    what MLflow infers the signature's output from
``prediction_columns``  the columns predict appends to the input
``card_errors``         whether the model card states the test errors (in the target's units)
======================  ==============================================================

The standard library, numpy and scikit-learn (through ``snakeflow.metrics``) only: split,
whose env has no pandas, takes its stratification from here. The plots (matplotlib) are
drawn by ``snakeflow.plots``, which only evaluate imports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as m
from .errors import UserError

MAX_BINS = 10  # regression: the split is stratified on at most this many quantile bins
DEFAULT_THRESHOLD = 0.75  # classification's gate when register.threshold is null
BASELINE = "the baseline: predicting the test split's mean"  # regression's default gate


@dataclass(frozen=True)
class Gate:
    """register's gate: the best model's metric must reach ``threshold`` (``>=``, or ``<=``
    for a metric where lower is better); a ``strict`` gate must be beaten (``>``, ``<``).
    ``source`` says where the threshold came from; None means it is undefined."""

    threshold: float | None
    strict: bool
    source: str

    def op(self, lower: bool) -> str:
        return gate_op(lower, self.strict)

    def passes(self, value: float, lower: bool) -> bool:
        if self.strict:
            return value < self.threshold if lower else value > self.threshold
        return value <= self.threshold if lower else value >= self.threshold


def gate_op(lower: bool, strict: bool) -> str:
    """The comparison a gate makes: ``>=``, ``<=``, or (strict) ``>``, ``<``."""
    op = "<=" if lower else ">="
    return op[0] if strict else op


@dataclass
class SplitPlan:
    """How split chooses the test rows: ``attempts`` are tried in order, each a list of
    stratification labels (one per row; None: a plain seeded shuffle) and the number of
    quantile bins it stands for (None for classes); if none works, ``failure`` of the last
    ValueError is raised. ``classes`` (label -> rows) or ``target`` (mean, std, min, max)
    is what the split records about the target."""

    attempts: Iterable[tuple[list | None, int | None]]
    failure: Callable[[ValueError], UserError]
    classes: dict[str, int] = field(default_factory=dict)
    target: dict[str, float] | None = None


class Task:
    """One kind of learning problem; see the module's docstring for what each member is."""

    name: str
    estimator_kind: str
    metric_names: tuple[str, ...]
    plots: tuple[str, ...]
    numeric_target: bool
    card_errors: bool

    @property
    def default_metric(self) -> str:
        """``register.metric`` when it is null."""
        return self.metric_names[0]

    def lower_is_better(self, metric: str) -> bool:
        return metric in m.LOWER_IS_BETTER

    def gate(self, metric: str, threshold: float | None, baseline: dict | None) -> Gate:
        """``threshold`` (from register.threshold) if given, else the task's default gate."""
        if threshold is not None:
            return Gate(threshold, False, "register.threshold")
        return self.default_gate(metric, baseline)

    def default_gate(self, metric: str, baseline: dict | None) -> Gate:
        raise NotImplementedError

    def split_plan(self, labels: list[str], *, src: Path, target: str, test_size: float):
        raise NotImplementedError

    def cv_splitter(self, labels, folds: int, seed: int):
        raise NotImplementedError

    def classes(self, labels: Iterable = (), model=None) -> list[str]:
        return []

    def predict(self, pipeline, features, classes: list[str] | None = None):
        """(predictions, probabilities in ``classes`` order or None)."""
        raise NotImplementedError

    def metrics(self, y_true, y_pred, proba, classes: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def summary(self, y_true, classes: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def signature_output(self, predictions):
        return predictions

    def prediction_columns(self, y_pred, proba, classes: list[str]) -> dict[str, Any]:
        raise NotImplementedError


class Classification(Task):
    """Class labels kept as text; stratified by class; scored on probabilities too."""

    name = "classification"
    estimator_kind = "classifier"
    metric_names = ("roc_auc", "accuracy", "balanced_accuracy", "f1", "log_loss")
    plots = ("confusion_matrix.png", "roc.png", "pr.png")
    numeric_target = False
    card_errors = False

    def default_gate(self, metric: str, baseline: dict | None) -> Gate:
        return Gate(
            DEFAULT_THRESHOLD, False, f"the default for {self.name}, register.threshold is null"
        )

    def split_plan(self, labels, *, src, target, test_size) -> SplitPlan:
        """Stratified by class; UserError if the label has a single class, or (``failure``)
        a class too small to stratify."""
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        if len(counts) < 2:
            raise UserError(
                f"target '{target}' has a single class ({next(iter(counts), 'no rows')!r}) "
                f"in {src}; a classifier needs at least two; check target"
            )

        def failure(exc: ValueError) -> UserError:
            rare = min(counts, key=counts.get)
            return UserError(
                f"split.test_size={test_size} cannot stratify {len(labels)} rows with "
                f"{len(counts)} classes (smallest: {rare!r} with {counts[rare]} rows): {exc}"
            )

        return SplitPlan(attempts=[(labels, None)], failure=failure, classes=counts)

    def cv_splitter(self, labels, folds: int, seed: int):
        """Stratified, shuffled and seeded k-fold; UserError if a class has fewer rows."""
        from sklearn.model_selection import StratifiedKFold

        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        smallest = min(counts.values(), default=None)
        if smallest is not None and smallest < folds:
            raise UserError(
                f"cv.folds: {folds} folds need at least {folds} rows of every class in the "
                f"train split; the smallest class has {smallest}: lower cv.folds"
            )
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)

    def classes(self, labels: Iterable = (), model=None) -> list[str]:
        """The sorted class labels (as text) of ``labels`` and of ``model``'s ``classes_``."""
        known = set(map(str, labels))
        if model is not None:
            known |= set(map(str, model.classes_))
        return sorted(known)

    def predict(self, pipeline, features, classes: list[str] | None = None):
        """The predicted labels (as text) and ``predict_proba`` with one column per class of
        ``classes`` (default: the model's own), zeros for a class the model never saw."""
        classes = self.classes(model=pipeline) if classes is None else classes
        predicted = np.asarray([str(p) for p in pipeline.predict(features)])
        proba = pipeline.predict_proba(features)
        ordered = np.zeros((len(proba), len(classes)))
        for i, cls in enumerate(pipeline.classes_):
            ordered[:, classes.index(str(cls))] = proba[:, i]
        return predicted, ordered

    def metrics(self, y_true, y_pred, proba, classes) -> dict[str, float]:
        return m.compute_metrics(y_true, y_pred, proba, classes)

    def summary(self, y_true, classes) -> dict[str, Any]:
        return {"classes": list(classes)}

    def prediction_columns(self, y_pred, proba, classes) -> dict[str, Any]:
        """``prediction`` (the class), then ``proba_<class>`` per class (6 decimals)."""
        columns = {"prediction": y_pred}
        for i, cls in enumerate(classes):
            columns[f"proba_{cls}"] = proba[:, i].round(6)
        return columns


class Regression(Task):
    """A numeric target; stratified by quantile bins; scored on predictions alone."""

    name = "regression"
    estimator_kind = "regressor"
    metric_names = (
        "root_mean_squared_error",
        "mean_absolute_error",
        "r2_score",
        "mean_absolute_percentage_error",
        "max_error",
    )
    plots = ("predicted_vs_actual.png", "residuals.png", "worst_predictions.csv")
    numeric_target = True
    card_errors = True

    def default_gate(self, metric: str, baseline: dict | None) -> Gate:
        """Beat predicting the test split's mean (``baseline``, from evaluate) on ``metric``:
        RMSE below the test target's standard deviation, R² above 0, ...; undefined (None)
        if the baseline does not define ``metric``."""
        value = (baseline or {}).get(metric)
        defined = value is not None and not math.isnan(value)
        return Gate(value if defined else None, True, BASELINE)

    def split_plan(self, labels, *, src, target, test_size) -> SplitPlan:
        """The target must be a number in every row (else UserError naming the column). The
        rows, sorted by target (ties in file order), are cut by rank into k equal-size
        quantile bins, k = min(10, test rows, train rows, rows // 2), and stratified on
        them; if the bins cannot be stratified, k is lowered one at a time, and below 2
        bins the split is a plain seeded shuffle."""
        values = _numbers(labels, src, target)
        n_test = math.ceil(test_size * len(values))  # as train_test_split rounds it
        bins = min(MAX_BINS, n_test, len(values) - n_test, len(values) // 2)
        attempts = itertools.chain(
            ((quantile_bins(values, k), k) for k in range(bins, 1, -1)), [(None, 0)]
        )
        mean = math.fsum(values) / len(values)
        summary = {
            "mean": mean,
            "std": math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)),
            "min": min(values),
            "max": max(values),
        }

        def failure(exc: ValueError) -> UserError:
            return UserError(f"split.test_size={test_size} cannot split {len(values)} rows: {exc}")

        return SplitPlan(attempts=attempts, failure=failure, target=summary)

    def cv_splitter(self, labels, folds: int, seed: int):
        """Shuffled, seeded k-fold; UserError if the train split has fewer rows."""
        from sklearn.model_selection import KFold

        if len(labels) < folds:
            raise UserError(
                f"cv.folds: {folds} folds need at least {folds} rows in the train split; "
                f"it has {len(labels)}: lower cv.folds"
            )
        return KFold(n_splits=folds, shuffle=True, random_state=seed)

    def predict(self, pipeline, features, classes=None):
        """The predicted numbers (float64); no probabilities."""
        return np.asarray(pipeline.predict(features), dtype="float64"), None

    def metrics(self, y_true, y_pred, proba, classes) -> dict[str, float]:
        return m.compute_regression_metrics(y_true, y_pred)

    def summary(self, y_true, classes) -> dict[str, Any]:
        """The metrics of predicting the test split's mean (None where undefined)."""
        return {"baseline": m.defined(m.baseline(y_true))}

    def signature_output(self, predictions):
        """One double, whatever dtype the regressor predicts."""
        return np.asarray(predictions, dtype="float64").tolist()

    def prediction_columns(self, y_pred, proba, classes) -> dict[str, Any]:
        return {"prediction": np.asarray(y_pred, dtype="float64")}


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Regression())}


def task_for(name: str) -> Task:
    """The task called ``name``; UserError if there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"task: '{name}' is not one of {', '.join(TASKS)}") from None


def quantile_bins(values: list[float], bins: int) -> list[int]:
    """The bin (0 .. ``bins`` - 1) of each value when the rows, sorted by value (ties in
    file order), are cut into ``bins`` runs of equal size (sizes differ by at most one)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0] * len(values)
    for rank, i in enumerate(order):
        out[i] = rank * bins // len(values)
    return out


def _numbers(labels: list[str], src: Path, target: str) -> list[float]:
    """The target's values as numbers; UserError naming the column at the first that is not
    a finite number."""
    if not labels:
        raise UserError(f"{src} has no rows to split; check the clean step's settings")
    values = []
    for i, text in enumerate(labels):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UserError(
                f"target column '{target}' must hold numbers for regression; {src} line "
                f"{i + 2} has {text[:40]!r}: check target or set the task"
            )
        values.append(value)
    return values
