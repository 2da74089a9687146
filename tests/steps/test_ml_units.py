"""Unit tests of the ML steps' functions on small generated data (no MLflow server needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split

from register import decide
from search import cross_validate
from snakeflow import workflow
from snakeflow.cards import model_card, model_description
from snakeflow.errors import UserError, first_line
from snakeflow.features import build_pipeline, make_estimator, plan_features
from snakeflow.learners import TASKS, task_for
from snakeflow.metrics import (
    LOWER_IS_BETTER,
    baseline,
    compute_metrics,
    compute_regression_metrics,
)
from snakeflow.sampling import holdout_rows
from split import split_csv
from support import flower_rows, to_csv
from train import train_model

RIDGE = "sklearn.linear_model.Ridge"


@pytest.fixture
def flowers(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_bytes(to_csv(flower_rows()))
    return path


def regression_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """y = 3*x1 - 2*x2 + 5 per colour step + noise; x1 has a few missing values."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 10, n).round(3)
    x2 = rng.normal(0, 3, n).round(3)
    colour = rng.choice(["red", "green", "blue"], n)
    step = pd.Series(colour).map({"red": 5.0, "green": 0.0, "blue": -5.0}).to_numpy()
    y = (3 * x1 - 2 * x2 + step + rng.normal(0, 0.5, n)).round(3)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "y": y})
    frame.loc[[3, 50], "x1"] = np.nan
    return frame


@pytest.fixture
def houses(tmp_path):
    path = tmp_path / "houses.csv"
    regression_frame().to_csv(path, index=False)
    return path


def train_ridge(src: Path):
    return train_model(
        src,
        name="ridge",
        target="y",
        estimator=RIDGE,
        params={"alpha": 1.0},
        drop=[],
        infer_drop=True,
        seed=0,
        task="regression",
        dataset="houses",
    )


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


@pytest.mark.parametrize("stratified", [True, False])
def test_split_rows_are_scikit_learns(stratified):
    """split's numpy selection (snakeflow.sampling) picks the very rows scikit-learn's
    train_test_split picks, for any labels, sizes, test_size and seed; and fails where it
    fails."""
    rng = np.random.default_rng(0)
    agreed = failed = 0
    for _ in range(300):
        n = int(rng.integers(2, 120))
        labels = rng.choice(list("abcde")[: int(rng.integers(1, 6))], size=n).tolist()
        size, seed = float(rng.choice([0.1, 0.2, 0.25, 0.33, 0.5, 0.7])), int(rng.integers(99))
        strata = labels if stratified else None
        try:
            _, want = train_test_split(
                list(range(n)), test_size=size, random_state=seed, stratify=strata
            )
        except ValueError:
            with pytest.raises(ValueError):
                holdout_rows(n, test_size=size, seed=seed, stratify=strata)
            failed += 1
            continue
        assert sorted(holdout_rows(n, test_size=size, seed=seed, stratify=strata)) == sorted(want)
        agreed += 1
    assert agreed > 150 and (failed > 10 or not stratified)


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
    with pytest.raises(UserError, match="LinearSVC is not a classifier with predict_proba"):
        make_estimator("m", "sklearn.svm.LinearSVC", {}, seed=0, threads=1)
    with pytest.raises(UserError, match="KMeans is neither a classifier nor a regressor"):
        make_estimator("m", "sklearn.cluster.KMeans", {}, seed=0, threads=1)
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


