"""One scenario for every scheduler: the pipeline of two datasets (one DAG) with a job killed
by the scheduler, then the same command again. The Slurm and Grid Engine tests share it (a
cluster run is costly)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .data import GRID, REGRESSORS
from .workflow import SNAKEMAKE, Result

# about 3 s of training on a quiet machine (longer on a busy one): time to kill its job
# mid-step, once its record says it has read its input
SLOW = {
    "estimator": "sklearn.neural_network.MLPClassifier",
    "params": {
        "hidden_layer_sizes": [32],
        "max_iter": 16000,
        "tol": 0.0,
        "n_iter_no_change": 1000000,
    },
}
MODELS = {"logreg": GRID["logreg"], "slow": SLOW, "ridge": REGRESSORS["ridge"]}
# per dataset: download, clean, split, train+evaluate of each model of its task, register,
# predict; titanic trains logreg and slow, houses ridge
JOBS = {"titanic": 3 + 2 * 2 + 2, "houses": 3 + 2 * 1 + 2}


@dataclass
class Scenario:
    first: Result  # the run whose job was killed
    rerun: Result  # the same command again
    victim: object  # the killed job's MLflow run, as it was when it was killed


def experiment_runs(wf) -> list:
    client = wf.client()
    experiment = client.get_experiment_by_name(wf.env["MLFLOW_EXPERIMENT_NAME"])
    return client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []


def _has_read_its_input(record: Path) -> bool:
    """Whether a train job's record has its input line: the job trains next."""
    try:
        lines = record.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any('"input"' in line for line in lines)


def kill_one_job_then_rerun(wf, flags, id_tag: str, kill: list[str]) -> Scenario:
    """Run the pipeline; once the slow model's train job is training, kill it with
    ``kill + [its scheduler job id]``; wait for snakemake to fail; run the same again."""
    wf.configure(models=MODELS)
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", *flags],
        cwd=wf.path,
        env=wf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, ended if the test fails early
    )
    try:
        record = wf.path / "logs/train/titanic/slow.mlflow.jsonl"
        victim = None
        deadline = time.time() + 600
        while victim is None and time.time() < deadline and proc.poll() is None:
            for run in experiment_runs(wf):
                tags = run.data.tags
                if (
                    tags.get("snakemake.rule") == "train"
                    and tags.get("snakemake.wildcards.model") == "slow"
                    and id_tag in tags
                    and _has_read_its_input(record)  # the step is training
                ):
                    victim = run
            time.sleep(0.5)
        assert victim is not None, "the slow train job never started:\n" + (
            proc.communicate()[0] if proc.poll() is not None else ""
        )
        subprocess.run([*kill, victim.data.tags[id_tag]], check=True, env=wf.env)
        output = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    first = Result(proc.returncode, output)
    rerun = wf.run(*flags, timeout=900)
    return Scenario(first, rerun, victim)


def assert_tracked_once(wf, scenario: Scenario, id_tag: str, submitted_re: str) -> list:
    """Every job ran on the scheduler and finished exactly once over the two invocations,
    each run tagged with its scheduler job id; the killed job's run did not finish. Returns
    the job runs."""
    first, rerun = scenario.first, scenario.rerun
    assert first.returncode != 0 and "Error in rule train" in first.output
    for dataset in JOBS:
        assert (wf.path / f"results/{dataset}/predictions.csv").exists()
    submitted = re.findall(submitted_re, first.output) + re.findall(submitted_re, rerun.output)
    assert len(re.findall(submitted_re, rerun.output)) == len(rerun.ran)  # all but `all`
    runs = experiment_runs(wf)
    parents = {r.info.run_id: r for r in runs if r.data.tags["snakemake.kind"] == "invocation"}
    assert sorted(p.info.status for p in parents.values()) == ["FAILED", "FINISHED"]
    jobs = [r for r in runs if r.data.tags["snakemake.kind"] == "job"]
    assert {j.data.tags["mlflow.parentRunId"] for j in jobs} <= set(parents)
    assert sorted(j.data.tags[id_tag] for j in jobs) == sorted(submitted)
    finished = [
        (
            j.data.tags["snakemake.wildcards.dataset"],
            j.data.tags["snakemake.rule"],
            j.data.tags.get("snakemake.wildcards.model"),
        )
        for j in jobs
        if j.info.status == "FINISHED"
    ]
    assert len(finished) == len(set(finished)) == sum(JOBS.values()), finished  # none twice
    for dataset, count in JOBS.items():  # both datasets' pipelines, in the same invocations
        assert len([f for f in finished if f[0] == dataset]) == count, finished
    killed = wf.client().get_run(scenario.victim.info.run_id)
    assert killed.info.status in ("KILLED", "FAILED")
    assert not [j for j in jobs if j.info.status == "RUNNING"]
    return jobs
