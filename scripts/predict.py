"""predict: score a CSV with the champion model (models:/<name>@champion)."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from snakeflow import models, record
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path


def predict_csv(pipeline, src: Path, dst: Path, *, target: str) -> int:
    """Write ``src``'s columns (as in the file, without ``target``) plus ``prediction`` and
    one ``proba_<class>`` column per class to ``dst``. Returns the number of rows."""
    try:
        text = pd.read_csv(src, dtype=str, keep_default_na=False)
        typed = pd.read_csv(src)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{src} is not a readable CSV file: {exc}") from exc
    text = text.drop(columns=[target], errors="ignore")
    features = typed.drop(columns=[target], errors="ignore")
    try:
        labels = pipeline.predict(features)
        proba = pipeline.predict_proba(features)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{src} does not fit the champion model's columns: {exc}") from exc
    out = text.assign(prediction=labels)
    for i, cls in enumerate(pipeline.classes_):
        out[f"proba_{cls}"] = proba[:, i].round(6)
    with atomic_path(dst) as tmp:
        out.to_csv(tmp, index=False)
    return len(out)


def main() -> None:
    params = snakemake.params
    with record.step(snakemake) as run:
        uri, version, pipeline = models.load_champion(params.model_name, params.alias)
        src = Path(snakemake.input.csv)
        run.input(src, name=snakemake.params.dataset, context="predict")
        rows = predict_csv(pipeline, src, Path(snakemake.output.predictions), target=params.target)
        run.tags({"snakeflow.model_uri": uri, "snakeflow.model_version": str(version.version)})
        run.metrics({"rows": rows})


if __name__ == "__main__":
    run_main(main)
