"""Shared fixtures: a loopback HTTP server, workflow copies with a real MLflow store.

The helpers behind them are in ``tests/support``.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest

from support import schedule
from support.data import GRID, REGRESSORS, house_rows, titanic_rows, to_csv
from support.servers import DroppingServer, QuietHTTPServer, Server, TrackingServer, _Handler
from support.workflow import Workflow, copy_workflow


def pytest_collection_modifyitems(config, items):
    """The slowest tests first, spread over the xdist workers (tests/support/schedule.py)."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers > 1:
        items[:] = schedule.order(items, workers)


@pytest.fixture(scope="session")
def http_server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("www")
    httpd = QuietHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.root, httpd.lock, httpd.counts, httpd.requests = root, threading.Lock(), {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, httpd)
    httpd.shutdown()


@pytest.fixture
def dropping_server():
    """Make DroppingServer(drop=..., body=...) instances; all are closed after the test."""
    servers: list[DroppingServer] = []

    def make(drop: int | None = None, body: bytes = b"") -> DroppingServer:
        servers.append(DroppingServer(drop, body))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def titanic_url(http_server) -> str:
    return http_server.publish("titanic.csv", to_csv(titanic_rows()))


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite store, copied into each workflow to save start-up time."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def fresh_workflow(tmp_path) -> Workflow:
    """A workflow copy with no MLflow store yet."""
    return Workflow(copy_workflow(tmp_path / "wf"))


@pytest.fixture
def workflow(tmp_path, store_template) -> Workflow:
    """A workflow copy with an empty, already-migrated MLflow store."""
    wf = Workflow(copy_workflow(tmp_path / "wf"))
    shutil.copy2(store_template, wf.db)
    return wf


@pytest.fixture(scope="session")
def cluster_server(tmp_path_factory):
    """The team set-up the README recommends: an mlflow server on PostgreSQL
    (``SNAKEFLOW_POSTGRES_URI``, started by tests/cluster/postgres.sh in CI)."""
    backend = os.environ.get("SNAKEFLOW_POSTGRES_URI")
    if not backend and (
        os.environ.get("SNAKEFLOW_REQUIRE_SLURM") or os.environ.get("SNAKEFLOW_REQUIRE_SGE")
    ):
        pytest.fail("CI runs the cluster tests on PostgreSQL: SNAKEFLOW_POSTGRES_URI is unset")
    srv = TrackingServer(tmp_path_factory.mktemp("tracking-server"), backend=backend, workers=2)
    yield srv
    srv.stop()


@pytest.fixture
def cluster_workflow(tmp_path, cluster_server, http_server):
    """A workflow copy for the cluster tests: the shared tracking server, its own experiment,
    two datasets (a classification and a regression one, in one DAG) with their own
    registered models (the experiment's name, and that name + ``-houses``)."""

    wf = Workflow(copy_workflow(tmp_path / "wf"))
    wf.env["MLFLOW_TRACKING_URI"] = cluster_server.url
    name = f"{tmp_path.name[:40]}-{uuid.uuid4().hex[:8]}"  # the server's store may be reused
    wf.env["MLFLOW_EXPERIMENT_NAME"] = name  # one experiment per test
    url = http_server.publish(f"slurm/{tmp_path.name}.csv", to_csv(titanic_rows(300, seed=7)))
    houses = http_server.publish(f"slurm/{tmp_path.name}-houses.csv", to_csv(house_rows(200)))
    datasets = {
        "titanic": {
            "url": url,
            "target": "Survived",
            "register": {"threshold": 0.5, "model_name": name},
        },
        "houses": {
            "url": houses,
            "target": "price",
            "task": "regression",
            "register": {"model_name": f"{name}-houses"},
        },
    }
    wf.configure(datasets=datasets, models=GRID | REGRESSORS)
    return wf
