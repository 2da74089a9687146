"""The benchmark's results as text: the summary table and BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

ANALYSIS = Path(__file__).resolve().parent / "analysis.md"


def _status(value: float, limit: float, below: bool = True) -> str:
    return "met" if (value <= limit if below else value >= limit) else "missed"


def _range(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(measure, value, result, target, met or missed) for every measure in ``results``."""
    j, o, n = results["jobs"], results["vs_old"], results["noop"]
    m = results["vs_mlflow_projects"]
    worst = max(j["steps"], key=lambda s: j["steps"][s]["overhead_s"])
    out = [
        (
            f"full pipeline, --cores 2: today vs {o['old_commit']} (old design)",
            f"{o['new_s']['median']:.1f} s / {o['old_s']['median']:.1f} s",
            f"{o['ratio']:.2f}x (reps {_range(o['ratio_per_rep'])})",
            "<= 0.5x",
            _status(o["ratio"], 0.5),
        ),
        (
            "download+clean vs MLflow Projects",
            f"{m['snakeflow_download_clean_s']['median']:.2f} s / "
            f"{m['mlflow_projects_s']['median']:.2f} s",
            f"{m['ratio']:.2f}x (reps {_range(m['ratio_per_rep'])})",
            "<= 0.4x",
            _status(m["ratio"], 0.4),
        ),
        (
            "per-job overhead beyond imports and work",
            f"mean of 7 steps {j['mean_overhead_s']:.2f} s",
            f"worst {worst} {j['steps'][worst]['overhead_s']:.2f} s",
            "< 0.25 s every step",
            _status(j["steps"][worst]["overhead_s"], 0.25 - 1e-9),
        ),
        (
            "no-op snakemake vs trivial Snakefile",
            f"{n['snakeflow_s']['median']:.2f} s / {n['trivial_s']['median']:.2f} s",
            f"{n['ratio']:.2f}x",
            "<= 1.1x",
            _status(n["ratio"], 1.1),
        ),
        *dvc_rows(results),
    ]
    for sc in results.get("scale", []):
        label = f"{sc['rows'] // 1_000_000} M rows ({sc['mb']:.0f} MB)"
        peak = max(sc["download_peak_rss_mb"], sc["clean_peak_rss_mb"])
        out += [
            (
                f"download {label} vs curl",
                f"{sc['download_s']:.2f} s / {sc['curl_s']:.2f} s",
                f"{sc['download_vs_curl']:.2f}x",
                "<= 1.2x",
                _status(sc["download_vs_curl"], 1.2),
            ),
            (
                f"clean {label} vs pyarrow",
                f"{sc['clean_s']:.2f} s / {sc['pyarrow_clean_s']:.2f} s",
                f"{sc['clean_vs_pyarrow']:.2f}x",
                "<= 1.5x",
                _status(sc["clean_vs_pyarrow"], 1.5),
            ),
            (
                f"peak RSS download / clean, {label}",
                f"{sc['download_peak_rss_mb']} MB / {sc['clean_peak_rss_mb']} MB",
                "",
                "< 512 MB, flat",
                _status(peak, 511),
            ),
        ]
    g = results["grid"]
    expected = ["evaluate", "predict", "register", "train"]
    out += [
        (
            "grid of 8 (train+evaluate): --cores 1 / 2",
            f"{g['grid8_cores1_s']:.1f} s / {g['grid8_cores2_s']:.1f} s",
            f"{g['grid_speedup']:.2f}x",
            ">= 1.7x",
            _status(g["grid_speedup"], 1.7, below=False),
        ),
        (
            "one model changed: jobs that ran",
            ", ".join(g["incremental_jobs"]),
            f"{g['incremental_vs_full']:.2f} of full",
            "train, evaluate (1 model), register, predict",
            "met" if g["incremental_jobs"] == expected else "missed",
        ),
    ]
    if d := results.get("datasets"):
        one, seq = d["one_dag"], d["one_after_the_other"]
        out.append(
            (
                "two datasets (classification + regression): one DAG / one after the other",
                f"{one['median']:.1f} s / {seq['median']:.1f} s "
                f"({_range(one['samples'], '{:.0f}')} / {_range(seq['samples'], '{:.0f}')})",
                f"{d['one_dag_vs_sequential']:.2f}x",
                "< 1.0x (one DAG wins on 2 cores)",
                _status(d["one_dag_vs_sequential"], 1.0),
            )
        )
    return out + logger_rows(results)


