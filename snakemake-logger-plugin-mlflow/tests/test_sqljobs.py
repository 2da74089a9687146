"""Job runs written straight into a SQLite store (``sqljobs``): only where they are what
MLflow's client API writes, and then the writer process needs no MLflow at all."""

from __future__ import annotations

import json

import pytest
from smk import Plain, sha256
from snakemake_logger_plugin_mlflow import channel, direct, sqljobs, store

# a job that records a param, a metric and an input; one that reads its output
SNAKEFILE = r"""
rule all:
    input:
        "out/summary.txt",


rule measure:
    input:
        "data.csv",
    output:
        counts="out/counts.txt",
    log:
        log="logs/measure.log",
        record="logs/measure.mlflow.jsonl",
    shell:
        "wc -l < {input} > {output.counts}; echo measured > {log.log}; "
        "echo '{{\"params\": {{\"n\": {config[count]}}}}}' >> {log.record}; "
        "echo '{{\"metrics\": {{\"lines\": '$(cat {output.counts})'}}}}' >> {log.record}; "
        "echo '{{\"input\": \"{input}\", \"context\": \"training\"}}' >> {log.record}"


rule summarise:
    input:
        "out/counts.txt",
    output:
        "out/summary.txt",
    log:
        "logs/summarise.log",
    shell:
        "cat {input} > {output} 2> {log}"
"""


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """The empty store of this MLflow version with its facts, made once in a cache of these
    tests (set for as long as they run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(channel.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield store.empty_store()


def test_job_runs_are_written_directly_only_as_mlflow_writes_them(empty, tmp_path, monkeypatch):
    """Checked once per MLflow version: the same jobs, config, end and reaping through
    MLflow's client API and through sqljobs, every table and artifact file compared."""
    monkeypatch.chdir(tmp_path)
    assert direct.facts()["jobs"] is True
    (tmp_path / "ok").mkdir()
    assert store.jobs_match(empty, tmp_path / "ok")


@pytest.mark.parametrize(
    "change",
    [
        ("CONTEXT_TAG", "mlflow.data.purpose"),  # an input tag of another name
        ("metric_value", lambda v: (v != v, 0.0 if v != v else min(v, 1e308))),  # inf: 1e308
        ("NO_END_EVENT", "killed"),  # another reason on the job that never ended
    ],
    ids=["input tag", "infinite metric", "killed reason"],
)
def test_the_comparison_sees_any_difference(empty, tmp_path, monkeypatch, change):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sqljobs, *change)
    assert not store.jobs_match(empty, tmp_path)


def test_sqljobs_keeps_what_mlflow_must_write(empty, tmp_path):
    """A logged model, a directory as an artifact, a run that is not active: left to MLflow,
    nothing of them written."""
    import shutil

    from mlflow.tracking import MlflowClient

    db = tmp_path / "m.db"
    shutil.copyfile(empty, db)
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "art"))
    parent = client.create_run(experiment_id).info.run_id
    base = {
        "parent": parent,
        "experiment_id": experiment_id,
        "snakefile": "Snakefile",
        "rule": "r",
        "start_ms": 1,
        "log": [],
        "output": [],
    }
    sql = sqljobs.SqlJobs(db, sqljobs.Ledger())
    jobs = [base | {"key": f"{parent}/{i}", "jobid": i} for i in range(3)]
    assert sql.write_many([("start", job) for job in jobs]) == []
    ended = {"status": "FINISHED", "end_ms": 2}
    model = jobs[0] | ended | {"record": [{"model": str(tmp_path / "model")}]}
    folder = jobs[1] | ended | {"record": [{"artifact": str(tmp_path)}, {"params": {"p": 1}}]}
    client.delete_run(sql.ledger.runs[jobs[2]["key"]][0])
    gone = jobs[2] | ended
    items = [("finish", model), ("finish", folder), ("finish", gone)]
    assert sql.write_many(items) == items
    runs = client.search_runs([experiment_id])  # the parent and two jobs (one deleted)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"RUNNING"}
    assert all(not r.data.params and len(r.data.tags) < 20 for r in runs)
    assert len(sql.ledger.runs) == 3 and not sql.ledger.ended


def test_a_workflow_on_a_verified_store_needs_no_mlflow_in_the_writer(plain, tmp_path):
    """With an ``mlflow`` on the path that cannot be imported, every run is still logged:
    the snakemake process and the writer never imported it."""
    wf: Plain = plain(SNAKEFILE)
    (wf.path / "data.csv").write_text("a\n1\n2\n")
    cache = tmp_path / "cache"
    wf.env[channel.CACHE_ENV] = str(cache)
    first = wf.snakemake("--config", "count=1")  # makes the empty store and its facts
    assert first.returncode == 0, first.stderr[-3000:]
    (known,) = cache.glob("*.json")
    assert json.loads(known.read_text())["jobs"] is True
    poison = tmp_path / "poison" / "mlflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('this mlflow may not be imported')\n")
    wf.env["PYTHONPATH"] = str(poison.parent)
    again = wf.snakemake("--forceall", "--config", "count=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "warning" not in again.stderr and "mlflow logger" not in again.stderr
    del wf.env["PYTHONPATH"]
    (parent,) = [p for p in wf.parents() if p.data.params.get("count") == "2"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[channel.LOGGER_METRIC + "job_runs"] == 2
    client = wf.client()
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["config.json"]
    jobs = {
        r.data.tags[channel.RULE_TAG]: r
        for r in wf.jobs()
        if r.data.tags[channel.PARENT_TAG] == parent.info.run_id
    }
    assert {r.info.status for r in jobs.values()} == {"FINISHED"} and len(jobs) == 2
    measure = jobs["measure"]
    assert measure.data.params == {"n": "2"} and measure.data.metrics["lines"] == 3
    assert measure.data.tags[f"{channel.SHA_TAG}out/counts.txt"] == sha256(
        wf.path / "out/counts.txt"
    )
    (used,) = measure.inputs.dataset_inputs
    assert used.dataset.digest == sha256(wf.path / "data.csv")[:32]
    assert [t.value for t in used.tags] == ["training"]
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["data"]
    logs = [a.path for a in client.list_artifacts(measure.info.run_id, "logs")]
    assert logs == ["logs/measure.log"]


def test_where_sqljobs_is_not_shown_to_match_mlflow_writes_the_jobs(plain, tmp_path):
    """Facts that say no (another MLflow's store, say): the same runs, through MLflow."""
    wf: Plain = plain(SNAKEFILE)
    (wf.path / "data.csv").write_text("a\n1\n")
    cache = tmp_path / "cache"
    wf.env[channel.CACHE_ENV] = str(cache)
    assert wf.snakemake("--config", "count=1").returncode == 0
    (known,) = cache.glob("*.json")
    known.write_text(json.dumps(json.loads(known.read_text()) | {"jobs": False}))
    again = wf.snakemake("--forceall", "--config", "count=2")
    assert again.returncode == 0, again.stderr[-3000:]
    (parent,) = [p for p in wf.parents() if p.data.params.get("count") == "2"]
    assert parent.info.status == "FINISHED"
    jobs = [r for r in wf.jobs() if r.data.tags[channel.PARENT_TAG] == parent.info.run_id]
    assert sorted(r.info.status for r in jobs) == ["FINISHED", "FINISHED"]
    (measure,) = [r for r in jobs if r.data.tags[channel.RULE_TAG] == "measure"]
    assert measure.data.params == {"n": "2"} and len(measure.inputs.dataset_inputs) == 1
