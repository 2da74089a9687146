"""Datasets as a wildcard: the ``datasets:`` map, its per-dataset settings, the seed's
single-dataset keys, and how a dataset's task is decided."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from snakeflow.errors import UserError
from snakeflow.tasks import MAX_CLASSES, decide_task, distinct_values
from snakeflow.workflow import resolve_datasets

ROOT = Path(__file__).resolve().parent.parent
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
    assert resolved[name]["task"] == "auto"
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