def dvc_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """download + clean against DVC + DVCLive (bench/programs/dvc): first run and no-op."""
    d = results.get("vs_dvc")
    if not d:
        return []
    sf, dv, tr = d["snakeflow_noop_s"], d["dvc_noop_s"], d["trivial_noop_s"]
    return [
        (
            "download+clean, first run: snakeflow vs DVC + DVCLive (dvc repro)",
            f"{d['snakeflow_first_s']['median']:.2f} s / {d['dvc_first_s']['median']:.2f} s "
            f"({_range(d['snakeflow_first_s']['samples'])} / "
            f"{_range(d['dvc_first_s']['samples'])})",
            f"{d['first_ratio']:.2f}x (reps {_range(d['first_ratio_per_rep'])})",
            "<= 1.0x",
            _status(d["first_ratio"], 1.0),
        ),
        (
            "download+clean, no-op: snakeflow vs DVC (vs trivial Snakefile)",
            f"{sf['median']:.2f} s / {dv['median']:.2f} s / {tr['median']:.2f} s "
            f"({_range(sf['samples'])} / {_range(dv['samples'])} / {_range(tr['samples'])})",
            f"{d['noop_ratio']:.2f}x DVC's, {d['noop_vs_trivial']:.2f}x trivial",
            "beside DVC's; <= 1.1x trivial",
            _status(d["noop_vs_trivial"], 1.1),
        ),
    ]


def logger_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """The logger plugin's rows: a foreign workflow of trivial jobs with and without it."""
    out = []
    for store, limit in (("sqlite", 1.10), ("server", 1.25)):
        r = results.get(f"logger_{store}")
        if not r:
            continue
        pending = max(c["pending_at_exit"] for c in r["checks"])
        requests = f", {r['requests_per_job']:.1f} requests/job" if "requests_per_job" in r else ""
        out.append(
            (
                f"{r['jobs']} shell jobs, --logger mlflow vs none, {store}",
                f"{r['logger_s']['median']:.1f} s / {r['plain_s']['median']:.1f} s; "
                f"{pending} pending at exit{requests}",
                f"{r['ratio']:.2f}x (reps {_range(r['ratio_per_rep'])})",
                f"<= {limit:.2f}x",
                _status(r["ratio"], limit),
            )
        )
    big = results.get("logger_big")
    if big:
        out.append(
            (
                f"{big['jobs']} shell jobs on sqlite: writer time per job",
                f"{big['logger_s']:.0f} s; {big['job_runs_finished']} runs FINISHED, "
                f"{big['pending_at_exit']} pending; CPU {big['writer_cpu_ms_per_job']:.1f} ms",
                f"{big['writer_ms_per_job']:.1f} ms",
                "< 5 ms",
                _status(big["writer_ms_per_job"], 5),
            )
        )
    replay = results.get("logger_replay")
    if replay:
        small, large = replay["runs"]
        out.append(
            (
                "replay of pending entries (store down, then a no-op)",
                f"{small['pending_before']}: {small['replay_s']:.1f} s; "
                f"{large['pending_before']}: {large['replay_s']:.1f} s",
                f"{large['ms_per_entry']:.0f} ms/entry ({replay['linearity']:.2f}x the small's)",
                "linear",
                _status(replay["linearity"], 1.5),
            )
        )
    return out


