"""split: stratified, seeded train/test split of the clean CSV; rows copied unchanged.

The rows are scikit-learn's ``train_test_split``'s, chosen without importing it
(``snakeflow.sampling``). Classification is stratified by class, regression by quantile
bins of the target."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

from dataclasses import dataclass, field
from pathlib import Path

from snakeflow import record
from snakeflow.csvio import RawCsv
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path
from snakeflow.learners import SplitPlan, task_for
from snakeflow.sampling import holdout_rows


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

    def params(self) -> dict[str, dict[str, int]]:
        """What the split run records as params: the class counts (classification)."""
        return {"class_counts": self.classes} if self.classes else {}


def _labels(src: Path, target: str) -> list[str]:
    with open(src, encoding="utf-8", newline="") as fh:
        reader = RawCsv(fh, str(src))
        if target not in reader.header:
            raise UserError(f"target column '{target}' is not in {src}; check target")
        col = reader.header.index(target)
        return [row[col] for row, _ in reader]


def _test_rows(rows: int, plan: SplitPlan, *, test_size: float, seed: int):
    """(test row indices, bins) of the first of the plan's attempts that can be split."""
    error = None
    for strata, bins in plan.attempts:
        try:
            return holdout_rows(rows, test_size=test_size, seed=seed, stratify=strata), bins
        except ValueError as exc:
            error = exc
    raise plan.failure(error) from error


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

    How the rows are stratified is the task's (``Task.split_plan``). Classification: by
    class; UserError when the label has a single class or a class too small to stratify.
    Regression: the target must be a number in every row (else UserError naming the
    column); the rows are sorted by target (ties in file order) and cut by rank into k
    equal-size quantile bins, k = min(10, test rows, train rows, rows // 2), and the split
    is stratified on the bins, so the test split covers the target's range as the whole
    file does; if the bins cannot be stratified, k is lowered one at a time, and below 2 bins
    the split is a plain seeded shuffle.
    """
    kind = task_for(task)
    labels = _labels(src, target)
    plan = kind.split_plan(labels, src=src, target=target, test_size=test_size)
    test_idx, bins = _test_rows(len(labels), plan, test_size=test_size, seed=seed)
    in_test = set(test_idx.tolist())
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
        classes=plan.classes,
        target=plan.target,
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
        run.params(stats.params())


if __name__ == "__main__":
    run_main(main)
