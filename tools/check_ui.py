"""What an MLflow user sees: the runs and the registered model in `mlflow ui`, in a real browser.

    .venv/bin/python tools/check_ui.py                 # in a directory that ran the pipeline
    .venv/bin/python tools/check_ui.py --model titanic --out ui-check

Starts `mlflow ui` on 127.0.0.1 for the tracking store of the working directory (or
MLFLOW_TRACKING_URI), opens the experiment page and the registered model's pages in headless
Chromium (Debian's `chromium` package), saves a screenshot of each to --out and checks the
rendered page for what a user must see: the experiment in the model-training view with the
runs listed, the champion alias and the version's model card. Exit status 1 names what is
missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ui(uri: str, port: int) -> subprocess.Popen:
    ui = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return ui
        except OSError:
            if time.time() > deadline or ui.poll() is not None:
                raise SystemExit("check_ui: mlflow ui did not start") from None
            time.sleep(0.5)


def browse(chromium: str, url: str, png: Path, profile: Path) -> str:
    """Screenshot ``url`` to ``png`` and return its rendered DOM."""
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    subprocess.run(
        [*flags, f"--screenshot={png}", url], capture_output=True, timeout=120, check=True
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    return dom.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="titanic", help="registered model name")
    parser.add_argument("--alias", default="champion")
    parser.add_argument(
        "--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME", "snakeflow")
    )
    parser.add_argument("--out", default="ui-check", help="directory for the screenshots")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("check_ui: install Chromium first (Debian: apt-get install chromium)")

    from mlflow.tracking import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"check_ui: no experiment {args.experiment!r} in {uri}")
    version = client.get_model_version_by_alias(args.model, args.alias)
    # the table lists invocations; their jobs are nested under them
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`snakemake.kind` = 'invocation'", max_results=5
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    ui = start_ui(uri, port)
    base = f"http://127.0.0.1:{port}/#"
    problems = []
    try:
        with tempfile.TemporaryDirectory() as profile:
            pages = {
                "experiment": f"{base}/experiments/{experiment.experiment_id}/runs",
                "model": f"{base}/models/{args.model}",
                "version": f"{base}/models/{args.model}/versions/{version.version}",
            }
            dom = {
                name: browse(chromium, url, out / f"{name}.png", Path(profile))
                for name, url in pages.items()
            }
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)

    if experiment.tags.get("mlflow.experimentKind") != "custom_model_development":
        problems.append("the experiment is not tagged for the model-training view")
    if "Training runs" not in dom["experiment"] and ">Runs<" not in dom["experiment"]:
        problems.append("the experiment's runs page does not show its runs table")
    if not any(run.info.run_name and run.info.run_name in dom["experiment"] for run in runs):
        problems.append("the experiment page lists none of the latest runs")
    if f"@{args.alias}" not in dom["model"] and args.alias not in dom["model"]:
        problems.append(f"the registered model page does not show the alias {args.alias}")
    first_line = (
        (version.description or "").splitlines()[0].lstrip("# ") if version.description else ""
    )
    if not first_line or first_line not in dom["version"]:
        problems.append("the version page does not show its model card")
    for name in pages:
        print(f"check_ui: {name}: {pages[name]} -> {out / (name + '.png')}")
    for problem in problems:
        print(f"check_ui: MISSING: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
