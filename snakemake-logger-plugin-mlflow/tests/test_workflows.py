"""The plugin on a small two-rule workflow: what a job's run and the invocation's run hold."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from mlflow.tracking import MlflowClient
from smk import Plain, sha256
from snakemake_logger_plugin_mlflow import jobs
from snakemake_logger_plugin_mlflow.channel import PARENT_RUN_ENV, SHA_TAG

# Two shell rules; `measure` records a param and a metric from the shell (no Python, no MLflow).
SNAKEFILE = textwrap.dedent(
    r"""
    rule all:
        input:
            "out/summary.txt",


    rule measure:
        output:
            counts="out/counts.txt",
        log:
            log="logs/measure.log",
            record="logs/measure.mlflow.jsonl",
        shell:
            "seq 1 {config[count]} > {output.counts}; echo measured > {log.log}; "
            "echo '{{\"params\": {{\"n\": {config[count]}}}}}' >> {log.record}; "
            "echo '{{\"metrics\": {{\"lines\": '$(wc -l < {output.counts})'}}}}' >> {log.record}"


    rule summarise:
        input:
            "out/counts.txt",
        output:
            "out/summary.txt",
        log:
            "logs/summarise.log",
        benchmark:
            "benchmarks/summarise.tsv"
        threads: 2
        resources:
            mem_mb=123,
        shell:
            "test {config[fail]} = no && wc -l < {input} > {output} 2> {log}"
    """
)


class Counted(Plain):
    def run(self, *args: str, n: int = 3, fail: str = "no") -> subprocess.CompletedProcess:
        return self.snakemake(*args, "--config", f"count={n}", f"fail={fail}")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Plain:
    """One tracked run of the plain workflow, shared by the tests that only read it."""
    plain = Counted(tmp_path_factory.mktemp("plain"), SNAKEFILE)
    done = plain.run()
    assert done.returncode == 0, done.stderr[-4000:]
    return plain


def test_one_parent_run_and_one_nested_run_per_job(tracked):
    runs = tracked.runs()
    (parent,) = [r for r in runs if r.data.tags["snakemake.kind"] == "invocation"]
    jobs_ = {
        r.data.tags["snakemake.rule"]: r for r in runs if r.data.tags["snakemake.kind"] == "job"
    }
    assert set(jobs_) == {"measure", "summarise"}  # the target rule `all` makes no run
    assert parent.info.status == "FINISHED"
    assert parent.data.params["count"] == "3"  # the workflow's config
    assert parent.data.tags["mlflow.source.name"].endswith("Snakefile")
    for run in jobs_.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_job_run_carries_what_snakemake_knows(tracked):
    client = MlflowClient(tracked.uri)
    runs = {r.data.tags.get("snakemake.rule"): r for r in tracked.runs()}
    summarise = runs["summarise"]
    tags = summarise.data.tags
    assert tags["snakemake.threads"] == "2"
    assert tags["snakemake.resources.mem_mb"] == "123"
    assert tags[SHA_TAG + "out/summary.txt"] == sha256(tracked.path / "out/summary.txt")
    artifacts = {
        a.path
        for d in ("logs", "benchmarks")
        for a in client.list_artifacts(summarise.info.run_id, d)
    }
    assert artifacts == {"logs/summarise.log", "benchmarks/summarise.tsv"}
    assert summarise.data.metrics["seconds"] >= 0


def test_a_shell_rule_records_a_param_and_a_metric(tracked):
    measure = {r.data.tags.get("snakemake.rule"): r for r in tracked.runs()}["measure"]
    assert measure.data.params == {"n": "3"}
    assert measure.data.metrics["lines"] == 3
    assert "snakemake.record_warnings" not in measure.data.tags
    # the record is not logged as a log file
    names = {a.path for a in MlflowClient(tracked.uri).list_artifacts(measure.info.run_id, "logs")}
    assert names == {"logs/measure.log"}


def test_no_op_and_dry_run_create_no_run_and_load_no_mlflow(tracked):
    before = len(tracked.runs())
    assert tracked.run("-n").returncode == 0
    code = (
        "import sys, runpy\n"
        "sys.argv = ['snakemake', '--logger', 'mlflow', '--cores', '1', '--config', 'count=3', "
        "'fail=no']\n"
        "try:\n"
        "    runpy.run_module('snakemake', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('LOADED', 'mlflow' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tracked.path,
        env=tracked.env,
        capture_output=True,
        text=True,
    )
    assert "LOADED False" in proc.stdout, proc.stdout + proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert len(tracked.runs()) == before


def test_a_failing_job_ends_its_run_failed(tmp_path):
    plain = Counted(tmp_path / "plain", SNAKEFILE)
    failed = plain.run(fail="yes")
    assert failed.returncode != 0
    runs = {r.data.tags.get("snakemake.rule", "parent"): r for r in plain.runs()}
    assert runs["measure"].info.status == "FINISHED"
    assert runs["summarise"].info.status == "FAILED"
    assert "the job failed" in runs["summarise"].data.tags["snakemake.error"]
    assert runs["parent"].info.status == "FAILED"


def test_a_jobs_own_mlflow_run_nests_under_the_invocation(tmp_path):
    """A user's step may call MLflow itself: its run goes under the invocation's run."""
    plain = Counted(tmp_path / "own", SNAKEFILE)
    (plain.path / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            rule own:
                output:
                    "done.txt",
                log:
                    "logs/own.log",
                shell:
                    "{sys.executable} -c 'import mlflow, os; "
                    "mlflow.start_run(parent_run_id=os.environ[\\"{PARENT_RUN_ENV}\\"]); "
                    "mlflow.log_metric(\\"mine\\", 1); mlflow.end_run()' 2> {{log}}; "
                    "touch {{output}}"
            """
        )
    )
    done = plain.run()
    assert done.returncode == 0, done.stderr[-3000:]
    runs = plain.runs()
    (parent,) = [r for r in runs if r.data.tags.get("snakemake.kind") == "invocation"]
    (mine,) = [r for r in runs if "mine" in r.data.metrics]
    assert mine.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mine.info.experiment_id == parent.info.experiment_id


