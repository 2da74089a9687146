"""Shared fixtures: a loopback HTTP server, generated datasets, workflow copies, snakemake runs."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ("Snakefile", "config.yaml", "schemas", "envs", "scripts", "report")
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")


# --------------------------------------------------------------------------- data


def titanic_rows(n: int = 120, seed: int = 0) -> list[list[str]]:
    """Titanic-shaped rows (header first): ids, quoted names with commas and quotes, nulls."""
    rng = random.Random(seed)
    header = [
        "PassengerId",
        "Survived",
        "Pclass",
        "Name",
        "Sex",
        "Age",
        "SibSp",
        "Parch",
        "Ticket",
        "Fare",
        "Cabin",
        "Embarked",
    ]
    rows = [header]
    for i in range(1, n + 1):
        pclass = rng.choice([1, 2, 3])
        sex = rng.choice(["male", "female"])
        age = "" if rng.random() < 0.2 else str(rng.choice([22, 38, 26, 35, 54, 2, 27, 14]))
        if age and rng.random() < 0.2:
            age = f"{rng.randint(1, 70)}.5"
        fare = f"{rng.uniform(5, 120):.4f}"
        survived = int(
            (sex == "female") ^ (rng.random() < 0.2) or (pclass == 1 and rng.random() < 0.3)
        )
        name = rng.choice(
            [
                "Braund, Mr. Owen Harris",
                "Cumings, Mrs. John Bradley (Florence)",
                'Nasser, Mrs. Nicholas ("Adele Achem")',
                "Heikkinen, Miss. Laina",
            ]
        )
        cabin = rng.choice(["C85", "C123", "E46", "B96 B98"]) if rng.random() < 0.6 else ""
        embarked = rng.choice(["S", "C", "Q"]) if rng.random() < 0.97 else ""
        rows.append(
            [
                str(i),
                str(survived),
                str(pclass),
                name,
                sex,
                age,
                str(rng.randint(0, 3)),
                str(rng.randint(0, 2)),
                f"A/5 {rng.randint(1000, 99999)}",
                fare,
                cabin,
                embarked,
            ]
        )
    return rows


# four quick models, for the pipeline tests
GRID = {
    "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 1.0}},
    "forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 20},
    },
    "boost": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 20},
    },
    "tree": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
}


def to_csv(rows: list[list[str]], lineterminator: str = "\n") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator).writerows(rows)
    return buf.getvalue().encode()


def expected_clean(rows: list[list[str]]) -> list[list[str]]:
    """Rows the default clean keeps: those without an empty field."""
    return [rows[0]] + [r for r in rows[1:] if all(v != "" for v in r)]


def flower_rows(n: int = 150, seed: int = 1) -> list[list[str]]:
    """A multiclass dataset unlike Titanic: string labels, an id, free text, missing values."""
    rng = random.Random(seed)
    header = ["flower_id", "petal_length", "petal_width", "stem_cm", "colour", "notes", "species"]
    centres = {"setosa": (1.5, 0.3, 20), "versicolor": (4.3, 1.3, 35), "virginica": (5.6, 2.0, 50)}
    colours = {"setosa": "white", "versicolor": "blue", "virginica": "purple"}
    rows = [header]
    for i in range(n):
        species = list(centres)[i % 3]
        length, width, stem = centres[species]
        colour = colours[species] if rng.random() < 0.7 else rng.choice(list(colours.values()))
        rows.append(
            [
                str(1000 + i),
                "" if rng.random() < 0.1 else f"{rng.gauss(length, 0.4):.1f}",
                f"{rng.gauss(width, 0.2):.1f}",
                str(int(rng.gauss(stem, 6))),
                "" if rng.random() < 0.1 else colour,
                f"picked on day {i} near plot {rng.randint(1, 10**6)}",
                species,
            ]
        )
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    """Serves files from ``server.root`` plus fault paths used by the tests.

    /files/<name>             the file
    /status/<code>            that HTTP status
    /flaky/<key>/<n>/<name>   HTTP 503 for the first n requests of <key>, then the file
                              (``?retry_after=<s>`` adds that Retry-After header to the 503s)
    /truncate/<key>/<n>/<name> the first n requests close the body half-way, then the file
    /slow/<seconds>/<name>    waits before answering
    /html                     an HTML page with status 200
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(
        self,
        code: int,
        body: bytes,
        ctype: str = "text/csv",
        length: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, name: str) -> bytes | None:
        path = self.server.root / name
        return path.read_bytes() if path.is_file() else None

    def do_GET(self):
        server = self.server
        parts = self.path.split("?")[0].strip("/").split("/")
        with server.lock:
            server.requests.append(self.path)
        kind = parts[0]
        if kind == "files":
            body = self._file("/".join(parts[1:]))
            return self._send(200, body) if body is not None else self._send(404, b"no")
        if kind == "status":
            return self._send(int(parts[1]), b"error page", "text/plain")
        if kind == "html":
            return self._send(
                200, b"<!DOCTYPE html><html><body>login</body></html>", "text/html; charset=utf-8"
            )
        if kind in ("flaky", "truncate"):
            key, n, name = parts[1], int(parts[2]), "/".join(parts[3:])
            with server.lock:
                seen = server.counts.get(key, 0)
                server.counts[key] = seen + 1
            body = self._file(name) or b""
            if seen < n and kind == "flaky":
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                headers = {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
                return self._send(503, b"busy", "text/plain", headers=headers)
            if seen < n:
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            return self._send(200, body)
        if kind == "slow":
            time.sleep(float(parts[1]))
            body = self._file("/".join(parts[2:])) or b""
            return self._send(200, body)
        return self._send(404, b"unknown")


@dataclass
class Server:
    url: str
    root: Path
    httpd: ThreadingHTTPServer

    def publish(self, name: str, data: bytes) -> str:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)
        return f"{self.url}/files/{name}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests


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


