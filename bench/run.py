"""snakeflow benchmark: what the pipeline costs beyond its own work, and against alternatives.

    .venv/bin/python bench/run.py                  # everything, on HEAD (11-13 minutes)
    .venv/bin/python bench/run.py --quick          # skip the 10 M-row scale test
    .venv/bin/python bench/run.py --worktree       # the working tree's files instead of HEAD
    .venv/bin/python bench/run.py --only logger_sqlite  # one section, into results.json

Prints a table, writes bench/results.json and (with --markdown) BENCHMARKS.md. Compared
commands run in the same session, alternating, and report medians with their ranges: this
machine is shared and noisy, so the ratios matter, not the seconds. The workflow measured is
a snapshot of a commit (HEAD unless --rev or --worktree), logger plugin included; the
programs the benchmark runs are in bench/programs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    DVC_REQUIREMENTS,
    PLUGIN_DIR,
    PROGRAMS,
    ROOT,
    SNAKEMAKE,
    Server,
    alternating,
    benchmark_walls,
    describe,
    dvc_env,
    dvc_project,
    dvc_venv,
    env_for,
    houses_csv,
    python,
    ran,
    run_walls,
    snapshot,
    summary,
    timed,
    timeline,
    titanic_csv,
    workflow_copy,
)
from logger_bench import (
    bench_logger_big,
    bench_logger_replay,
    bench_logger_server,
    bench_logger_sqlite,
)
from render import table, write_markdown

SECTIONS = (
    "jobs",
    "noop",
    "vs_old",
    "vs_mlflow_projects",
    "vs_dvc",
    "scale",
    "grid",
    "datasets",
    "logger_sqlite",
    "logger_server",
    "logger_replay",
    "logger_big",
)
OLD_DESIGN = "e1c7ab4"  # every job imported MLflow and wrote to the tracking store itself
STEPS = ("download", "clean", "split", "train", "evaluate", "register", "predict")
MODELS3 = {  # the default config's three models, without forest's grid (e1c7ab4 has none)
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


class Designs:
    """The two workflows compared: today's (``new``) and the old design's (``old``)."""

    def __init__(self, tmp: Path, rev: str | None):
        self.new = snapshot(tmp / "src-new", rev)
        self.old = snapshot(tmp / "src-old", OLD_DESIGN)
        self.plugin = self.new / PLUGIN_DIR  # the plugin as of the commit measured

    def copy(self, design: str, dest: Path, **config) -> tuple[Path, dict]:
        """A fresh working copy of ``design`` (fresh SQLite store) and its environment."""
        wf = workflow_copy(getattr(self, design), dest, **config)
        return wf, env_for(wf, self.plugin if design == "new" else None)


# --------------------------------------------------------------------------- benchmarks


def bench_jobs(tmp: Path, designs: Designs, url: str) -> dict:
    """The full pipeline on 1 core, then per step: job wall - its imports - its own work.

    A job's wall time is taken from its MLflow run (from Snakemake's job_info to
    job_finished: the job as Snakemake runs it) and, for the steps with a ``benchmark:``,
    from Snakemake's benchmark file (the job's process alone). Imports: the step's
    third-party libraries in a fresh process (bench/programs/step_imports.py), measured
    just before and just after the pipeline run, so that both see the machine as the run
    did. Work: the step's typed functions called in one process (step_work.py).
    """
    scripts = designs.new / "scripts"
    modules = {}
    for step in ("preamble", *STEPS):
        modules[step] = tmp / f"imports-{step}.txt"
        modules[step].write_text(timed(python("step_imports.py", "list", step, scripts))[2])
    samples: dict[str, list[float]] = {step: [] for step in modules}
    process: dict[str, list[float]] = {step: [] for step in modules}

    def time_imports():
        for step, listing in modules.items():
            wall, _, printed = timed(python("step_imports.py", "time", listing))
            samples[step].append(float(printed))
            process[step].append(wall - float(printed))

    wf, env = designs.copy("new", tmp / "full", data_url=url, models=MODELS3)
    time_imports()
    seconds, _, output = timed([SNAKEMAKE, "--cores", "1"], wf, env)
    time_imports()
    runs, benches = run_walls(wf), benchmark_walls(wf)
    printed = timed(python("step_work.py", url, tmp / "work", scripts, wf))[2]
    work = json.loads([line for line in printed.splitlines() if line.startswith("{")][-1])
    imports = {s: statistics.median(v) for s, v in samples.items()}
    steps = {}
    for step in STEPS:
        n = len(runs[step])
        job = statistics.mean(runs[step])
        bench = statistics.mean(benches[step]) if step in benches else None
        per_job_work = work["seconds"][step] / n
        steps[step] = {
            "jobs": n,
            "job_wall_s": job,
            "benchmark_wall_s": bench,
            "imports_s": imports[step],
            "work_s": per_job_work,
            "overhead_s": job - imports[step] - per_job_work,
            "overhead_benchmark_s": None if bench is None else bench - imports[step] - per_job_work,
            "process_start_exit_s": statistics.median(process[step]),
        }
    jobs = ran(output)
    over = [s["overhead_s"] for s in steps.values()]
    bench_over = [s["overhead_benchmark_s"] for s in steps.values() if s["benchmark_wall_s"]]
    return {
        "pipeline_s": seconds,
        "jobs": len(jobs),
        "steps": steps,
        "job_preamble_imports_s": imports["preamble"],
        "imports_samples_s": samples,
        "bare_process_start_exit_s": statistics.median(process["preamble"]),
        "imported_by_work": work["imported_by_work"],
        "mean_overhead_s": statistics.mean(over),
        "max_overhead_s": max(over),
        "job_weighted_overhead_s": sum(s["overhead_s"] * s["jobs"] for s in steps.values())
        / sum(s["jobs"] for s in steps.values()),
        "mean_overhead_benchmark_s": statistics.mean(bench_over),
        "sum_job_walls_s": sum(sum(v) for v in runs.values()),
        "target": "< 0.5 s per job",
    }


def bench_vs_old(tmp: Path, designs: Designs, url: str, reps: int) -> dict:
    """The full pipeline at --cores 2, today's design against the old one, alternating (the
    order swaps every repetition), each run in a fresh working copy with a fresh store."""
    samples: dict[str, list[float]] = {"new": [], "old": []}
    walls: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
    parts: list[dict[str, float]] = []
    for i in range(reps):
        for design in ("new", "old") if i % 2 == 0 else ("old", "new"):
            wf, env = designs.copy(
                design, tmp / f"vs-old-{design}-{i}", data_url=url, models=MODELS3
            )
            launched = time.time()
            seconds, _, output = timed([SNAKEMAKE, "--cores", "2"], wf, env)
            if len(ran(output)) != 11:
                raise RuntimeError(f"{design} ran {ran(output)}, not the 11 jobs")
            samples[design].append(seconds)
            if design == "new":
                parts.append(timeline(wf, launched, time.time()))
            for rule, values in benchmark_walls(wf).items():
                walls[design].setdefault(rule, []).extend(values)
            shutil.rmtree(wf)
    ratios = [n / o for n, o in zip(samples["new"], samples["old"])]
    return {
        "new_s": summary(samples["new"]),
        "old_s": summary(samples["old"]),
        "ratio": statistics.median(samples["new"]) / statistics.median(samples["old"]),
        "ratio_per_rep": ratios,
        "job_wall_by_step_s": {
            d: {rule: statistics.mean(v) for rule, v in sorted(w.items())} for d, w in walls.items()
        },
        "new_timeline_s": {k: statistics.mean(p[k] for p in parts) for k in parts[0]},
        "old_commit": OLD_DESIGN,
        "reps": reps,
        "target": "<= 0.5",
    }


def bench_noop(tmp: Path, wf: Path, env: dict, reps: int) -> dict:
    """``snakemake`` on the up-to-date pipeline ``wf`` vs on a trivial 2-rule Snakefile."""
    trivial = tmp / "trivial"
    shutil.copytree(PROGRAMS / "trivial", trivial)
    (trivial / "a.txt").write_text("a")
    timed([SNAKEMAKE, "--cores", "1"], trivial)
    _, _, output = timed([SNAKEMAKE, "--cores", "1"], wf, env)
    if "Nothing to be done" not in output:
        raise RuntimeError(f"the pipeline in {wf} is not up to date:\n{output[-2000:]}")
    samples = alternating(
        {
            "snakeflow": ([SNAKEMAKE, "--cores", "1"], wf, env),
            "trivial": ([SNAKEMAKE, "--cores", "1"], trivial, env_for(trivial)),
        },
        reps,
    )
    sf, tr = (statistics.median(samples[k]) for k in ("snakeflow", "trivial"))
    return {
        "snakeflow_s": summary(samples["snakeflow"]),
        "trivial_s": summary(samples["trivial"]),
        "ratio": sf / tr,
        "reps": reps,
        "target": "<= 1.2",
    }


def bench_vs_mlflow_projects(tmp: Path, designs: Designs, url: str, reps: int) -> dict:
    """download + clean: snakeflow against the same two steps as an MLflow Projects pipeline
    (bench/programs/mlproject, ``mlflow run . --env-manager local``)."""
    project = tmp / "mlproject"
    shutil.copytree(PROGRAMS / "mlproject", project)
    mlp_env = env_for(project)
    wf, env = designs.copy("new", tmp / "sf-vs-mlp", data_url=url)
    cmd = [SNAKEMAKE, "--cores", "1", "--forceall", "data/clean/titanic.csv"]  # every time
    mlp = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "--env-manager", "local"]
    mlp += ["-P", "steps=download,clean", "-P", f"data_url={url}"]
    timed(cmd, wf, env)  # create each MLflow store once
    timed(mlp, project, mlp_env)
    samples: dict[str, list[float]] = {"snakeflow": [], "mlflow_projects": []}
    parts = []
    for _ in range(reps):
        launched = time.time()
        samples["snakeflow"].append(timed(cmd, wf, env)[0])
        parts.append(timeline(wf, launched, time.time()))
        samples["mlflow_projects"].append(timed(mlp, project, mlp_env)[0])
    sf, mp = (statistics.median(samples[k]) for k in ("snakeflow", "mlflow_projects"))
    return {
        "snakeflow_download_clean_s": summary(samples["snakeflow"]),
        "mlflow_projects_s": summary(samples["mlflow_projects"]),
        "ratio": sf / mp,
        "ratio_per_rep": [s / m for s, m in zip(samples["snakeflow"], samples["mlflow_projects"])],
        "job_wall_by_step_s": {k: statistics.mean(v) for k, v in sorted(run_walls(wf).items())},
        "snakeflow_timeline_s": {k: statistics.mean(p[k] for p in parts) for k in parts[0]},
        "reps": reps,
        "target": "<= 0.5",
    }


def bench_vs_dvc(tmp: Path, designs: Designs, url: str, reps: int) -> dict:
    """download + clean: snakeflow (``snakemake --cores 2 data/clean/titanic.csv``) against
    the same two steps as a DVC pipeline with DVCLive (bench/programs/dvc, ``dvc repro``),
    each repetition in fresh copies (a fresh store; a fresh ``git init`` + ``dvc init``
    project), in balanced order (ABBA ...): first the first run of each, then the no-op of
    each (the same command again), beside a trivial two-rule Snakefile's no-op."""
    bin_dir, install_s = dvc_venv()
    denv = dvc_env(bin_dir)
    dvc = [str(bin_dir / "dvc"), "repro"]
    target = "data/clean/titanic.csv"
    snakemake = [SNAKEMAKE, "--cores", "2", target]
    trivial = tmp / "vs-dvc-trivial"
    shutil.copytree(PROGRAMS / "trivial", trivial)
    (trivial / "a.txt").write_text("a")
    tenv = env_for(trivial)
    timed([SNAKEMAKE, "--cores", "2"], trivial, tenv)

    def fresh(name: str, rep: int) -> tuple[Path, dict]:
        dest = tmp / f"vs-dvc-{name}-{rep}"
        if name == "dvc":
            return dvc_project(dest, url, denv), denv
        return designs.copy("new", dest, data_url=url)

    def first_run(name: str, wd: Path, env: dict) -> float:
        seconds, _, output = timed(dvc if name == "dvc" else snakemake, wd, env)
        if name == "snakeflow" and sorted(ran(output)) != ["clean", "download"]:
            raise RuntimeError(f"snakeflow ran {ran(output)}, not download and clean")
        if name == "dvc" and not all(f"Running stage '{s}'" in output for s in STEPS[:2]):
            raise RuntimeError(f"dvc repro did not run both stages:\n{output[-2000:]}")
        return seconds

    def noop(name: str, wd: Path, env: dict) -> float:
        cmd = {"dvc": dvc, "snakeflow": snakemake}.get(name, [SNAKEMAKE, "--cores", "2"])
        seconds, _, output = timed(cmd, wd, env)
        done = "Data and pipelines are up to date." if name == "dvc" else "Nothing to be done"
        if done not in output:
            raise RuntimeError(f"{name}'s no-op did something:\n{output[-2000:]}")
        return seconds

    for name in ("snakeflow", "dvc"):  # one untimed run each: caches warm on both sides
        wd, env = fresh(name, -1)
        first_run(name, wd, env)
        shutil.rmtree(wd)
    order = ["snakeflow", "dvc"]
    first: dict[str, list[float]] = {k: [] for k in order}
    again: dict[str, list[float]] = {k: [] for k in [*order, "trivial"]}
    setup, parts, walls = [], [], {}
    for rep in range(reps):
        turn = order if rep % 2 == 0 else order[::-1]
        copies = {}
        for name in turn:
            begun = time.perf_counter()
            copies[name] = fresh(name, rep)
            if name == "dvc":
                setup.append(time.perf_counter() - begun)
        for name in turn:
            launched = time.time()
            first[name].append(first_run(name, *copies[name]))
            if name == "snakeflow":
                parts.append(timeline(copies[name][0], launched, time.time()))
        rows = {n: len((wd / target).read_text().splitlines()) for n, (wd, _) in copies.items()}
        if len(set(rows.values())) != 1:
            raise RuntimeError(f"the two cleans kept different rows (lines): {rows}")
        for name, values in run_walls(copies["snakeflow"][0]).items():
            walls.setdefault(name, []).extend(values)
        copies["trivial"] = (trivial, tenv)
        for name in [*turn, "trivial"] if rep % 2 == 0 else ["trivial", *turn]:
            again[name].append(noop(name, *copies[name]))
        for name in order:
            shutil.rmtree(copies[name][0])
    med = {k: statistics.median(v) for k, v in first.items()}
    nop = {k: statistics.median(v) for k, v in again.items()}
    return {
        "snakeflow_first_s": summary(first["snakeflow"]),
        "dvc_first_s": summary(first["dvc"]),
        "first_ratio": med["snakeflow"] / med["dvc"],
        "first_ratio_per_rep": [s / d for s, d in zip(first["snakeflow"], first["dvc"])],
        "snakeflow_noop_s": summary(again["snakeflow"]),
        "dvc_noop_s": summary(again["dvc"]),
        "trivial_noop_s": summary(again["trivial"]),
        "noop_ratio": nop["snakeflow"] / nop["dvc"],
        "noop_ratio_per_rep": [s / d for s, d in zip(again["snakeflow"], again["dvc"])],
        "noop_vs_trivial": nop["snakeflow"] / nop["trivial"],
        "clean_rows": rows["dvc"] - 1,
        "job_wall_by_step_s": {k: statistics.mean(v) for k, v in sorted(walls.items())},
        "snakeflow_timeline_s": {k: statistics.mean(p[k] for p in parts) for k in parts[0]},
        "dvc_project_setup_s": summary(setup),  # git init, dvc init, commit: not timed above
        "dvc_install_s": install_s,  # None: bench/.dvc-venv was already there
        "dvc_requirements": [
            line
            for line in DVC_REQUIREMENTS.read_text().splitlines()
            if line and not line.startswith("#")
        ],
        "reps": reps,
        "target": "first run <= 1.0; no-op reported beside DVC's (<= 1.1 trivial)",
    }


