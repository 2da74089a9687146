"""download -> clean as real snakemake runs against a loopback server and a real MLflow store."""

from __future__ import annotations

import json
import subprocess

from snakemake_logger_plugin_mlflow.events import git_commit

from support import expected_clean, sha256, titanic_rows, to_csv


def _commit_all(path) -> str:
    """Make ``path`` a git repository with one commit of its files; return the commit."""
    git = ["git", "-C", str(path), "-c", "user.name=snakeflow", "-c", "user.email=ci@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "workflow"]):
        subprocess.run([*git, *args], check=True)
    return git_commit(path)


def test_full_run_files_and_runs(workflow, titanic_url):
    commit = _commit_all(workflow.path)
    assert commit and len(commit) == 40
    result = workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    assert sorted(result.ran) == ["clean", "download"]

    raw = workflow.path / "data/raw/titanic.csv"
    clean = workflow.path / "data/clean/titanic.csv"
    assert raw.read_bytes() == to_csv(titanic_rows())
    assert clean.read_bytes() == to_csv(expected_clean(titanic_rows()))

    runs = workflow.runs()
    parents = [r for r in runs if r.data.tags.get("snakemake.kind") == "invocation"]
    jobs = [r for r in runs if r.data.tags.get("snakemake.kind") == "job"]
    assert len(parents) == 1 and len(jobs) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["datasets.titanic.target"] == "Survived"
    assert "data/clean/titanic.csv" in parent.data.tags["snakemake.targets"]
    # the source: the workflow's commit and, for a job, its step's script
    assert parent.data.tags["mlflow.source.git.commit"] == commit
    for job in jobs:
        assert job.info.status == "FINISHED"
        assert job.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert job.data.tags["mlflow.source.git.commit"] == commit
        script = f"scripts/{job.data.tags['snakemake.rule']}.py"
        assert job.data.tags["mlflow.source.name"].endswith(script)
        assert job.data.tags["mlflow.user"]
        artifacts = {a.path for a in workflow.client().list_artifacts(job.info.run_id, "logs")}
        artifacts |= {a.path for a in workflow.client().list_artifacts(job.info.run_id, "env")}
        rule = job.data.tags["snakemake.rule"]
        assert f"logs/{'titanic.log'}" in artifacts and f"env/{rule}.yaml" in artifacts

    by_rule = {j.data.tags["snakemake.rule"]: j for j in jobs}
    # lineage: the sha256 tag of each output is the digest of the file on disk
    assert by_rule["download"].data.tags["sha256.data/raw/titanic.csv"] == sha256(raw)
    assert by_rule["clean"].data.tags["sha256.data/clean/titanic.csv"] == sha256(clean)
    found = workflow.runs(f"tags.`sha256.data/clean/titanic.csv` = '{sha256(clean)}'")
    assert [r.info.run_id for r in found] == [by_rule["clean"].info.run_id]

    cleaned = by_rule["clean"].data
    rows = titanic_rows()
    assert cleaned.metrics["rows_in"] == len(rows) - 1
    assert cleaned.metrics["rows_out"] == len(expected_clean(rows)) - 1
    assert cleaned.metrics["nulls.Age"] == sum(1 for r in rows[1:] if r[5] == "")
    assert cleaned.params["dropna"] == "any"
    assert by_rule["download"].data.metrics["bytes"] == raw.stat().st_size

    # inputs are logged as MLflow datasets with a digest of their content
    full = workflow.client().get_run(by_rule["clean"].info.run_id)
    (dataset_input,) = full.inputs.dataset_inputs
    assert dataset_input.dataset.digest == sha256(raw)[:32]
    assert dataset_input.dataset.name == "titanic"


def test_no_git_repository_no_commit(tmp_path):
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "missing") is None


def test_nothing_changed_runs_nothing_and_records_nothing(workflow, titanic_url):
    workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    before = len(workflow.runs())
    again = workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    assert again.ran == []
    assert "Nothing to be done" in again.output
    assert len(workflow.runs()) == before


def test_clean_setting_reruns_clean_only(workflow, titanic_url):
    workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    changed = workflow.run(
        "--until", "clean", "--config", f"data_url={titanic_url}", "clean={dropna: all}"
    )
    assert changed.ran == ["clean"]
    assert len(workflow.job_runs("download")) == 1
    assert len(workflow.job_runs("clean")) == 2
    clean = workflow.path / "data/clean/titanic.csv"
    assert clean.read_bytes() == to_csv(titanic_rows())  # no row is entirely null


