"""clean: drop rows with nulls (and optionally columns and duplicates) from the raw CSV.

The step alone: it reads the snakemake object, records the run and decides the dataset's task;
the cleaning itself is :func:`snakeflow.cleaning.clean_csv`.
"""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from snakeflow import record, tasks
from snakeflow.cleaning import clean_csv
from snakeflow.errors import run_main


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        src = Path(snakemake.input.csv)
        run.input(src, name=snakemake.params.dataset, context="raw")
        stats = clean_csv(
            src,
            Path(snakemake.output.csv),
            target=params.target,
            drop_columns=params.drop_columns,
            dropna=params.dropna,
            drop_duplicates=params.drop_duplicates,
        )
        run.metrics(stats.metrics())
        print(f"kept {stats.rows_out} of {stats.rows_in} rows", file=sys.stderr)
        decision = tasks.decide_task(
            tasks.distinct_values(Path(snakemake.output.csv), params.target),
            target=params.target,
            requested=params.task,
        )
        decision.write(Path(snakemake.output.task))
        run.params({"task": decision.task, "task.reason": decision.reason})
        run.tags({"snakeflow.task": decision.task})
        print(f"task {decision.reason}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
