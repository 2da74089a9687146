"""Stage clean: drop the rows of data/raw/titanic.csv that hold a null (pandas' default
null markers, as snakeflow's clean reads them) into data/clean/titanic.csv."""

from pathlib import Path

import pandas as pd
import yaml
from dvclive import Live

RAW, CLEAN = Path("data/raw/titanic.csv"), Path("data/clean/titanic.csv")


def clean(src: Path, dst: Path, *, dropna: str) -> tuple[int, int]:
    """Write ``src`` less its rows with a null (``how=dropna``) to ``dst``; (rows in, out)."""
    frame = pd.read_csv(src)
    kept = frame.dropna(how=dropna)
    dst.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(dst, index=False)
    return len(frame), len(kept)


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["clean"]
    with Live("dvclive/clean", dvcyaml=False) as live:
        live.log_params(params)
        rows_in, rows_out = clean(RAW, CLEAN, dropna=params["dropna"])
        live.log_metric("rows_in", rows_in, plot=False)
        live.log_metric("rows_out", rows_out, plot=False)


if __name__ == "__main__":
    main()
