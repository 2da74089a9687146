"""What the benchmark needs around the measures: data, a loopback server, timing, copies of
the workflow (today's and an old commit's), and reading the job times a run leaves behind."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "bench" / "programs"
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
PLUGIN_DIR = "snakemake-logger-plugin-mlflow"
sys.path.insert(0, str(ROOT / "scripts"))
from snakeflow.workflow import WORKFLOW_FILES


def titanic_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """A Titanic-shaped CSV (12 columns, ~20% missing Age, ~77% missing Cabin, quoted names)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n = rows
    sex = rng.choice(["male", "female"], n)
    pclass = rng.choice([1, 2, 3], n, p=[0.24, 0.21, 0.55])
    survived = ((sex == "female") ^ (rng.random(n) < 0.2)).astype(int)
    age = np.round(rng.uniform(0.5, 80, n), 0)
    names = np.array(
        [
            "Braund, Mr. Owen Harris",
            'Nasser, Mrs. Nicholas ("Adele")',
            "Heikkinen, Miss. Laina",
            "Allen, Mr. William Henry",
        ]
    )[rng.integers(0, 4, n)]
    cabins = np.array(["C85", "C123", "E46", "B96 B98", "G6"])[rng.integers(0, 5, n)]
    table = pa.table(
        {
            "PassengerId": pa.array(np.arange(1, n + 1)),
            "Survived": pa.array(survived),
            "Pclass": pa.array(pclass),
            "Name": pa.array(names),
            "Sex": pa.array(sex),
            "Age": pa.array(age.astype(int), mask=rng.random(n) < 0.2),
            "SibSp": pa.array(rng.integers(0, 4, n)),
            "Parch": pa.array(rng.integers(0, 3, n)),
            "Ticket": pa.array(np.char.add("A/5 ", rng.integers(1000, 99999, n).astype(str))),
            "Fare": pa.array(np.round(rng.uniform(5, 120, n), 4)),
            "Cabin": pa.array(cabins, mask=rng.random(n) < 0.77),
            "Embarked": pa.array(rng.choice(["S", "C", "Q"], n), mask=rng.random(n) < 0.01),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    return path


def houses_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """A regression CSV: a price (with cents) from area, rooms, age and district, with noise,
    an id column and ~5% missing ages."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n = rows
    area = np.round(rng.uniform(35, 220, n), 1)
    rooms = np.maximum(1, area // 30 + rng.integers(-1, 2, n)).astype(int)
    age = rng.integers(0, 90, n)
    district = rng.choice(["north", "centre", "south"], n)
    premium = np.select([district == "north", district == "centre"], [40_000.0, 90_000.0], 0.0)
    price = 2_500 * area + 8_000 * rooms - 600 * age + premium + rng.normal(0, 15_000, n)
    table = pa.table(
        {
            "house_id": pa.array(np.arange(5000, 5000 + n)),
            "area_m2": pa.array(area),
            "rooms": pa.array(rooms),
            "age_years": pa.array(age, mask=rng.random(n) < 0.05),
            "district": pa.array(district),
            "price": pa.array(np.round(price, 2)),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request on stderr
        pass


class Server:
    """Serve a directory on 127.0.0.1 over HTTP (a real server, in a thread)."""

    def __init__(self, root: Path):
        handler = partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def timed(cmd, cwd=None, env=None) -> tuple[float, int, str]:
    """Run ``cmd``; return (seconds, peak RSS of the process tree's largest child in MB, output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed:\n{out[-3000:]}")
    return seconds, usage.ru_maxrss // 1024, out


def python(program: str, *args) -> list[str]:
    """The command that runs bench/programs/<program> with this interpreter."""
    return [sys.executable, str(PROGRAMS / program), *map(str, args)]


def alternating(commands: dict, reps: int) -> dict[str, list[float]]:
    """Seconds of each of ``commands`` ({name: (cmd, cwd, env)}), run in turn ``reps`` times."""
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(reps):
        for name, (cmd, cwd, env) in commands.items():
            samples[name].append(timed(cmd, cwd, env)[0])
    return samples


def summary(samples: Iterable[float]) -> dict:
    """Median, minimum and maximum of ``samples`` (and the samples)."""
    samples = list(samples)
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


# --------------------------------------------------------------------------- the workflow


def snapshot(dest: Path, rev: str | None) -> Path:
    """The repository's files at ``rev`` (``git archive``), or the working tree's if None."""
    dest.mkdir(parents=True)
    if rev is None:
        for name in (*WORKFLOW_FILES, PLUGIN_DIR):
            copy(ROOT / name, dest / name)
    else:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def describe(rev: str | None) -> str:
    """The commit measured, as ``git describe`` would name it (``-dirty`` for the working tree)."""
    args = ["describe", "--always", "--dirty"] if rev is None else ["describe", "--always", rev]
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip() or (rev or "working tree")


def copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
    elif src.exists():
        shutil.copy2(src, dst)


def workflow_copy(source: Path, dest: Path, **config) -> Path:
    """A fresh working copy of the workflow in ``source``, with ``config`` overriding its
    config.yaml; the registration gate is off (it is not what is measured)."""
    import yaml

    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        copy(source / name, dest / name)
    path = dest / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["register"] = {**data.get("register", {}), "threshold": 0.0}
    data.update(config)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def env_for(workdir: Path, plugin: Path | None = None) -> dict:
    """The environment of a run in ``workdir``: its own SQLite store, and an ``scontrol`` that
    fails at once (bench/programs/bin/scontrol says why); with ``plugin``, the logger plugin is
    imported from that source tree rather than from the venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEFLOW_"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{PROGRAMS / 'bin'}:{BIN}:{os.environ['PATH']}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    if plugin is not None:
        env["PYTHONPATH"] = str(plugin)
    return env


def ran(output: str) -> list[str]:
    """The rules of the jobs a snakemake run finished, from its output."""
    return [r for r in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output) if r != "all"]


def benchmark_walls(workdir: Path) -> dict[str, list[float]]:
    """Each job's wall time by rule, from the Snakemake ``benchmark:`` files of a run."""
    walls: dict[str, list[float]] = {}
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(workdir / "benchmarks").parts[0]
        walls.setdefault(rule, []).append(float(path.read_text().splitlines()[1].split()[0]))
    return walls


def run_walls(workdir: Path) -> dict[str, list[float]]:
    """Each job's wall time by rule, from its MLflow run: the logger plugin's ``seconds``
    metric, from the job's start (Snakemake's job_info) to its end (job_finished)."""
    query = (
        "SELECT t.value, m.value FROM tags t JOIN metrics m ON m.run_uuid = t.run_uuid "
        "WHERE t.key = 'snakemake.rule' AND m.key = 'seconds'"
    )
    walls: dict[str, list[float]] = {}
    with sqlite3.connect(workdir / "mlflow.db") as db:
        for rule, seconds in db.execute(query):
            walls.setdefault(rule, []).append(float(seconds))
    return walls


def timeline(workdir: Path, launched: float, ended: float) -> dict[str, float]:
    """Where the wall time of the latest snakemake invocation in ``workdir`` went, from the
    MLflow runs the logger plugin made (epoch seconds ``launched`` and ``ended`` around the
    ``snakemake`` process): start-up until the parent run exists, until the first job
    starts, the jobs, and the end (the last job's end until the process exits: the plugin
    logs what is left, Snakemake shuts down)."""
    with sqlite3.connect(workdir / "mlflow.db") as db:
        parent, started = db.execute(
            "SELECT run_uuid, start_time FROM runs WHERE run_uuid NOT IN "
            "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId') "
            "ORDER BY start_time DESC LIMIT 1"
        ).fetchone()
        first, last = db.execute(
            "SELECT MIN(r.start_time), MAX(r.end_time) FROM runs r JOIN tags t "
            "ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId' AND t.value = ?",
            (parent,),
        ).fetchone()
    return {
        "to_parent_run_s": started / 1000 - launched,
        "parent_run_to_first_job_s": (first - started) / 1000,
        "jobs_s": (last - first) / 1000,
        "after_last_job_s": ended - last / 1000,
    }


# --------------------------------------------------------------------------- DVC, the peer

DVC_REQUIREMENTS = ROOT / "bench" / "requirements-dvc.txt"
DVC_VENV = ROOT / "bench" / ".dvc-venv"  # gitignored; made by dvc_venv() on first use
GIT_USER = ("-c", "user.name=snakeflow bench", "-c", "user.email=bench@localhost")


def dvc_venv(venv: Path = DVC_VENV) -> tuple[Path, float | None]:
    """The bin directory of a venv holding bench/requirements-dvc.txt (DVC, DVCLive, pandas),
    made with ``python -m venv`` + pip on first use or when that file changed; and the
    seconds the install took (None when the venv was already there)."""
    stamp = venv / DVC_REQUIREMENTS.name  # the requirements the venv was made from
    wanted = DVC_REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin", None
    print(f"installing {DVC_REQUIREMENTS.name} into {venv} ...", file=sys.stderr, flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    start = time.perf_counter()
    timed([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    timed([*pip, "--disable-pip-version-check", "-r", str(DVC_REQUIREMENTS)])
    seconds = time.perf_counter() - start
    stamp.write_text(wanted)
    return venv / "bin", seconds


def dvc_env(bin_dir: Path) -> dict:
    """The environment of a ``dvc`` run: the DVC venv first on the PATH (its ``python`` runs
    the stages), the stub ``scontrol``, no MLflow or snakeflow settings, no usage reports."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "SNAKEFLOW_", "DVC_", "DVCLIVE_"))
    }
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PATH"] = f"{bin_dir}:{PROGRAMS / 'bin'}:{os.environ['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"  # dvc would start a daemon per command to send them
    return env


def dvc_project(dest: Path, url: str, env: dict) -> Path:
    """A fresh DVC project of bench/programs/dvc fetching ``url``: ``git init``, ``dvc init``
    and a first commit (DVCLive stops in a git repository without one), as a user has it."""
    import yaml

    shutil.copytree(PROGRAMS / "dvc", dest, ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["download"]["url"] = url
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "--quiet"],
        ["dvc", "init", "--quiet"],
        ["git", "add", "--all"],
        ["git", *GIT_USER, "commit", "--quiet", "--message", "pipeline"],
    ):
        timed(cmd, dest, env)
    return dest