def logger_text(results: dict) -> str:
    """How the logger rows were measured, and what each run cost."""
    sq, sv = results.get("logger_sqlite"), results.get("logger_server")
    if not sq or not sv:
        return ""
    lines = [
        "## The logger plugin at scale\n",
        f"`bench/programs/manyjobs`: {sq['jobs']} trivial shell jobs (one output, one log "
        "each) at `--cores 2`, each run in a fresh copy with a fresh store, without and with "
        f"`--logger mlflow` in balanced order ({sq['reps']} pairs), wall time to exit (the "
        "drain included). Every run with the logger is checked: zero entries pending in "
        "`.snakemake/mlflow/pending` at exit, every job's run FINISHED under one parent.\n",
        f"- SQLite: {_samples(sq)}; writer time {sq['writer_ms_per_job']:.1f} ms per job, of "
        f"which {sq['writer_cpu_ms_per_job']:.1f} ms CPU (the rest waits for the disk's "
        "commit; the writer runs in a process of its own, beside Snakemake's loop).",
        f"- `mlflow server` (SQLite backend, 2 workers, on the same two cores): {_samples(sv)}; "
        f"{sv.get('requests_per_job', 0):.1f} requests per job; writer time "
        f"{sv['writer_ms_per_job']:.0f} ms per job over 4 threads "
        f"({sv['writer_cpu_ms_per_job']:.1f} ms CPU).",
    ]
    big = results.get("logger_big")
    if big:
        lines.append(
            f"- {big['jobs']} jobs on SQLite (in chains of {big.get('chain', 1)}: with "
            "every job ready at once Snakemake's own scheduling grows with the square of the "
            f"count): {big['logger_s']:.0f} s, "
            f"{big['job_runs_finished']} runs FINISHED, {big['pending_at_exit']} pending at "
            f"exit; writer {big['writer_ms_per_job']:.1f} ms per job "
            f"({big['writer_cpu_ms_per_job']:.1f} ms CPU)."
        )
    for r in results.get("logger_replay", {}).get("runs", []):
        lines.append(
            f"- Replay: {r['pending_before']} entries left by a run whose SQLite store was "
            f"locked by another process once its parent run existed, logged by the next "
            f"(no-op) invocation: "
            f"{r['noop_with_replay_s']:.1f} s against {r['noop_s']:.1f} s for a no-op with "
            f"nothing pending ({r['ms_per_entry']:.0f} ms per entry)."
        )
    return "\n".join(lines) + "\n\n"


def _separately(results: dict) -> str:
    """Sections measured in another run (``bench/run.py --only``) than the latest."""
    other = [
        f"{name} on {m['date']} (`{m['measured']}`)"
        for name, m in results.get("section_measured", {}).items()
        if m["measured"] != results["measured"] or m["date"][:10] != results["date"][:10]
    ]
    return f" Measured separately: {'; '.join(other)}." if other else ""


def _samples(r: dict) -> str:
    pairs = ", ".join(
        f"{a:.1f}/{b:.1f}" for a, b in zip(r["logger_s"]["samples"], r["plain_s"]["samples"])
    )
    return f"with/without the logger {pairs} s ({r['ratio']:.2f}x)"


