"""Secrets: credentials in data_url and tracking-server logins never end up on disk or in MLflow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import ADMIN_PASSWORD, titanic_rows, to_csv

SECRETS = ("hunter2", "S1GNATURE", "T0KEN")


def _files_containing(root: Path, needles) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``needles``."""
    proc = subprocess.run(
        ["grep", "-rlaF", *[f"-e{n}" for n in needles], str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: no match; 2: grep could not read
    return proc.stdout.split()


def test_files_containing_finds_what_is_there(tmp_path):
    (tmp_path / "a.txt").write_text("x hunter2 y")
    (tmp_path / "b.txt").write_text("nothing")
    assert _files_containing(tmp_path, SECRETS) == [str(tmp_path / "a.txt")]


@pytest.fixture
def secret_url(http_server):
    url = http_server.publish("secret/data.csv", to_csv(titanic_rows(40)))
    return (
        url.replace("http://", "http://alice:hunter2@")
        + "?X-Amz-Signature=S1GNATURE&token=T0KEN&version=2"
    )


def test_url_from_environment_is_used_but_never_recorded(workflow, secret_url):
    workflow.env["SNAKEFLOW_DATA_URL"] = secret_url
    assert workflow.run("--until", "clean").ran == ["download", "clean"]
    assert (workflow.path / "data/clean/titanic.csv").exists()
    assert _files_containing(workflow.path, SECRETS) == []  # mlflow.db, mlruns/, .snakemake/
    (download,) = workflow.job_runs("download")
    assert "REDACTED@127.0.0.1" in download.data.params["source"]
    full = workflow.client().get_run(download.info.run_id)
    source = full.inputs.dataset_inputs[0].dataset.source
    assert "REDACTED" in source and not any(s in source for s in SECRETS)
    # the digest of the URL is the rerun trigger: a new token reruns download
    workflow.env["SNAKEFLOW_DATA_URL"] = secret_url.replace("T0KEN", "T0KEN2")
    assert workflow.run("--until", "clean").ran == ["download", "clean"]


def test_url_from_a_config_file_outside_the_workflow(workflow, secret_url, tmp_path):
    secret_config = tmp_path / "secret.yaml"
    secret_config.write_text(f"data_url: '{secret_url}'\n")
    workflow.run("--until", "clean", "--configfile", str(secret_config))
    assert _files_containing(workflow.path, SECRETS) == []


def test_basic_auth_tracking_server(tmp_path, workflow, titanic_url, monkeypatch):
    from support import TrackingServer

    server = TrackingServer(tmp_path / "auth-server", app_name="basic-auth")
    try:
        workflow.env["MLFLOW_TRACKING_URI"] = server.url
        workflow.env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "1"
        denied = workflow.run(
            "--until", "clean", "--config", f"data_url={titanic_url}", check=False
        )
        assert denied.returncode != 0
        lines = [x for x in denied.output.splitlines() if x.startswith("mlflow logger: error:")]
        assert lines and "401 Unauthorized: set MLFLOW_TRACKING_USERNAME" in lines[0]
        assert server.url in lines[0]
        assert denied.ran == []

        login = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
        workflow.env |= login
        for key, value in login.items():  # for this test's own MLflow client
            monkeypatch.setenv(key, value)
        allowed = workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
        assert allowed.ran == ["download", "clean"]
        assert len(workflow.job_runs()) == 2
        assert _files_containing(workflow.path, [ADMIN_PASSWORD]) == []
        leaked = [
            f
            for f in _files_containing(server.root, [ADMIN_PASSWORD])
            if not f.endswith("basic_auth.db")  # the server's own user table (hashed)
        ]
        assert leaked == []
    finally:
        server.stop()
