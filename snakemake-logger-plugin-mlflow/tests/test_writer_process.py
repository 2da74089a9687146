"""The writer runs in a process of its own: it dies with snakemake and drains after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from smk import SNAKEMAKE

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="dies with its parent on Linux")

HELD = """
rule quick:
    output:
        "quick.txt",
    log:
        "logs/quick.log",
    shell:
        "echo done > {output}"

rule held:
    input:
        "quick.txt",
    output:
        "held.txt",
    log:
        "logs/held.log",
    shell:
        # only the first attempt is held: the rerun need not wait
        "if [ ! -e started ]; then touch started; sleep 20; fi; echo done > {output}"
"""


def _start(wf) -> subprocess.Popen:
    proc = subprocess.Popen(
        [SNAKEMAKE, "--logger", "mlflow", "--cores", "1", "held.txt"],
        cwd=wf.path,
        env=wf.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # snakemake, its writer and its job: a group of their own
    )
    deadline = time.time() + 120
    while not (wf.path / "started").exists():
        assert time.time() < deadline and proc.poll() is None, "the held job never started"
        time.sleep(0.1)
    return proc


def _writer_of(pid: int) -> int:
    """The pid of snakemake's writer process."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"snakemake_logger_plugin_mlflow.child" in cmdline:
                return int(child)
    raise AssertionError("snakemake has no writer process")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_kill_9_of_snakemake_alone_takes_its_writer_with_it(plain):
    wf = plain(HELD)
    proc = _start(wf)
    try:
        writer = _writer_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # snakemake only: its job and writer are left
        proc.wait()
        deadline = time.time() + 10
        while _alive(writer):  # a writer outliving snakemake would race the next replay
            assert time.time() < deadline, "the writer outlived snakemake"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the held job
    assert wf.snakemake("--unlock").returncode == 0
    result = wf.snakemake("--rerun-incomplete", "held.txt")  # reaps what the killed one left
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(wf.jobs(), key=lambda r: r.info.start_time)
    statuses = [(r.data.tags["snakemake.rule"], r.info.status) for r in runs]
    assert statuses == [("quick", "FINISHED"), ("held", "KILLED"), ("held", "FINISHED")]
    parents = sorted(wf.parents(), key=lambda r: r.info.start_time)
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]


def test_ctrl_c_ends_the_runs_and_the_writer_drains(plain):
    wf = plain(HELD)
    proc = _start(wf)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole group
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and "mlflow logger: warning" not in err, err[-3000:]
    jobs = {r.data.tags["snakemake.rule"]: r for r in wf.jobs()}
    assert jobs["quick"].info.status == "FINISHED"
    # Snakemake either stops the held job or, stopping gracefully, lets it finish
    held = "FINISHED" if proc.returncode == 0 else ("KILLED", "FAILED")
    assert jobs["held"].info.status in held, (proc.returncode, err[-3000:])
    assert all(p.info.status != "RUNNING" for p in wf.parents())
    assert not list((wf.path / ".snakemake/mlflow/pending").glob("*"))


def test_the_writer_works_in_the_workflows_directory(plain, tmp_path):
    """The writer process starts as Snakemake does, before Snakemake changes to the
    workflow's directory (``--directory``): a relative SQLite URI and the artifacts are
    still the workflow directory's, one store, every run there."""
    wf = plain(HELD.replace("sleep 20", "true"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = wf.env | {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    done = subprocess.run(
        [
            SNAKEMAKE,
            "--logger",
            "mlflow",
            "--cores",
            "2",
            "-s",
            str(wf.path / "Snakefile"),
            "-d",
            str(wf.path),
            "held.txt",
        ],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(outside.iterdir()) == []
    (parent,) = wf.parents()
    jobs = wf.jobs()
    assert parent.info.status == "FINISHED" and len(jobs) == 2
    assert {r.info.status for r in jobs} == {"FINISHED"}
    for run in jobs:
        assert run.info.artifact_uri.startswith(f"{wf.path}/mlruns/")
        assert [a.path for a in wf.client().list_artifacts(run.info.run_id, "logs")]


@pytest.mark.parametrize(
    ("argv", "job"),
    [
        (["snakemake", "--cores", "2"], False),
        (["snakemake", "--mode", "remote", "--target-jobs", "a:"], True),
        (["python", "-m", "snakemake", "--mode=subprocess"], True),
        (["snakemake", "--mode", "default"], False),
    ],
)
def test_snakemakes_own_job_processes_start_no_writer(argv, job):
    from snakemake_logger_plugin_mlflow import job_process

    assert job_process(argv) is job


def test_what_the_snakefile_sets_in_the_environment_reaches_the_writer(plain):
    """The writer process starts before the Snakefile is parsed; a Snakefile that sets
    MLflow's variables as it is parsed (here the experiment) still has every run there."""
    sets = 'import os\nos.environ["MLFLOW_EXPERIMENT_NAME"] = "set-by-snakefile"\n'
    wf = plain(sets + HELD.replace("sleep 20", "true"))
    del wf.env["MLFLOW_EXPERIMENT_NAME"]
    done = wf.snakemake("held.txt")
    assert done.returncode == 0, done.stderr
    client = wf.client()
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "set-by-snakefile"]
    runs = wf.runs()
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    (experiment,) = {r.info.experiment_id for r in runs}
    assert client.get_experiment(experiment).name == "set-by-snakefile"


@pytest.mark.parametrize(
    ("args", "hidden"),
    [
        ([], False),
        (["--quiet"], True),
        (["--quiet", "progress"], True),
        (["--quiet", "rules"], False),
    ],
)
def test_quiet_hides_the_drains_progress_lines_as_snakemake_hides_its_own(args, hidden):
    from snakemake.cli import get_argument_parser
    from snakemake_logger_plugin_mlflow import quiet_progress

    assert quiet_progress(get_argument_parser().parse_args(args).quiet) is hidden
