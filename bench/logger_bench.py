"""The logger plugin at scale: a foreign Snakefile of trivial shell jobs
(bench/programs/manyjobs), with and without ``--logger mlflow``, on SQLite and against a
local ``mlflow server``; 10,000 jobs on SQLite; the replay of entries left pending by a
store that went down."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from harness import BIN, PROGRAMS, SNAKEMAKE, summary, timed

LOGGER = ["--logger", "mlflow"]
PENDING = Path(".snakemake/mlflow/pending")


def manyjobs(dest: Path) -> Path:
    """A fresh copy of the many-jobs workflow."""
    shutil.copytree(PROGRAMS / "manyjobs", dest)
    return dest


def env(uri: str | None, plugin: Path | None) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEFLOW_"))}
    out.pop("PYTHONPATH", None)
    if uri:
        out["MLFLOW_TRACKING_URI"] = uri
    if plugin is not None:
        out["PYTHONPATH"] = str(plugin)
    return out


def command(n: int, logger: bool, *extra: str, chain: int = 1) -> list[str]:
    config = ["--config", f"jobs={n}", f"chain={chain}"]
    return [SNAKEMAKE, "--cores", "2", *config, *(LOGGER if logger else []), *extra]


def pending(wf: Path) -> int:
    spool = wf / PENDING
    return len(list(spool.iterdir())) if spool.is_dir() else 0


def runs(db: Path) -> dict:
    """What a store holds under its latest invocation's run: the job runs by status, and
    that parent's ``mlflow_logger.*`` metrics; and how many invocation runs there are."""
    with sqlite3.connect(db) as con:
        parents = con.execute(
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "AND t.key = 'snakemake.kind' AND t.value = 'invocation' ORDER BY r.start_time"
        ).fetchall()
        latest = parents[-1][0] if parents else ""
        by_status = dict(
            con.execute(
                "SELECT r.status, COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "AND t.key = 'mlflow.parentRunId' AND t.value = ? GROUP BY r.status",
                (latest,),
            ).fetchall()
        )
        metrics = dict(
            con.execute(
                "SELECT key, value FROM metrics WHERE run_uuid = ? AND key LIKE 'mlflow_logger.%'",
                (latest,),
            ).fetchall()
        )
    return {"parents": len(parents), "jobs": by_status, "logger_metrics": metrics}


class MlflowServer:
    """A local ``mlflow server`` (SQLite backend, served artifacts) whose access log counts
    the requests it answers."""

    def __init__(self, root: Path, port: int | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.db = root, root / "server.db"
        if port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.log_path = root / "server.log"
        self.log = open(self.log_path, "a")
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--backend-store-uri", f"sqlite:///{self.db}", "--workers", "2"]
        cmd += ["--artifacts-destination", str(root / "artifacts")]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{self.log_path.read_text()[-2000:]}")

    def requests(self) -> int:
        """Requests answered so far (API calls and artifact uploads)."""
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(r'"(?:GET|POST|PUT|PATCH|DELETE) /(?:api|ajax-api)/', text))

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def _checked(wf: Path, db: Path, n: int) -> dict:
    """Zero pending entries at exit, and every job's run FINISHED under one new parent."""
    state = runs(db)
    left = pending(wf)
    finished = state["jobs"].get("FINISHED", 0)
    if left or finished != n or state["parents"] < 1:
        raise RuntimeError(f"{wf}: {left} pending, job runs {state['jobs']}, not {n} FINISHED")
    metrics = state["logger_metrics"]
    return {
        "pending_at_exit": left,
        "job_runs_finished": finished,
        "writer_ms_per_job": 1000 * metrics["mlflow_logger.writer_seconds"] / n,
        "writer_cpu_ms_per_job": 1000 * metrics["mlflow_logger.writer_cpu_seconds"] / n,
    }


