"""Contention: a grid of models trained and evaluated at --cores 4, on a fresh store.

Once against a fresh SQLite file and once against a real `mlflow server` on 127.0.0.1:
every job succeeds and every run, metric and artifact is recorded.

What contends is the writer process (jobs never call MLflow): job ends arriving while
earlier ones are being written, batched into one transaction on SQLite, spread over the
writer's lanes (``HTTP_LANES``, 4) against a server whose two workers share one SQLite file.
Each grid is sized to that. SQLite has one lane: 4 models, as many as cores, so the train
jobs and then the evaluate jobs come in a wave of 4 that end close together (13 jobs).
The server: 8 models, so the waves repeat, and 21 jobs, whose keys reach every lane (a lane
left idle has odds of 4 * (3/4) ** 21, under 1 %).
"""

from __future__ import annotations

import pytest

from support import TrackingServer, titanic_rows, to_csv

MODELS = {"sqlite": 4, "server": 8}  # models in the grid of each store (see above)


def grid(models: int) -> dict:
    return {
        f"tree{depth}": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": depth},
        }
        for depth in range(1, models + 1)
    }


EVAL_METRICS = {"accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"}


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_grid_of_models_loses_nothing(fresh_workflow, http_server, tmp_path, store):
    wf = fresh_workflow
    models = grid(MODELS[store])
    server = TrackingServer(tmp_path / "server", workers=2) if store == "server" else None
    try:
        if server:
            wf.env["MLFLOW_TRACKING_URI"] = server.url
        url = http_server.publish("contention/titanic.csv", to_csv(titanic_rows(200, seed=2)))
        wf.configure(data_url=url, models=models, register={"threshold": 0.0})
        result = wf.run(cores=4, timeout=1200)
        assert len(result.ran) == 3 + 2 * len(models) + 2

        runs = wf.runs()
        jobs = [r for r in runs if r.data.tags["snakemake.kind"] == "job"]
        assert len(jobs) == 3 + 2 * len(models) + 2
        assert all(r.info.status == "FINISHED" for r in jobs)
        assert len([r for r in runs if r.data.tags["snakemake.kind"] == "invocation"]) == 1
        client = wf.client()
        evaluations = [r for r in jobs if r.data.tags["snakemake.rule"] == "evaluate"]
        trainings = [r for r in jobs if r.data.tags["snakemake.rule"] == "train"]
        assert len(evaluations) == len(trainings) == len(models)
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
        logged = client.search_logged_models([jobs[0].info.experiment_id], max_results=100)
        assert len(logged) == len(models)
    finally:
        if server:
            server.stop()
