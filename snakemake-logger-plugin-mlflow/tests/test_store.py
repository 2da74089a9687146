"""What the plugin says when the tracking store cannot be used: one line naming the cause."""

from __future__ import annotations

import pytest
from snakemake_logger_plugin_mlflow import channel, store

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
    copied = store.resolve_uri("sqlite:///copied.db")
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
    store.connect(store.resolve_uri("sqlite:///other.db"), "plain")
    assert empty.stat().st_mtime_ns == stamp
