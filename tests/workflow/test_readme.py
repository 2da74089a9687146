"""The README's commands, as a new user runs them: after `make run` alone, in the venv it made.

The suite's own venv has the test and cluster tools; this one has only requirements.txt, so a
command that needs a package only the dev requirements bring in fails here. Every command in
the README's unindented ``bash`` blocks is either run or skipped with a reason below; a new
command makes this test fail until it is handled.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import ROOT, flower_rows, free_port, house_rows, titanic_rows, to_csv

README = (ROOT / "README.md").read_text()
SKIP = {
    "make test": "this suite",
    "make bench": "the benchmark (run by hand, reported in BENCHMARKS.md)",
    ".venv/bin/python bench/run.py": "one section of the benchmark, by hand",
    "conda create": "no conda channel is reachable here; tests/workflow/test_envs.py checks envs",
    "conda activate": "conda",
    "pip install ./snakemake-logger-plugin-mlflow": "the conda path",
    "snakemake --use-conda": "conda",
    ". .venv/bin/activate": "the commands below run with .venv/bin on PATH",
    "cd /path/to/": "tests/workflow/test_places.py runs the workflow from another directory",
    "/path/to/snakeflow/": "tests/workflow/test_places.py",
    ".venv/bin/pip install -r requirements-cluster.txt": "the cluster tests' venv has it",
    "snakemake --profile profiles/sge": "tests/cluster/test_sge.py runs it on Grid Engine",
    "apt-get install chromium": "a system package; tools/check_ui.py is run by hand",
    ".venv/bin/python tools/check_ui.py": "needs Chromium (run by hand, see the README)",
}


def blocks(lang: str) -> list[str]:
    """The unindented fenced blocks of ``lang`` in the README."""
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[str]:
    """Each command of the bash blocks (comments dropped; a heredoc kept whole)."""
    out = []
    for block in blocks("bash"):
        lines = iter(block.splitlines())
        for line in lines:
            if "<<'EOF'" in line:
                body = []
                for more in lines:
                    if more == "EOF":
                        break
                    body.append(more)
                out.append(line + "\n" + "\n".join(body) + "\nEOF")
                continue
            command = line.split("  #")[0].strip()
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            if command:
                out.append(command)
    return out


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory, http_server):
    """The repository's files in a new directory after `make run` (its own .venv)."""
    clone = tmp_path_factory.mktemp("clone")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes((ROOT / name).read_bytes())
    url = http_server.publish("readme/titanic.csv", to_csv(titanic_rows(400, seed=3, noise=0.05)))
    spy = clone / "spy-bin"  # Slurm's client, recording every call
    spy.mkdir()
    (spy / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {clone}/scontrol.calls\nexit 1\n')
    (spy / "scontrol").chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "SNAKEFLOW_", "VIRTUAL_ENV", "PYTHON"))
    }
    env |= {
        "SNAKEFLOW_DATA_URL": url,
        "PATH": f"{clone / '.venv/bin'}:{spy}:{env['PATH']}",
        "PYTHON": sys.base_prefix + "/bin/python3",
    }
    first = commands()[0]
    assert first == "make run", "the README's first command is `make run`"
    proc = subprocess.run(
        ["make", "run", f"PYTHON={env['PYTHON']}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return clone, env, http_server


HOUSING = "https://raw.githubusercontent.com/ageron/handson-ml2/master/datasets/housing/housing.csv"


def _run(command: str, clone: Path, env: dict) -> subprocess.CompletedProcess:
    if "--config data_url=" in command or "--configfile" in command:
        # SNAKEFLOW_DATA_URL would win over it (the single-dataset form), as documented
        env = {k: v for k, v in env.items() if k != "SNAKEFLOW_DATA_URL"}
    return subprocess.run(
        ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )


def test_every_readme_command_works_after_make_run_alone(fresh_clone):
    clone, env, http_server = fresh_clone
    urls = {
        "https://example.org/iris.csv": http_server.publish(
            "readme/iris.csv", to_csv(flower_rows())
        ),
        HOUSING: http_server.publish("readme/housing.csv", to_csv(housing_rows())),
    }
    # no internet here: the Titanic of config.yaml is served on loopback too
    offline = clone / "offline.yaml"
    offline.write_text(f"datasets: {{titanic: {{url: '{env['SNAKEFLOW_DATA_URL']}'}}}}\n")
    ran = []
    servers: list[subprocess.Popen] = []
    try:
        _run_all(commands()[1:], clone, env, urls, ran, servers)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    assert any("--report" in c for c in ran) and any("EOF" in c for c in ran)
    assert any("invocations" in c for c in ran)
    assert (clone / "results/housing/predictions.csv").exists()
    assert (clone / "report.html").stat().st_size > 10_000
    assert len(ran) >= 10


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import socket

    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.time() < deadline and proc.poll() is None, f"nothing on port {port}"
            time.sleep(0.5)


def housing_rows() -> list[list[str]]:
    """A small stand-in for the California housing CSV: a regression target by its name."""
    rows = house_rows(300)
    rows[0] = [c if c != "price" else "median_house_value" for c in rows[0]]
    return rows


def _run_all(commands_, clone, env, urls, ran, servers) -> None:
    for command in commands_:
        if any(command.startswith(prefix) for prefix in SKIP):
            continue
        if " ui " in command:  # a server: start it, see it answer, stop it
            port = free_port()
            ui = subprocess.Popen(
                ["bash", "-c", f"{command} --port {port}"],
                cwd=clone,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                deadline = time.time() + 120
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as r:
                            assert r.status == 200
                            break
                    except OSError:
                        assert time.time() < deadline and ui.poll() is None, command
                        time.sleep(0.5)
            finally:
                os.killpg(ui.pid, signal.SIGTERM)
                ui.wait(30)
            ran.append(command)
            continue
        if command.endswith("&"):  # a server in the background: up before the next command
            port = int(re.search(r"(?:-p|--port) (\d+)", command).group(1))
            servers.append(
                subprocess.Popen(
                    ["bash", "-c", command.rstrip("& ")],
                    cwd=clone,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            _wait_for_port(port, servers[-1])
            ran.append(command)
            continue
        # no internet here: the README's example URLs are served on loopback instead
        for url, local in urls.items():
            command = command.replace(url, local)
        command = command.replace(
            "--configfile my-datasets.yaml", "--configfile my-datasets.yaml offline.yaml"
        )
        proc = _run(command, clone, env)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        ran.append(command)


def test_readme_python_snippets_work(fresh_clone):
    clone, env, _ = fresh_clone
    snippets = [b for b in blocks("python") if "import mlflow" in b]
    assert snippets
    for code in snippets:
        proc = subprocess.run(
            [str(clone / ".venv/bin/python"), "-c", code],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, code + proc.stderr[-3000:]


def test_a_local_run_does_not_ask_slurm(fresh_clone):
    """The default install has no cluster plugin: no snakemake call runs scontrol."""
    clone, env, _ = fresh_clone
    proc = _run("snakemake --cores 1 -n", clone, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (clone / "scontrol.calls").exists()
    freeze = _run("pip freeze", clone, env).stdout
    assert "snakemake-executor-plugin-slurm" not in freeze
    assert "snakemake-logger-plugin-mlflow" in freeze
