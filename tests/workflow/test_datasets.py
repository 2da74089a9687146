"""Datasets as a wildcard: the ``datasets:`` map, its per-dataset settings, the seed's
single-dataset keys, and how a dataset's task is decided."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from snakeflow.errors import UserError
from snakeflow.tasks import MAX_CLASSES, decide_task, distinct_values
from snakeflow.workflow import resolve_datasets
from support.data import GRID, REGRESSORS, house_rows, titanic_rows, to_csv
from support.workflow import Workflow, copy_workflow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def config(**changes) -> dict:
    """config.yaml with top-level ``changes``, validated (defaults filled in) by Snakemake as
    the Snakefile does it."""
    out = copy.deepcopy(CONFIG) | changes
    validate(out, str(ROOT / "schemas/config.schema.json"))
    return out


TWO = {
    "titanic": {"url": "https://example.org/titanic.csv", "target": "Survived"},
    "houses": {
        "url": "data/houses.csv",
        "target": "price",
        "task": "regression",
        "split": {"seed": 7},
        "register": {"threshold": 0.5},
    },
}


def test_the_default_config_is_the_seeds_one_dataset():
    (name,) = resolved = resolve_datasets(config())
    assert name == "titanic" and resolved[name]["target"] == "Survived"
    assert resolved[name]["url"].endswith("/titanic.csv")
    assert resolved[name]["task"] == "classification"
    assert resolved[name]["register"]["model_name"] == "titanic"


def test_a_datasets_own_settings_win_key_by_key_and_the_rest_fall_back():
    resolved = resolve_datasets(config(datasets=TWO))
    houses, titanic = resolved["houses"], resolved["titanic"]
    assert houses["split"] == {"test_size": 0.25, "seed": 7}
    assert titanic["split"] == {"test_size": 0.25, "seed": 42}
    assert houses["register"]["threshold"] == 0.5 and titanic["register"]["threshold"] is None
    assert houses["register"]["alias"] == titanic["register"]["alias"] == "champion"
    assert houses["register"]["model_name"] == "houses"
    assert houses["clean"] == titanic["clean"] == CONFIG["clean"]


def test_the_legacy_keys_run_one_dataset(monkeypatch):
    monkeypatch.delenv("SNAKEFLOW_DATA_URL", raising=False)
    (spec,) = resolve_datasets(config(data_url="file:///tmp/t.csv")).values()
    assert spec["url"] == "file:///tmp/t.csv" and spec["target"] == "Survived"
    resolved = resolve_datasets(config(dataset="shapes", data_url="s.csv", target="colour"))
    assert list(resolved) == ["shapes"] and resolved["shapes"]["target"] == "colour"
    # dataset= alone picks one of several
    assert list(resolve_datasets(config(datasets=TWO, dataset="houses"))) == ["houses"]
    monkeypatch.setenv("SNAKEFLOW_DATA_URL", "https://secret.example/x.csv")
    (spec,) = resolve_datasets(config()).values()
    assert spec["url"] == "https://secret.example/x.csv"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"datasets": TWO, "data_url": "x.csv"}, "name one with dataset=<name>"),
        ({"dataset": "shapes"}, "dataset 'shapes' has no url or target"),
        ({"datasets": {}}, "no dataset configured"),
        (
            {
                "datasets": {"a": TWO["titanic"], "b": TWO["titanic"]},
                "register": {"model_name": "m"},
            },
            "register.model_name 'm' is used by datasets 'a' and 'b'",
        ),
        (
            {"datasets": {"h": TWO["houses"] | {"models": ["logreg"]}}},
            "datasets.h.models: 'logreg' is a classification model",
        ),
        (
            {"datasets": {"h": TWO["houses"] | {"models": ["nope"]}}},
            "datasets.h.models: no model 'nope'",
        ),
        (
            {"datasets": {"h": TWO["houses"] | {"register": {"metric": "roc_auc"}}}},
            "register.metric 'roc_auc' is not a regression metric",
        ),
    ],
)
def test_what_cannot_run_stops_with_one_line(changes, message, capsys):
    with pytest.raises(SystemExit) as stop:
        resolve_datasets(config(**changes))
    assert stop.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line


def test_a_dataset_name_the_files_cannot_carry_is_refused_by_the_schema():
    for bad in ({"../up": TWO["titanic"]}, {"x": {"url": "x.csv"}}):
        with pytest.raises(WorkflowError, match="validating"):
            config(datasets=bad)


@pytest.mark.parametrize(
    "values,task",
    [
        (["0", "1", "1", "NA"], "classification"),
        (["yes", "no"], "classification"),
        (["True", "False"], "classification"),
        ([str(i) for i in range(MAX_CLASSES)], "classification"),
        ([str(i) for i in range(MAX_CLASSES + 1)], "regression"),
        (["1.5", "2", "3.25"], "regression"),
        (["2.0", "3.0"], "classification"),  # whole numbers written as floats
    ],
)
def test_auto_decides_from_the_target(values, task):
    decision = decide_task(values, target="y", requested="auto")
    assert decision.task == task
    assert decision.reason.startswith(task)


@pytest.mark.parametrize(
    "values,requested,message",
    [
        (["1.5", "2.25"], "classification", "continuous numbers (e.g. 1.5)"),
        (["red", "3"], "regression", "holds text (e.g. 'red')"),
        (["", "NA"], "auto", "has no values"),
    ],
)
def test_a_wrong_explicit_task_is_one_clear_error(values, requested, message):
    with pytest.raises(UserError, match=re.escape(message)):
        decide_task(values, target="y", requested=requested)


def test_explicit_tasks_the_target_allows_are_kept():
    # many integer classes: classification if the user says so
    values = [str(i) for i in range(100)]
    assert decide_task(values, target="y", requested="classification").task == "classification"
    assert decide_task(["0", "1"], target="y", requested="regression").task == "regression"


def test_distinct_values_reads_one_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('a,y\n1,"x\ny"\n2,b\n3,b\n')
    assert sorted(distinct_values(path, "y")) == ["b", "x\ny"]
    with pytest.raises(UserError, match="target column 'z' is not in"):
        distinct_values(path, "z")


# --- one DAG for two datasets: a classification and a regression, run once --------------

CLASSIFIERS = {k: GRID[k] for k in ("logreg", "tree")}


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, http_server, store_template):
    """A workflow copy configured with a classification dataset (the default task) and a
    regression one (``task: auto``, decided by clean), run once to the end, ``--cores 2``."""
    wf = Workflow(copy_workflow(tmp_path_factory.mktemp("two") / "wf"))
    shutil.copy2(store_template, wf.db)
    urls = {
        "titanic": http_server.publish("two/titanic.csv", to_csv(titanic_rows(200, noise=0.05))),
        "houses": http_server.publish("two/houses.csv", to_csv(house_rows(200))),
    }
    wf.configure(
        datasets={
            "titanic": {"url": urls["titanic"], "target": "Survived"},
            "houses": {"url": urls["houses"], "target": "price", "task": "auto"},
        },
        models=CLASSIFIERS | REGRESSORS,
    )
    result = wf.run()
    return wf, result, urls


def test_every_dataset_runs_in_one_dag(two_datasets):
    wf, result, _ = two_datasets
    assert sorted(result.ran) == sorted(
        ["download", "clean", "split", "evaluate", "evaluate", "register", "predict"] * 2
        + ["train"] * 4
        + ["search"] * 2
    )
    tasks = {
        d: json.loads((wf.path / f"data/clean/{d}.task.json").read_text())
        for d in ("titanic", "houses")
    }
    assert tasks["titanic"]["task"] == "classification" and tasks["houses"]["task"] == "regression"
    houses = pd.read_csv(wf.path / "results/houses/predictions.csv")
    assert "prediction" in houses.columns and not houses.filter(like="proba_").columns.size
    assert houses["prediction"].dtype == float and "price" not in houses.columns
    titanic = pd.read_csv(wf.path / "results/titanic/predictions.csv")
    assert {"prediction", "proba_0", "proba_1"} <= set(titanic.columns)


def test_each_dataset_registers_its_own_champion_by_its_tasks_metric(two_datasets):
    wf, _, _ = two_datasets
    client = wf.client()
    for name, metric, kind in (
        ("titanic", "roc_auc", "Classifier"),
        ("houses", "root_mean_squared_error", "Regressor"),
    ):
        registration = json.loads((wf.path / f"results/{name}/registration.json").read_text())
        assert registration["model_name"] == name and registration["metric"] == metric
        assert registration["passed"] and registration["promoted"], registration["reason"]
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["snakeflow.model"] == registration["best"]
        assert client.get_registered_model(name).description.startswith(kind)
    metrics = json.loads((wf.path / "results/houses/metrics/ridge.json").read_text())
    assert {
        "root_mean_squared_error",
        "mean_absolute_error",
        "r2_score",
        "mean_absolute_percentage_error",
        "max_error",
    } <= set(metrics["metrics"])
    assert metrics["metrics"]["r2_score"] > 0.5  # the price follows the features
    # below the test target's standard deviation: the RMSE of predicting its mean
    rmse = metrics["metrics"]["root_mean_squared_error"]
    assert rmse < 0.7 * metrics["baseline"]["root_mean_squared_error"]
    plots = {p.name for p in (wf.path / "results/houses/plots/ridge").iterdir()}
    assert {"predicted_vs_actual.png", "residuals.png", "worst_predictions.csv"} <= plots
    assert "roc.png" in {p.name for p in (wf.path / "results/titanic/plots/tree").iterdir()}


def test_every_run_is_tagged_with_its_dataset_and_task_and_the_parent_lists_both(two_datasets):
    wf, _, _ = two_datasets
    jobs = wf.job_runs()
    assert len(jobs) == 20
    for run in jobs:
        tags = run.data.tags
        dataset = tags["snakemake.wildcards.dataset"]
        assert tags["snakeflow.dataset"] == dataset
        if tags["snakemake.rule"] == "download":
            continue  # before clean has decided the task
        want = "regression" if dataset == "houses" else "classification"
        assert tags["snakeflow.task"] == want, (tags["snakemake.rule"], dataset)
    (clean,) = [r for r in wf.job_runs("clean") if r.data.params["dataset"] == "houses"]
    assert clean.data.params["task"] == "regression"
    assert "fractions" in clean.data.params["task.reason"]
    (parent,) = wf.runs("tags.`snakemake.kind` = 'invocation'")
    assert parent.data.params["datasets.houses.target"] == "price"
    assert parent.data.params["datasets.titanic.target"] == "Survived"


def test_a_change_to_one_dataset_reruns_only_its_jobs(two_datasets, tmp_path):
    wf, _, _ = two_datasets
    assert wf.run().ran == []  # a no-op after the run
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"datasets": {"houses": {"split": {"seed": 7}}}}))
    dry = wf.run("-n", "--configfile", str(split))
    assert dry.would_run == {
        "split": 1,
        "search": 2,
        "train": 2,
        "evaluate": 2,
        "register": 1,
        "predict": 1,
    }
    assert "dataset=titanic" not in dry.output and "dataset=houses" in dry.output
    # a clean setting: clean is the checkpoint that decides the task, so the jobs after it
    # are planned once it has run; the run itself reruns that dataset's jobs only
    clean = tmp_path / "clean.yaml"
    clean.write_text(yaml.safe_dump({"datasets": {"houses": {"clean": {"dropna": "none"}}}}))
    rerun = wf.run("--configfile", str(clean))
    assert sorted(rerun.ran) == sorted(
        ["clean", "split", *["search", "train", "evaluate"] * 2, "register", "predict"]
    )
    again = {r.data.tags["snakemake.wildcards.dataset"] for r in wf.job_runs()[: len(rerun.ran)]}
    assert again == {"houses"}
    assert wf.run("--configfile", str(clean)).ran == []


def test_a_file_target_runs_only_what_that_datasets_file_needs(two_datasets):
    wf, _, _ = two_datasets
    dry = wf.run("-n", "data/clean/houses.csv", "--forcerun", "download")
    assert dry.would_run == {"download": 1, "clean": 1}
    assert "dataset=titanic" not in dry.output


def test_an_unconfigured_dataset_stops_with_the_configured_ones(two_datasets):
    wf, _, _ = two_datasets
    result = wf.run("-n", "data/clean/nope.csv", check=False)
    assert result.returncode == 1
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert errors == [
        "snakeflow error: dataset 'nope' is not configured; configured: houses, titanic"
    ]


def test_a_wrong_explicit_task_stops_clean_and_leaves_no_clean_file(two_datasets, tmp_path):
    wf, _, urls = two_datasets
    wrong = tmp_path / "wrong.yaml"
    entry = {"url": urls["houses"], "target": "price", "task": "classification"}
    wrong.write_text(yaml.safe_dump({"datasets": {"wrong": entry}}))
    result = wf.run("data/clean/wrong.csv", "--configfile", str(wrong), check=False)
    assert result.returncode != 0
    assert "target column 'price' holds continuous numbers" in result.output
    assert "Traceback" not in result.output
    assert not list((wf.path / "data/clean").glob("wrong*"))