def paired(tmp: Path, name: str, n: int, reps: int, store, plugin: Path | None) -> dict:
    """``reps`` pairs of runs without and with the logger, in balanced order (ABBA...), each
    in a fresh copy; ``store(wf)`` gives (tracking URI, SQLite file holding the runs,
    request counter or None)."""
    samples: dict[str, list[float]] = {"plain": [], "logger": []}
    checks, requests = [], []
    for i in range(reps):
        for logged in (False, True) if i % 2 == 0 else (True, False):
            wf = manyjobs(tmp / f"{name}-{i}-{'logger' if logged else 'plain'}")
            uri, db, counter = store(wf)
            before = counter() if counter else 0
            seconds, _, _ = timed(command(n, logged), wf, env(uri, plugin))
            samples["logger" if logged else "plain"].append(seconds)
            if logged:
                checks.append(_checked(wf, db, n) | {"seconds": seconds})
                if counter:
                    requests.append((counter() - before) / n)
            shutil.rmtree(wf)
    plain, logger = (statistics.median(samples[k]) for k in ("plain", "logger"))
    out = {
        "jobs": n,
        "plain_s": summary(samples["plain"]),
        "logger_s": summary(samples["logger"]),
        "ratio": logger / plain,
        "ratio_per_rep": [b / a for a, b in zip(samples["plain"], samples["logger"])],
        "checks": checks,
        "writer_ms_per_job": statistics.median(c["writer_ms_per_job"] for c in checks),
        "writer_cpu_ms_per_job": statistics.median(c["writer_cpu_ms_per_job"] for c in checks),
        "reps": reps,
    }
    if requests:
        out["requests_per_job"] = statistics.median(requests)
    return out


def replay(tmp: Path, n: int, plugin: Path | None) -> dict:
    """``n`` jobs whose SQLite store is locked by another process from the moment the
    invocation's run exists to the end (the writer cannot log: their entries stay pending),
    then, with the lock released, a no-op that logs them: its time against a no-op with
    nothing pending."""
    wf = manyjobs(tmp / f"replay-{n}")
    db, uri = wf / "mlflow.db", f"sqlite:///{wf}/mlflow.db"
    cmd = command(n, True, "--logger-mlflow-drain-timeout", "3")
    proc = subprocess.Popen(
        cmd, cwd=wf, env=env(uri, plugin), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 120
    while time.time() < deadline and not runs_exist(db):
        time.sleep(0.05)
    lock = sqlite3.connect(db, timeout=60, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the store is down for the rest of the run
    try:
        if proc.wait() != 0:
            raise RuntimeError(f"{cmd} failed in {wf}")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    left = pending(wf)
    noop = [SNAKEMAKE, "--cores", "2", "--config", f"jobs={n}", *LOGGER]
    seconds, _, _ = timed(noop, wf, env(uri, plugin))
    state = runs(db)
    bare, _, _ = timed(noop, wf, env(uri, plugin))  # nothing pending now
    if pending(wf) or state["jobs"].get("FINISHED", 0) != n:
        raise RuntimeError(f"replay of {left}: {pending(wf)} left, runs {state['jobs']}")
    shutil.rmtree(wf)
    return {
        "pending_before": left,
        "noop_with_replay_s": seconds,
        "noop_s": bare,
        "replay_s": seconds - bare,
        "ms_per_entry": 1000 * (seconds - bare) / left,
    }


def runs_exist(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return bool(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return False


def bench_logger_sqlite(tmp: Path, plugin: Path | None, reps: int) -> dict:
    def store(wf: Path):
        return f"sqlite:///{wf}/mlflow.db", wf / "mlflow.db", None

    return paired(tmp, "sqlite", 1000, reps, store, plugin)


def bench_logger_server(tmp: Path, plugin: Path | None, reps: int) -> dict:
    server = MlflowServer(tmp / "server")
    try:
        return paired(
            tmp, "server", 1000, reps, lambda wf: (server.url, server.db, server.requests), plugin
        )
    finally:
        server.stop()


def bench_logger_replay(tmp: Path, plugin: Path | None) -> dict:
    small, large = (replay(tmp, n, plugin) for n in (250, 1000))
    return {"runs": [small, large], "linearity": large["ms_per_entry"] / small["ms_per_entry"]}


BIG_CHAIN = 100  # jobs per chain in the big run (see bench/programs/manyjobs/Snakefile)


def bench_logger_big(tmp: Path, plugin: Path | None, jobs: int) -> dict:
    wf = manyjobs(tmp / "big")
    cmd = command(jobs, True, chain=BIG_CHAIN)
    seconds, _, _ = timed(cmd, wf, env(f"sqlite:///{wf}/mlflow.db", plugin))
    out = {"jobs": jobs, "chain": BIG_CHAIN, "logger_s": seconds}
    out |= _checked(wf, wf / "mlflow.db", jobs)
    shutil.rmtree(wf)
    return out
