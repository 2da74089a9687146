"""What passes between a job and the snakemake process: one home for every name.

Standard library only. The job side (a step script in any language) writes a *record*: a
file of JSON lines whose path is one of the job's ``log:`` files ending in
:data:`RECORD_SUFFIX`. The snakemake process (the logger plugin) reads it when the job ends
and logs it to MLflow. Each line is one JSON object with one of these keys:

``{"params": {"name": value, ...}}``
    run params (nested mappings are flattened to ``a.b``; lists are logged as JSON).
``{"metrics": {"name": number, ...}, "model": "<model dir>"}``
    run metrics; with ``model``, also linked to the model logged from that directory and
    logged on the run that logged it (e.g. evaluation metrics of a trained model).
``{"tags": {"name": "value", ...}}``
    run tags.
``{"input": "<path or URL>", "name": "...", "context": "...", "digest": "<sha256>"}``
    a dataset input; the digest of a local file is computed by the plugin if not given.
``{"artifact": "<path>", "artifact_path": "<dir>", "model": "<model dir>"}``
    a file logged as an artifact of this run (with ``model``: of the run that logged it).
``{"model": "<dir>", "name": "model"}`` (no other keys)
    a directory in MLflow's model format (``MLmodel`` inside), logged as a LoggedModel of
    this run.
``{"status": "KILLED", "error": "..."}``
    how the job ended, when it knows better than its exit code (e.g. SIGTERM).
``{"source": "<path>"}``
    the program the job ran (e.g. its script), shown as the run's source.
``{"outputs": {"name": "<path>", ...}}``
    names of the job's outputs, used for the ``output.<name>.bytes`` metrics.

Lines that are not JSON objects are ignored with a warning tag on the run.
"""

from __future__ import annotations

RECORD_SUFFIX = ".mlflow.jsonl"

# Environment the plugin sets in the snakemake process, so that every job inherits it.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own variable
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"  # MLflow's own variable
EXPERIMENT_ID_ENV = "MLFLOW_EXPERIMENT_ID"  # MLflow's own variable
PARENT_RUN_ENV = "SNAKEMAKE_MLFLOW_PARENT_RUN_ID"  # the invocation's run, for a job's own runs
CACHE_ENV = "SNAKEMAKE_MLFLOW_CACHE"  # where the empty SQLite store is kept (~/.cache/...)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "snakemake"

# Every tag the plugin writes: one home for each name.
KIND_TAG = "snakemake.kind"  # "invocation" or "job"
JOB_KEY_TAG = "snakemake.job_key"  # "<parent run id>/<jobid>[/<attempt>]": logging is idempotent
SHA_TAG = "sha256."  # sha256.<output path> = hex digest: the lineage key
MODEL_UUID_TAG = "snakemake.model_uuid"  # on a LoggedModel: the MLmodel's model_uuid
MODEL_PATH_TAG = "snakemake.model_path"  # on a LoggedModel: the directory it was logged from
MODEL_ID_TAG = "snakemake.model_id"  # on a job's run: the LoggedModel it logged
RULE_TAG = "snakemake.rule"
JOBID_TAG = "snakemake.jobid"
ATTEMPT_TAG = "snakemake.attempt"  # 1, 2, ... with --retries / retries: (one run per attempt)
THREADS_TAG = "snakemake.threads"
WILDCARD_TAG = "snakemake.wildcards."  # + wildcard name
RESOURCE_TAG = "snakemake.resources."  # + resource name
HOST_TAG = "snakemake.host"  # where the snakemake process runs
PID_TAG = "snakemake.pid"
PID_START_TAG = "snakemake.pid_start"  # the pid's start time: a reused pid is not the same process
INVOCATION_TAG = "snakemake.invocation"  # on a job's run: its invocation's run id
TARGETS_TAG = "snakemake.targets"
JOBS_TAG = "snakemake.jobs"  # how many jobs the invocation's DAG had
COMMAND_TAG = "snakemake.command"
ERROR_TAG = "snakemake.error"  # why a job's run did not finish
KILLED_TAG = "snakemake.killed"  # why a later invocation ended a run KILLED
WARNINGS_TAG = "snakemake.record_warnings"  # record lines or values MLflow could not take
RENAMED_TAG = "snakemake.renamed_keys"  # JSON {logged key: original} for keys MLflow rejects
LOGGER_METRIC = "mlflow_logger."  # + job_runs, writer_[cpu_]seconds: on the invocation's run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own
USER_TAG = "mlflow.user"  # MLflow's own
# on the experiment: the MLflow UI opens it in the model-training view, not the GenAI one
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow's own
EXPERIMENT_KIND = "custom_model_development"
MESSAGE_PREFIX = "mlflow logger"  # what the plugin's messages start with

# MLflow's HTTP client retries a failing tracking server (connection errors, 5xx) with
# exponential backoff; its defaults wait up to about four minutes. These wait
# 1+2+4+8+16 = 31 s per request, and the plugin retries a whole job's record after that.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