def test_logging_an_entry_twice_makes_one_run(tmp_path, monkeypatch):
    """The replay of a job's spool entry (after a crash or a store outage) is idempotent."""
    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("replay")
    parent = client.create_run(experiment_id).info.run_id
    out = tmp_path / "out.csv"
    out.write_text("a\n1\n")
    lines = [
        {"params": {"model": {"depth": 3}, "data": "x"}},
        {"metrics": {"accuracy": 0.75}},
        {"tags": {"team": "ml"}},
        {"input": str(out), "name": "data", "context": "train"},
        {"artifact": str(out), "artifact_path": "tables"},
    ]
    (tmp_path / "job.mlflow.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    from snakemake_logger_plugin_mlflow.spool import read_record

    entry = {
        "key": f"{parent}/7",
        "jobid": 7,
        "rule": "fit",
        "wildcards": {"model": "m1"},
        "output": [str(out)],
        "sha256": {str(out): sha256(out)},
        "log": [],
        "parent": parent,
        "experiment_id": experiment_id,
        "snakefile": "Snakefile",
        "status": "FINISHED",
        "start_ms": 1000,
        "end_ms": 3000,
        "record": read_record(tmp_path / "job.mlflow.jsonl"),
    }
    first = jobs.JobWriter(client).log(entry)
    second = jobs.JobWriter(client).log(entry)  # a later invocation replays it
    assert first == second
    runs = client.search_runs([experiment_id], "tags.`snakemake.kind` = 'job'")
    assert len(runs) == 1
    run = client.get_run(first)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model.depth": "3", "data": "x"}
    assert run.data.metrics["accuracy"] == 0.75 and run.data.metrics["seconds"] == 2.0
    assert len(client.get_metric_history(first, "accuracy")) == 1
    assert run.data.tags["team"] == "ml" and run.data.tags["snakemake.wildcards.model"] == "m1"
    assert run.data.tags["input.train.sha256"] == sha256(out)
    assert len(run.inputs.dataset_inputs) == 1
    assert [a.path for a in client.list_artifacts(first, "tables")] == ["tables/out.csv"]
    # a half-logged run (crash before its end) is completed, not duplicated
    client.set_terminated(first, "RUNNING")
    assert jobs.JobWriter(client).log(entry) == first
    assert client.get_run(first).info.status == "FINISHED"
    assert len(client.get_metric_history(first, "accuracy")) == 1
