"""The whole pipeline through real snakemake runs: grid, staleness, registry, report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from support import GRID, flower_rows, sha256, titanic_rows, to_csv

PASSING_GATE = {"metric": "roc_auc", "threshold": 0.5}


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def registered_versions(workflow, name):
    return workflow.client().search_model_versions(f"name = '{name}'")


def load_champion_in_fresh_process(workflow, name, csv_path, drop):
    code = (
        "import sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{name}@champion')\n"
        f"rows = pd.read_csv({str(csv_path)!r}).drop(columns=[{drop!r}])\n"  # as pandas reads it
        "print('PRED', len(rows), sorted(set(map(str, model.predict(rows)))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workflow.path,
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split("PRED", 1)[1].strip()


def serve_and_post(workflow, model_uri: str, csv_path) -> dict:
    """`mlflow models serve` on loopback, as the README shows; POST CSV rows, return JSON."""
    import os
    import signal
    import time
    import urllib.request

    from support import BIN, free_port

    port = free_port()
    serve = ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    server = subprocess.Popen(
        [str(BIN / "mlflow"), *serve, "-h", "127.0.0.1", "-p", str(port)],
        cwd=workflow.path,
        env=workflow.env | {"PATH": f"{BIN}:{os.environ['PATH']}"},  # it runs uvicorn
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows = [r[:1] + r[2:] for r in read_csv(csv_path)]  # without the label (column 2)
    body = to_csv(rows)
    try:
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body,
                    headers={"Content-Type": "text/csv"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read())
            except OSError:
                assert time.time() < deadline and server.poll() is None, "serve did not answer"
                time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def test_titanic_grid_end_to_end(fresh_workflow, http_server):
    wf = fresh_workflow
    rows = titanic_rows(300, seed=7)
    url = http_server.publish("pipe/titanic.csv", to_csv(rows))
    wf.configure(data_url=url, models=GRID, register=PASSING_GATE)

    # a fresh clone: no mlflow.db yet, four models trained in parallel
    first = wf.run(cores=4)
    assert sorted(first.ran) == sorted(
        ["download", "clean", "split", *["train"] * 4, *["evaluate"] * 4, "register", "predict"]
    )
    jobs = wf.job_runs()
    assert len(jobs) == 13 and all(r.info.status == "FINISHED" for r in jobs)
    (parent,) = wf.runs("tags.`snakemake.kind` = 'invocation'")
    assert {j.data.tags["mlflow.parentRunId"] for j in jobs} == {parent.info.run_id}

    results = wf.path / "results/titanic"
    train_rows = read_csv(wf.path / "data/split/titanic/train.csv")
    test_rows = read_csv(wf.path / "data/split/titanic/test.csv")
    clean_rows = read_csv(wf.path / "data/clean/titanic.csv")
    assert train_rows[0] == test_rows[0] == clean_rows[0]
    assert sorted(train_rows[1:] + test_rows[1:]) == sorted(clean_rows[1:])
    assert abs(len(test_rows[1:]) - 0.25 * len(clean_rows[1:])) <= 1

    metrics = {m: json.loads((results / f"metrics/{m}.json").read_text()) for m in GRID}
    for m, result in metrics.items():
        assert set(result["metrics"]) == {
            "accuracy",
            "balanced_accuracy",
            "f1",
            "roc_auc",
            "log_loss",
        }
        for plot in ("confusion_matrix", "roc", "pr"):
            assert (results / f"plots/{m}/{plot}.png").read_bytes()[:4] == b"\x89PNG"
        # the same numbers are on the evaluate run, the model's training run and the model
        (train_run,) = [
            r for r in wf.job_runs("train") if r.data.tags["snakemake.wildcards.model"] == m
        ]
        assert train_run.data.metrics["roc_auc"] == pytest.approx(result["metrics"]["roc_auc"])
        (model,) = train_run.outputs.model_outputs
        logged = wf.client().get_logged_model(model.model_id)
        assert logged.source_run_id == train_run.info.run_id
        assert {x.key: x.value for x in logged.metrics}["roc_auc"] == pytest.approx(
            result["metrics"]["roc_auc"]
        )
        plots = {a.path for a in wf.client().list_artifacts(train_run.info.run_id, "evaluation")}
        assert plots == {f"evaluation/{p}.png" for p in ("confusion_matrix", "roc", "pr")}
        (eval_run,) = [
            r for r in wf.job_runs("evaluate") if r.data.tags["snakemake.wildcards.model"] == m
        ]
        assert eval_run.data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])

    decision = json.loads((results / "registration.json").read_text())
    best = max(metrics, key=lambda m: metrics[m]["metrics"]["roc_auc"])
    assert decision["best"] == best and decision["passed"] and decision["registered"]
    versions = registered_versions(wf, "titanic")
    assert len(versions) == 1
    champion = wf.client().get_model_version_by_alias("titanic", "champion")
    assert str(champion.version) == decision["version"] == "1"

    predictions = read_csv(results / "predictions.csv")
    assert predictions[0] == [c for c in test_rows[0] if c != "Survived"] + [
        "prediction",
        "proba_0",
        "proba_1",
    ]
    assert len(predictions) == len(test_rows)
    survived = test_rows[0].index("Survived")
    assert [r[:-3] for r in predictions[1:]] == [
        r[:survived] + r[survived + 1 :] for r in test_rows[1:]
    ]

    # the champion loads in a fresh process and predicts on raw CSV rows (with missing values)
    out = load_champion_in_fresh_process(
        wf, "titanic", wf.path / "data/raw/titanic.csv", "Survived"
    )
    assert out.startswith(f"{len(rows) - 1} ") and "'0'" in out and "'1'" in out

    # served as MLflow serves any model: raw CSV rows in, predictions out
    served = serve_and_post(wf, "models:/titanic@champion", wf.path / "data/split/titanic/test.csv")
    assert len(served["predictions"]) == len(test_rows) - 1

    # what an MLflow user sees: the training view, the invocation's datasets and models, the
    # version's model card
    experiment = wf.client().get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    full_parent = wf.client().get_run(parent.info.run_id)
    assert {i.dataset.name for i in full_parent.inputs.dataset_inputs} == {"titanic"}
    assert len(full_parent.outputs.model_outputs) == 4
    version = wf.client().get_model_version("titanic", "1")
    assert "# titanic:" in version.description and "Cross-validation" in version.description
    assert "registered version 1 as champion" in version.description
    assert wf.client().get_registered_model("titanic").description

    # the report has the metrics table and the plots
    report = wf.run("--report", "report.html")
    html = (wf.path / "report.html").read_text()
    assert "metrics.tsv" in html and "roc.png" in html and "Confusion matrix" in html, report

    # nothing changed: nothing runs, nothing is registered
    assert wf.run().ran == []
    assert len(registered_versions(wf, "titanic")) == 1

    # one model's params: that model only, then register and predict
    grid = json.loads(json.dumps(GRID))
    grid["tree"]["params"]["max_depth"] = 2
    wf.configure(models=grid)
    assert sorted(wf.run().ran) == ["evaluate", "predict", "register", "train"]
    (retrained,) = [r for r in wf.job_runs("train") if r.info.start_time > parent.info.end_time]
    assert retrained.data.tags["snakemake.wildcards.model"] == "tree"

    # what a change would rerun, asked with a dry run (`-n` says why)
    dry = wf.run("-n", "--config", "target=Pclass")
    assert dry.would_run == {
        "clean": 1,
        "split": 1,
        "train": 4,
        "evaluate": 4,
        "register": 1,
        "predict": 1,
    }
    assert "Params have changed" in dry.output
    changed = json.loads(json.dumps(grid))
    changed["tree"]["estimator"] = "sklearn.tree.ExtraTreeClassifier"
    wf.configure(models=changed)
    assert wf.run("-n").would_run == {"train": 1, "evaluate": 1, "register": 1, "predict": 1}
    wf.configure(models=grid)

    # register again with the best model already champion: nothing new is registered
    wf.configure(register={**PASSING_GATE, "threshold": 0.55})
    assert sorted(wf.run().ran) == ["predict", "register"]
    decision = json.loads((results / "registration.json").read_text())
    assert decision["passed"] and not decision["registered"]
    assert "already champion (version 1)" in decision["reason"]
    assert len(registered_versions(wf, "titanic")) == 1

    # a gate nobody passes: nothing registered, the alias stays where it was
    wf.configure(register={**PASSING_GATE, "threshold": 1.01})
    assert sorted(wf.run().ran) == ["predict", "register"]
    decision = json.loads((results / "registration.json").read_text())
    assert not decision["passed"] and "champion left unchanged" in decision["reason"]
    assert wf.client().get_model_version_by_alias("titanic", "champion").version in (1, "1")
    assert len(registered_versions(wf, "titanic")) == 1

    # predict_url: a CSV of the user's, scored by the champion
    mine = wf.path / "to-score.csv"
    mine.write_bytes(to_csv([rows[0][:1] + rows[0][2:]] + [r[:1] + r[2:] for r in rows[1:6]]))
    wf.configure(predict_url=str(mine))
    assert wf.run().ran == ["predict"]
    scored = read_csv(results / "predictions.csv")
    assert len(scored) == 6 and scored[0][-3:] == ["prediction", "proba_0", "proba_1"]
    wf.configure(predict_url=None, register=PASSING_GATE)

    # test_size: split and everything after it (asked with a dry run); back again: the same
    # split and metrics (made for real, for one model: split, its train and its evaluate)
    split_sha = sha256(wf.path / "data/split/titanic/test.csv")
    forest = json.loads((results / "metrics/forest.json").read_text())["metrics"]
    wf.configure(split={"test_size": 0.3, "seed": 42})
    assert wf.run("-n").would_run == {
        "split": 1,
        "train": 4,
        "evaluate": 4,
        "register": 1,
        "predict": 1,
    }
    forest_metrics = "results/titanic/metrics/forest.json"
    assert sorted(wf.run(forest_metrics).ran) == ["evaluate", "split", "train"]
    assert sha256(wf.path / "data/split/titanic/test.csv") != split_sha
    wf.configure(split={"test_size": 0.25, "seed": 42})
    assert sorted(wf.run(forest_metrics).ran) == ["evaluate", "split", "train"]
    assert sha256(wf.path / "data/split/titanic/test.csv") == split_sha
    again = json.loads((results / "metrics/forest.json").read_text())["metrics"]
    assert again == forest


def test_multiclass_string_labels_and_gate(workflow, http_server):
    rows = flower_rows()
    url = http_server.publish("pipe/flowers.csv", to_csv(rows))
    models = {k: GRID[k] for k in ("logreg", "forest")}
    workflow.configure(
        data_url=url,
        dataset="flowers",
        target="species",
        models=models,
        register={"metric": "accuracy", "threshold": 1.01},
    )

    # a gate nobody passes: nothing registered, predict explains why
    failed = workflow.run(check=False)
    assert failed.returncode != 0
    results = workflow.path / "results/flowers"
    decision = json.loads((results / "registration.json").read_text())
    assert not decision["passed"] and not decision["registered"]
    assert "misses the gate accuracy >= 1.01" in decision["reason"]
    assert registered_versions(workflow, "flowers") == []
    errors = [line for line in failed.output.splitlines() if line.startswith("snakeflow error")]
    assert errors and "has the alias 'champion'" in errors[0]
    assert not (results / "predictions.csv").exists()
    (register_run,) = workflow.job_runs("register")
    assert register_run.data.tags["snakeflow.gate"] == "failed"

    # a reachable gate: the best model becomes the champion and predicts
    workflow.configure(register={"metric": "accuracy", "threshold": 0.5})
    result = workflow.run()
    assert sorted(result.ran) == ["predict", "register"]
    decision = json.loads((results / "registration.json").read_text())
    assert decision["passed"] and decision["version"] == "1"
    header = read_csv(results / "predictions.csv")[0]
    assert header[-4:] == ["prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]

    metrics = json.loads((results / "metrics/forest.json").read_text())
    assert metrics["classes"] == ["setosa", "versicolor", "virginica"]
    assert metrics["metrics"]["roc_auc"] > 0.8
    (train_run,) = [
        r
        for r in workflow.job_runs("train")
        if r.data.tags["snakemake.wildcards.model"] == "forest"
    ]
    dropped = {
        k.removeprefix("features.dropped."): v
        for k, v in train_run.data.params.items()
        if k.startswith("features.dropped.")
    }
    assert dropped == {"flower_id": "id-like name", "notes": "free text: mostly unique values"}
    out = load_champion_in_fresh_process(
        workflow, "flowers", workflow.path / "data/raw/flowers.csv", "species"
    )
    assert out.startswith("150 ") and "setosa" in out


def test_bad_estimator_is_named(workflow, http_server):
    url = http_server.publish("pipe/t2.csv", to_csv(titanic_rows(120)))
    workflow.configure(data_url=url, models={"bad": {"estimator": "sklearn.nope.Nothing"}})
    result = workflow.run(check=False)
    assert result.returncode != 0
    errors = {line for line in result.output.splitlines() if line.startswith("snakeflow error")}
    assert len(errors) == 1 and "models.bad.estimator: cannot import 'sklearn.nope.Nothing'" in (
        errors.pop()
    )
    assert not (workflow.path / "results/titanic/models/bad").exists()


def test_grid_points_are_search_jobs_and_the_best_is_refit(workflow, http_server):
    url = http_server.publish("pipe/grid.csv", to_csv(titanic_rows(300, seed=11)))
    tree = {  # the grid's max_depth overrides the fixed one for its points
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 3},
        "grid": {"max_depth": [2, 4], "min_samples_leaf": [1, 5]},
    }
    workflow.configure(
        data_url=url, models={"logreg": GRID["logreg"], "tree": tree}, cv={"folds": 3}
    )
    done = workflow.run("results/titanic/models/tree")
    assert sorted(done.ran) == sorted(["download", "clean", "split", *["search"] * 4, "train"])

    search = workflow.job_runs("search")
    assert len(search) == 4 and {r.data.tags["snakeflow.model"] for r in search} == {"tree"}
    scores = {}
    for path in (workflow.path / "results/titanic/search/tree").glob("*.json"):
        result = json.loads(path.read_text())
        assert len(result["folds"]) == 3 and result["metric"] == "roc_auc"
        scores[result["point_id"]] = result
    (run,) = [r for r in search if r.data.tags["snakeflow.point"] == sorted(scores)[0]]
    point = scores[sorted(scores)[0]]
    assert run.data.params["point.max_depth"] == str(point["point"]["max_depth"])
    assert run.data.params["overrides.max_depth"] == "3"  # the fixed value the point replaced
    assert run.data.metrics["cv.roc_auc.mean"] == pytest.approx(point["mean"])

    # the best mean; a tie goes to the smaller std, then to the smaller point id
    best = min(scores.values(), key=lambda r: (-r["mean"], r["std"], r["point_id"]))
    (train,) = workflow.job_runs("train")
    assert train.data.params["search.best_point"] == best["point_id"]
    assert train.data.metrics["cv.roc_auc.mean"] == pytest.approx(best["mean"])
    card = json.loads((workflow.path / "results/titanic/models/tree/card.json").read_text())
    assert card["search"]["point_id"] == best["point_id"]
    assert card["params"] == best["point"]
    assert card["overrides"] == {"max_depth": 3}
    assert train.data.params["search.overrides.max_depth"] == "3"

    # a changed value: only its points run again; an added value: only the new points
    tree["grid"]["max_depth"] = [2, 6]
    workflow.configure(models={"logreg": GRID["logreg"], "tree": tree}, cv={"folds": 3})
    assert workflow.run("-n", "results/titanic/models/tree").would_run == {"search": 2, "train": 1}
    tree["grid"]["max_depth"] = [2, 4, 8]
    workflow.configure(models={"logreg": GRID["logreg"], "tree": tree}, cv={"folds": 3})
    assert workflow.run("-n", "results/titanic/models/tree").would_run == {"search": 2, "train": 1}
    # a model without a grid has no search job
    assert "search" not in workflow.run("-n", "results/titanic/models/logreg").would_run


@pytest.mark.parametrize(
    ("grid", "cv", "message"),
    [
        ({"max_depth": 3}, {}, "models.tree.grid.max_depth: give a non-empty list"),
        ({"max_depth": []}, {}, "models.tree.grid.max_depth: give a non-empty list"),
        ({"max_dept": [2, 3]}, {}, "models.tree.grid.max_dept: DecisionTreeClassifier has no"),
        ({"max_depth": [1, 2], "min_samples_leaf": [1, 2]}, {"max_points": 3}, "4 points"),
    ],
)
def test_bad_grids_fail_before_any_job(workflow, titanic_url, grid, cv, message):
    tree = {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {}, "grid": grid}
    workflow.configure(data_url=titanic_url, models={"tree": tree}, cv=cv)
    result = workflow.run(check=False)
    assert result.returncode != 0
    lines = [x for x in result.output.splitlines() if x.startswith("snakeflow error:")]
    assert len(lines) == 1 and message in lines[0], result.output[-2000:]
    assert result.ran == [] and not (workflow.path / "data").exists()
