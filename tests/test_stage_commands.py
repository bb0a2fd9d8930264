"""The stage commands chained as `dvc repro` runs them, on tiny data in a scratch folder (no DVC)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import make_flights, make_weather, project_params, run_module


@pytest.fixture(scope="module")
def featurized(tmp_path_factory):
    """A folder where prepare and featurize have run on tiny CSVs shaped like nycflights13."""
    folder = tmp_path_factory.mktemp("stages")
    flights = make_flights(rows_per_month=40)
    (folder / "source").mkdir()
    flights.to_csv(folder / "source/flights.csv", index=False)
    make_weather(flights).to_csv(folder / "source/weather.csv", index=False)
    params = project_params()
    params["data"]["source"] = {"path": str(folder / "source/flights.csv"), "package": None}
    params["data"]["join"][0]["source"] = {"path": str(folder / "source/weather.csv"), "package": None}
    params["features"]["categorical"]["min_count"] = 2
    params["model"] = {"name": "hgb", "max_iter": 20}
    params["evaluate"]["importance_repeats"] = 2
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    for module in ("stages.prepare", "stages.featurize"):
        result = run_module(module, folder)
        assert result.returncode == 0, result.stderr
    return folder


def test_train_then_evaluate_write_model_card_metrics_and_plots(featurized):
    for module in ("stages.train", "stages.evaluate"):
        result = run_module(module, featurized)
        assert result.returncode == 0, result.stderr
    card = json.loads((featurized / "models/model_card.json").read_text())
    spec = json.loads((featurized / "data/features/spec.json").read_text())
    assert card["features"] == spec["features"]
    assert card["model"] == {"name": "hgb", "max_iter": 20}
    assert set(card["inputs_sha256"]) == {"data/features/train.parquet", "data/features/spec.json"}
    metrics = json.loads((featurized / "reports/metrics.json").read_text())
    assert {"roc_auc", "average_precision", "log_loss", "brier", "accuracy", "f1"} <= set(metrics)
    for name in ("roc", "precision_recall", "calibration", "importance"):
        assert json.loads((featurized / f"reports/plots/{name}.json").read_text())
    assert json.loads((featurized / "reports/train.json").read_text())["cv"]["metric"] == "roc_auc"
    featurize_summary = json.loads((featurized / "reports/featurize.json").read_text())
    assert featurize_summary["features"] == len(spec["features"]) and sum(featurize_summary["by_family"].values()) == len(spec["features"])
    timing = json.loads((featurized / "reports/featurize_timing.json").read_text())
    assert timing["rows"] == featurize_summary["rows"] and timing["rows_per_second"] > 0 and timing["seconds"] > 0
    assert (featurized / "data/feature_manifest.yaml").read_text().startswith("# Written by featurize")
    confusion = pd.read_csv(featurized / "reports/confusion.csv")
    assert len(confusion) == metrics["rows"]


def test_unknown_model_stops_train_with_one_line_and_no_model(featurized, tmp_path):
    params = yaml.safe_load((featurized / "params.yaml").read_text())
    params["model"] = {"name": "xgboost"}
    (featurized / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        (featurized / "models/model.skops").unlink(missing_ok=True)
        result = run_module("stages.train", featurized)
    finally:
        params["model"] = {"name": "hgb", "max_iter": 20}
        (featurized / "params.yaml").write_text(yaml.safe_dump(params))
    assert result.returncode == 2
    assert result.stderr == "error: params.yaml: unknown model 'xgboost'; choose one of hgb, logreg (conf/model/<name>.yaml)\n"
    assert not (featurized / "models/model.skops").exists()


def test_featurize_without_prepare_says_what_to_run(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params()))
    result = run_module("stages.featurize", tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: data/schema.yaml: file not found; run `dvc repro prepare` first\n"


def test_saved_transformer_recomputes_the_features_of_new_rows(featurized):
    """Serving path: the skops transformer, loaded through the allow-list, gives the stored features."""
    from stages.lib.models import load_model

    transformer = load_model(featurized / "data/features/transformer.skops")
    spec = json.loads((featurized / "data/features/spec.json").read_text())
    prepared = pd.read_parquet(featurized / "data/prepared/test.parquet")
    stored = pd.read_parquet(featurized / "data/features/test.parquet")
    recomputed = transformer.transform(prepared)
    built_here = [name for name in spec["features"] if name in recomputed.columns]
    assert built_here and all(name.startswith("history_") for name in set(spec["features"]) - set(built_here))
    pd.testing.assert_frame_equal(
        recomputed[built_here].astype({name: "float64" for name in built_here if name not in spec["categorical"]}),
        stored[built_here],
        check_categorical=False,
    )
