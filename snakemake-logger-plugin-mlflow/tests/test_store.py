"""What the plugin says when the tracking store cannot be used: one line naming the cause."""

from __future__ import annotations

import pytest
from snakemake_logger_plugin_mlflow import store

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
