"""Faults: killed processes, orphaned runs, an unusable tracking store, a server restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SNAKEMAKE, titanic_rows, to_csv

MODELS = {
    "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
    "tree": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
}
STEPS = ["download", "clean", "split", "train", "evaluate", "register", "predict"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("snakeflow error:")]


def _data_files(wf) -> list[str]:
    return sorted(
        str(p.relative_to(wf.path))
        for d in ("data", "results")
        if (wf.path / d).exists()
        for p in (wf.path / d).rglob("*")
        if p.is_file()
    )


def test_unreachable_tracking_server_fails_before_any_job(workflow, titanic_url):
    uri = f"http://127.0.0.1:{_free_port()}"
    workflow.env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    result = workflow.run("clean", "--config", f"data_url={titanic_url}", check=False)
    assert result.returncode != 0
    (line,) = _error_lines(result.output)
    assert f"MLflow tracking store {uri} is not usable" in line
    assert "Traceback" not in result.output
    assert result.ran == [] and _data_files(workflow) == []


@pytest.fixture
def read_only(tmp_path):
    """Make a file read-only, for root too (chattr +i); undone afterwards."""
    made = []

    def make(path):
        if os.geteuid() != 0:
            path.chmod(0o444)
        elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("chattr +i is not supported here")
        made.append(path)

    yield make
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o644)


def test_read_only_store_fails_the_step_cleanly(workflow, titanic_url, read_only):
    workflow.run("download", "--config", f"data_url={titanic_url}")
    read_only(workflow.db)
    result = workflow.run("clean", "--config", f"data_url={titanic_url}", check=False)
    assert result.returncode != 0
    lines = _error_lines(result.output)
    assert lines and "is not usable: the database is read-only" in lines[0], result.output
    assert not (workflow.path / "data/clean/titanic.csv").exists()


def _start_pipeline(wf, *args):
    return subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", *args],
        cwd=wf.path,
        env=wf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: kill it with all its jobs
    )


def _wait_for_running_job(wf, rule: str, proc, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for run in wf.runs("attributes.status = 'RUNNING'"):
            if run.data.tags.get("snakemake.rule") == rule:
                return run
        time.sleep(0.1)
    raise AssertionError(f"no running {rule} job seen; snakemake said:\n{proc.communicate()[0]}")


def _visible(paths: list[str]) -> list[str]:
    """Paths a rule produces or reads (no hidden file such as a .partial temporary)."""
    return [p for p in paths if not any(part.startswith(".") for part in p.split("/"))]


def _comparable(path: str) -> bool:
    """Outputs that are byte-identical between two runs (models, plots and the JSON files
    record MLflow run ids, timestamps or rendering details)."""
    return path.endswith(".csv") or path.endswith(".tsv")


def _assert_complete(workflow, reference) -> None:
    """Every visible output is complete: identical to the uninterrupted run's, or a model
    directory with all its files."""
    for path in _visible(_data_files(workflow)):
        if _comparable(path):
            mine, theirs = workflow.path / path, reference.path / path
            assert mine.read_bytes() == theirs.read_bytes(), f"{path} differs (partial?)"
    for model in (workflow.path / "results/titanic/models").glob("*"):
        if not model.name.startswith("."):
            assert {"MLmodel", "snakeflow.json", "model.skops"} <= {p.name for p in model.iterdir()}


def test_kill_9_in_every_step_then_rerun_completes_the_same(tmp_path, workflow, http_server):
    from conftest import Workflow, copy_workflow

    url = http_server.publish("faults/titanic.csv", to_csv(titanic_rows(200, seed=5)))
    config = {"data_url": url, "models": MODELS, "register": {"threshold": 0.5}}
    reference = Workflow(copy_workflow(tmp_path / "reference"))
    reference.configure(**config)
    reference.run()
    workflow.configure(**config)

    done: list[str] = []
    for step in STEPS:
        workflow.env["SNAKEFLOW_FAILPOINT_SLEEP"] = f"{step}:30"  # hold the job mid-step
        proc = _start_pipeline(workflow)
        _wait_for_running_job(workflow, step, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its running job, mid-step
        proc.wait()
        _assert_complete(workflow, reference)
        workflow.run("--unlock")
        done.append(step)
    del workflow.env["SNAKEFLOW_FAILPOINT_SLEEP"]
    result = workflow.run()
    assert "predict" in result.ran
    # finished steps were not rerun: each job finished exactly once in all those runs
    finished = [
        (r.data.tags["snakemake.rule"], r.data.tags.get("snakemake.wildcards.model"))
        for r in workflow.job_runs()
        if r.info.status == "FINISHED"
    ]
    assert len(finished) == len(set(finished)) == 3 + 2 * len(MODELS) + 2
    _assert_complete(workflow, reference)
    assert _visible(_data_files(workflow)) == _visible(_data_files(reference))
    # no run is left RUNNING: the killed ones were marked by the next invocation
    assert workflow.runs("attributes.status = 'RUNNING'") == []
    killed = workflow.runs("attributes.status = 'KILLED'")
    assert {r.data.tags.get("snakemake.rule") for r in killed} >= set(STEPS)
    assert all("snakeflow.killed" in r.data.tags for r in killed)


def test_killed_job_process_is_marked_and_rerun_finishes(workflow, titanic_url):
    workflow.env["SNAKEFLOW_FAILPOINT_SLEEP"] = "clean:30"
    proc = _start_pipeline(workflow, "clean", "--config", f"data_url={titanic_url}")
    victim = _wait_for_running_job(workflow, "clean", proc)
    script = subprocess.run(["pgrep", "-f", r"\.clean\.py"], capture_output=True, text=True)
    for pid in script.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, output
    run = workflow.client().get_run(victim.info.run_id)
    assert run.info.status == "KILLED"
    assert "ended without closing this run" in run.data.tags["snakeflow.killed"]
    (parent,) = workflow.runs("tags.`snakeflow.kind` = 'invocation'")
    assert parent.info.status == "FAILED"
    del workflow.env["SNAKEFLOW_FAILPOINT_SLEEP"]
    assert workflow.run("clean", "--config", f"data_url={titanic_url}").ran == ["clean"]


def test_tracking_server_restart_is_retried(tmp_path, workflow, http_server):
    from conftest import TrackingServer

    server = TrackingServer(tmp_path / "server")
    workflow.env["MLFLOW_TRACKING_URI"] = server.url
    server_root = server.root
    url = http_server.publish("faults/slow.csv", to_csv(titanic_rows(50)))
    slow = url.replace("/files/", "/slow/6/")
    proc = _start_pipeline(workflow, "clean", "--config", f"data_url={slow}")
    try:
        _wait_for_running_job(workflow, "download", proc)
        server.stop()  # the server goes away while the download job works...
        time.sleep(2)
        server = TrackingServer(server_root, port=server.port)  # ...and comes back
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output
        statuses = sorted(r.info.status for r in workflow.runs())
        assert statuses == ["FINISHED"] * 3
    finally:
        server.stop()
