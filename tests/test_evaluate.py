"""evaluate: metrics, plot data and permutation importance on the later test split."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.evaluate import MAX_CURVE_POINTS, evaluate_model
from stages.evaluate import main as evaluate_main
from stages.lib.catalog import CONFUSION_FILE, FEATURE_SPEC, FEATURES_DIR, METRICS_FILE, MODEL_FILE, PLOT_FILES, FeatureSpec
from stages.lib.config import EvaluateConfig, ReportGate, TrainConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.models import model_writer
from stages.train import train_model
from tests.conftest import model_config, project_params, replace

SPEC = FeatureSpec.plain(["signal", "noise"], ["carrier"])
NO_GATE = ReportGate(drop_by="point", minimum={}, maximum={}, max_drop={})
CARRIERS = ["AA", "UA", "__other__"]


def frame(rows: int, seed: int) -> pd.DataFrame:
    """`late` follows `signal`; `noise` and `carrier` carry nothing."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=rows),
            "carrier": pd.Categorical(rng.choice(["AA", "UA"], rows), categories=CARRIERS),
            "late": (signal + rng.normal(0, 0.5, rows) > 0.8).astype(np.int8),
            "time_hour": pd.Timestamp("2013-09-01", tz="UTC"),
        }
    )


@pytest.fixture(scope="module")
def model():
    return train_model(
        frame(3000, 0),
        SPEC,
        model_config(max_iter=50),
        TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None),
    ).model


@pytest.fixture
def config() -> EvaluateConfig:
    return EvaluateConfig(threshold=0.5, calibration_bins=10, importance_repeats=3, importance_rows=1000, seed=0, gate=NO_GATE)


def test_metrics_reflect_a_model_that_learned_the_signal(model, config):
    test = frame(2000, 1)
    metrics = evaluate_model(model, test, SPEC, config).metrics
    assert metrics["roc_auc"] > 0.9
    assert metrics["average_precision"] > metrics["late_share"]
    assert 0 < metrics["brier"] < 0.25 and 0 < metrics["log_loss"] < np.log(2)
    assert metrics["rows"] == 2000 and metrics["late_share"] == round(float(test["late"].mean()), 6)


def test_threshold_moves_the_confusion_matrix(model, config):
    test = frame(2000, 1)
    low = evaluate_model(model, test, SPEC, replace(config, threshold=0.2))
    high = evaluate_model(model, test, SPEC, replace(config, threshold=0.8))
    assert low.metrics["recall"] > high.metrics["recall"]
    assert (low.confusion["predicted"] == "late").sum() > (high.confusion["predicted"] == "late").sum()
    assert low.metrics["roc_auc"] == high.metrics["roc_auc"]  # threshold-free
    assert len(low.confusion) == 2000
    assert (low.confusion["actual"] == np.where(test["late"] == 1, "late", "not late")).all()


def test_curves_span_the_unit_square_and_stay_small(model, config):
    plots = evaluate_model(model, frame(5000, 2), SPEC, config).plots
    roc = pd.DataFrame(plots["roc"])
    assert (roc.iloc[0][["fpr", "tpr"]] == 0).all() and (roc.iloc[-1][["fpr", "tpr"]] == 1).all()
    assert roc["fpr"].is_monotonic_increasing and len(roc) <= MAX_CURVE_POINTS
    pr = pd.DataFrame(plots["precision_recall"])
    assert pr["recall"].is_monotonic_increasing and len(pr) <= MAX_CURVE_POINTS


def test_calibration_bins_cover_every_row(model, config):
    calibration = pd.DataFrame(evaluate_model(model, frame(2000, 3), SPEC, config).plots["calibration"])
    assert calibration["rows"].sum() == 2000
    assert calibration["mean_predicted"].is_monotonic_increasing
    assert calibration["mean_observed"].between(0, 1).all()


def test_importance_ranks_the_signal_first(model, config):
    importance = evaluate_model(model, frame(2000, 4), SPEC, config).plots["importance"]
    assert next(row["feature"] for row in importance) == "signal"
    assert {row["feature"] for row in importance} == set(SPEC.features)
    by_feature = {row["feature"]: row["importance"] for row in importance}
    assert by_feature["signal"] > 0.2 > abs(by_feature["noise"])


def test_evaluation_is_deterministic(model, config):
    test = frame(2000, 5)
    first, again = evaluate_model(model, test, SPEC, config), evaluate_model(model, test, SPEC, config)
    assert first.metrics == again.metrics and first.plots == again.plots


def test_one_class_test_split_is_refused(model, config):
    with pytest.raises(UserError, match="the target has one class only"):
        evaluate_model(model, frame(100, 6).assign(late=0), SPEC, config)


