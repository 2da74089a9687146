"""Stage download: stream the CSV at params.yaml's download.url to data/raw/titanic.csv."""

import time
from pathlib import Path

import requests
import yaml
from dvclive import Live

RAW = Path("data/raw/titanic.csv")
CHUNK = 1 << 20


def download(url: str, dst: Path, *, timeout: float) -> int:
    """Stream ``url`` to ``dst``; return the bytes written."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with dst.open("wb") as out:
            for chunk in response.iter_content(CHUNK):
                written += out.write(chunk)
    return written


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["download"]
    with Live("dvclive/download", dvcyaml=False) as live:
        live.log_params(params)
        started = time.perf_counter()
        written = download(params["url"], RAW, timeout=params["timeout"])
        live.log_metric("bytes", written, plot=False)
        live.log_metric("seconds", time.perf_counter() - started, plot=False)


if __name__ == "__main__":
    main()
