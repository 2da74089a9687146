"""predict: score a CSV with the champion model (models:/<name>@champion): the class and its
probabilities (classification) or the predicted number (regression) of every row.

When register made this invocation's own model the champion (registration.json names its
directory), predict loads that directory as it is, without MLflow or the tracking store
(``snakeflow.modeldir``, 2-3 s less a job); a champion from an earlier invocation is loaded
from the Model Registry."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from snakeflow import modeldir, record
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path
from snakeflow.learners import task_for


def check_columns(text: pd.DataFrame, src: Path, *, required: list[str], numeric: list[str]):
    """Stop with one line naming the column if ``text`` (the CSV read as text) lacks a column
    the model's signature requires, or holds a value that is not a number in a numeric one."""
    missing = [c for c in required if c not in text.columns]
    if missing:
        raise UserError(
            f"{src}: column '{missing[0]}' is missing; the champion model's signature "
            f"requires {', '.join(required)}"
        )
    for col in numeric:
        if col not in text.columns:
            continue
        values = text[col].str.strip()
        given = values.ne("") & ~values.isin(pd.io.parsers.readers.STR_NA_VALUES)
        bad = given & pd.to_numeric(values.where(given), errors="coerce").isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UserError(
                f"{src}: column '{col}' must hold numbers; line {row + 2} has "
                f"'{text[col].iloc[row][:40]}'"
            )


def predict_csv(
    pipeline,
    src: Path,
    dst: Path,
    *,
    target: str,
    required: list[str] = (),
    numeric: list[str] = (),
    task: str = "classification",
) -> int:
    """Write ``src``'s columns (as in the file, without ``target``) plus the task's
    ``prediction_columns`` to ``dst``: for classification ``prediction`` (the class), then
    one ``proba_<class>`` column per class; for regression ``prediction`` (a float) alone.
    Returns the number of rows."""
    kind = task_for(task)
    try:
        text = pd.read_csv(src, dtype=str, keep_default_na=False)
        typed = pd.read_csv(src)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{src} is not a readable CSV file: {exc}") from exc
    text = text.drop(columns=[target], errors="ignore")
    check_columns(text, src, required=list(required), numeric=list(numeric))
    features = typed.drop(columns=[target], errors="ignore")
    classes = kind.classes(model=pipeline)
    try:
        predicted, proba = kind.predict(pipeline, features, classes)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{src} does not fit the champion model's columns: {exc}") from exc
    out = text.assign(**kind.prediction_columns(predicted, proba, classes))
    with atomic_path(dst) as tmp:
        out.to_csv(tmp, index=False)
    return len(out)


@dataclass
class Champion:
    """The model predict scores with, and where it came from."""

    uri: str  # models:/<name>@<alias>
    version: str
    pipeline: object
    required: list[str]  # the columns its signature requires
    numeric: list[str]  # and those it reads as numbers
    model_dir: str | None = None  # this invocation's model directory, if loaded from there


def load_champion(registration: Path, model_name: str, alias: str) -> Champion:
    """The champion of ``model_name``: from its directory when ``registration`` (register's
    output) says it is this invocation's model, else from the Model Registry."""
    decided = json.loads(registration.read_text())
    uri = f"models:/{model_name}@{alias}"
    local = decided.get("champion_dir")
    if local and Path(local, "MLmodel").is_file():
        required, numeric = modeldir.input_columns(local)
        pipeline = modeldir.load_pipeline(local)
        return Champion(uri, decided["version"], pipeline, required, numeric, local)
    from snakeflow import models  # MLflow and the store: only for an earlier champion

    uri, version, pipeline = models.load_champion(model_name, alias)
    required, numeric = models.input_columns(uri)
    return Champion(uri, str(version.version), pipeline, required, numeric)


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        champion = load_champion(
            Path(snakemake.input.registration), params.model_name, params.alias
        )
        src = Path(snakemake.input.csv)
        run.input(src, name=snakemake.params.dataset, context="predict")
        rows = predict_csv(
            champion.pipeline,
            src,
            Path(snakemake.output.predictions),
            target=params.target,
            required=champion.required,
            numeric=champion.numeric,
            task=params.task,
        )
        run.tags(
            {
                "snakeflow.model_uri": champion.uri,
                "snakeflow.model_version": champion.version,
                "snakeflow.model_source": champion.model_dir or "Model Registry",
            }
        )
        run.metrics({"rows": rows})


if __name__ == "__main__":
    run_main(main)
