"""Against a real ``mlflow server``: what several writer threads send at once."""

from __future__ import annotations

import threading

import pytest
from mlflow.tracking import MlflowClient
from smk import Server
from snakemake_logger_plugin_mlflow.jobs import JobWriter

THREADS = 8  # the writer's lanes for a server are 4; more make the race likelier


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()


def _finished(parent: str, experiment_id: str, n: int, data: str, log: str) -> dict:
    return {
        "key": f"{parent}/{n}",
        "parent": parent,
        "experiment_id": experiment_id,
        "jobid": n,
        "attempt": 1,
        "rule": "train",
        "wildcards": {"model": f"m{n}"},
        "input": [data],
        "output": [],
        "log": [log],
        "benchmark": [],
        "threads": 1,
        "resources": {},
        "snakefile": "Snakefile",
        "commit": None,
        "host": "test",
        "start_ms": 1_000,
        "status": "FINISHED",
        "end_ms": 2_000,
        "record": [{"input": data, "context": "training"}],
        "sha256": {},
        "bytes": {},
    }


def _log_at_once(writer: JobWriter, entry: dict, start: threading.Barrier, errors: list) -> None:
    start.wait()
    try:
        writer.log(entry)
    except Exception as exc:  # what the writer's lane would take for a refusal
        errors.append(exc)


def test_jobs_that_end_together_with_one_new_input_are_all_logged(server, tmp_path, monkeypatch):
    """Jobs that read the same new dataset and reach the server at the same moment (a grid of
    models after its split, or everything queued while the server was down): MLflow's server
    inserts the new dataset once per concurrent request and refuses all but one of them. The
    writer sends them one at a time, so every job run ends FINISHED with its input."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)  # as the writer process has it
    client = MlflowClient(server.url)
    experiment_id = client.create_experiment("together")
    writer = JobWriter(client)
    log = tmp_path / "job.log"
    log.write_text("log\n")
    for round_ in range(6):
        parent = client.create_run(experiment_id).info.run_id
        data = tmp_path / f"train{round_}.csv"  # a dataset the store has not seen
        data.write_text(f"a,b\n{round_},1\n")
        entries = [_finished(parent, experiment_id, n, str(data), str(log)) for n in range(THREADS)]
        errors: list[BaseException] = []
        start = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=_log_at_once, args=(writer, e, start, errors)) for e in entries
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
        assert len(runs) == THREADS and {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:
            (item,) = client.get_run(run.info.run_id).inputs.dataset_inputs
            assert item.dataset.source and "train" in item.dataset.name + item.dataset.source
        assert len(client.get_run(parent).inputs.dataset_inputs) == 1  # the parent lists it once
