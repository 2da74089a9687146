"""The pipeline on a real Slurm cluster with a real MLflow tracking server on 127.0.0.1.

`.ci/run` starts a single-node Slurm (tests/cluster/slurm.sh) and sets
SNAKEFLOW_REQUIRE_SLURM=1, so these tests fail there if Slurm is not usable; elsewhere they
are skipped when no Slurm cluster answers.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from support import GRID, SNAKEMAKE, TrackingServer, titanic_rows, to_csv

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent
SLURM_FLAGS = (
    "--profile",
    "profiles/slurm",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",  # no accounting storage on the test cluster
    "--slurm-init-seconds-before-status-checks",
    "3",
    "--set-threads",
    "train=1",
)


def _slurm_up() -> bool:
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module", autouse=True)
def slurm():
    if not _slurm_up():
        if os.environ.get("SNAKEFLOW_REQUIRE_SLURM"):
            pytest.fail("SNAKEFLOW_REQUIRE_SLURM is set but no Slurm cluster answers sinfo")
        pytest.skip("no Slurm cluster (start one with tests/cluster/slurm.sh start)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The team set-up the README recommends: an mlflow server on PostgreSQL
    (``SNAKEFLOW_POSTGRES_URI``, started by tests/cluster/postgres.sh in CI)."""
    backend = os.environ.get("SNAKEFLOW_POSTGRES_URI")
    if not backend and os.environ.get("SNAKEFLOW_REQUIRE_SLURM"):
        pytest.fail("CI runs the cluster tests on PostgreSQL: SNAKEFLOW_POSTGRES_URI is unset")
    srv = TrackingServer(tmp_path_factory.mktemp("tracking-server"), backend=backend)
    yield srv
    srv.stop()


@pytest.fixture
def cluster_workflow(tmp_path, server, http_server):
    from support import Workflow, copy_workflow

    wf = Workflow(copy_workflow(tmp_path / "wf"))
    wf.env["MLFLOW_TRACKING_URI"] = server.url
    name = f"{tmp_path.name[:40]}-{uuid.uuid4().hex[:8]}"  # the server's store may be reused
    wf.env["MLFLOW_EXPERIMENT_NAME"] = name  # one experiment per test
    url = http_server.publish(f"slurm/{tmp_path.name}.csv", to_csv(titanic_rows(300, seed=7)))
    wf.configure(data_url=url, models=GRID, register={"threshold": 0.5, "model_name": name})
    return wf


def experiment_runs(wf, status=None):
    client = wf.client()
    experiment = client.get_experiment_by_name(wf.env["MLFLOW_EXPERIMENT_NAME"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if status is None or r.info.status == status]


def slurm_ids(output: str) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", output)


def test_pipeline_on_slurm_with_tracking_server(cluster_workflow, server):
    wf = cluster_workflow
    result = wf.run(*SLURM_FLAGS, timeout=900)
    ran = result.ran
    assert sorted(ran) == sorted(
        ["download", "clean", "split", *["train"] * 4, *["evaluate"] * 4, "register", "predict"]
    )
    submitted = slurm_ids(result.output)
    assert len(submitted) == len(ran) == 13  # every job (all but the target rule) went to Slurm

    assert (wf.path / "results/titanic/predictions.csv").exists()
    assert not (wf.path / "mlflow.db").exists()  # nothing tracked locally
    runs = experiment_runs(wf)
    parents = [r for r in runs if r.data.tags["snakeflow.kind"] == "invocation"]
    jobs = [r for r in runs if r.data.tags["snakeflow.kind"] == "job"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(jobs) == 13 and all(j.info.status == "FINISHED" for j in jobs)
    assert {j.data.tags["mlflow.parentRunId"] for j in jobs} == {parents[0].info.run_id}
    assert sorted(j.data.tags["slurm.job_id"] for j in jobs) == sorted(submitted)

    # the four models trained as concurrent Slurm jobs
    trains = sorted(
        (j.info.start_time, j.info.end_time)
        for j in jobs
        if j.data.tags["snakemake.rule"] == "train"
    )
    assert len(trains) == 4
    assert any(b[0] < a[1] for a, b in itertools.pairwise(trains)), trains

    # model artifacts are in the server's artifact store, uploaded through the server
    for job in jobs:
        assert job.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(list(server.artifacts.rglob("MLmodel"))) == 4
    name = wf.env["MLFLOW_EXPERIMENT_NAME"][:60]
    champion = wf.client().get_model_version_by_alias(name, "champion")
    assert champion.version in (1, "1")


def test_scancelled_job_fails_then_rerun_completes(cluster_workflow):
    wf = cluster_workflow
    grid = {"logreg": GRID["logreg"]}
    grid["slow"] = {  # about 10 s of training, a small model
        "estimator": "sklearn.neural_network.MLPClassifier",
        "params": {
            "hidden_layer_sizes": [32],
            "max_iter": 40000,
            "tol": 0.0,
            "n_iter_no_change": 1000000,
        },
    }
    wf.configure(models=grid)
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", *SLURM_FLAGS],
        cwd=wf.path,
        env=wf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = None
    deadline = time.time() + 600
    while victim is None and time.time() < deadline and proc.poll() is None:
        for run in (
            experiment_runs(wf, status="RUNNING")
            if wf.client().get_experiment_by_name(wf.env["MLFLOW_EXPERIMENT_NAME"])
            else []
        ):
            record = wf.path / "logs/train/titanic/slow.mlflow.jsonl"
            if (
                run.data.tags.get("snakemake.wildcards.model") == "slow"
                and run.data.tags.get("snakemake.rule") == "train"
                and "slurm.job_id" in run.data.tags
                and record.exists()
                and "train_rows" in record.read_text()  # the step is training
            ):
                victim = run
        time.sleep(0.5)
    assert victim is not None, "the slow train job never started"
    subprocess.run(["scancel", victim.data.tags["slurm.job_id"]], check=True)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0
    assert "Error in rule train" in output

    killed = wf.client().get_run(victim.info.run_id)
    assert killed.info.status in ("KILLED", "FAILED")
    assert "terminated by signal SIGTERM" in killed.data.tags.get("snakeflow.error", "")
    assert not (wf.path / "results/titanic/models/slow").exists()

    finished_before = {
        r.info.run_id
        for r in experiment_runs(wf, status="FINISHED")
        if r.data.tags["snakeflow.kind"] == "job"
    }
    rerun = wf.run(*SLURM_FLAGS, timeout=900)
    assert "train" in rerun.ran
    assert (wf.path / "results/titanic/predictions.csv").exists()
    jobs = [r for r in experiment_runs(wf) if r.data.tags["snakeflow.kind"] == "job"]
    per_step = {}
    for r in jobs:
        if r.info.status == "FINISHED":
            key = (r.data.tags["snakemake.rule"], r.data.tags.get("snakemake.wildcards.model"))
            per_step[key] = per_step.get(key, 0) + 1
    # every step succeeded exactly once: nothing that had finished ran again
    assert all(n == 1 for n in per_step.values()), per_step
    assert ("train", "slow") in per_step and ("predict", None) in per_step
    assert finished_before <= {r.info.run_id for r in jobs}