def work(cmd) -> tuple[float, float, int]:
    """(process seconds, work seconds, peak RSS MB) of a program that reports WORK."""
    seconds, _, out = timed(cmd)
    line = [x for x in out.splitlines() if x.startswith("WORK ")][-1].split()
    return seconds, float(line[1]), int(line[2])


def bench_scale(tmp: Path, designs: Designs, server: Server, www: Path, rows: int) -> dict:
    """download against curl and clean against bare pyarrow on ``rows`` generated rows."""
    name = f"scale-{rows}.csv"
    titanic_csv(www / name, rows)
    size = (www / name).stat().st_size
    url = f"{server.url}/{name}"
    scripts = designs.new / "scripts"
    res = {"rows": rows, "mb": size / 1e6}
    reps = 5 if rows <= 1_000_000 else 2  # a 1 M-row step takes 0.1-0.5 s: take more
    dl, ours, curl = tmp / "dl.csv", [], []
    for _ in range(reps):
        ours.append(work(python("our_download.py", url, dl, scripts)))
        curl.append(timed(["curl", "-sSf", "-o", str(tmp / "curl.csv"), url])[0])
    res |= {
        "download_process_s": statistics.median(o[0] for o in ours),
        "download_s": statistics.median(o[1] for o in ours),
        "download_peak_rss_mb": max(o[2] for o in ours),
        "curl_s": statistics.median(curl),
    }
    res["download_vs_curl"] = res["download_s"] / res["curl_s"]
    cleans, arrows = [], []
    for _ in range(reps):
        cleans.append(work(python("our_clean.py", dl, tmp / "c.csv", scripts)))
        arrows.append(work(python("pyarrow_clean.py", dl, tmp / "a.csv")))
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