def test_regression_metrics_by_hand_with_mlflows_names():
    from mlflow.models.evaluation.evaluators.regressor import _get_regressor_metrics

    y, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    m = compute_regression_metrics(y, pred)
    assert m == pytest.approx(
        {
            "root_mean_squared_error": 0.75,  # sqrt((0.25 + 0 + 1 + 1) / 4)
            "mean_absolute_error": 0.625,
            "r2_score": 0.55,  # 1 - 2.25 / 5
            "mean_absolute_percentage_error": (0.5 + 0 + 1 / 3 + 1 / 4) / 4,
            "max_error": 1.0,
        }
    )
    mlflows = _get_regressor_metrics(y, pred, None)
    assert {k: mlflows[k] for k in m} == pytest.approx(m)  # MLflow's names, MLflow's values
    assert {
        "root_mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "max_error",
    } <= LOWER_IS_BETTER
    assert "r2_score" not in LOWER_IS_BETTER
    defaults = {name: task.default_metric for name, task in TASKS.items()}
    assert defaults == {"classification": "roc_auc", "regression": "root_mean_squared_error"}
    zero = compute_regression_metrics([0.0, 2.0], [1.0, 2.0])
    assert math.isnan(zero["mean_absolute_percentage_error"]) and zero["max_error"] == 1.0
    assert math.isnan(compute_regression_metrics([2.0, 2.0], [1.0, 2.0])["r2_score"])

    base = baseline(y)  # predicting the mean, 2.5, for every row
    assert base["root_mean_squared_error"] == pytest.approx(np.std(y)) == pytest.approx(1.25**0.5)
    assert base["r2_score"] == pytest.approx(0.0)
    assert base["mean_absolute_error"] == pytest.approx(1.0)
    assert base["max_error"] == pytest.approx(1.5)


def test_regression_split_is_deterministic_representative_and_unchanged(tmp_path, houses):
    outs = []
    for i in range(2):
        train, test = tmp_path / f"tr{i}.csv", tmp_path / f"te{i}.csv"
        stats = split_csv(
            houses, train, test, target="y", test_size=0.25, seed=3, task="regression"
        )
        outs.append((train.read_bytes(), test.read_bytes()))
    assert outs[0] == outs[1]
    assert (stats.rows, stats.train_rows, stats.test_rows, stats.bins) == (200, 150, 50, 10)
    whole = pd.read_csv(houses)
    assert stats.classes == {}
    assert stats.target == pytest.approx(
        {
            "mean": whole["y"].mean(),
            "std": whole["y"].std(ddof=0),
            "min": whole["y"].min(),
            "max": whole["y"].max(),
        }
    )
    assert "classes" not in stats.metrics() and stats.metrics()["target_bins"] == 10

    # rows unchanged, each file in the source's order
    source = houses.read_bytes().decode().splitlines(keepends=True)
    train_lines = outs[0][0].decode().splitlines(keepends=True)
    test_lines = outs[0][1].decode().splitlines(keepends=True)
    assert train_lines[0] == test_lines[0] == source[0]
    assert sorted(train_lines[1:] + test_lines[1:]) == sorted(source[1:])
    for lines in (train_lines, test_lines):
        positions = [source.index(line) for line in lines[1:]]
        assert positions == sorted(positions)

    # representative: 5 test rows in each tenth of the target's range by rank
    test_y = pd.read_csv(tmp_path / "te0.csv")["y"]
    deciles = pd.qcut(whole["y"].rank(method="first"), 10, labels=False)
    in_test = whole["y"].isin(test_y)
    assert deciles[in_test].value_counts().to_dict() == {d: 5 for d in range(10)}
    assert abs(test_y.mean() - whole["y"].mean()) < 0.1 * whole["y"].std()

    other = tmp_path / "x.csv"
    split_csv(
        houses, other, tmp_path / "y.csv", target="y", test_size=0.25, seed=4, task="regression"
    )
    assert other.read_bytes() != outs[0][0]


