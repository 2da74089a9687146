"""The pipeline on a real Slurm cluster with a real MLflow tracking server on 127.0.0.1.

`.ci/run` starts a single-node Slurm (tests/cluster/slurm.sh) and sets
SNAKEFLOW_REQUIRE_SLURM=1, so these tests fail there if Slurm is not usable; elsewhere they
are skipped when no Slurm cluster answers.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.cluster import assert_tracked_once, kill_one_job_then_rerun

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent
SLURM_FLAGS = (
    "--profile",
    "profiles/slurm",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",  # no accounting storage on the test cluster
    "--slurm-init-seconds-before-status-checks",
    "1",  # and 10 s more after each check that finds no job finished (the plugin's rule)
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


def experiment_runs(wf, status=None):
    client = wf.client()
    experiment = client.get_experiment_by_name(wf.env["MLFLOW_EXPERIMENT_NAME"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if status is None or r.info.status == status]


def test_pipeline_on_slurm_with_a_scancelled_job(cluster_workflow, cluster_server):
    """Two datasets' pipelines as Slurm jobs in one DAG; one job is cancelled with scancel
    mid-step, the invocation fails, and the same command again finishes without repeating a
    job that had finished."""
    wf = cluster_workflow
    scenario = kill_one_job_then_rerun(wf, SLURM_FLAGS, "slurm.job_id", ["scancel"])
    jobs = assert_tracked_once(wf, scenario, "slurm.job_id", r"submitted with SLURM jobid (\d+)")
    killed = wf.client().get_run(scenario.victim.info.run_id)
    assert "terminated by signal SIGTERM" in killed.data.tags.get("snakemake.error", "")
    assert not (wf.path / "mlflow.db").exists()  # nothing tracked locally

    # the two models trained as concurrent Slurm jobs in the first invocation
    trains = sorted(
        (j.info.start_time, j.info.end_time or 2**63)
        for j in jobs
        if j.data.tags["snakemake.rule"] == "train"
    )
    assert any(b[0] < a[1] for a, b in itertools.pairwise(trains)), trains

    # model artifacts are in the server's artifact store, uploaded through the server
    assert all(job.info.artifact_uri.startswith("mlflow-artifacts:") for job in jobs)
    experiment = wf.client().get_experiment_by_name(wf.env["MLFLOW_EXPERIMENT_NAME"])
    logged = wf.client().search_logged_models([experiment.experiment_id])
    assert len(logged) == 3  # titanic's logreg and slow, houses' ridge
    assert all(m.artifact_location.startswith("mlflow-artifacts:") for m in logged)
    name = wf.env["MLFLOW_EXPERIMENT_NAME"]
    for model_name in (name, f"{name}-houses"):  # each dataset registers its own model
        champion = wf.client().get_model_version_by_alias(model_name, "champion")
        assert champion.version in (1, "1")
