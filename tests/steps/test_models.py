"""snakeflow.models and snakeflow.registry against a real SQLite MLflow store."""

from __future__ import annotations

import socket

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.requirements_utils import _check_requirement_satisfied
from snakemake_logger_plugin_mlflow import channel
from snakemake_logger_plugin_mlflow import jobs as plugin_jobs

from snakeflow import modeldir, models, registry
from snakeflow.errors import UserError
from support import flower_rows, titanic_rows, to_csv
from train import train_model


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store in tmp_path (artifacts under tmp_path/mlruns)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def test_model_saved_locally_logged_by_the_plugin_found_and_registered(tmp_path, store):
    src = tmp_path / "flowers.csv"
    src.write_bytes(to_csv(flower_rows()))
    pipeline, plan, features = train_model(
        src,
        name="f",
        target="species",
        estimator="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 500},
        drop=[],
        infer_drop=True,
        seed=1,
    )
    sig = models.signature(features, pipeline.predict(features.head(5)), plan.numeric, plan.used)
    models.save(pipeline, features, tmp_path / "model", sig)  # no store, no run

    pins = (tmp_path / "model" / "requirements.txt").read_text().split()
    assert sorted(pins) == sorted(models.requirements())
    raw = pd.read_csv(src).drop(columns=["species"])
    # read back without MLflow as MLflow reads it: the same pipeline, the same signature
    mine = modeldir.load_pipeline(tmp_path / "model")
    theirs = mlflow.sklearn.load_model(str(tmp_path / "model"))
    assert (mine.predict(raw) == theirs.predict(raw)).all()
    assert (mine.predict(raw) == pipeline.predict(raw)).all()
    info = mlflow.models.get_model_info(str(tmp_path / "model"))
    required = [spec.name for spec in info.signature.inputs.inputs if spec.required]
    numeric = (info.metadata or {}).get("numeric", [])
    assert modeldir.input_columns(tmp_path / "model") == (required, numeric)

    # MLflow's own requirement check still tells a mismatch from a match after the seeding
    assert _check_requirement_satisfied("scikit-learn==0.0.1") is not None
    assert all(_check_requirement_satisfied(pin) is None for pin in models.requirements())

    # the logger plugin logs the directory as a LoggedModel of the job's run (twice: one model)
    client = MlflowClient(store)
    experiment_id = client.create_experiment("snakeflow")
    run = client.create_run(experiment_id)
    plugin_models = plugin_jobs.Models(client)
    logged = plugin_models.log(experiment_id, run.info.run_id, str(tmp_path / "model"), "model")
    again = plugin_jobs.Models(client).log(
        experiment_id, run.info.run_id, str(tmp_path / "model"), "model"
    )
    assert again.model_id == logged.model_id
    assert len(client.search_logged_models([experiment_id])) == 1

    found = registry.logged_model(tmp_path / "model", wait=5)
    assert found.model_id == logged.model_id and found.source_run_id == run.info.run_id
    version = registry.register(found.model_id, "flowers", {"snakeflow.model": "f"})
    registry.set_alias("flowers", "champion", version.version)
    assert version.run_id == run.info.run_id
    assert registry.champion_version("flowers", "champion").version == version.version
    assert registry.champion_version("flowers", "nobody") is None
    assert registry.champion_version("no-such-model", "champion") is None
    uri, champion, loaded = models.load_champion("flowers", "champion")
    assert uri == "models:/flowers@champion" and champion.version == version.version
    assert (loaded.predict(raw) == pipeline.predict(raw)).all()


def test_a_saved_model_takes_the_raw_csv_as_pandas_and_serving_read_it(tmp_path):
    """Integer columns as int64, missing values as NaN (numbers and text), extra columns:
    pyfunc's schema enforcement takes them with no dtype given, and so does the CSV parser
    of ``mlflow models serve``."""
    import io

    from mlflow.pyfunc.scoring_server import parse_csv_input

    raw = tmp_path / "raw.csv"
    raw.write_bytes(to_csv(titanic_rows(200, seed=3)))
    train = tmp_path / "train.csv"  # as clean makes it: no missing value left
    pd.read_csv(raw).dropna(subset=["Age", "Embarked"]).drop(columns=["Cabin"]).to_csv(
        train, index=False
    )
    pipeline, plan, features = train_model(
        train,
        name="m",
        target="Survived",
        estimator="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 500},
        drop=[],
        infer_drop=True,
        seed=1,
    )
    types = models.raw_types(raw, features.columns)
    assert types["Pclass"] == "long" and types["Age"] == "double" and types["Sex"] == "string"
    sig = models.signature(
        features, pipeline.predict(features.head(5)), plan.numeric, plan.used, types
    )
    models.save(pipeline, features, tmp_path / "model", sig)
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    rows = pd.read_csv(raw).drop(columns=["Survived"])
    assert rows["Pclass"].dtype == "int64" and rows["Age"].isna().any()
    assert rows["Embarked"].isna().any()
    assert len(model.predict(rows)) == 200
    served = parse_csv_input(io.StringIO(raw.read_text()), schema=model.metadata.get_input_schema())
    assert len(model.predict(served.drop(columns=["Survived"]))) == 200