@pytest.mark.parametrize(
    ("values", "test_size", "bins", "test_rows"),
    [
        ([5, 1, 6, 2, 4, 3], 0.5, 3, 3),  # three bins of two rows: one of each in the test split
        ([1.5, 2, 3, 4, 5], 0.2, 0, 1),  # one test row: no bin to stratify, a seeded shuffle
    ],
)
def test_small_regression_split(tmp_path, values, test_size, bins, test_rows):
    src = tmp_path / "s.csv"
    src.write_text("a,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    test = tmp_path / "b.csv"
    args = {"target": "y", "test_size": test_size, "seed": 1, "task": "regression"}
    stats = split_csv(src, tmp_path / "a.csv", test, **args)
    assert (stats.bins, stats.test_rows) == (bins, test_rows)
    if bins == 3:
        picked = sorted(pd.read_csv(test)["y"])
        assert [(v - 1) // 2 for v in picked] == [0, 1, 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "a,y\n1,2.5\n2,cheap\n3,4\n",
            r"target column 'y' must hold numbers .* line 3 has 'cheap'",
        ),
        ("a,y\n1,2.5\n2,\n3,4\n", r"target column 'y' must hold numbers .* line 3 has ''"),
        ("a,y\n", "has no rows"),
    ],
)
def test_regression_split_rejects_a_target_that_is_not_numbers(tmp_path, data, message):
    src = tmp_path / "s.csv"
    src.write_text(data)
    args = {"target": "y", "test_size": 0.5, "seed": 0, "task": "regression"}
    with pytest.raises(UserError, match=message):
        split_csv(src, tmp_path / "a.csv", tmp_path / "b.csv", **args)
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()


def test_regression_search_scores_shuffled_kfolds(houses):
    from sklearn.base import clone
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    kwargs = dict(
        name="ridge",
        target="y",
        estimator=RIDGE,
        params={"alpha": 1.0},
        point={"alpha": 0.5},
        folds=4,
        metric="root_mean_squared_error",
        drop=[],
        infer_drop=True,
        seed=2,
        task="regression",
        dataset="houses",
    )
    result = cross_validate(houses, **kwargs)
    assert result == cross_validate(houses, **kwargs)
    assert len(result["folds"]) == 4 and result["mean"] == pytest.approx(np.mean(result["folds"]))
    frame = pd.read_csv(houses)
    assert result["mean"] < 0.2 * frame["y"].std()  # the noise is 0.5; y varies by ~10

    # the folds are KFold(4, shuffle=True, random_state=seed), scored on predict
    features, y = frame.drop(columns=["y"]), frame["y"]
    pipeline = build_pipeline(plan_features(frame, "y", [], True), Ridge(alpha=0.5))
    fit_rows, val_rows = next(KFold(4, shuffle=True, random_state=2).split(features))
    fitted = clone(pipeline).fit(features.iloc[fit_rows], y.iloc[fit_rows])
    expected = compute_regression_metrics(y.iloc[val_rows], fitted.predict(features.iloc[val_rows]))
    assert result["folds"][0] == pytest.approx(expected["root_mean_squared_error"])

    r2 = cross_validate(houses, **kwargs | {"metric": "r2_score"})
    assert r2["mean"] > 0.95
    with pytest.raises(UserError, match="'roc_auc' is not a regression metric"):
        cross_validate(houses, **kwargs | {"metric": "roc_auc"})
    tiny = houses.with_name("tiny.csv")
    frame.head(3).to_csv(tiny, index=False)
    with pytest.raises(
        UserError, match="4 folds need at least 4 rows in the train split; it has 3"
    ):
        cross_validate(tiny, **kwargs)


def test_make_estimator_kind_must_match_the_task():
    with pytest.raises(UserError) as wrong:
        make_estimator(
            "ridge", RIDGE, {}, seed=0, threads=1, task="classification", dataset="titanic"
        )
    assert str(wrong.value) == (
        "models.ridge: sklearn.linear_model.Ridge is a regressor; dataset 'titanic' is a "
        "classification task: list classifiers for it (datasets.titanic.models) or set its task"
    )
    with pytest.raises(UserError) as reverse:
        make_estimator(
            "logreg",
            "sklearn.linear_model.LogisticRegression",
            {},
            seed=0,
            threads=1,
            task="regression",
            dataset="houses",
        )
    assert str(reverse.value) == (
        "models.logreg: sklearn.linear_model.LogisticRegression is a classifier; dataset "
        "'houses' is a regression task: list regressors for it (datasets.houses.models) or "
        "set its task"
    )
    assert "\n" not in str(wrong.value) + str(reverse.value)
    forest = make_estimator(
        "f", "sklearn.ensemble.RandomForestRegressor", {}, seed=5, threads=2, task="regression"
    )
    assert forest.random_state == 5 and forest.n_jobs == 2