def bench_grid_and_incremental(tmp: Path, designs: Designs, url: str) -> dict:
    """A full run of 8 models on 2 cores; their train and evaluate again on 1 and on 2 cores;
    then one model's change (what reruns, and its time against the full run)."""
    import yaml

    grid = {
        f"forest{i}": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 200, "max_depth": 3 + i},
        }
        for i in range(8)
    }
    wf, env = designs.copy("new", tmp / "grid", data_url=url, models=grid)
    full, _, _ = timed([SNAKEMAKE, "--cores", "2"], wf, env)
    res = {"full_run_s": full}
    for cores in ("1", "2"):  # 16 jobs: train and evaluate of each model
        seconds, _, _ = timed(
            [SNAKEMAKE, "--cores", cores, "--forcerun", "train", "--until", "evaluate"], wf, env
        )
        res[f"grid8_cores{cores}_s"] = seconds
    res["grid_speedup"] = res["grid8_cores1_s"] / res["grid8_cores2_s"]
    config = yaml.safe_load((wf / "config.yaml").read_text())
    config["models"]["forest3"]["params"]["n_estimators"] = 100
    (wf / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    incr, _, output = timed([SNAKEMAKE, "--cores", "2"], wf, env)
    return res | {
        "incremental_s": incr,
        "incremental_jobs": sorted(ran(output)),
        "incremental_vs_full": incr / full,
    }


REGRESSORS3 = {  # the default config's three regressors, without forest_reg's grid
    "ridge": {"estimator": "sklearn.linear_model.Ridge", "task": "regression"},
    "forest_reg": {
        "estimator": "sklearn.ensemble.RandomForestRegressor",
        "task": "regression",
        "params": {"n_estimators": 300},
    },
    "boost_reg": {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "task": "regression",
    },
}


def bench_datasets(tmp: Path, designs: Designs, server: Server, www: Path, reps: int) -> dict:
    """Two datasets (the Titanic, a regression CSV of 2,000 rows), three models each, at
    --cores 2 from a fresh copy: in one invocation (one DAG) against the same two run one
    after the other (``--config dataset=<name>``, the single-dataset form), alternating in
    balanced order (ABBA ...)."""
    houses_csv(www / "houses.csv", 2_000)
    datasets = {
        # the generated Titanic rows are noise: a gate of 0 lets its best model be champion
        "titanic": {
            "url": f"{server.url}/titanic.csv",
            "target": "Survived",
            "register": {"threshold": 0.0},
        },
        "houses": {"url": f"{server.url}/houses.csv", "target": "price", "task": "regression"},
    }
    config = {
        "datasets": datasets,
        "models": MODELS3 | REGRESSORS3,
        "register": {"threshold": None},  # houses: the regression default gate
    }
    commands = {
        "one_dag": [[SNAKEMAKE, "--cores", "2"]],
        "one_after_the_other": [
            [SNAKEMAKE, "--cores", "2", "--config", f"dataset={name}"] for name in datasets
        ],
    }
    samples: dict[str, list[float]] = {k: [] for k in commands}
    order = list(commands)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            wf, env = designs.copy("new", tmp / f"datasets-{name}-{rep}", **config)
            seconds = 0.0
            for cmd in commands[name]:
                seconds += timed(cmd, wf, env)[0]  # raises if the command fails
            samples[name].append(seconds)
            shutil.rmtree(wf)
    res = {k: summary(v) for k, v in samples.items()}
    res["one_dag_vs_sequential"] = res["one_dag"]["median"] / res["one_after_the_other"]["median"]
    return res


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10 M-row scale test")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of short commands")
    parser.add_argument(
        "--full-reps", type=int, default=3, help="repetitions of each full pipeline (vs old)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rev", default="HEAD", help="the commit to measure (default HEAD)")
    source.add_argument("--worktree", action="store_true", help="measure the working tree")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)"
    )
    parser.add_argument("--big", type=int, default=10_000, help="jobs of the big logger run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--markdown", help="also write this Markdown file (e.g. BENCHMARKS.md)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite --markdown from the --out JSON"
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads(Path(args.out).read_text())
        write_markdown(results, args.markdown)
        return

    if args.only and "noop" in args.only and "jobs" not in args.only:
        args.only.append("jobs")  # the no-op runs in the copy the jobs section brings up to date
    rev = None if args.worktree else args.rev
    started = time.time()
    kept = json.loads(Path(args.out).read_text()) if args.only and Path(args.out).exists() else {}
    this_run = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30}"
        f" GiB, Python {platform.python_version()}",
        "measured": describe(rev),
        "load_before": os.getloadavg()[0],
    }
    # with --only, the header stays the full run's; each section says when it was measured
    results: dict = kept or this_run
    with tempfile.TemporaryDirectory(prefix="snakeflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        designs = Designs(tmp, rev)
        www = tmp / "www"
        www.mkdir()
        titanic_csv(www / "titanic.csv", 891)
        server = Server(www)
        url = f"{server.url}/titanic.csv"

        def section(name: str, fn, *fn_args):
            if args.only and name not in args.only:
                return
            print(f"{name} ...", file=sys.stderr, flush=True)
            begun = time.perf_counter()
            results[name] = fn(*fn_args)
            results.setdefault("section_s", {})[name] = time.perf_counter() - begun
            results.setdefault("section_measured", {})[name] = {
                "date": this_run["date"],
                "measured": this_run["measured"],
            }
            results.setdefault("load_after_section", {})[name] = os.getloadavg()[0]
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")  # so far

        try:
            section("jobs", bench_jobs, tmp, designs, url)
            wf = tmp / "full"  # up to date: the no-op runs there
            section("noop", bench_noop, tmp, wf, env_for(wf, designs.plugin), args.reps + 1)
            section("vs_old", bench_vs_old, tmp, designs, url, args.full_reps)
            section(
                "vs_mlflow_projects", bench_vs_mlflow_projects, tmp, designs, url, args.reps - 2
            )
            section("vs_dvc", bench_vs_dvc, tmp, designs, url, args.reps)
            sizes = (1_000_000,) if args.quick else (1_000_000, 10_000_000)
            section("scale", lambda: [bench_scale(tmp, designs, server, www, n) for n in sizes])
            section("grid", bench_grid_and_incremental, tmp, designs, url)
            section("datasets", bench_datasets, tmp, designs, server, www, 2)
            section("logger_sqlite", bench_logger_sqlite, tmp, designs.plugin, 2)
            section("logger_server", bench_logger_server, tmp, designs.plugin, 2)
            section("logger_replay", bench_logger_replay, tmp, designs.plugin)
            section("logger_big", bench_logger_big, tmp, designs.plugin, args.big)
        finally:
            server.close()
    if not kept:
        results["load_after"] = os.getloadavg()[0]
        results["seconds"] = time.time() - started
    print(table(results))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        write_markdown(results, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
