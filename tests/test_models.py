"""snakeflow.models and snakeflow.registry against a real SQLite MLflow store."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.utils.requirements_utils import _check_requirement_satisfied

from conftest import flower_rows, to_csv
from snakeflow import models, registry
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


def test_model_is_logged_once_copied_pinned_and_registered(tmp_path, store):
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
    with mlflow.start_run() as run:
        record = models.save_and_log(pipeline, features, tmp_path / "model", sig, "f")

    # the output directory is the logged model: same run, same model id, pinned requirements
    meta = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert meta["run_id"] == record.run_id == run.info.run_id
    assert meta["model_id"] == record.model_id
    pins = (tmp_path / "model" / "requirements.txt").read_text().split()
    assert sorted(pins) == sorted(models.requirements())
    assert registry.ModelRecord.load(tmp_path / "model") == record
    assert len(mlflow.search_logged_models(output_format="list")) == 1

    raw = pd.read_csv(src).drop(columns=["species"])
    assert (models.load_local(tmp_path / "model").predict(raw) == pipeline.predict(raw)).all()

    # MLflow's own requirement check still tells a mismatch from a match after the seeding
    assert _check_requirement_satisfied("scikit-learn==0.0.1") is not None
    assert all(_check_requirement_satisfied(pin) is None for pin in models.requirements())

    version = registry.register(record, "flowers", "champion", {"snakeflow.model": "f"})
    assert registry.champion_version("flowers", "champion").version == version.version
    assert registry.champion_version("flowers", "nobody") is None
    uri, champion, loaded = models.load_champion("flowers", "champion")
    assert uri == "models:/flowers@champion" and champion.version == version.version
    assert (loaded.predict(raw) == pipeline.predict(raw)).all()