def test_regression_metrics_and_plots():
    rng = np.random.default_rng(7)
    x = rng.normal(size=3000)
    frame = pd.DataFrame(
        {"x": x, "noise": rng.normal(size=3000), "y": 2 * x + rng.normal(0, 0.5, 3000), "date": pd.Timestamp("2015-01-01")}
    )
    spec = FeatureSpec.plain(["x", "noise"], [], target="y", time="date", task="regression")
    model = train_model(
        frame[:2000],
        spec,
        model_config("sklearn.ensemble.HistGradientBoostingRegressor", max_iter=50),
        TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None),
    ).model
    evaluation = evaluate_model(
        model,
        frame[2000:],
        spec,
        EvaluateConfig(threshold=0.5, calibration_bins=10, importance_repeats=2, importance_rows=1000, seed=0, gate=NO_GATE),
    )
    metrics = evaluation.metrics
    assert metrics["rmse"] < 0.7 < metrics["rmse_constant"] and metrics["r2"] > 0.85
    assert evaluation.plots["roc"] == [] and evaluation.plots["precision_recall"] == []
    calibration = pd.DataFrame(evaluation.plots["calibration"])
    assert calibration["rows"].sum() == 1000 and calibration["mean_observed"].is_monotonic_increasing
    assert evaluation.plots["importance"][0]["feature"] == "x"


def write_parts(test: pd.DataFrame, folder: Path, parts: int) -> None:
    """`test` as a folder of `parts` Parquet files in row order, of uneven sizes: how the dask engine stores a split."""
    folder.mkdir(parents=True)
    cuts = np.sort(np.random.default_rng(parts).choice(np.arange(1, len(test)), parts - 1, replace=False))
    for index, piece in enumerate(np.split(np.arange(len(test)), cuts)):
        test.iloc[piece].to_parquet(folder / f"part-{index:05d}.parquet", index=False)


def evaluate_project(folder: Path, model, test_writer, engine: dict) -> dict[str, bytes]:
    """evaluate's main() run in `folder` (features, model and params.yaml written there): every file it wrote."""
    params = project_params()
    params["evaluate"].update(importance_rows=700, importance_repeats=2, calibration_bins=10, threshold=0.4, seed=3)
    params["engine"] = engine
    (folder / FEATURES_DIR).mkdir(parents=True)
    (folder / FEATURE_SPEC).write_text(json.dumps(SPEC.to_json()))
    test_writer(folder / FEATURES_DIR / "test.parquet")
    (folder / "models").mkdir()
    model_writer(model)(folder / MODEL_FILE)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        evaluate_main()
    finally:
        os.chdir(cwd)
    written = [METRICS_FILE, *PLOT_FILES.values(), CONFUSION_FILE]
    return {str(path): (folder / path).read_bytes() for path in written}


def scored_partitions(scheduler) -> set:
    """The keys of the partitions the cluster's workers scored (evaluate's per-partition model task, fused with the read)."""
    return {
        entry[0]
        for entry in scheduler.transition_log
        if isinstance(entry[0], tuple) and "_score_partition" in str(entry[0][0]) and entry[2] == "memory"
    }


def test_the_dask_engine_writes_the_pandas_engines_files_for_any_partition_count(model, tmp_path):
    """Metrics (6 decimals, as written), every plot file and the confusion file: byte for byte the pandas engine's,
    from the test split in 3 parts and in 7, on a cluster the stage joins at engine.scheduler."""
    from distributed import LocalCluster

    test = frame(2000, 9)
    pandas = evaluate_project(tmp_path / "pandas", model, lambda path: test.to_parquet(path, index=False), {"name": "pandas"})
    assert json.loads(pandas[str(METRICS_FILE)])["rows"] == 2000
    assert pandas[str(CONFUSION_FILE)].count(b"\n") == 2001
    # In-process workers (threads): the equality is about the arithmetic, tests/test_engine_kill.py is about processes.
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        engine = parse_params(dask_engine(scheduler=cluster.scheduler_address)).engine.model_dump()
        for parts in (3, 7):
            before = scored_partitions(cluster.scheduler)
            dask_files = evaluate_project(
                tmp_path / f"dask-{parts}", model, lambda path, parts=parts: write_parts(test, path, parts), engine
            )
            assert len(scored_partitions(cluster.scheduler) - before) == parts  # scored on the cluster, one task per part
            for name, content in pandas.items():
                assert dask_files[name] == content, f"{name} differs with {parts} partitions"


def dask_engine(**changes) -> dict:
    params = project_params()
    params["engine"] = {
        "name": "dask", "scheduler": None, "workers": 2, "threads_per_worker": 1, "memory_limit": "1GiB",
        "spill_dir": ".dask-spill", "connect_timeout": 10, **changes,
    }  # fmt: skip
    return params
