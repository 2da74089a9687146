"""Helpers of the plugin's tests: small Snakefiles run as real ``snakemake --logger mlflow``
subprocesses, each on its own SQLite store."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow.tracking import MlflowClient

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Plain:
    """A Snakefile in a temporary directory with its own SQLite store, tracked with --logger."""

    def __init__(self, path: Path, snakefile: str | None = None):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if snakefile is not None:
            (path / "Snakefile").write_text(textwrap.dedent(snakefile))
        self.uri = f"sqlite:///{path / 'mlflow.db'}"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEMAKE_"))
        } | {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_EXPERIMENT_NAME": "plain"}

    def snakemake(self, *args: str, logger: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SNAKEMAKE, *(["--logger", "mlflow"] if logger else []), "--cores", "2", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    def runs(self) -> list:
        if not (self.path / "mlflow.db").exists():
            return []
        client = MlflowClient(self.uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(ids, max_results=10000)

    def jobs(self) -> list:
        return [r for r in self.runs() if r.data.tags.get("snakemake.kind") == "job"]

    def parents(self) -> list:
        return [r for r in self.runs() if r.data.tags.get("snakemake.kind") == "invocation"]
