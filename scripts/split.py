"""split: stratified, seeded train/test split of the clean CSV; rows copied unchanged.

Classification is stratified by class, regression by quantile bins of the target."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import math
from dataclasses import dataclass, field
from pathlib import Path

from sklearn.model_selection import train_test_split

from snakeflow import record
from snakeflow.csvio import RawCsv
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path

MAX_BINS = 10


@dataclass
class SplitStats:
    """Sizes of the split; the class counts of the label (classification), or the target's
    mean, standard deviation, minimum and maximum over all rows and the number of quantile
    bins the split was stratified on (regression; 0: not stratified)."""

    rows: int
    train_rows: int
    test_rows: int
    classes: dict[str, int] = field(default_factory=dict)
    target: dict[str, float] | None = None
    bins: int | None = None

    def metrics(self) -> dict[str, float]:
        sizes = {"rows": self.rows, "train_rows": self.train_rows, "test_rows": self.test_rows}
        if self.target is not None:
            return (
                sizes
                | {f"target_{k}": v for k, v in self.target.items()}
                | {"target_bins": self.bins}
            )
        return sizes | {"classes": len(self.classes)}


def _labels(src: Path, target: str) -> list[str]:
    with open(src, encoding="utf-8", newline="") as fh:
        reader = RawCsv(fh, str(src))
        if target not in reader.header:
            raise UserError(f"target column '{target}' is not in {src}; check target")
        col = reader.header.index(target)
        return [row[col] for row, _ in reader]


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


def _classification_test_rows(
    src: Path, labels: list[str], *, target: str, test_size: float, seed: int
) -> tuple[list[int], dict[str, int]]:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise UserError(
            f"target '{target}' has a single class ({next(iter(counts), 'no rows')!r}) "
            f"in {src}; a classifier needs at least two; check target"
        )
    try:
        _, test_idx = train_test_split(
            list(range(len(labels))), test_size=test_size, random_state=seed, stratify=labels
        )
    except ValueError as exc:
        rare = min(counts, key=counts.get)
        raise UserError(
            f"split.test_size={test_size} cannot stratify {len(labels)} rows with "
            f"{len(counts)} classes (smallest: {rare!r} with {counts[rare]} rows): {exc}"
        ) from exc
    return test_idx, counts


def quantile_bins(values: list[float], bins: int) -> list[int]:
    """The bin (0 .. ``bins`` - 1) of each value when the rows, sorted by value (ties in
    file order), are cut into ``bins`` runs of equal size (sizes differ by at most one)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0] * len(values)
    for rank, i in enumerate(order):
        out[i] = rank * bins // len(values)
    return out


def _regression_test_rows(
    values: list[float], *, test_size: float, seed: int
) -> tuple[list[int], int]:
    rows = list(range(len(values)))
    n_test = math.ceil(test_size * len(values))  # as train_test_split rounds it
    bins = min(MAX_BINS, n_test, len(values) - n_test, len(values) // 2)
    while bins >= 2:
        try:
            _, test_idx = train_test_split(
                rows,
                test_size=test_size,
                random_state=seed,
                stratify=quantile_bins(values, bins),
            )
            return test_idx, bins
        except ValueError:
            bins -= 1
    try:
        _, test_idx = train_test_split(rows, test_size=test_size, random_state=seed)
    except ValueError as exc:
        raise UserError(
            f"split.test_size={test_size} cannot split {len(rows)} rows: {exc}"
        ) from exc
    return test_idx, 0


def split_csv(
    src: Path,
    train: Path,
    test: Path,
    *,
    target: str,
    test_size: float,
    seed: int,
    task: str = "classification",
) -> SplitStats:
    """Split the rows of ``src`` into ``train`` and ``test``, stratified on ``target``.

    The same data, ``test_size`` and ``seed`` always give the same split. Both files keep
    the header and the rows exactly as in ``src``, in their original order.

    Classification: stratified by class. Raises UserError when the label has a single
    class or a class too small to stratify.

    Regression: the target must be a number in every row (else UserError naming the
    column). The rows are sorted by target (ties in file order) and cut by rank into k
    equal-size quantile bins, k = min(10, test rows, train rows, rows // 2), and the split
    is stratified on the bins, so the test split covers the target's range as the whole
    file does; if the bins cannot be stratified, k is lowered one at a time, and below 2 bins
    the split is a plain seeded shuffle.
    """
    labels = _labels(src, target)
    if task == "regression":
        values = _numbers(labels, src, target)
        test_idx, bins = _regression_test_rows(values, test_size=test_size, seed=seed)
        mean = math.fsum(values) / len(values)
        summary = {
            "mean": mean,
            "std": math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)),
            "min": min(values),
            "max": max(values),
        }
        counts = {}
    elif task == "classification":
        test_idx, counts = _classification_test_rows(
            src, labels, target=target, test_size=test_size, seed=seed
        )
        summary, bins = None, None
    else:
        raise UserError(f"task: '{task}' is not one of classification, regression")
    in_test = set(test_idx)
    with (
        open(src, encoding="utf-8", newline="") as fh,
        atomic_path(train) as tmp_train,
        atomic_path(test) as tmp_test,
        open(tmp_train, "w", encoding="utf-8", newline="") as out_train,
        open(tmp_test, "w", encoding="utf-8", newline="") as out_test,
    ):
        reader = RawCsv(fh, str(src))
        out_train.write(reader.header_raw)
        out_test.write(reader.header_raw)
        for i, (_, raw) in enumerate(reader):
            (out_test if i in in_test else out_train).write(raw)
    return SplitStats(
        rows=len(labels),
        train_rows=len(labels) - len(in_test),
        test_rows=len(in_test),
        classes=counts,
        target=summary,
        bins=bins,
    )


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        src = Path(snakemake.input.csv)
        run.input(src, name=snakemake.params.dataset, context="clean")
        stats = split_csv(
            src,
            Path(snakemake.output.train),
            Path(snakemake.output.test),
            target=params.target,
            test_size=params.test_size,
            seed=params.seed,
            task=params.task,
        )
        run.metrics(stats.metrics())
        if params.task == "classification":
            run.params({"class_counts": stats.classes})


if __name__ == "__main__":
    run_main(main)
