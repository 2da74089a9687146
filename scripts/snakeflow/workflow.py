"""Helpers the Snakefile calls while it is parsed.

Standard library only: the Snakefile is parsed on every ``snakemake`` call, including a
no-op one, so nothing here may import mlflow, pandas or sklearn. The invocation hooks
(``start_invocation``, ``end_invocation``) import the tracking module lazily: Snakemake
calls them only when jobs are about to run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import GIT_COMMIT_ENV, PARENT_ENV, urls

_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"


def coerce_cli_values(config: dict, schema_path: str | os.PathLike[str]) -> dict:
    """Give nested ``--config`` values their schema types before validation.

    Snakemake reads ``--config download="{attempts: 2}"`` with YAML's BaseLoader, so nested
    scalars arrive as strings ("2"). Where the schema asks for a number, boolean or null
    and the string reads as one in YAML, use that value; anything else is left for the
    schema to reject with its usual message.
    """
    import json

    import yaml  # already imported by Snakemake itself

    schema = json.loads(Path(schema_path).read_text())

    def walk(value, sub):
        if isinstance(value, dict):
            props = sub.get("properties", {})
            return {k: walk(v, props.get(k, {})) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, sub.get("items", {})) for v in value]
        wanted = sub.get("type", [])
        wanted = [wanted] if isinstance(wanted, str) else wanted
        kinds = tuple(t for w in wanted if w in _TYPES for t in _flat(_TYPES[w]))
        if isinstance(value, str) and kinds and "string" not in wanted:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            if isinstance(parsed, kinds) and not (isinstance(parsed, bool) and bool not in kinds):
                return parsed
        return value

    config.update(walk(dict(config), schema))
    return config


def _flat(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def tracking_uri(config: dict, workdir: str | os.PathLike[str] = ".") -> str:
    """MLFLOW_TRACKING_URI if set, else ``mlflow.tracking_uri`` from config, else SQLite.

    A relative SQLite path is made absolute against the working directory so that every
    job, wherever it runs on a shared filesystem, opens the same database.
    """
    uri = os.environ.get(TRACKING_URI_ENV) or config["mlflow"]["tracking_uri"]
    uri = uri or "sqlite:///mlflow.db"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        rel = uri[len(prefix) :]
        if rel and rel != ":memory:":
            uri = prefix + str(Path(workdir).resolve() / rel)
    return uri


# MLflow's HTTP client retries a failing tracking server (connection errors, 5xx) with
# exponential backoff; its defaults wait up to about four minutes. These wait
# 1+2+4+8+16 = 31 s: enough for a server restart, short enough to fail clearly.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def export_tracking_env(config: dict) -> None:
    """Put the resolved tracking URI, experiment and HTTP retry settings into the
    environment of every job (values already in the environment win)."""
    os.environ[TRACKING_URI_ENV] = tracking_uri(config)
    os.environ.setdefault(EXPERIMENT_ENV, config["mlflow"]["experiment"])
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def download_input(config: dict) -> dict[str, str]:
    """A local ``data_url`` is an input of download (so an edit to it reruns the step)."""
    path = urls.local_path(urls.data_url(config))
    return {"src": path} if path else {}


def data_url_digest(config: dict) -> str:
    """Rerun trigger for download: a digest of the URL, never the URL (it may hold secrets)."""
    return urls.url_digest(urls.data_url(config))


def one_of(names) -> str:
    """A wildcard constraint that matches exactly the given names."""
    import re

    return "|".join(re.escape(n) for n in sorted(names))


def model_setting(config: dict, key: str):
    """Input function for a train param: ``models.<wildcards.model>.<key>`` from config.

    Passing each model's own settings as params makes a change to one model's settings
    retrain only that model.
    """

    def setting(wildcards):
        spec = config["models"][wildcards.model]
        return spec.get(key, {}) if key == "params" else spec[key]

    return setting


def model_name(config: dict) -> str:
    """Registered model name: ``register.model_name``, else the dataset name."""
    return config["register"]["model_name"] or config["dataset"]


def predict_input(config: dict, default: str) -> str:
    """The CSV predict scores: ``predict_url`` (a local path or file:// URL) or ``default``."""
    url = config["predict_url"]
    return (urls.local_path(url) or url) if url else default


def git_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit checked out in the git repository holding ``path``, or None (no git, no repo)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def start_invocation(workflow, config: dict) -> None:
    """onstart hook: open this invocation's parent MLflow run and hand its id to the jobs.

    If the tracking store is unusable, say so in one line and stop before any job runs.
    """
    from . import tracking
    from .errors import UserError

    dag = workflow.dag
    targets = sorted(
        {job.rule.name for job in dag.targetjobs}
        | {str(f) for job in dag.targetjobs for f in (job.output or job.input)}
    )
    jobs = sorted(job.rule.name for job in dag.needrun_jobs())
    commit = git_commit(workflow.basedir)
    if commit:
        os.environ[GIT_COMMIT_ENV] = commit
    else:
        os.environ.pop(GIT_COMMIT_ENV, None)
    try:
        os.environ[PARENT_ENV] = tracking.start_invocation(config, targets, jobs)
    except UserError as exc:
        print(f"snakeflow error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def end_invocation(status: str) -> None:
    """onsuccess/onerror hook: close the parent run as FINISHED or FAILED."""
    run_id = os.environ.get(PARENT_ENV)
    if run_id:
        from . import tracking

        try:
            tracking.end_invocation(run_id, status)
        except Exception as exc:  # the jobs' results stand; only the record is incomplete
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            print(
                f"snakeflow warning: could not close MLflow run {run_id}: {reason}", file=sys.stderr
            )
