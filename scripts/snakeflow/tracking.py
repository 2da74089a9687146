"""Every MLflow call of snakeflow, in one place.

Step scripts say *what* to record::

    with tracking.step(snakemake) as run:
        stats = clean_csv(...)
        run.log_input(src, context="raw")
        run.log_metrics(stats.metrics())

and this module knows *how*: the tracking URI and experiment (from the environment the
Snakefile prepared), the invocation's parent run, the tags that identify the job, the
sha256 of every output, the log and the conda env as artifacts, and FAILED on error.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException

from . import GIT_COMMIT_ENV, PARENT_ENV
from .errors import Terminated, UserError
from .fileio import sha256_file, size_bytes
from .urls import redact

SHA_TAG = "sha256."  # tag key prefix: sha256.<output path> = <hex digest>
MAX_PARAM = 6000


def tracking_uri() -> str:
    """The tracking URI the Snakefile exported (MLflow's default when run on its own)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "snakeflow"


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation between processes for a SQLite store.

    MLflow creates and migrates a fresh SQLite database on first use; several processes
    doing that at once corrupt it ("duplicate column name", "_alembic_tmp_params already
    exists"). An exclusive lock on a file beside the database makes the first process
    create it and the others wait, then find it ready.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tracking_error(exc: BaseException, uri: str | None = None) -> UserError:
    """A one-line UserError naming the tracking URI (redacted) and the first line of ``exc``."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    if "401" in text or "Unauthorized" in text or "credentials" in text.lower():
        reason = (
            "401 Unauthorized: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or MLFLOW_TRACKING_TOKEN) in the environment"
        )
    elif "readonly database" in text or "read-only" in text:
        reason = "the database is read-only"
    elif "Max retries exceeded" in text or "Connection refused" in text:
        reason = "cannot connect (is the tracking server running?)"
    return UserError(
        f"MLflow tracking store {redact(uri or tracking_uri())} is not usable: {reason[:300]}"
    )


def connect() -> str:
    """Point MLflow at the store, create store and experiment once; return the experiment id.

    Raises UserError naming the tracking URI when the store cannot be reached.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    name = experiment_name()
    try:
        with _store_lock(uri):
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    return client.create_experiment(name)
                except MlflowException:  # created meanwhile by another process
                    experiment = client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
            return experiment.experiment_id
    except (MlflowException, OSError, RequestException) as exc:
        raise tracking_error(exc, uri) from exc


def source_tags(source: str) -> dict[str, str]:
    """The tags MLflow's run context providers set, for what really runs in a job.

    Runs are created without those providers: in a job they would name Snakemake's generated
    script under ``.snakemake/`` as the source, look for a git commit there (an ignored
    directory, so never found) and cost 0.1-0.3 s. The source is the step's script instead and
    the commit is the workflow's, found once per invocation by the Snakefile (GIT_COMMIT_ENV).
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        user = str(os.getuid())
    tags = {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}
    if os.environ.get(GIT_COMMIT_ENV):
        tags["mlflow.source.git.commit"] = os.environ[GIT_COMMIT_ENV]
    return tags


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        out[prefix] = text[:MAX_PARAM]


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow params: ``{"clean": {"dropna": "any"}}`` → ``clean.dropna``."""
    out: dict[str, str] = {}
    _flatten("", params, out)
    return out


def safe_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with its data URL redacted, fit to be recorded."""
    safe = json.loads(json.dumps(dict(config), default=str))
    if "data_url" in safe:
        safe["data_url"] = redact(str(safe["data_url"]))
    return safe


def _process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of process ``pid``, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _invocation_alive(tags: Mapping[str, str]) -> bool:
    """Whether the snakemake process of an invocation still runs (unknown on other hosts)."""
    if tags.get("snakeflow.host") != socket.gethostname() or not tags.get("snakeflow.pid"):
        return True
    started = _process_start(int(tags["snakeflow.pid"]))
    return started is not None and started == tags.get("snakeflow.pid_start", started)


def _kill_runs(client: MlflowClient, runs, reason: str) -> int:
    for run in runs:
        client.set_tag(run.info.run_id, "snakeflow.killed", reason[:5000])
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def _running_children(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs(
        [experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'",
        max_results=10000,
    )


def reap_orphans(experiment_id: str) -> int:
    """Mark runs of invocations whose snakemake process is gone as KILLED; return how many.

    A ``kill -9`` of snakemake (or of a job) leaves its MLflow runs RUNNING forever. Each
    invocation records its host, pid and the pid's start time; a RUNNING invocation on
    this host whose process no longer exists is ended KILLED together with its RUNNING
    job runs, with a ``snakeflow.killed`` tag saying why.
    """
    client = MlflowClient(tracking_uri())
    running = client.search_runs(
        [experiment_id],
        "tags.`snakeflow.kind` = 'invocation' and attributes.status = 'RUNNING'",
        max_results=10000,
    )
    killed = 0
    for parent in running:
        tags = parent.data.tags
        if _invocation_alive(tags):
            continue
        reason = (
            f"snakemake process {tags.get('snakeflow.pid')} on {tags.get('snakeflow.host')} "
            "ended without closing this run (killed?); marked by a later invocation"
        )
        killed += _kill_runs(
            client, _running_children(client, experiment_id, parent.info.run_id), reason
        )
        killed += _kill_runs(client, [parent], reason)
    return killed


def start_invocation(config: Mapping[str, Any], targets: list[str], jobs: list[str]) -> str:
    """Create the parent run of one ``snakemake`` invocation and return its id."""
    experiment_id = connect()
    client = MlflowClient(tracking_uri())
    try:
        reaped = reap_orphans(experiment_id)
        if reaped:
            print(f"snakeflow: marked {reaped} orphaned MLflow run(s) KILLED", file=sys.stderr)
        return _create_invocation(client, experiment_id, config, targets, jobs)
    except (MlflowException, OSError, RequestException) as exc:
        raise tracking_error(exc) from exc


def _create_invocation(client, experiment_id, config, targets, jobs) -> str:
    safe = safe_config(config)
    run = client.create_run(
        experiment_id,
        run_name=f"snakemake {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={
            "snakeflow.kind": "invocation",
            "snakeflow.targets": " ".join(targets)[:5000],
            "snakeflow.jobs": str(len(jobs)),
            "snakeflow.host": socket.gethostname(),
            "snakeflow.pid": str(os.getpid()),
            "snakeflow.pid_start": _process_start(os.getpid()) or "",
        }
        | source_tags("snakemake"),
    )
    run_id = run.info.run_id
    params = flatten_params(safe)
    items = [mlflow.entities.Param(k, v) for k, v in params.items()]
    client.log_batch(run_id, params=items)
    client.log_dict(run_id, safe, "config.json")
    return run_id


def end_invocation(run_id: str, status: str) -> None:
    """Mark the parent run FINISHED or FAILED, and job runs left RUNNING (a job process
    killed with SIGKILL never ends its run) as KILLED."""
    client = MlflowClient(tracking_uri())
    parent = client.get_run(run_id)
    orphans = _running_children(client, parent.info.experiment_id, run_id)
    _kill_runs(client, orphans, "the job's process ended without closing this run (killed?)")
    client.set_terminated(run_id, status)


class StepRun:
    """What a step script can record on its MLflow run."""

    def __init__(self, run_id: str, outputs: Mapping[str, str]):
        self.run_id = run_id
        self.outputs = dict(outputs)

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params(flatten_params(params))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None):
        mlflow.log_artifact(str(path), artifact_path)

    def log_model_metrics(
        self, run_id: str, model_id: str | None, metrics: Mapping[str, float]
    ) -> None:
        """Log metrics to this run, and to the run that trained ``model_id``, linked to it."""
        mlflow.log_metrics(dict(metrics), model_id=model_id)
        if run_id != self.run_id:
            mlflow.log_metrics(dict(metrics), run_id=run_id, model_id=model_id)

    def log_artifact_to(self, run_id: str, path: str | os.PathLike[str], artifact_path: str):
        """Log a file to another (finished) run, e.g. plots to the model's training run."""
        MlflowClient(tracking_uri()).log_artifact(run_id, str(path), artifact_path)

    def log_input(
        self,
        source: str | os.PathLike[str],
        *,
        name: str,
        context: str,
        sha256: str | None = None,
    ) -> str:
        """Log a dataset input (a local file or a URL, recorded redacted) with its digest."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.http_dataset_source import HTTPDatasetSource
        from mlflow.data.meta_dataset import MetaDataset

        text = str(source)
        if text.startswith(("http://", "https://")):
            dataset_source = HTTPDatasetSource(redact(text))
        else:
            path = Path(text).resolve()
            with warnings.catch_warnings():  # "can be interpreted in multiple ways"
                warnings.simplefilter("ignore", UserWarning)
                dataset_source = resolve_dataset_source(str(path))
            sha256 = sha256 or sha256_file(path)
        dataset = MetaDataset(dataset_source, name=name, digest=(sha256 or "")[:32] or None)
        mlflow.log_input(dataset, context=context)
        if sha256:
            mlflow.set_tag(f"input.{context}.sha256", sha256)
        return sha256 or ""

    def _record_outputs(self) -> None:
        tags, metrics = {}, {}
        for name, path in self.outputs.items():
            if Path(path).exists():
                tags[SHA_TAG + str(path)] = sha256_file(path)
                metrics[f"output.{name}.bytes"] = size_bytes(path)
        mlflow.set_tags(tags)
        mlflow.log_metrics(metrics)


def _terminate(signum, frame):
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def _failpoint(rule: str) -> None:
    """Fault injection for the tests: ``SNAKEFLOW_FAILPOINT_SLEEP=<rule>:<seconds>`` makes
    that rule's jobs wait once their run is open, so a test can kill them mid-step."""
    spec = os.environ.get("SNAKEFLOW_FAILPOINT_SLEEP", "")
    name, _, seconds = spec.partition(":")
    if name == rule and seconds:
        time.sleep(float(seconds))


def _named(items) -> dict[str, str]:
    """Named entries of a Snakemake Namedlist (``input``, ``output``, ``wildcards``)."""
    return {str(k): str(v) for k, v in items.items()}


@contextmanager
def step(smk) -> Iterator[StepRun]:
    """One MLflow run for one Snakemake job, nested under the invocation's parent run.

    ``smk`` is the ``snakemake`` object of the calling script; only its rule, wildcards,
    params, outputs, log and script directory are read. On success the sha256 of each
    output is set as a tag (``sha256.<path>``: the lineage key), the job's log and its
    conda env file are logged as artifacts and the run ends FINISHED; on any exception the
    error is recorded, the run ends FAILED (KILLED on SIGTERM, e.g. ``scancel``, or Ctrl-C)
    and the exception propagates.
    """
    experiment_id = connect()
    rule = smk.rule
    wildcards = _named(smk.wildcards)
    outputs = _named(smk.output)
    parent = os.environ.get(PARENT_ENV) or None
    label = " ".join([rule, *wildcards.values()])
    tags = {"snakemake.rule": rule, "snakeflow.kind": "job", "snakeflow.host": socket.gethostname()}
    tags |= {f"snakemake.wildcards.{k}": v for k, v in wildcards.items()}
    if parent:
        tags |= {"snakeflow.invocation": parent, "mlflow.parentRunId": parent}
    if os.environ.get("SLURM_JOB_ID"):
        tags["slurm.job_id"] = os.environ["SLURM_JOB_ID"]
    tags |= source_tags(str(Path(smk.scriptdir) / f"{rule}.py"))
    started = time.perf_counter()
    try:
        created = MlflowClient(tracking_uri()).create_run(experiment_id, run_name=label, tags=tags)
        active = mlflow.start_run(run_id=created.info.run_id)
    except (MlflowException, OSError, RequestException) as exc:
        raise tracking_error(exc) from exc
    run = StepRun(active.info.run_id, outputs)
    previous = signal.signal(signal.SIGTERM, _terminate)
    _failpoint(rule)
    log_path = smk.log[0] if smk.log else None
    env_file = Path(smk.scriptdir).parent / "envs" / f"{rule}.yaml"
    try:
        params = {k: v for k, v in smk.params.items()}
        if params:
            run.log_params(params)
        yield run
        run._record_outputs()
        run.log_metrics({"seconds": time.perf_counter() - started})
        status = "FINISHED"
    except BaseException as exc:
        mlflow.set_tag("snakeflow.error", f"{type(exc).__name__}: {exc}"[:5000])
        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "FAILED"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.stderr.flush()
        if log_path and Path(log_path).exists():
            mlflow.log_artifact(log_path, "logs")
        if env_file.exists():
            mlflow.log_artifact(str(env_file), "env")
        mlflow.end_run(status)
