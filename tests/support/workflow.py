"""Private copies of the workflow, run as real ``snakemake`` subprocesses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from snakeflow.workflow import WORKFLOW_FILES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")


@dataclass
class Result:
    returncode: int
    output: str

    @property
    def would_run(self) -> dict[str, int]:
        """Jobs per rule in the "Job stats" table of a dry run (``all`` excluded)."""
        table = self.output.split("Job stats:", 1)[1] if "Job stats:" in self.output else ""
        counts = {}
        for line in table.splitlines()[3:]:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                break
            if parts[0] != "all":
                counts[parts[0]] = int(parts[1])
        return counts

    @property
    def ran(self) -> list[str]:
        """Rules of the jobs that finished, in order (``all`` excluded)."""
        rules = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", self.output)
        return [r for r in rules if r != "all"]


class Workflow:
    """A private copy of the workflow in a temporary directory, run as a real subprocess."""

    def __init__(self, path: Path):
        self.path = path
        self.db = path / "mlflow.db"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEFLOW_"))
        }
        self.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{self.db}"

    def configure(self, **changes) -> None:
        """Change top-level keys of this copy's config.yaml (as a user would edit it)."""
        path = self.path / "config.yaml"
        config = yaml.safe_load(path.read_text())
        config.update(changes)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: float = 600, cores: int = 2) -> Result:
        proc = subprocess.run(
            [SNAKEMAKE, "--cores", str(cores), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Result(proc.returncode, proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.output[-6000:]}")
        return result

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.env["MLFLOW_TRACKING_URI"])

    def runs(self, filter_string: str = "") -> list:
        """All runs in every experiment of this workflow's store."""
        if self.env["MLFLOW_TRACKING_URI"].startswith("sqlite") and not self.db.exists():
            return []
        client = self.client()
        ids = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(ids, filter_string, max_results=10000)

    def job_runs(self, rule: str | None = None) -> list:
        flt = "tags.`snakemake.kind` = 'job'"
        if rule:
            flt += f" and tags.`snakemake.rule` = '{rule}'"
        return self.runs(flt)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest
