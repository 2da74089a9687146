"""The pipeline on a real Grid Engine (Son of Grid Engine) through Snakemake's cluster-generic
executor and profiles/sge, with the tracking server the Slurm tests use.

`.ci/run` starts a single-node Grid Engine (tests/cluster/sge.sh) and sets
SNAKEFLOW_REQUIRE_SGE=1, so these tests fail there if it is not usable; elsewhere they are
skipped when no Grid Engine answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from support.cluster import assert_tracked_once, kill_one_job_then_rerun

pytestmark = pytest.mark.sge
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
SGE_FLAGS = ("--profile", "profiles/sge", "--seconds-between-status-checks", "3")


def _sge_up() -> bool:
    if not shutil.which("qsub") or not shutil.which("qstat"):
        return False
    env = os.environ | SGE_ENV
    proc = subprocess.run(["qstat", "-f"], capture_output=True, text=True, timeout=30, env=env)
    return proc.returncode == 0 and "all.q@" in proc.stdout


@pytest.fixture(scope="module", autouse=True)
def sge():
    if not _sge_up():
        if os.environ.get("SNAKEFLOW_REQUIRE_SGE"):
            pytest.fail("SNAKEFLOW_REQUIRE_SGE is set but no Grid Engine answers qstat")
        pytest.skip("no Grid Engine (start one with tests/cluster/sge.sh start)")


@pytest.fixture
def sge_workflow(cluster_workflow):
    cluster_workflow.env |= SGE_ENV
    return cluster_workflow


def test_pipeline_on_grid_engine_with_a_qdeleted_job(sge_workflow):
    """The whole pipeline as Grid Engine jobs; one is deleted with qdel mid-step, the
    invocation fails, and the same command again finishes without repeating a finished job."""
    wf = sge_workflow
    scenario = kill_one_job_then_rerun(wf, SGE_FLAGS, "sge.job_id", ["qdel"])
    assert_tracked_once(
        wf, scenario, "sge.job_id", r"Submitted job \d+ with external jobid '(\d+)'"
    )
    assert list((wf.path / ".snakemake/sge_logs").glob("smk.train.o*"))  # Grid Engine ran them
