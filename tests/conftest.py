"""Shared fixtures: a loopback HTTP server, workflow copies with a real MLflow store.

The helpers behind them are in ``tests/support``.
"""

from __future__ import annotations

import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from support.data import titanic_rows, to_csv
from support.servers import DroppingServer, Server, _Handler
from support.workflow import Workflow, copy_workflow


@pytest.fixture(scope="session")
def http_server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("www")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
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
