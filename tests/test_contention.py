"""Contention: a grid of 20 models (40 train/evaluate jobs), --cores 4, on a fresh store.

Once against a fresh SQLite file and once against a real `mlflow server` on 127.0.0.1:
every job succeeds and every run, metric and artifact is recorded.
"""

from __future__ import annotations

import pytest

from support import TrackingServer, titanic_rows, to_csv

GRID = {
    f"tree{depth}": {
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": depth},
    }
    for depth in range(1, 21)
}
EVAL_METRICS = {"accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"}


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_grid_of_20_models_loses_nothing(fresh_workflow, http_server, tmp_path, store):
    wf = fresh_workflow
    server = TrackingServer(tmp_path / "server") if store == "server" else None
    try:
        if server:
            wf.env["MLFLOW_TRACKING_URI"] = server.url
        url = http_server.publish("contention/titanic.csv", to_csv(titanic_rows(200, seed=2)))
        wf.configure(data_url=url, models=GRID, register={"threshold": 0.0})
        result = wf.run(cores=4, timeout=1200)
        assert len(result.ran) == 3 + 40 + 2

        runs = wf.runs()
        jobs = [r for r in runs if r.data.tags["snakemake.kind"] == "job"]
        assert len(jobs) == 45 and all(r.info.status == "FINISHED" for r in jobs)
        assert len([r for r in runs if r.data.tags["snakemake.kind"] == "invocation"]) == 1
        client = wf.client()
        evaluations = [r for r in jobs if r.data.tags["snakemake.rule"] == "evaluate"]
        trainings = [r for r in jobs if r.data.tags["snakemake.rule"] == "train"]
        assert len(evaluations) == len(trainings) == 20
        for run in evaluations + trainings:
            assert set(run.data.metrics) >= EVAL_METRICS  # train runs get them from evaluate
        for run in jobs:
            names = {a.path for a in client.list_artifacts(run.info.run_id, "logs")}
            assert len(names) == 1
            assert len(client.list_artifacts(run.info.run_id, "env")) == 1
        for run in evaluations:
            plots = {
                a.path.rsplit("/", 1)[1] for a in client.list_artifacts(run.info.run_id, "plots")
            }
            assert plots == {"confusion_matrix.png", "roc.png", "pr.png"}
        models = client.search_logged_models([jobs[0].info.experiment_id], max_results=100)
        assert len(models) == 20
    finally:
        if server:
            server.stop()
