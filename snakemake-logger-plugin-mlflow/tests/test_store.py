"""What the plugin says when the tracking store cannot be used: one line naming the cause."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from snakemake_logger_plugin_mlflow import channel, direct, store

URI = "sqlite:///file:/w/mlflow.db?mode=ro&uri=true"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # SQLAlchemy quotes the statement: a run id or timestamp may hold the digits 401
        (
            "(sqlite3.OperationalError) attempt to write a readonly database\n[parameters: "
            "('26384559e7ff458da2f84011ec7a094d', 1796314053410)]",
            "the database is read-only",
        ),
        ("API request to endpoint /api/2.0/mlflow/runs/create failed with error code 401", "401"),
        ("401 Client Error: Unauthorized for url: http://127.0.0.1:5000/api", "401"),
        ("run 'a4019f' not found", "run 'a4019f' not found"),
    ],
)
def test_the_cause_is_named_from_the_error_not_from_digits_in_it(text, reason):
    line = str(store.error(RuntimeError(text), URI))
    assert line.startswith(f"MLflow tracking store {URI} is not usable: ")
    assert reason in line and "\n" not in line
    assert ("401 Unauthorized" in line) == (reason == "401")


def test_a_fresh_sqlite_store_is_the_one_mlflow_makes(tmp_path, monkeypatch):
    """A new SQLite store is copied from an empty one made once (MLflow's migrations take
    seconds); the copy is what MLflow itself would have made in this directory."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(channel.CACHE_ENV, str(tmp_path / "cache"))
    here = tmp_path / "project"
    here.mkdir()
    monkeypatch.chdir(here)
    made = f"sqlite:///{here / 'made.db'}"
    MlflowClient(made).search_experiments()  # by MLflow itself
    copied = direct.resolve_uri("sqlite:///copied.db")
    client, experiment_id = store.connect(copied, "plain")
    assert list((tmp_path / "cache").glob("empty-mlflow-*.db"))  # the empty store, kept

    def schema(db):
        """Tables, indexes and their definitions (lines sorted: MLflow's own batch migrations
        write a table's constraints in no fixed order), and the schema version."""
        with sqlite3.connect(db) as con:
            tables = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            rows = [(t, name, sorted((sql or "").split("\n"))) for t, name, sql in tables]
            return rows, con.execute("SELECT * FROM alembic_version").fetchall()

    assert schema(here / "copied.db") == schema(here / "made.db")
    default = {uri: MlflowClient(uri).get_experiment("0") for uri in (made, copied)}
    assert default[made].artifact_location == default[copied].artifact_location
    assert default[copied].artifact_location.endswith("/mlruns/0")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    # a second fresh store comes from the same empty one, made once
    (empty,) = (tmp_path / "cache").glob("empty-mlflow-*.db")
    stamp = empty.stat().st_mtime_ns
    store.connect(direct.resolve_uri("sqlite:///other.db"), "plain")
    assert empty.stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """The empty store of this MLflow version, made (and checked) once, in a cache of these
    tests (set for as long as they run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(channel.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield store.empty_store()


KIND = (channel.EXPERIMENT_KIND_TAG, channel.EXPERIMENT_KIND)


def test_the_invocation_run_is_written_directly_only_as_mlflow_writes_it(
    empty, tmp_path, monkeypatch
):
    """Where the plugin writes the invocation's run into SQLite itself (so that the first
    job does not wait for MLflow's import), it writes what MLflow writes: checked once per
    MLflow version, every table of the two databases compared."""
    monkeypatch.chdir(tmp_path)
    assert direct.facts()["direct"] is True
    assert direct.facts()["revision"] == direct.revision(empty)
    (tmp_path / "ok").mkdir()
    assert store.direct_matches(empty, tmp_path / "ok")
    # the comparison sees a difference: another artifact location for the new experiment
    monkeypatch.setattr(direct, "artifact_root", lambda: str(tmp_path / "elsewhere"))
    (tmp_path / "off").mkdir()
    assert not store.direct_matches(empty, tmp_path / "off")


def test_a_run_written_directly_reads_back_through_mlflow(empty, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = direct.resolve_uri("sqlite:///mlflow.db")
    tags = direct.parent_tags(
        snakefile="Snakefile", commit=None, targets=["a"], jobs=2, command="x"
    )
    experiment_id, run_id = direct.open_parent(uri, "wf", tags=tags, run_name="r", kind=KIND)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.info.run_name == "r"
    assert run.info.experiment_id == experiment_id
    assert run.data.tags[channel.JOBS_TAG] == "2" and run.data.tags[channel.USER_TAG]
    assert run.info.artifact_uri == f"{tmp_path}/mlruns/{experiment_id}/{run_id}/artifacts"
    experiment = client.get_experiment_by_name("wf")
    assert experiment.tags[channel.EXPERIMENT_KIND_TAG] == channel.EXPERIMENT_KIND
    # the same experiment next time; the writer's client logs to the run and ends it
    again = direct.open_parent(uri, "wf", tags=tags, run_name="r2", kind=KIND)
    assert again[0] == experiment_id
    client.log_metric(run_id, "m", 1.0)
    client.set_terminated(run_id)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_experiment("0").artifact_location == f"{tmp_path}/mlruns/0"


def test_anything_but_a_store_of_this_revision_goes_through_mlflow(empty, tmp_path, monkeypatch):
    """Another schema revision, a deleted experiment, a read-only or broken file, another
    store: nothing is written, and MLflow (with its own checks and messages) makes the run."""
    import sqlite3

    monkeypatch.chdir(tmp_path)
    tags = direct.parent_tags(snakefile="S", commit=None, targets=[], jobs=1, command="")

    def opened(path: Path, experiment="wf"):
        uri = direct.resolve_uri(f"sqlite:///{path}")
        return direct.open_parent(uri, experiment, tags=tags, run_name="r", kind=KIND)

    def runs(path: Path) -> int:
        with sqlite3.connect(path) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0]

    older = tmp_path / "older.db"
    shutil.copyfile(empty, older)
    with sqlite3.connect(older) as con:
        con.execute("UPDATE alembic_version SET version_num = 'an0ther'")
    assert opened(older) is None and runs(older) == 0

    deleted = tmp_path / "deleted.db"
    assert opened(deleted) is not None
    with sqlite3.connect(deleted) as con:
        con.execute("UPDATE experiments SET lifecycle_stage = 'deleted' WHERE name = 'wf'")
    assert opened(deleted) is None and runs(deleted) == 1

    readonly = tmp_path / "readonly.db"
    shutil.copyfile(empty, readonly)
    readonly.chmod(0o444)
    if os.access(readonly, os.W_OK):  # root writes anyway: make it unopenable instead
        readonly.write_text("not a database")
    assert opened(readonly) is None

    assert (
        direct.open_parent("http://127.0.0.1:9/", "wf", tags=tags, run_name="r", kind=KIND) is None
    )
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert opened(tmp_path / "workspaces.db") is None
    assert not (tmp_path / "workspaces.db").exists()


def test_the_mlflow_version_is_read_without_importing_mlflow():
    import subprocess
    import sys

    import mlflow

    code = (
        "import sys; from snakemake_logger_plugin_mlflow import direct; "
        "print(direct.mlflow_version(), 'mlflow' in sys.modules, "
        "'importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [mlflow.__version__, "False", "False"]


@pytest.mark.parametrize(
    "message, retried",  # by JobWriter._log_inputs
    [
        # a concurrent request inserted the row first (SQLite, PostgreSQL, MySQL backends)
        ("BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: datasets.name", True),
        ('BAD_REQUEST: duplicate key value violates unique constraint "dataset_pk"', True),
        ("BAD_REQUEST: (pymysql.err.IntegrityError) Duplicate entry 'x' for key", True),
        # refused for what the request says: sending it again cannot help
        ("INVALID_PARAMETER_VALUE: Invalid value 'a~b' for parameter 'key'", False),
        ("BAD_REQUEST: Changing param values is not allowed", False),
    ],
)
def test_a_taken_unique_key_is_told_from_an_invalid_request(message, retried):
    """JobWriter sends a refused log_inputs once more if its dataset's key was taken (by a
    concurrent request); the writer's lanes never retry a refusal."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ErrorCode

    code, _, text = message.partition(": ")
    exc = MlflowException(text, error_code=ErrorCode.Value(code))
    assert store.refused(exc)
    assert store.conflict(exc) is retried