def markdown_table(head: tuple[str, ...], body: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join([*lines, *(fmt.format(*map(str, r)) for r in body)])


def table(results: dict) -> str:
    return markdown_table(("measure", "value", "result", "target", "status"), rows(results))


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def step_table(results: dict) -> str:
    j = results["jobs"]
    body = [
        (
            step,
            s["jobs"],
            _s(s["job_wall_s"]),
            _s(s["benchmark_wall_s"]),
            _s(s["imports_s"]),
            _s(s["work_s"]),
            f"**{s['overhead_s']:.2f}**",
            _s(s["overhead_benchmark_s"]),
            _s(s.get("process_start_exit_s")),
        )
        for step, s in j["steps"].items()
    ]
    body.append(
        (
            "mean of the steps",
            "",
            "",
            "",
            "",
            "",
            f"**{j['mean_overhead_s']:.2f}**",
            _s(j["mean_overhead_benchmark_s"]),
            "",
        )
    )
    head = (
        "step",
        "jobs",
        "job wall (run)",
        "job wall (benchmark file)",
        "imports",
        "work",
        "overhead",
        "overhead (benchmark file)",
        "process start+exit",
    )
    return markdown_table(head, body)


def old_new_table(results: dict) -> str:
    walls = results["vs_old"]["job_wall_by_step_s"]
    rules = sorted(set(walls["old"]) | set(walls["new"]))
    body = [(rule, _s(walls["old"].get(rule)), _s(walls["new"].get(rule))) for rule in rules]
    return markdown_table(("step", f"{results['vs_old']['old_commit']}", "today"), body)


def _timeline(section: dict, name: str) -> str:
    """Where a snakeflow run's time went, from the plugin's MLflow runs (means)."""
    t = section.get(f"{name}_timeline_s")
    if not t:
        return ""
    return (
        f"{t['to_parent_run_s']:.2f} s until the parent run exists, "
        f"{t['parent_run_to_first_job_s']:.2f} s more until the first job starts, "
        f"{t['jobs_s']:.2f} s of jobs, {t['after_last_job_s']:.2f} s after the last job ends."
    )


def write_markdown(results: dict, path: str) -> None:
    """BENCHMARKS.md: the table, the per-step costs and the hand-written bench/analysis.md."""
    j, o = results["jobs"], results["vs_old"]
    samples = ", ".join(
        f"{n:.1f}/{d:.1f}" for n, d in zip(o["new_s"]["samples"], o["old_s"]["samples"])
    )
    Path(path).write_text(
        f"# Benchmarks\n\n"
        f"Latest run: {results['date']} on {results['machine']}, measuring "
        f"`{results['measured']}` ({results['seconds'] / 60:.1f} min; `make bench`; load "
        f"average {results['load_before']:.1f} before, {results['load_after']:.1f} after). "
        f"Medians of alternating runs (reps: the range of the per-repetition ratios); "
        f"ratios matter, seconds vary with the machine's load.{_separately(results)}\n\n"
        f"{table(results)}\n\n"
        f"## Per-job overhead, by step\n\n"
        f"The full pipeline on `--cores 1` ({j['jobs']} jobs, {j['pipeline_s']:.1f} s). "
        f"Seconds per job. **overhead = job wall - imports - work**, where *job wall* is the "
        f"job's MLflow run, from Snakemake's job_info to job_finished (the benchmark file, "
        f"the job's process alone, beside it); *imports* is the time the step's third-party "
        f"libraries take to import in a fresh process (`bench/programs/step_imports.py`, "
        f"mean of one measure just before and one just after the run); *work* is the "
        f"step's typed functions called in one process (`bench/programs/step_work.py`), "
        f"per job.\n\n"
        f"{step_table(results)}\n\n"
        f"*process start+exit*: the wall time of the fresh process that imports the step's "
        f"libraries, less that import time: starting the interpreter and, mostly, ending a "
        f"process that holds those libraries (a bare one: "
        f"{j.get('bare_process_start_exit_s', 0):.2f} s). Of the overhead, the job script's "
        f"Snakemake preamble (unpickling the `snakemake` object imports "
        f"`snakemake.iocontainers`) takes {j['job_preamble_imports_s']:.2f} s to import.\n\n"
        f"## Today against {o['old_commit']}, full pipeline on `--cores 2`\n\n"
        f"Seconds of each alternating pair (today/old): {samples}. Where today's run goes "
        f"(means, from the times of the plugin's MLflow runs): {_timeline(o, 'new')} Mean "
        f"job wall by step (benchmark files, both designs, all repetitions):\n\n"
        f"{old_new_table(results)}\n\n"
        f"Where snakeflow's download + clean goes, against MLflow Projects (means): "
        f"{_timeline(results['vs_mlflow_projects'], 'snakeflow')}\n\n"
        f"{logger_text(results)}"
        f"Raw numbers: `bench/results.json`.\n\n{ANALYSIS.read_text()}"
    )