def test_train_regression_learns_numbers_and_rejects_text(tmp_path, houses):
    pipeline, plan, features = train_ridge(houses)
    assert plan.numeric == ["x1", "x2"] and plan.categorical == ["colour"]
    predicted = pipeline.predict(features)
    assert predicted.dtype == np.float64
    frame = pd.read_csv(houses)
    assert skm.r2_score(frame["y"], predicted) > 0.95
    text = tmp_path / "text.csv"
    for bad, shown in (("cheap", "'cheap'"), ("n/a", "no value")):
        frame.assign(y=frame["y"].astype(str).where(frame.index != 7, bad)).to_csv(
            text, index=False
        )
        message = f"target column 'y' must hold numbers .* line 9 has {shown}"
        with pytest.raises(UserError, match=message):
            train_ridge(text)


@pytest.fixture
def ridge_model(tmp_path, houses):
    """A Ridge regressor trained on 150 rows and saved; the other 50 rows as the test split."""
    from snakeflow import models

    frame = pd.read_csv(houses)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[:150].to_csv(train, index=False)
    frame.iloc[150:].to_csv(test, index=False)
    pipeline, plan, features = train_ridge(train)
    sig = models.signature(
        features, pipeline.predict(features.head(5)), plan.numeric, plan.used, task="regression"
    )
    models.save(pipeline, features, tmp_path / "model", sig)
    return tmp_path / "model", test, pipeline


def test_evaluate_regression_writes_plots_and_worst_predictions(tmp_path, ridge_model):
    from evaluate import evaluate

    model_dir, test, pipeline = ridge_model
    plots = tmp_path / "plots" / "ridge"
    result = evaluate(model_dir, test, plots, target="y", task="regression", name="ridge")
    assert sorted(p.name for p in plots.iterdir()) == [
        "predicted_vs_actual.png",
        "residuals.png",
        "worst_predictions.csv",
    ]
    assert not list(plots.parent.glob(".*"))  # the temporary directory is gone
    for png in ("predicted_vs_actual.png", "residuals.png"):
        assert (plots / png).read_bytes().startswith(b"\x89PNG")
    frame = pd.read_csv(test)
    assert set(result) == {"model", "task", "metrics", "baseline", "test_rows"}
    assert (result["task"], result["test_rows"]) == ("regression", 50)
    assert result["baseline"]["root_mean_squared_error"] == pytest.approx(frame["y"].std(ddof=0))
    assert result["metrics"]["root_mean_squared_error"] < 0.2 * frame["y"].std(ddof=0)

    worst = pd.read_csv(plots / "worst_predictions.csv")
    assert list(worst.columns) == ["row", "actual", "predicted", "error", "x1", "x2", "colour"]
    assert len(worst) == 10
    errors = worst["error"].abs().to_numpy()
    assert (np.diff(errors) <= 0).all()
    assert errors[0] == pytest.approx(result["metrics"]["max_error"])
    assert worst["error"].to_numpy() == pytest.approx(
        (worst["actual"] - worst["predicted"]).to_numpy()
    )
    rows = frame.iloc[worst["row"]].reset_index(drop=True)
    assert worst["actual"].to_numpy() == pytest.approx(rows["y"].to_numpy())
    assert worst["colour"].tolist() == rows["colour"].tolist()
    expected = pipeline.predict(rows.drop(columns=["y"]))
    assert worst["predicted"].to_numpy() == pytest.approx(expected)
    smallest_kept = errors[-1]
    residuals = np.abs(frame["y"] - pipeline.predict(frame.drop(columns=["y"])))
    assert (residuals.drop(index=worst["row"]) <= smallest_kept + 1e-9).all()