def test_script_edit_reruns_its_step_only(workflow, titanic_url):
    workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    script = workflow.path / "scripts/clean.py"
    script.write_text(script.read_text() + "\n# an edit\n")
    assert workflow.run("--until", "clean", "--config", f"data_url={titanic_url}").ran == ["clean"]


def test_changed_data_url_reruns_download(workflow, http_server, titanic_url):
    workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    other = http_server.publish("other/titanic.csv", to_csv(titanic_rows(60, seed=3)))
    result = workflow.run("--until", "clean", "--config", f"data_url={other}")
    assert result.ran == ["download", "clean"]
    clean = (workflow.path / "data/clean/titanic.csv").read_bytes()
    assert clean == to_csv(expected_clean(titanic_rows(60, seed=3)))


def test_targets_by_file_and_by_step_name(workflow, titanic_url):
    assert workflow.run("data/raw/titanic.csv", "--config", f"data_url={titanic_url}").ran == [
        "download"
    ]
    assert not (workflow.path / "data/clean/titanic.csv").exists()
    assert workflow.run("--until", "clean", "--config", f"data_url={titanic_url}").ran == ["clean"]
    assert workflow.run("--until", "download", "--config", f"data_url={titanic_url}").ran == []
    parents = workflow.runs("tags.`snakemake.kind` = 'invocation'")
    assert len(parents) == 2


def test_dataset_and_target_from_config(workflow, http_server, tmp_path):
    rows = [
        ["id", "colour", "size"],
        ["1", "red", "3"],
        ["2", "", "4"],
        ["3", "blue", "NA"],
        ["4", "green", "5"],
    ]
    path = tmp_path / "shapes.csv"
    path.write_bytes(to_csv(rows))
    for url in (str(path), f"file://{path}"):
        workflow.run(
            "--until",
            "clean",
            "--forceall",
            "--config",
            f"data_url={url}",
            "dataset=shapes",
            "target=colour",
        )
        out = workflow.path / "data/clean/shapes.csv"
        assert out.read_text() == "id,colour,size\n1,red,3\n4,green,5\n"


def test_local_source_edit_reruns_download(workflow, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(to_csv(titanic_rows(40)))
    workflow.run("--until", "clean", "--config", f"data_url={path}")
    path.write_bytes(to_csv(titanic_rows(50)))
    assert workflow.run("--until", "clean", "--config", f"data_url={path}").ran == [
        "download",
        "clean",
    ]


def test_parent_records_config_without_secrets(workflow, http_server):
    url = http_server.publish("secret/titanic.csv", to_csv(titanic_rows(30)))
    secret_url = url.replace("http://", "http://alice:hunter2@") + "?token=s3cr3t&x=1"
    workflow.run("--until", "clean", "--config", f"data_url={secret_url}")
    (parent,) = workflow.runs("tags.`snakemake.kind` = 'invocation'")
    config = json.loads(
        workflow.client().download_artifacts(
            parent.info.run_id, "config.json", str(workflow.path / "dl")
        )
        and (workflow.path / "dl/config.json").read_text()
    )
    assert "hunter2" not in config["data_url"] and "s3cr3t" not in config["data_url"]
    for run in workflow.runs():
        text = json.dumps([run.data.params, run.data.tags])
        assert "hunter2" not in text and "s3cr3t" not in text
    metadata = "".join(
        p.read_text(errors="ignore") for p in (workflow.path / ".snakemake/metadata").iterdir()
    )
    assert "hunter2" not in metadata and "s3cr3t" not in metadata
    assert "s3cr3t" not in (workflow.path / "logs/download/titanic.log").read_text()


def test_tracking_uri_and_experiment_from_config(workflow, titanic_url, tmp_path):
    """mlflow.tracking_uri and mlflow.experiment in the config; MLFLOW_TRACKING_URI wins."""
    from mlflow.tracking import MlflowClient

    other = tmp_path / "elsewhere.db"
    del workflow.env["MLFLOW_TRACKING_URI"]
    workflow.configure(mlflow={"tracking_uri": f"sqlite:///{other}", "experiment": "mine"})
    workflow.run("--until", "download", "--config", f"data_url={titanic_url}")
    client = MlflowClient(f"sqlite:///{other}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    assert experiment.name == "mine"
    rules = {
        r.data.tags.get("snakemake.rule") for r in client.search_runs([experiment.experiment_id])
    }
    assert rules == {None, "download"}  # the invocation and its job
    # nothing in the store the environment names in the other tests
    workflow.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workflow.db}"
    assert workflow.runs() == []
    # the environment wins over the config
    workflow.run("--until", "clean", "--config", f"data_url={titanic_url}")
    assert {r.data.tags.get("snakemake.rule") for r in workflow.runs()} == {None, "clean"}
