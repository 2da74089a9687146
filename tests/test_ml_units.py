"""Unit tests of the ML steps' functions on small generated data (no MLflow server needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from register import decide
from snakeflow.errors import UserError
from snakeflow.features import make_estimator, plan_features
from snakeflow.metrics import compute_metrics
from split import split_csv
from support import flower_rows, to_csv
from train import train_model


@pytest.fixture
def flowers(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_bytes(to_csv(flower_rows()))
    return path


def test_split_is_stratified_deterministic_and_unchanged(tmp_path, flowers):
    outs = []
    for i in range(2):
        train, test = tmp_path / f"tr{i}.csv", tmp_path / f"te{i}.csv"
        stats = split_csv(flowers, train, test, target="species", test_size=0.2, seed=3)
        outs.append((train.read_bytes(), test.read_bytes()))
    assert outs[0] == outs[1]
    assert (stats.rows, stats.train_rows, stats.test_rows) == (150, 120, 30)
    test_frame = pd.read_csv(tmp_path / "te0.csv")
    assert test_frame["species"].value_counts().to_dict() == {
        "setosa": 10,
        "versicolor": 10,
        "virginica": 10,
    }
    source = flowers.read_bytes().decode().splitlines(keepends=True)
    parts = (
        outs[0][0].decode().splitlines(keepends=True)
        + outs[0][1].decode().splitlines(keepends=True)[1:]
    )
    assert sorted(parts) == sorted(source)
    other = tmp_path / "x.csv"
    split_csv(flowers, other, tmp_path / "y.csv", target="species", test_size=0.2, seed=4)
    assert other.read_bytes() != outs[0][0]


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ("a,y\n1,x\n2,x\n3,x\n", {}, "single class"),
        ("a,y\n1,x\n2,x\n3,z\n4,z\n", {"test_size": 0.1}, "split.test_size=0.1 cannot stratify"),
        ("a,y\n1,x\n2,x\n3,x\n4,z\n", {}, "smallest: 'z' with 1 rows"),
        ("a,b\n1,x\n", {}, "target column 'y'"),
    ],
)
def test_split_errors(tmp_path, data, kwargs, message):
    src = tmp_path / "s.csv"
    src.write_text(data)
    args = {"target": "y", "test_size": 0.5, "seed": 0} | kwargs
    with pytest.raises(UserError, match=message):
        split_csv(src, tmp_path / "a.csv", tmp_path / "b.csv", **args)
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()


def test_plan_features_infers_ids_and_free_text():
    n = 40
    frame = pd.DataFrame(
        {
            "PassengerId": range(1, n + 1),  # id by name
            "row": range(100, 100 + n),  # unique integers
            "Name": [f"Person {i}, Mr." for i in range(n)],  # mostly unique text
            "Essay": ["word " * 20 + str(i % 3) for i in range(n)],  # long text
            "Ticket": ["A"] * n,
            "Age": [20.5 + i % 7 for i in range(n)],
            "Pclass": [1 + i % 3 for i in range(n)],
            "Sex": ["m", "f"] * (n // 2),
            "Survived": ["0", "1"] * (n // 2),
        }
    )
    plan = plan_features(frame, "Survived", drop=["Ticket", "Missing"], infer=True)
    assert plan.dropped == {
        "PassengerId": "id-like name",
        "row": "id-like: unique integers",
        "Name": "free text: mostly unique values",
        "Essay": "free text: long values",
        "Ticket": "configured",
    }
    assert plan.numeric == ["Age", "Pclass"] and plan.categorical == ["Sex"]
    kept = plan_features(frame, "Survived", drop=[], infer=False)
    assert kept.dropped == {} and "PassengerId" in kept.numeric and "Name" in kept.categorical
    with pytest.raises(UserError, match="no feature columns left"):
        plan_features(frame[["PassengerId", "Survived"]], "Survived", drop=[], infer=True)


def test_make_estimator_errors():
    with pytest.raises(UserError, match=r"models\.m\.estimator: cannot import"):
        make_estimator("m", "sklearn.linear_model.Nope", {}, seed=0, threads=1)
    with pytest.raises(UserError, match=r"models\.m\.params: .* rejects them"):
        make_estimator(
            "m", "sklearn.linear_model.LogisticRegression", {"bogus": 1}, seed=0, threads=1
        )
    with pytest.raises(UserError, match="not a classifier"):
        make_estimator("m", "sklearn.linear_model.LinearRegression", {}, seed=0, threads=1)
    est = make_estimator("m", "sklearn.ensemble.RandomForestClassifier", {}, seed=5, threads=2)
    assert est.random_state == 5 and est.n_jobs == 2


def test_invalid_param_value_is_named(tmp_path, flowers):
    with pytest.raises(UserError, match=r"models\.lr: fitting .* failed"):
        train_model(
            flowers,
            name="lr",
            target="species",
            estimator="sklearn.linear_model.LogisticRegression",
            params={"C": -1},
            drop=[],
            infer_drop=True,
            seed=0,
        )


def test_train_is_deterministic_and_takes_raw_rows(flowers):
    kwargs = dict(
        name="f",
        target="species",
        estimator="sklearn.ensemble.RandomForestClassifier",
        params={"n_estimators": 10},
        drop=[],
        infer_drop=True,
        seed=1,
    )
    a, _, _ = train_model(flowers, **kwargs)
    b, _, _ = train_model(flowers, **kwargs)
    raw = pd.read_csv(flowers).drop(columns=["species"])
    assert raw.isna().any().any()
    assert (a.predict_proba(raw) == b.predict_proba(raw)).all()
    assert set(a.predict(raw)) <= {"setosa", "versicolor", "virginica"}


def test_compute_metrics_binary_and_multiclass():
    y = np.array(["0", "1", "1", "0", "1"])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    pred = np.array(["0", "1", "0", "0", "1"])
    m = compute_metrics(y, pred, proba, ["0", "1"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "1", proba[:, 1]))
    assert m["f1"] == pytest.approx(0.8)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["0", "1"]))

    y3 = np.array(["a", "b", "c", "a", "b", "c"])
    p3 = np.eye(3)[[0, 1, 2, 0, 2, 2]] * 0.8 + 0.2 / 3
    m3 = compute_metrics(y3, np.array(["a", "b", "c", "a", "c", "c"]), p3, ["a", "b", "c"])
    assert m3["accuracy"] == pytest.approx(5 / 6)
    assert 0 < m3["roc_auc"] <= 1
    single = compute_metrics(
        np.array(["1", "1"]), np.array(["1", "1"]), np.array([[0.1, 0.9], [0.2, 0.8]]), ["0", "1"]
    )
    assert math.isnan(single["roc_auc"])


def _result(model, **metrics):
    return {"model": model, "metrics": metrics}


def test_decide_gate():
    results = [_result("a", roc_auc=0.7, log_loss=0.5), _result("b", roc_auc=0.8, log_loss=0.6)]
    d = decide(results, metric="roc_auc", threshold=0.75, model_name="t", alias="champion")
    assert (d.best, d.value, d.passed) == ("b", 0.8, True)
    d = decide(results, metric="roc_auc", threshold=0.9, model_name="t", alias="champion")
    assert d.best == "b" and not d.passed and "misses the gate roc_auc >= 0.9" in d.reason
    d = decide(results, metric="log_loss", threshold=0.55, model_name="t", alias="champion")
    assert (d.best, d.passed) == ("a", True)
    d = decide(
        [_result("a", roc_auc=None)], metric="roc_auc", threshold=0.1, model_name="t", alias="c"
    )
    assert not d.passed and d.best is None


def test_predict_checks_its_input_against_the_signature():
    from predict import check_columns

    text = pd.DataFrame({"Age": ["22", "", "NA", " 3.5", "x"], "Sex": ["m", "f", "m", "f", "m"]})
    src = Path("in.csv")
    with pytest.raises(UserError, match=r"in\.csv: column 'Fare' is missing"):
        check_columns(text, src, required=["Age", "Fare"], numeric=[])
    with pytest.raises(UserError, match="column 'Age' must hold numbers; line 6 has 'x'"):
        check_columns(text, src, required=["Age"], numeric=["Age"])
    check_columns(text.iloc[:4], src, required=["Age", "Sex"], numeric=["Age"])  # nulls are fine