def test_evaluate_classification_keeps_its_plots(tmp_path, flowers):
    from evaluate import evaluate
    from snakeflow import models

    pipeline, plan, features = train_model(
        flowers,
        name="lr",
        target="species",
        estimator="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 500},
        drop=[],
        infer_drop=True,
        seed=0,
    )
    sig = models.signature(features, pipeline.predict(features.head(5)), plan.numeric, plan.used)
    models.save(pipeline, features, tmp_path / "model", sig)
    plots = tmp_path / "plots"
    result = evaluate(
        tmp_path / "model", flowers, plots, target="species", task="classification", name="lr"
    )
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png", "pr.png", "roc.png"]
    assert result["classes"] == ["setosa", "versicolor", "virginica"]
    assert result["task"] == "classification" and "baseline" not in result
    assert set(result["metrics"]) == {"accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"}


def _scored(model, rmse, r2, **extra):
    metrics = {"root_mean_squared_error": rmse, "r2_score": r2} | extra
    return {"model": model, "metrics": metrics}


def test_decide_regression_gate_is_the_baseline_unless_a_threshold_is_given():
    base = {"root_mean_squared_error": 2.0, "r2_score": 0.0, "mean_absolute_percentage_error": None}
    results = [_scored("ridge", 1.5, 0.4), _scored("forest", 1.2, 0.6)]
    args = dict(model_name="h", alias="champion", task="regression", baseline=base)
    d = decide(results, metric="root_mean_squared_error", threshold=None, **args)
    assert (d.best, d.value, d.passed, d.threshold) == ("forest", 1.2, True, 2.0)
    assert d.threshold_source == "the baseline: predicting the test split's mean"
    assert "meets the gate root_mean_squared_error < 2.0000 (the baseline" in d.reason
    worse = [_scored("ridge", 2.5, -0.2), _scored("dummy", 2.0, 0.0)]
    d = decide(worse, metric="root_mean_squared_error", threshold=None, **args)
    assert d.best == "dummy" and not d.passed  # as good as the mean is not good enough
    d = decide(worse, metric="r2_score", threshold=None, **args)
    assert (d.best, d.passed) == ("dummy", False) and "r2_score > 0.0000" in d.reason
    d = decide(results, metric="r2_score", threshold=None, **args)
    assert (d.best, d.passed) == ("forest", True)

    d = decide(results, metric="root_mean_squared_error", threshold=1.0, **args)
    assert not d.passed and d.threshold == 1.0 and d.threshold_source == "register.threshold"
    assert "misses the gate root_mean_squared_error <= 1.0 (register.threshold)" in d.reason
    d = decide(results, metric="r2_score", threshold=0.5, **args)
    assert d.passed and "r2_score >= 0.5" in d.reason

    mape = [_scored("ridge", 1.5, 0.4, mean_absolute_percentage_error=0.1)]
    d = decide(mape, metric="mean_absolute_percentage_error", threshold=None, **args)
    assert not d.passed and d.threshold is None and "set register.threshold" in d.reason

    d = decide(
        [_result("a", roc_auc=0.76)],
        metric="roc_auc",
        threshold=None,
        model_name="t",
        alias="champion",
    )
    assert d.passed and d.threshold == 0.75 and "default for classification" in d.reason


