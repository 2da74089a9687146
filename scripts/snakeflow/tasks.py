"""What a dataset's models learn: classification or regression, decided from its target.

Standard library only: clean (whose env has no pandas) decides the task of a dataset with
``task: auto`` and checks an explicit one, before any model is trained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .csvio import NA_VALUES
from .errors import UserError
from .fileio import atomic_path

MAX_CLASSES = 20  # integers with at most this many distinct values are classes under auto


@dataclass
class TaskDecision:
    """The task of one dataset, as clean writes it to ``data/clean/<dataset>.task.json``."""

    task: str
    requested: str
    target: str
    distinct: int
    numeric: bool
    reason: str

    def write(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def decide_task(values: Iterable[str], *, target: str, requested: str) -> TaskDecision:
    """Classification or regression for a target column's ``values`` (as text).

    ``auto``: text, booleans, or whole numbers with at most MAX_CLASSES distinct values are
    classes (classification); any other numbers are regression. An explicit ``requested``
    task is checked: classification of a target with fractional numbers, or regression of a
    target that is not all numbers, is a UserError naming the column and the fix.
    """
    distinct: set[str] = set()
    numbers: list[float] = []
    text_example = None
    for raw in values:
        value = raw.strip()
        if value in NA_VALUES:
            continue
        distinct.add(value)
        number = _number(value)
        if number is None:
            text_example = text_example or value
        else:
            numbers.append(number)
    if not distinct:
        raise UserError(f"target column '{target}' has no values; check target")
    numeric = text_example is None
    fractional = next((n for n in numbers if n != int(n)), None) if numeric else None
    if requested == "regression" and not numeric:
        raise UserError(
            f"target column '{target}' holds text (e.g. '{text_example[:40]}'), which "
            "regression cannot learn: set task: classification (or auto)"
        )
    if requested == "classification" and fractional is not None:
        raise UserError(
            f"target column '{target}' holds continuous numbers (e.g. {fractional:g}), "
            "which are not class labels: set task: regression (or auto)"
        )
    if requested != "auto":
        task, why = requested, "as configured"
    elif not numeric:
        task, why = "classification", f"the target holds text (e.g. '{text_example[:40]}')"
    elif fractional is None and len(distinct) <= MAX_CLASSES:
        task, why = "classification", f"whole numbers with {len(distinct)} distinct values"
    elif fractional is None:
        task, why = "regression", f"whole numbers with {len(distinct)} (> {MAX_CLASSES}) values"
    else:
        task, why = "regression", f"numbers with fractions (e.g. {fractional:g})"
    return TaskDecision(
        task=task,
        requested=requested,
        target=target,
        distinct=len(distinct),
        numeric=numeric,
        reason=f"{task}: {why}",
    )


def distinct_values(path: Path, column: str) -> list[str]:
    """The distinct values of one column of a CSV file, as text (pyarrow: one pass, the
    other columns skipped; UserError if the file lacks the column)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    try:
        table = csv.read_csv(
            path,
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                include_columns=[column],
                column_types={column: pa.string()},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        if column not in Path(path).open(encoding="utf-8").readline():
            raise UserError(f"target column '{column}' is not in {path}; check target") from exc
        raise
    return pc.unique(table.column(column)).to_pylist()
