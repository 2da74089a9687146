"""Where users run the workflow from: another working directory (-s, --directory) and a
`module` of their own Snakefile. Outputs, logs and the MLflow store stay in their directory."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
import yaml

from support import SNAKEMAKE, copy_workflow, titanic_rows, to_csv


@pytest.fixture
def places(tmp_path, http_server):
    """A workflow copy and an empty working directory with a config.yaml of its own."""
    workflow = copy_workflow(tmp_path / "snakeflow")
    work = tmp_path / "work"
    work.mkdir()
    url = http_server.publish("places/titanic.csv", to_csv(titanic_rows(120)))
    config = {"datasets": {"mine": {"url": url, "target": "Survived"}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = {"PATH": subprocess.os.environ["PATH"], "HOME": subprocess.os.environ["HOME"]}
    return workflow, work, env


def _snakemake(*args, cwd, env) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _assert_in(work, workflow) -> None:
    assert (work / "data/clean/mine.csv").exists()
    assert (work / "logs/clean/mine.log").exists()
    assert (work / "mlflow.db").exists()
    for made in ("data", "logs", "mlflow.db", ".snakemake"):
        assert not (workflow / made).exists(), f"{made} written into the workflow's folder"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    rules = {r.data.tags.get("snakemake.rule") for r in client.search_runs(ids)}
    assert {"download", "clean"} <= rules


def test_snakefile_from_another_directory(places):
    workflow, work, env = places
    _snakemake("-s", str(workflow / "Snakefile"), "--until", "clean", cwd=work, env=env)
    _assert_in(work, workflow)


def test_directory_option(places, tmp_path):
    workflow, work, env = places
    _snakemake(
        "-s",
        str(workflow / "Snakefile"),
        "--directory",
        str(work),
        "--until",
        "clean",
        cwd=tmp_path,
        env=env,
    )
    _assert_in(work, workflow)


def test_as_a_module_of_the_users_snakefile(places):
    workflow, work, env = places
    (work / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            configfile: "config.yaml"


            module snakeflow:
                snakefile:
                    "{workflow / "Snakefile"}"
                config:
                    config


            use rule * from snakeflow
            """
        )
    )
    # the user's workflow has no profile of its own: the logger is asked for by name
    _snakemake(
        "--until", "clean", "--logger", "mlflow", cwd=work, env=env
    )  # targets before --logger
    _assert_in(work, workflow)