def test_model_card_says_what_the_model_predicts():
    card = {
        "dataset": "houses",
        "task": "regression",
        "train_sha256": "ab" * 32,
        "train_rows": 150,
        "target": "price",
        "features": {"numeric": ["x1"], "categorical": []},
        "dropped": {},
        "estimator": RIDGE,
        "params": {},
        "search": None,
    }
    base = {"root_mean_squared_error": 2.0, "r2_score": 0.0}
    d = decide(
        [_scored("ridge", 1.5, 0.4)],
        metric="root_mean_squared_error",
        threshold=None,
        model_name="houses",
        alias="champion",
        task="regression",
        baseline=base,
    )
    text = model_card(card, {"root_mean_squared_error": 1.5, "r2_score": 0.4}, d)
    assert "**Predicts**: Regressor of `price` on the `houses` data; test split: RMSE 1.5" in text
    assert "predicting its mean: RMSE 2" in text
    assert "**Gate**: root_mean_squared_error < 2.0 (the baseline" in text
    classifier = model_card(card | {"task": "classification"}, {"roc_auc": 0.8}, d)
    assert "**Predicts**: Classifier of `price` on the `houses` data\n" in classifier
    d.version = "3"
    described = model_description(card, {"root_mean_squared_error": 1.5}, d, "challenger")
    assert described.startswith(
        "Regressor of `price` on the `houses` data, trained by snakeflow; version 3 on the "
        "test split: RMSE 1.5; predicting its mean: RMSE 2. `@champion` is the version in use"
    )
    assert model_description(card | {"task": "classification"}, {}, d, "challenger") == (
        "Classifier of `price` on the `houses` data, trained by snakeflow. `@champion` is the "
        "version in use; a newly registered version that does not beat it by "
        "register.min_delta on root_mean_squared_error holds `@challenger`."
    )


def test_predict_csv_for_a_regressor_writes_numbers_only(tmp_path, houses):
    from predict import predict_csv

    pipeline, _, _ = train_ridge(houses)
    dst = tmp_path / "predictions.csv"
    assert predict_csv(pipeline, houses, dst, target="y", task="regression") == 200
    out = pd.read_csv(dst)
    assert list(out.columns) == ["x1", "x2", "colour", "prediction"]
    assert out["prediction"].dtype == np.float64
    expected = pipeline.predict(pd.read_csv(houses).drop(columns=["y"]))
    assert out["prediction"].to_numpy() == pytest.approx(expected)


def test_a_task_is_looked_up_by_name_and_an_unknown_one_is_one_line():
    assert task_for("regression") is TASKS["regression"]
    assert task_for("classification").estimator_kind == "classifier"
    with pytest.raises(UserError) as unknown:
        task_for("clustering")
    assert str(unknown.value) == "task: 'clustering' is not one of classification, regression"


def test_each_task_scores_and_plots_what_it_names():
    from snakeflow.plots import PLOTS

    y, pred = np.array(["0", "1", "1", "0"]), np.array(["0", "1", "0", "0"])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    scores = task_for("classification").metrics(y, pred, proba, ["0", "1"])
    assert set(scores) == set(task_for("classification").metric_names)
    numbers = task_for("regression").metrics([1.0, 2.0, 3.0], [1.5, 2.0, 2.0], None, [])
    assert set(numbers) == set(task_for("regression").metric_names)
    for task in TASKS.values():
        assert set(task.plots) <= set(PLOTS)
        assert task.default_metric in task.metric_names
    # the Snakefile checks register.metric at parse time against its own copy of the names
    # (snakeflow.workflow imports no numpy): the same names, the default first
    assert {name: task.metric_names for name, task in TASKS.items()} == workflow.METRICS


def test_probabilities_are_aligned_to_the_class_list():
    class Model:  # knows two of three classes, in its own order
        classes_ = np.array(["b", "a"])

        def predict(self, X):
            return np.array(["b"] * len(X))

        def predict_proba(self, X):
            return np.array([[0.9, 0.1]] * len(X))

    kind = task_for("classification")
    assert kind.classes(["c", "a"], Model()) == ["a", "b", "c"]
    predicted, proba = kind.predict(Model(), [[0], [1]], ["a", "b", "c"])
    assert predicted.tolist() == ["b", "b"]
    assert proba.tolist() == [[0.1, 0.9, 0.0], [0.1, 0.9, 0.0]]
    columns = kind.prediction_columns(predicted, proba, ["a", "b", "c"])
    assert list(columns) == ["prediction", "proba_a", "proba_b", "proba_c"]
    assert task_for("regression").classes(["1.5"], Model()) == []


def test_first_line_of_an_exception():
    assert first_line(ValueError("  bad value\nmore detail\n")) == "bad value"
    assert first_line(TypeError("")) == "TypeError"