def test_registry_tag_name_is_the_plugins():
    assert registry.MODEL_UUID_TAG == channel.MODEL_UUID_TAG


def test_unlogged_model_is_a_clear_error(tmp_path, store):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("model_uuid: 0123\n")
    MlflowClient(store).create_experiment("snakeflow")
    with pytest.raises(UserError, match=r"not in the tracking store after 1 s.*--logger mlflow"):
        registry.logged_model(tmp_path / "model", wait=1)


def test_a_store_failure_is_not_no_champion(monkeypatch, tmp_path):
    """Only "does not exist" means no champion; a store that fails is the tracking error."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(UserError, match=f"tracking store http://127.0.0.1:{port} is not usable"):
        registry.champion_version("titanic", "champion")
    # a read-only SQLite store that has no such model is still "no champion"
    db = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert registry.champion_version("titanic", "champion") is None


def _logged(tmp_path, client, experiment_id, name, estimator, params, src):
    pipeline, plan, features = train_model(
        src,
        name=name,
        target="species",
        estimator=estimator,
        params=params,
        drop=[],
        infer_drop=True,
        seed=1,
    )
    sig = models.signature(features, pipeline.predict(features.head(5)), plan.numeric, plan.used)
    models.save(pipeline, features, tmp_path / name, sig)
    run = client.create_run(experiment_id)
    return plugin_jobs.Models(client).log(
        experiment_id, run.info.run_id, str(tmp_path / name), name
    )


def test_champion_and_challenger(tmp_path, store):
    """The first model passing the gate is champion; a later one is registered as challenger
    and promoted only if it beats the champion by min_delta on the same test split."""
    from types import SimpleNamespace

    from register import Decision, promote

    src, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rows = flower_rows(300, seed=3)
    src.write_bytes(to_csv(rows[:200]))
    test.write_bytes(to_csv(rows[:1] + rows[200:]))
    client = MlflowClient(store)
    experiment_id = client.create_experiment("snakeflow")
    dummy = "sklearn.dummy.DummyClassifier"
    weak = _logged(tmp_path, client, experiment_id, "weak", dummy, {}, src)
    good = _logged(
        tmp_path, client, experiment_id, "good", "sklearn.linear_model.LogisticRegression", {}, src
    )
    weak2 = _logged(tmp_path, client, experiment_id, "weak2", dummy, {"strategy": "prior"}, src)
    params = SimpleNamespace(challenger_alias="challenger", min_delta=0.05, target="species")

    def decide(model, best, value):
        decision = Decision(
            model_name="flowers",
            alias="champion",
            metric="accuracy",
            threshold=0.0,
            candidates={},
            best=best,
            value=value,
            passed=True,
        )
        promote(decision, model, params, test, f"models/{best}")
        return decision

    first = decide(weak, "weak", 0.34)
    assert first.promoted and first.registered and first.version == "1"
    assert first.champion_dir == "models/weak"  # predict loads it without the registry
    assert registry.champion_version("flowers", "champion").version in (1, "1")

    better = decide(good, "good", 0.9)  # the dummy scores about 1/3 on three classes
    assert better.promoted and better.version == "2"
    assert better.champion_version == "1" and better.champion_score < 0.5
    assert "becomes champion" in better.reason
    assert registry.champion_version("flowers", "challenger") is None

    worse = decide(weak2, "weak2", 0.34)
    assert not worse.promoted and worse.registered and worse.version == "3"
    assert worse.champion_version == "2" and worse.champion_score > 0.8
    assert registry.champion_version("flowers", "champion").version in (2, "2")
    assert registry.champion_version("flowers", "challenger").version in (3, "3")
    assert "stays challenger" in worse.reason and "same test split" in worse.reason
    assert worse.champion_dir is None  # the champion is an earlier decision's: the registry's

    again = decide(weak2, "weak2", 0.34)  # the challenger again: not registered twice
    assert not again.registered and again.version == "3"
    same = decide(good, "good", 0.9)  # the champion again: nothing new
    assert not same.registered and "already champion (version 2)" in same.reason
    assert same.champion_dir == "models/good"
    assert len(client.search_model_versions("name = 'flowers'")) == 3


def _regression_csv(path, n: int = 120, seed: int = 0):
    """y = 3*x1 - 2*x2 + a step per colour + noise; rooms is an integer column."""
    import numpy as np

    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame(
        {
            "x1": rng.uniform(0, 10, n).round(3),
            "x2": rng.normal(0, 3, n).round(3),
            "rooms": rng.integers(1, 6, n),
            "colour": colour,
        }
    )
    step = frame["colour"].map({"red": 5.0, "green": 0.0, "blue": -5.0})
    frame["y"] = (3 * frame["x1"] - 2 * frame["x2"] + step + rng.normal(0, 0.5, n)).round(3)
    frame.to_csv(path, index=False)
    return path


def _train_regressor(src, name="ridge", estimator="sklearn.linear_model.Ridge", params=None):
    return train_model(
        src,
        name=name,
        target="y",
        estimator=estimator,
        params=params or {},
        drop=[],
        infer_drop=True,
        seed=1,
        task="regression",
        dataset="houses",
    )


def test_a_saved_regressor_outputs_a_double_and_serving_answers_csv_rows(tmp_path):
    """The signature's output is one double (not a float64 tensor), and the scoring server's
    /invocations handler answers CSV rows with a number per row."""
    import json

    from mlflow.pyfunc import scoring_server
    from mlflow.types import DataType
    from mlflow.types.schema import ColSpec

    src = _regression_csv(tmp_path / "houses.csv")
    pipeline, plan, features = _train_regressor(src)
    types = models.raw_types(src, features.columns)
    assert types["rooms"] == "long"
    sig = models.signature(
        features,
        pipeline.predict(features.head(5)),
        plan.numeric,
        plan.used,
        types,
        task="regression",
    )
    assert sig.outputs.inputs == [ColSpec(DataType.double)]
    models.save(pipeline, features, tmp_path / "model", sig)
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert model.metadata.get_output_schema().inputs[0].type == DataType.double

    rows = pd.read_csv(src).drop(columns=["y"])
    response = scoring_server.invocations(
        rows.head(7).to_csv(index=False),
        "text/csv",
        model,
        model.metadata.get_input_schema(),
    )
    assert response.status == 200, response.response
    answered = json.loads(response.response)["predictions"]
    assert len(answered) == 7 and all(isinstance(v, float) for v in answered)
    assert answered == pytest.approx(list(pipeline.predict(rows.head(7))))


def test_champion_score_of_a_regression_champion(tmp_path, store):
    """register compares a challenger with a regression champion by predict and the
    regression metrics of the same test split."""
    from types import SimpleNamespace

    import numpy as np

    from register import Decision, champion_score, promote
    from snakeflow.metrics import compute_regression_metrics

    src, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _regression_csv(src, 150, seed=2)
    _regression_csv(test, 50, seed=3)
    client = MlflowClient(store)
    experiment_id = client.create_experiment("snakeflow")
    logged = {}
    for name, estimator in (
        ("dummy", "sklearn.dummy.DummyRegressor"),
        ("ridge", "sklearn.linear_model.Ridge"),
    ):
        pipeline, plan, features = _train_regressor(src, name, estimator)
        sig = models.signature(
            features,
            pipeline.predict(features.head(5)),
            plan.numeric,
            plan.used,
            task="regression",
        )
        models.save(pipeline, features, tmp_path / name, sig)
        run = client.create_run(experiment_id)
        logged[name] = (
            plugin_jobs.Models(client).log(
                experiment_id, run.info.run_id, str(tmp_path / name), name
            ),
            pipeline,
        )
    params = SimpleNamespace(challenger_alias="challenger", min_delta=0.0, target="y")
    metric = "root_mean_squared_error"

    def decide(name, value):
        decision = Decision(
            model_name="houses",
            alias="champion",
            metric=metric,
            threshold=None,
            candidates={},
            best=name,
            value=value,
            passed=True,
            task="regression",
        )
        promote(decision, logged[name][0], params, test, str(tmp_path / name))
        return decision

    first = decide("dummy", 9.0)
    assert first.promoted
    frame = pd.read_csv(test)
    expected = compute_regression_metrics(
        frame["y"], logged["dummy"][1].predict(frame.drop(columns=["y"]))
    )
    score = champion_score("houses", "champion", test, "y", metric, "regression")
    assert score == pytest.approx(expected[metric])
    assert score == pytest.approx(
        np.sqrt(np.mean((frame["y"] - logged["dummy"][1].predict(frame)) ** 2))
    )
    r2 = champion_score("houses", "champion", test, "y", "r2_score", "regression")
    assert r2 < 0.05  # the train mean, on another split

    better = decide("ridge", 0.6)  # lower RMSE than the dummy's: promoted
    assert better.promoted and better.champion_score == pytest.approx(score)
    assert "becomes champion" in better.reason
