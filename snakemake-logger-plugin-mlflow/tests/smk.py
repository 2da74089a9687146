"""Helpers of the plugin's tests: small Snakefiles run as real ``snakemake --logger mlflow``
subprocesses, each on its own SQLite store."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
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


class Server:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend, served artifacts, two worker
    processes as a deployed server has), in its own process group, stopped by :meth:`stop`."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--backend-store-uri=sqlite:///{root / 'mlflow.db'}",
                f"--artifacts-destination={root / 'artifacts'}",
                "--workers=2",
            ],
            stdout=open(root / "server.log", "w"),
            stderr=subprocess.STDOUT,
            env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,
        )
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError((root / "server.log").read_text()[-3000:]) from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
