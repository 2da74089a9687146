"""Real servers on 127.0.0.1: a fault-injecting HTTP file server, a server that drops every
connection, and an ``mlflow server``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .workflow import BIN


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


class QuietHTTPServer(ThreadingHTTPServer):
    """The loopback file server: a client that drops its connection (as the retry tests do)
    is not an error worth a traceback on the test output."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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


ADMIN_PASSWORD = "Adm1n-pass-1234"  # the basic-auth test server's admin login


def free_port() -> int:
    """A port nobody listens on now (another process may take it: retry if so)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TrackingServer:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite (or the given) backend and served
    artifacts, with ``workers`` server processes: one starts faster, several share the store as
    a deployed server's workers do."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        app_name: str | None = None,
        backend: str | None = None,
        workers: int = 1,
    ):
        self.root = root
        self.workers = workers
        self.backend = backend or f"sqlite:///{root / 'mlflow.db'}"
        root.mkdir(parents=True, exist_ok=True)
        self.artifacts = root / "artifacts"
        self.app_name = app_name
        for _ in range(5):  # a picked free port may be taken by another worker meanwhile
            self.port = port or free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            if self._start():
                return
            self.stop()
            if port:
                break
        raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()}")

    def _start(self) -> bool:
        self.log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                self.backend,
                "--artifacts-destination",
                str(self.artifacts),
                "--workers",
                str(self.workers),
                *(["--app-name", self.app_name] if self.app_name else []),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env={
                **os.environ,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
                "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                # no background job consumers (online scoring, trace archival): the tests
                # use none of them, and they take the CPU the workflows under test need
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self._listening()
            except OSError:
                time.sleep(0.5)
        return False

    def _listening(self) -> bool:
        """Whether the server answering on the port is this one (not another worker's)."""
        import psutil

        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                for p in procs
                for c in p.net_connections("tcp")
            )
        except psutil.Error:
            return False

    def stop(self):
        """Stop the server and its workers (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.log.close()
