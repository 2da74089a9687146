"""snakeflow benchmark: what the pipeline costs beyond its own work, and against alternatives.

    .venv/bin/python bench/run.py            # everything (under 10 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # skip the 10 M-row scale test

Prints a table, writes bench/results.json and (with --markdown) BENCHMARKS.md. Compared
commands run in the same session, alternating, and report medians: this machine is shared
and noisy, so the ratios matter, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
WORKFLOW_FILES = ("Snakefile", "config.yaml", "schemas", "envs", "scripts", "report")
sys.path.insert(0, str(ROOT / "scripts"))

MODELS3 = {
    "logreg": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"C": 1.0, "max_iter": 1000},
    },
    "forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 300},
    },
    "boost": {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {}},
}


# --------------------------------------------------------------------------- helpers


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


def median_alternating(commands: dict, reps: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(reps):
        for name, (cmd, cwd, env) in commands.items():
            samples[name].append(timed(cmd, cwd, env)[0])
    return {k: statistics.median(v) for k, v in samples.items()}


def workflow_copy(dest: Path, **config) -> Path:
    import yaml

    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    path = dest / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["register"] = {"threshold": 0.0}  # the gate is not what is measured here
    data.update(config)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def env_for(workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SNAKEFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    return env


def ran(output: str) -> list[str]:
    import re

    return [r for r in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output) if r != "all"]


# --------------------------------------------------------------------------- benchmarks


def bench_noop(tmp: Path, wf: Path, reps: int) -> dict:
    """``snakemake`` on the up-to-date pipeline ``wf`` vs on a trivial 2-rule Snakefile."""
    trivial = tmp / "trivial"
    trivial.mkdir()
    (trivial / "Snakefile").write_text(
        'rule all:\n    input:\n        "b.txt"\n\n\nrule b:\n    input:\n        "a.txt"\n'
        '    output:\n        "b.txt"\n    shell:\n        "cp {input} {output}"\n'
    )
    (trivial / "a.txt").write_text("a")
    timed([SNAKEMAKE, "--cores", "1"], trivial)
    _, _, output = timed([SNAKEMAKE, "--cores", "1"], wf, env_for(wf))
    if "Nothing to be done" not in output:
        raise RuntimeError(f"the pipeline in {wf} is not up to date:\n{output[-2000:]}")
    medians = median_alternating(
        {
            "snakeflow": ([SNAKEMAKE, "--cores", "1"], wf, env_for(wf)),
            "trivial": ([SNAKEMAKE, "--cores", "1"], trivial, None),
        },
        reps,
    )
    return {
        "snakeflow_s": medians["snakeflow"],
        "trivial_s": medians["trivial"],
        "ratio": medians["snakeflow"] / medians["trivial"],
        "reps": reps,
        "target": "<= 1.3",
    }


def work_in_one_process(url: str, tmp: Path) -> dict[str, float]:
    """Each step's own work, called as functions in this process: no Snakemake, no MLflow."""
    import clean
    import download
    import evaluate
    import predict
    import split
    import train

    out: dict[str, float] = {}
    d = tmp / "direct"

    def clock(step, fn, /, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        out[step] = out.get(step, 0.0) + time.perf_counter() - start
        return result

    clock("download", download.download_csv, url, d / "raw.csv")
    clock("clean", clean.clean_csv, d / "raw.csv", d / "clean.csv", target="Survived")
    clock(
        "split",
        split.split_csv,
        d / "clean.csv",
        d / "train.csv",
        d / "test.csv",
        target="Survived",
        test_size=0.25,
        seed=42,
    )
    pipelines = {}
    for name, spec in MODELS3.items():
        pipelines[name] = clock(
            "train",
            train.train_model,
            d / "train.csv",
            name=name,
            target="Survived",
            estimator=spec["estimator"],
            params=spec["params"],
            drop=["PassengerId", "Name", "Ticket", "Cabin"],
            infer_drop=True,
            seed=42,
        )[0]
        model_dir = d / f"model-{name}"

        def evaluate_one(pipe=pipelines[name], name=name, model_dir=model_dir):
            import pandas as pd

            frame = pd.read_csv(d / "test.csv", converters={"Survived": str})
            y = frame["Survived"]
            x = frame.drop(columns=["Survived"])
            pred, proba = pipe.predict(x), pipe.predict_proba(x)
            scores = evaluate.compute_metrics(y, pred, proba, list(pipe.classes_))
            evaluate.plot_curves(
                y,
                pred,
                proba,
                list(pipe.classes_),
                name,
                model_dir / "c.png",
                model_dir / "r.png",
                model_dir / "p.png",
            )
            return scores

        clock("evaluate", evaluate_one)
    clock(
        "predict",
        predict.predict_csv,
        pipelines["forest"],
        d / "test.csv",
        d / "predictions.csv",
        target="Survived",
    )
    return out


def bench_full_small(tmp: Path, url: str) -> dict:
    wf = workflow_copy(tmp / "full", data_url=url, models=MODELS3)  # the no-op reuses it
    seconds, _, output = timed([SNAKEMAKE, "--cores", "1"], wf, env_for(wf))
    jobs = ran(output)
    work = work_in_one_process(url, tmp)
    total_work = sum(work.values())
    steps = {}
    for bench_file in sorted((wf / "benchmarks").rglob("*.tsv")):
        rule = bench_file.relative_to(wf / "benchmarks").parts[0]
        steps[rule] = steps.get(rule, 0.0) + float(
            bench_file.read_text().splitlines()[1].split()[0]
        )
    return {
        "pipeline_s": seconds,
        "jobs": len(jobs),
        "work_in_one_process_s": total_work,
        "work_by_step_s": work,
        "job_wall_by_step_s": steps,
        "overhead_per_job_s": (seconds - total_work) / len(jobs),
        "target": "overhead per job < 1 s",
    }


MLPROJECT_MAIN = """
import argparse, mlflow, os
p = argparse.ArgumentParser()
p.add_argument("--steps", default="download,clean")
p.add_argument("--data_url")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
with mlflow.start_run():
    steps = a.steps.split(",")
    if "download" in steps:
        mlflow.run(os.path.join(here, "download"), "main", env_manager="local",
                   parameters={"data_url": a.data_url})
    if "clean" in steps:
        mlflow.run(os.path.join(here, "clean"), "main", env_manager="local")
"""
MLPROJECT_DOWNLOAD = """
import sys, mlflow, requests
with mlflow.start_run():
    r = requests.get(sys.argv[1], timeout=60)
    r.raise_for_status()
    open("/tmp/snakeflow-bench-mlp-raw.csv", "wb").write(r.content)
    mlflow.log_artifact("/tmp/snakeflow-bench-mlp-raw.csv")
"""
MLPROJECT_CLEAN = """
import mlflow, pandas as pd
with mlflow.start_run():
    df = pd.read_csv("/tmp/snakeflow-bench-mlp-raw.csv").dropna()
    df.to_csv("/tmp/snakeflow-bench-mlp-clean.csv", index=False)
    mlflow.log_artifact("/tmp/snakeflow-bench-mlp-clean.csv")
"""


def mlflow_project(root: Path) -> Path:
    """The MLflow Projects pipeline users switch from: root main.py calls mlflow.run per step."""
    root.mkdir()
    (root / "MLproject").write_text(
        textwrap.dedent("""\
        name: pipeline
        entry_points:
          main:
            parameters:
              steps: {type: str, default: "download,clean"}
              data_url: str
            command: "python main.py --steps {steps} --data_url {data_url}"
        """)
    )
    (root / "main.py").write_text(MLPROJECT_MAIN)
    for step, code, params in (
        ("download", MLPROJECT_DOWNLOAD, "{data_url}"),
        ("clean", MLPROJECT_CLEAN, ""),
    ):
        (root / step).mkdir()
        param_block = "    parameters:\n      data_url: str\n" if params else ""
        (root / step / "MLproject").write_text(
            f"name: {step}\nentry_points:\n  main:\n{param_block}"
            f'    command: "python step.py {params}"\n'
        )
        (root / step / "step.py").write_text(code)
    return root


def bench_vs_mlflow_projects(tmp: Path, url: str, reps: int) -> dict:
    project = mlflow_project(tmp / "mlproject")
    mlp_env = {**env_for(project), "PATH": f"{BIN}:{os.environ['PATH']}"}

    wf = workflow_copy(tmp / "sf-vs-mlp", data_url=url)
    cmd = [SNAKEMAKE, "--cores", "1", "--forceall", "clean"]  # both run every step each time
    timed(cmd, wf, env_for(wf))  # create the MLflow store once, as for the project below
    mlp = [
        str(BIN / "mlflow"),
        "run",
        ".",
        "--env-manager",
        "local",
        "-P",
        "steps=download,clean",
        "-P",
        f"data_url={url}",
    ]
    timed(mlp, project, mlp_env)
    samples = {"snakeflow": [], "mlflow_projects": []}
    for _ in range(reps):
        samples["snakeflow"].append(timed(cmd, wf, env_for(wf))[0])
        samples["mlflow_projects"].append(timed(mlp, project, mlp_env)[0])
    sf, mp = (statistics.median(samples[k]) for k in ("snakeflow", "mlflow_projects"))
    return {
        "snakeflow_download_clean_s": sf,
        "mlflow_projects_s": mp,
        "ratio": sf / mp,
        "target": "<= 0.5",
    }


def bench_step_overhead(tmp: Path) -> dict:
    """Interpreter + imports of each step script, and MLflow run setup, in fresh processes."""
    imports = {
        "download": "import requests, snakeflow.tracking",
        "clean": "import snakeflow.tracking, snakeflow.csvio",
        "split": "import sklearn.model_selection, snakeflow.tracking",
        "train": "import pandas, sklearn.ensemble, snakeflow.models, snakeflow.tracking",
        "evaluate": "import matplotlib.pyplot, sklearn.metrics, snakeflow.models",
        "register": "import snakeflow.registry, snakeflow.tracking",
        "predict": "import pandas, snakeflow.models",
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    out = {
        "python_startup_s": statistics.median(
            timed([sys.executable, "-c", "pass"], env=env)[0] for _ in range(3)
        )
    }
    for step, stmt in imports.items():
        out[f"imports_{step}_s"] = statistics.median(
            timed([sys.executable, "-c", stmt], env=env)[0] for _ in range(2)
        )
    db = tmp / "overhead.db"
    setup = (
        "import time, os; t=time.perf_counter()\n"
        "from snakeflow import tracking\n"
        "import mlflow\n"
        "t1=time.perf_counter(); exp=tracking.connect()\n"
        "r=mlflow.start_run(experiment_id=exp); mlflow.log_metric('x', 1); mlflow.end_run()\n"
        "print(time.perf_counter()-t1)\n"
    )
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    timed([sys.executable, "-c", setup], env=env)  # create the store once
    runs = [float(timed([sys.executable, "-c", setup], env=env)[2].split()[-1]) for _ in range(3)]
    out["mlflow_run_setup_s"] = statistics.median(runs)
    return out


# Each prints the seconds of the work itself and the process's peak RSS. VmHWM is per
# address space, so it starts afresh at exec (ru_maxrss would carry over the forking
# benchmark process's own peak).
REPORT = (
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('WORK', time.perf_counter() - t0, int(hwm) // 1024)\n"
)
PYARROW_CLEAN = (
    """
import sys, time, pyarrow.csv as c
t0 = time.perf_counter()
t = c.read_csv(sys.argv[1], convert_options=c.ConvertOptions(strings_can_be_null=True))
c.write_csv(t.drop_null(), sys.argv[2])
"""
    + REPORT
)
OUR_CLEAN = (
    """
import sys, time; sys.path.insert(0, sys.argv[3])
from pathlib import Path
from clean import clean_csv
t0 = time.perf_counter()
clean_csv(Path(sys.argv[1]), Path(sys.argv[2]), target="Survived")
"""
    + REPORT
)
OUR_DOWNLOAD = (
    """
import sys, time; sys.path.insert(0, sys.argv[3])
from pathlib import Path
from download import download_csv
t0 = time.perf_counter()
download_csv(sys.argv[1], Path(sys.argv[2]))
"""
    + REPORT
)


def work(cmd) -> tuple[float, float, int]:
    """(process seconds, work seconds, peak RSS MB) of a Python command that reports WORK."""
    seconds, _, out = timed(cmd)
    line = [x for x in out.splitlines() if x.startswith("WORK ")][-1].split()
    return seconds, float(line[1]), int(line[2])


def bench_scale(tmp: Path, server: Server, www: Path, rows: int) -> dict:
    name = f"scale-{rows}.csv"
    titanic_csv(www / name, rows)
    size = (www / name).stat().st_size
    url = f"{server.url}/{name}"
    scripts = str(ROOT / "scripts")
    res = {"rows": rows, "mb": size / 1e6}
    dl = tmp / "dl.csv"
    ours = [work([sys.executable, "-c", OUR_DOWNLOAD, url, str(dl), scripts]) for _ in range(3)]
    curl = [timed(["curl", "-sSf", "-o", str(tmp / "curl.csv"), url])[0] for _ in range(3)]
    res |= {
        "download_process_s": statistics.median(o[0] for o in ours),
        "download_s": statistics.median(o[1] for o in ours),
        "download_peak_rss_mb": max(o[2] for o in ours),
        "curl_s": statistics.median(curl),
    }
    res["download_vs_curl"] = res["download_s"] / res["curl_s"]
    cleans, arrows = [], []
    for _ in range(2):
        cleans.append(work([sys.executable, "-c", OUR_CLEAN, str(dl), str(tmp / "c.csv"), scripts]))
        arrows.append(work([sys.executable, "-c", PYARROW_CLEAN, str(dl), str(tmp / "a.csv")]))
    res |= {
        "clean_process_s": statistics.median(c[0] for c in cleans),
        "clean_s": statistics.median(c[1] for c in cleans),
        "clean_peak_rss_mb": max(c[2] for c in cleans),
        "pyarrow_clean_s": statistics.median(a[1] for a in arrows),
        "pyarrow_peak_rss_mb": max(a[2] for a in arrows),
    }
    res["clean_vs_pyarrow"] = res["clean_s"] / res["pyarrow_clean_s"]
    for f in (www / name, dl, tmp / "curl.csv", tmp / "c.csv", tmp / "a.csv"):
        f.unlink(missing_ok=True)
    return res


def bench_grid_and_incremental(tmp: Path, url: str) -> dict:
    grid = {
        f"forest{i}": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 200, "max_depth": 3 + i},
        }
        for i in range(8)
    }
    wf = workflow_copy(tmp / "grid", data_url=url, models=grid, register={"threshold": 0.0})
    env = env_for(wf)
    timed([SNAKEMAKE, "--cores", "2", "--until", "split"], wf, env)
    res = {}
    for cores in ("1", "2"):  # 16 jobs: train and evaluate of each model
        seconds, _, _ = timed(
            [SNAKEMAKE, "--cores", cores, "--forcerun", "train", "--until", "evaluate"], wf, env
        )
        res[f"grid8_cores{cores}_s"] = seconds
    res["grid_speedup"] = res["grid8_cores1_s"] / res["grid8_cores2_s"]
    full, _, _ = timed([SNAKEMAKE, "--cores", "2", "--forceall"], wf, env)
    import yaml

    config = yaml.safe_load((wf / "config.yaml").read_text())
    config["models"]["forest3"]["params"]["n_estimators"] = 100
    (wf / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    incr, _, output = timed([SNAKEMAKE, "--cores", "2"], wf, env)
    res |= {
        "full_run_s": full,
        "incremental_s": incr,
        "incremental_jobs": sorted(ran(output)),
        "incremental_vs_full": incr / full,
    }
    return res


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    n, f, s = results["noop"], results["full_small"], results["vs_mlflow_projects"]
    g = results["grid"]
    rows = [
        (
            "no-op snakemake vs trivial Snakefile",
            f"{n['snakeflow_s']:.2f} s / {n['trivial_s']:.2f} s",
            f"{n['ratio']:.2f}x",
            "<= 1.3x",
        ),
        (
            "download+clean vs MLflow Projects",
            f"{s['snakeflow_download_clean_s']:.2f} s / {s['mlflow_projects_s']:.2f} s",
            f"{s['ratio']:.2f}x",
            "<= 0.5x",
        ),
        (
            "full pipeline (1 core) vs its work",
            f"{f['pipeline_s']:.1f} s / {f['work_in_one_process_s']:.1f} s",
            f"{f['overhead_per_job_s']:.2f} s/job",
            "< 1 s/job",
        ),
    ]
    for sc in results.get("scale", []):
        label = f"{sc['rows'] // 1_000_000} M rows ({sc['mb']:.0f} MB)"
        rows += [
            (
                f"download {label} vs curl",
                f"{sc['download_s']:.2f} s / {sc['curl_s']:.2f} s",
                f"{sc['download_vs_curl']:.2f}x",
                "<= 1.2x",
            ),
            (
                f"clean {label} vs pyarrow",
                f"{sc['clean_s']:.2f} s / {sc['pyarrow_clean_s']:.2f} s",
                f"{sc['clean_vs_pyarrow']:.2f}x",
                "<= 1.5x",
            ),
            (
                f"peak RSS download / clean, {label}",
                f"{sc['download_peak_rss_mb']} MB / {sc['clean_peak_rss_mb']} MB",
                "",
                "< 512 MB, flat",
            ),
        ]
    rows += [
        (
            "grid of 8 (train+evaluate): --cores 1 / 2",
            f"{g['grid8_cores1_s']:.1f} s / {g['grid8_cores2_s']:.1f} s",
            f"{g['grid_speedup']:.2f}x",
            ">= 1.7x",
        ),
        (
            "one model changed: jobs that ran",
            ", ".join(g["incremental_jobs"]),
            f"{g['incremental_vs_full']:.2f} of full",
            "train, evaluate (1 model), register, predict",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("measure", "value", "result", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, head)]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def write_markdown(results: dict, text: str, path: str) -> None:
    """BENCHMARKS.md: the table, the per-step detail and the hand-written bench/analysis.md."""
    over = results["step_overhead"]
    detail = "\n".join(f"- {k}: {v:.2f} s" for k, v in over.items())
    walls = results["full_small"]["job_wall_by_step_s"]
    jobs = "\n".join(f"- {k}: {v:.2f} s" for k, v in sorted(walls.items()))
    analysis = (ROOT / "bench" / "analysis.md").read_text()
    Path(path).write_text(
        f"# Benchmarks\n\nLatest run: {results['date']} on {results['machine']} "
        f"({results['seconds'] / 60:.1f} min; `make bench`). Medians of alternating runs; "
        f"ratios matter, seconds vary with the machine's load.\n\n{text}\n\n"
        f"## Per-step overhead (fresh processes)\n\n{detail}\n\n"
        f"Job wall time by step in the full run (Snakemake `benchmark:` files, summed over "
        f"the step's jobs):\n\n{jobs}\n\n"
        f"Raw numbers: `bench/results.json`.\n\n{analysis}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10 M-row scale test")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of timed commands")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--markdown", help="also write this Markdown file (e.g. BENCHMARKS.md)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite --markdown from the --out JSON"
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads(Path(args.out).read_text())
        write_markdown(results, table(results), args.markdown)
        return

    started = time.time()
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30}"
        f" GiB, Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="snakeflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        www = tmp / "www"
        www.mkdir()
        titanic_csv(www / "titanic.csv", 891)
        server = Server(www)
        url = f"{server.url}/titanic.csv"
        try:
            print("full pipeline and work ...", file=sys.stderr)
            results["full_small"] = bench_full_small(tmp, url)
            print("no-op ...", file=sys.stderr)
            results["noop"] = bench_noop(tmp, tmp / "full", args.reps + 1)
            print("MLflow Projects ...", file=sys.stderr)
            results["vs_mlflow_projects"] = bench_vs_mlflow_projects(
                tmp, url, max(3, args.reps // 2)
            )
            print("per-step overhead ...", file=sys.stderr)
            results["step_overhead"] = bench_step_overhead(tmp)
            results["scale"] = []
            for rows in (1_000_000,) if args.quick else (1_000_000, 10_000_000):
                print(f"scale {rows} ...", file=sys.stderr)
                results["scale"].append(bench_scale(tmp, server, www, rows))
            print("grid and incremental ...", file=sys.stderr)
            results["grid"] = bench_grid_and_incremental(tmp, url)
        finally:
            server.close()
    results["seconds"] = time.time() - started
    text = table(results)
    print(text)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        write_markdown(results, text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
