"""split: stratified, seeded train/test split of the clean CSV; rows copied unchanged."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from snakeflow import record
from snakeflow.csvio import RawCsv
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path


@dataclass
class SplitStats:
    """Sizes of the split and the class counts of the label."""

    rows: int
    train_rows: int
    test_rows: int
    classes: dict[str, int]

    def metrics(self) -> dict[str, float]:
        return {
            "rows": self.rows,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "classes": len(self.classes),
        }


def _labels(src: Path, target: str) -> list[str]:
    with open(src, encoding="utf-8", newline="") as fh:
        reader = RawCsv(fh, str(src))
        if target not in reader.header:
            raise UserError(f"target column '{target}' is not in {src}; check target")
        col = reader.header.index(target)
        return [row[col] for row, _ in reader]


def split_csv(
    src: Path, train: Path, test: Path, *, target: str, test_size: float, seed: int
) -> SplitStats:
    """Split the rows of ``src`` into ``train`` and ``test``, stratified by ``target``.

    The same data, ``test_size`` and ``seed`` always give the same split. Both files keep
    the header and the rows exactly as in ``src``, in their original order. Raises
    UserError when the label has a single class or a class too small to stratify.
    """
    labels = _labels(src, target)
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
        )
        run.metrics(stats.metrics())
        run.params({"class_counts": stats.classes})


if __name__ == "__main__":
    run_main(main)
