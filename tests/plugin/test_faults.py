"""Faults, one test per row of the README's failure table: killed processes, orphaned runs,
an unusable store, a store that fails during the run, a server restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from snakemake_logger_plugin_mlflow.digest import sha256_path
from snakemake_logger_plugin_mlflow.spool import SPOOL_DIR

from support import ROOT, SNAKEMAKE, TrackingServer, free_port, titanic_rows, to_csv

MODELS = {
    "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
    "tree": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
}
STEPS = ["download", "clean", "split", "train", "evaluate", "register", "predict"]
HOLD = ROOT / "tests" / "support" / "hold"  # sitecustomize: hold a job inside its write


def _error_lines(output: str, prefix: str = "snakeflow error:") -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


PLUGIN_ERROR = "mlflow logger: error:"  # the logger plugin's own one-line errors


def _data_files(wf) -> list[str]:
    return sorted(
        str(p.relative_to(wf.path))
        for d in ("data", "results")
        if (wf.path / d).exists()
        for p in (wf.path / d).rglob("*")
        if p.is_file()
    )


def _visible(paths: list[str]) -> list[str]:
    """Paths a rule produces or reads (no hidden file such as a .partial temporary)."""
    return [p for p in paths if not any(part.startswith(".") for part in p.split("/"))]


def _start(wf, *args, hold: str | None = None, markers: Path | None = None):
    """snakemake in its own process group (so the test can kill it with its jobs); with
    ``hold``, that rule's job stops inside its write and leaves a marker in ``markers``."""
    env = dict(wf.env)
    if hold:
        env |= {"SNAKEFLOW_TEST_HOLD": f"{hold}:{markers}", "PYTHONPATH": str(HOLD)}
    return subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", *args],
        cwd=wf.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_held(markers: Path, rule: str, proc, timeout: float = 300) -> int:
    """The pid of the job of ``rule`` held inside its write."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for marker in markers.glob(f"{rule}.*"):
            if not marker.name.endswith(".tmp"):
                marker.unlink()
                return int(marker.name.rsplit(".", 1)[1])
        time.sleep(0.1)
    raise AssertionError(f"no {rule} job held; snakemake said:\n{proc.communicate()[0]}")


def _assert_outputs_match_runs(wf) -> None:
    """Every visible output is complete: its digest is the sha256 tag of the FINISHED run
    that made it (a partial or stale file would not match)."""
    tagged = {
        key[len("sha256.") :]: value
        for run in wf.job_runs()
        if run.info.status == "FINISHED"
        for key, value in run.data.tags.items()
        if key.startswith("sha256.")
    }
    for path in _visible(_data_files(wf)):
        owner = next((p for p in tagged if path == p or path.startswith(p + "/")), None)
        assert owner is not None, f"{path}: no finished run made it"
        assert sha256_path(wf.path / owner) == tagged[owner], f"{owner} is not what its run made"


def test_unreachable_tracking_server_fails_before_any_job(workflow, titanic_url):
    uri = f"http://127.0.0.1:{free_port()}"
    workflow.env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    result = workflow.run("--until", "clean", "--config", f"data_url={titanic_url}", check=False)
    assert result.returncode != 0
    (line,) = _error_lines(result.output, PLUGIN_ERROR)
    assert f"MLflow tracking store {uri} is not usable" in line
    assert "Traceback" not in result.output
    assert result.ran == [] and _data_files(workflow) == []


def test_read_only_store_fails_before_any_job(workflow, titanic_url):
    workflow.run("--until", "download", "--config", f"data_url={titanic_url}")
    # SQLite opened read-only: no write succeeds, for root too
    workflow.env["MLFLOW_TRACKING_URI"] = f"sqlite:///file:{workflow.db}?mode=ro&uri=true"
    result = workflow.run("--until", "clean", "--config", f"data_url={titanic_url}", check=False)
    assert result.returncode != 0
    (line,) = _error_lines(result.output, PLUGIN_ERROR)
    assert "is not usable: the database is read-only" in line, result.output
    assert result.ran == [] and not (workflow.path / "data/clean/titanic.csv").exists()


def test_kill_9_inside_every_write_then_rerun_completes(tmp_path, workflow, http_server):
    url = http_server.publish("faults/titanic.csv", to_csv(titanic_rows(200, seed=5)))
    workflow.configure(data_url=url, models=MODELS, register={"threshold": 0.5})
    markers = tmp_path / "markers"
    markers.mkdir()
    for step in STEPS:
        proc = _start(workflow, hold=step, markers=markers)
        _wait_held(markers, step, proc)
        # the job has written its temporary output and not renamed it: kill everything
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert any(p.startswith(".") or "/." in p for p in _data_files(workflow)), step
        workflow.run("--unlock")
    result = workflow.run()
    assert "predict" in result.ran
    # finished steps were not rerun, and their runs were logged once
    finished = [
        (r.data.tags["snakemake.rule"], r.data.tags.get("snakemake.wildcards.model"))
        for r in workflow.job_runs()
        if r.info.status == "FINISHED"
    ]
    assert len(finished) == len(set(finished)) == 3 + 2 * len(MODELS) + 2
    _assert_outputs_match_runs(workflow)
    assert not [p for p in _data_files(workflow) if p.endswith(".partial")]
    # no run is left RUNNING: the killed ones were marked by the next invocation
    assert workflow.runs("attributes.status = 'RUNNING'") == []
    killed = workflow.runs("attributes.status = 'KILLED'")
    assert {r.data.tags.get("snakemake.rule") for r in killed} >= set(STEPS)
    assert all("snakemake.killed" in r.data.tags for r in killed)
    assert len([r for r in killed if r.data.tags["snakemake.kind"] == "invocation"]) == 7


def _clean(url: str) -> tuple[str, ...]:
    """The arguments of download -> clean from ``url``."""
    return ("--until", "clean", "--config", f"data_url={url}")


def test_killed_job_process_fails_its_run_and_rerun_finishes(tmp_path, workflow, titanic_url):
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = _start(workflow, *_clean(titanic_url), hold="clean", markers=markers)
    os.kill(_wait_held(markers, "clean", proc), signal.SIGKILL)  # only the job
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, output
    (run,) = workflow.job_runs("clean")
    assert run.info.status == "FAILED"
    assert "the job failed" in run.data.tags["snakemake.error"]
    (parent,) = workflow.runs("tags.`snakemake.kind` = 'invocation'")
    assert parent.info.status == "FAILED"
    assert "data/clean/titanic.csv" not in _visible(_data_files(workflow))
    assert workflow.run("--until", "clean", "--config", f"data_url={titanic_url}").ran == ["clean"]
    assert not [p for p in _data_files(workflow) if p.endswith(".partial")]


def test_sigterm_ends_the_jobs_run_killed(tmp_path, workflow, titanic_url):
    """What ``scancel`` or a time limit does to a job: SIGTERM, the run ends KILLED."""
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = _start(workflow, *_clean(titanic_url), hold="clean", markers=markers)
    os.kill(_wait_held(markers, "clean", proc), signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, output
    (run,) = workflow.job_runs("clean")
    assert run.info.status == "KILLED"
    assert "terminated by signal SIGTERM" in run.data.tags["snakemake.error"]
    assert _visible(_data_files(workflow)) == ["data/raw/titanic.csv"]


def _store_down_for(workflow, tmp_path, http_server, name: str):
    """A tracking server that goes away while download works (it is slow to answer)."""
    server = TrackingServer(tmp_path / "server")
    workflow.env |= {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    url = http_server.publish(f"faults/{name}.csv", to_csv(titanic_rows(50)))
    return server, url.replace("/files/", "/slow/4/")


def test_store_down_during_the_run_jobs_go_on_records_logged_next_time(
    tmp_path, workflow, http_server
):
    server, slow = _store_down_for(workflow, tmp_path, http_server, "down")
    args = (
        "--until",
        "clean",
        "--config",
        f"data_url={slow}",
        "--logger-mlflow-drain-timeout",
        "3",
    )
    proc = _start(workflow, *args)
    try:
        deadline = time.time() + 120
        while not workflow.job_runs("download") and time.time() < deadline:
            time.sleep(0.2)
        server.stop()  # the store goes away while download works; clean runs too
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output  # the jobs' results stand
        assert (workflow.path / "data/clean/titanic.csv").exists()
        assert "logged by the next snakemake invocation" in output
        assert len(list((workflow.path / SPOOL_DIR).glob("*.json"))) == 3  # 2 jobs + the end
        server = TrackingServer(server.root, port=server.port)
        again = workflow.run(*args[:4])  # nothing to run: it only logs what was kept
        assert again.ran == []
        runs = workflow.runs()
        assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3, again.output
        assert sorted(r.data.tags["snakemake.kind"] for r in runs) == ["invocation", "job", "job"]
        assert list((workflow.path / SPOOL_DIR).glob("*.json")) == []
    finally:
        server.stop()


def test_kill_9_while_the_store_is_down_next_invocation_logs_and_marks(
    tmp_path, workflow, http_server
):
    server, slow = _store_down_for(workflow, tmp_path, http_server, "killed")
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = _start(
        workflow, "--until", "clean", "--config", f"data_url={slow}", hold="clean", markers=markers
    )
    try:
        deadline = time.time() + 120
        while not workflow.job_runs("download") and time.time() < deadline:
            time.sleep(0.2)
        server.stop()
        _wait_held(markers, "clean", proc)  # download finished, unlogged; clean mid-write
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        server = TrackingServer(server.root, port=server.port)
        workflow.run("--unlock")
        assert workflow.run("--until", "clean", "--config", f"data_url={slow}").ran == ["clean"]
        download = workflow.job_runs("download")
        assert [r.info.status for r in download] == ["FINISHED"]  # logged once, not rerun
        # the killed attempt's start was spooled while the store was down: it has its run too
        clean = {r.info.status: r for r in workflow.job_runs("clean")}
        assert sorted(clean) == ["FINISHED", "KILLED"]
        assert "snakemake.killed" in clean["KILLED"].data.tags
        parents = workflow.runs("tags.`snakemake.kind` = 'invocation'")
        assert sorted(r.info.status for r in parents) == ["FINISHED", "KILLED"]
        _assert_outputs_match_runs(workflow)
    finally:
        server.stop()


def test_tracking_server_restart_is_retried(tmp_path, workflow, http_server):
    server = TrackingServer(tmp_path / "server")
    # no retries inside MLflow's HTTP client: the plugin's own retry must carry the records
    workflow.env |= {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    url = http_server.publish("faults/slow.csv", to_csv(titanic_rows(50)))
    slow = url.replace("/files/", "/slow/6/")
    proc = _start(workflow, "--until", "clean", "--config", f"data_url={slow}")
    try:
        deadline = time.time() + 120
        while not workflow.job_runs("download") and time.time() < deadline:
            time.sleep(0.2)
        server.stop()  # the server goes away while the download job works...
        deadline = time.time() + 120
        while not (workflow.path / "data/raw/titanic.csv").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # ...the job ends and its record waits...
        server = TrackingServer(server.root, port=server.port)  # ...until it comes back
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output
        # the plugin did retry, and nothing was lost or doubled
        assert "mlflow logger: warning: MLflow tracking store not answering" in output, output
        runs = workflow.runs()
        seen = [(r.data.tags.get("snakemake.rule"), r.info.status, r.data.tags) for r in runs]
        assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3, (seen, output)
    finally:
        server.stop()
