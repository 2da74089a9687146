"""What a step knows, written to its job record for the snakemake process to log.

Standard library only: a step no longer imports MLflow nor talks to the tracking store. It
writes JSON lines to its record file (the job's ``log.record``, see ``workflow.logs``) and
the logger plugin (``snakemake --logger mlflow``, on by default through
``profiles/default``) logs them to the job's MLflow run when the job ends. The format is
documented in the README ("The job record") so that a step in any language can write it::

    with record.step(snakemake) as run:
        stats = clean_csv(...)
        run.input(src, name="titanic", context="raw")
        run.metrics(stats.metrics())

``step`` also records the rule's params, its script as the run's source, its conda env file,
the names of its outputs, and how it ended: FAILED with the error, or KILLED on SIGTERM
(``scancel``, a time limit) or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import Terminated


def _plain(value: Any) -> Any:
    """Snakemake's Namedlists and other containers as JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Record:
    """Appends one JSON object per call to a job's record file (flushed at once)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")

    def write(self, line: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(_plain(line), allow_nan=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def params(self, params: Mapping[str, Any]) -> None:
        """Run params; nested mappings become ``a.b`` keys."""
        if params:
            self.write({"params": params})

    def metrics(self, metrics: Mapping[str, float], *, model: str | None = None) -> None:
        """Run metrics; with ``model`` (a model directory logged by an earlier job), linked to
        that model and logged on the run that trained it too."""
        line: dict[str, Any] = {"metrics": {k: float(v) for k, v in metrics.items()}}
        if model:
            line["model"] = str(model)
        self.write(line)

    def tags(self, tags: Mapping[str, Any]) -> None:
        self.write({"tags": {k: str(v) for k, v in tags.items()}})

    def input(
        self,
        source: str | os.PathLike[str],
        *,
        name: str,
        context: str,
        digest: str | None = None,
    ) -> None:
        """A dataset input: a local file (its sha256 is computed by the plugin unless given)
        or a URL (recorded redacted by the plugin)."""
        line = {"input": str(source), "name": name, "context": context}
        if digest:
            line["digest"] = digest
        self.write(line)

    def artifact(
        self,
        path: str | os.PathLike[str],
        artifact_path: str | None = None,
        *,
        model: str | None = None,
    ) -> None:
        """Log a file as an artifact of this run (with ``model``: of the run that trained it)."""
        line: dict[str, Any] = {"artifact": str(path)}
        if artifact_path:
            line["artifact_path"] = artifact_path
        if model:
            line["model"] = str(model)
        self.write(line)

    def model(self, model_dir: str | os.PathLike[str], *, name: str = "model") -> None:
        """A directory in MLflow's model format, to be logged as a LoggedModel of this run."""
        self.write({"model": str(model_dir), "name": name})


def _terminate(signum, frame):
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


@contextmanager
def step(smk) -> Iterator[Record]:
    """The record of one Snakemake job, opened with what Snakemake knows of the step.

    ``smk`` is the ``snakemake`` object of the calling script: its rule, params, named
    outputs, ``log.record`` and script directory are read. An exception is recorded as the
    job's error (KILLED for SIGTERM or Ctrl-C, else FAILED) and propagates.
    """
    rec = Record(smk.log.record)
    scripts = Path(smk.scriptdir)
    rec.write({"source": str(scripts / f"{smk.rule}.py")})
    rec.tags({"snakeflow.host": socket.gethostname()})  # where the job ran (a cluster node)
    params = dict(smk.params.items())
    rec.params(params)
    # which dataset and task the run is for: one tag each, to filter runs by in the UI
    rec.tags({f"snakeflow.{k}": params[k] for k in ("dataset", "task") if params.get(k)})
    rec.write({"outputs": dict(smk.output.items())})
    env_file = scripts.parent / "envs" / f"{smk.rule}.yaml"
    if env_file.exists():
        rec.artifact(env_file, "env")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield rec
    except BaseException as exc:
        killed = isinstance(exc, (KeyboardInterrupt, Terminated))
        rec.write(
            {"status": "KILLED" if killed else "FAILED", "error": f"{type(exc).__name__}: {exc}"}
        )
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.stderr.flush()
        rec.close()