class DroppingServer:
    """A TCP server on 127.0.0.1 that accepts connections and closes them at once.

    It counts the connections it accepts (``accepted``). After ``drop`` connections (all of
    them by default) it answers each further one with ``body`` as a 200 CSV response.
    """

    def __init__(self, drop: int | None = None, body: bytes = b""):
        self.drop, self.body = drop, body
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)  # so the loop sees _stop
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepted += 1
                dropping = self.drop is None or self.accepted <= self.drop
            with conn:
                if not dropping:
                    conn.settimeout(5)
                    conn.recv(65536)  # the request; one read is enough for a small GET
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n"
                        + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                        + self.body
                    )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


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


ADMIN_PASSWORD = "Adm1n-pass-1234"  # the basic-auth test server's admin login


class TrackingServer:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend and served artifacts."""

    def __init__(self, root: Path, port: int | None = None, app_name: str | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        if port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = root / "artifacts"
        self.log = open(root / "server.log", "a")
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.artifacts),
                "--workers",
                "2",
                *(["--app-name", app_name] if app_name else []),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={
                **os.environ,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
                "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            },
        )
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


# --------------------------------------------------------------------------- workflow


@dataclass
class Result:
    returncode: int
    output: str

    @property
    def ran(self) -> list[str]:
        """Rules of the jobs that finished, in order (``all`` excluded)."""
        rules = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", self.output)
        return [r for r in rules if r != "all"]


class Workflow:
    """A private copy of the workflow in a temporary directory, run as a real subprocess."""

    def __init__(self, path: Path):
        self.path = path
        self.db = path / "mlflow.db"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEFLOW_"))
        }
        self.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{self.db}"

    def configure(self, **changes) -> None:
        """Change top-level keys of this copy's config.yaml (as a user would edit it)."""
        path = self.path / "config.yaml"
        config = yaml.safe_load(path.read_text())
        config.update(changes)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: float = 600, cores: int = 2) -> Result:
        proc = subprocess.run(
            [SNAKEMAKE, "--cores", str(cores), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Result(proc.returncode, proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.output[-6000:]}")
        return result

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.env["MLFLOW_TRACKING_URI"])

    def runs(self, filter_string: str = "") -> list:
        """All runs in every experiment of this workflow's store."""
        if self.env["MLFLOW_TRACKING_URI"].startswith("sqlite") and not self.db.exists():
            return []
        client = self.client()
        ids = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(ids, filter_string, max_results=10000)

    def job_runs(self, rule: str | None = None) -> list:
        flt = "tags.`snakeflow.kind` = 'job'"
        if rule:
            flt += f" and tags.`snakemake.rule` = '{rule}'"
        return self.runs(flt)


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite store, copied into each workflow to save start-up time."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


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
