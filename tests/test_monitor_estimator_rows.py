"""DLE's loss model on a sample of the reference (monitor.estimator_rows): the seeded bottom-k rows by a hash of their
position, the same on both engines and for any cut of the reference into parts.

The sample is checked against a brute-force bottom-k (splitmix64 written out with Python integers, every position
hashed and sorted); the dask engine's monitor against the pandas engine's own `monitor` on the reference in memory,
for two cuts of the reference into parts, with the key null and with a sample size. Dask runs with its synchronous
scheduler (the same task graph, in this process).
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from stages.lib.catalog import FeatureSpec
from stages.lib.config import TrainConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.models import predict_scores
from stages.lib.monitor import sample
from stages.lib.monitor.cache import ChunkCache
from stages.lib.monitor.partitioned import sample_on_dask
from stages.monitor import Reference, Settings, load_reference_on_dask, monitor
from stages.train import train_model
from tests.conftest import model_config, project_params, replace
from tests.monitor_support import MODEL_MD5, reference_rows, weekly_batches, write_batch, write_labels
from tests.test_monitor import SETTINGS, output_bytes, store
from tests.test_monitor_dask import write_reference  # the classification spec's feature columns are this spec's

SPEC = FeatureSpec.plain(numeric=["temp", "distance"], categorical=["origin", "carrier"], task="regression")
CATEGORICAL = ["origin", "carrier"]
MASK = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """splitmix64's finalizer of one 64-bit word, in Python integers (the reference the NumPy code is checked against)."""
    z = value & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def brute_force(rows: int, limit: int, seed: int) -> list[int]:
    """The positions of the `limit` smallest hashes (position XOR splitmix64(seed + golden ratio)), ascending."""
    key = splitmix64(seed + 0x9E3779B97F4A7C15)
    ranked = sorted(range(rows), key=lambda position: splitmix64(position ^ key))
    return sorted(ranked[:limit])


def with_outcome(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A regression target: temp / 10 with noise that grows with distance (so the loss model has something to learn)."""
    rng = np.random.default_rng(seed)
    return frame.assign(late=frame["temp"] / 10 + rng.normal(0, 1, len(frame)) * frame["distance"] / 1000)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    frame, _ = reference_rows(2000, seed=15)
    return with_outcome(frame, 1)


@pytest.fixture(scope="module")
def model():
    train, _ = reference_rows(2000, seed=16)
    train = with_outcome(train, 2)
    train[CATEGORICAL] = train[CATEGORICAL].astype("category")
    config = TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None)
    return train_model(train, SPEC, model_config("sklearn.ensemble.HistGradientBoostingRegressor", max_iter=10), config).model


def settings(limit: int | None) -> Settings:
    alerts = replace(SETTINGS.monitor.alerts, min_roc_auc=None, max_mae=2.0)
    return Settings(replace(SETTINGS.monitor, alerts=alerts, estimator_rows=limit, segments=()), SETTINGS.drift, SETTINGS.threshold, SPEC)


@pytest.mark.parametrize(("rows", "limit", "seed"), [(3000, 200, 0), (3000, 2999, 7), (500, 37, -3)])
def test_the_sample_is_the_bottom_k_of_the_position_hashes(rows, limit, seed, monkeypatch):
    expected = brute_force(rows, limit, seed)
    assert sample.sample_positions(rows, limit, seed).tolist() == expected
    monkeypatch.setattr(sample, "BLOCK", 64)  # the threshold sought over many blocks: the same rows
    assert sample.sample_positions(rows, limit, seed).tolist() == expected
    assert sample.sample_positions(rows, None, seed).tolist() == sample.sample_positions(rows, rows, seed).tolist() == list(range(rows))


def test_the_dask_engines_sample_is_the_bottom_k_for_two_cuts_of_the_reference(reference, model, tmp_path):
    positions = brute_force(len(reference), 300, 0)
    features = reference[SPEC.features].astype(dict.fromkeys(CATEGORICAL, "category"))
    expected_scores = predict_scores(model, features, SPEC.task)[positions]
    columns = [*sorted(SPEC.inputs), SPEC.target]
    for cuts, row_group in ((0, 2000), (3, 250)):
        root = tmp_path / f"cut-{cuts}"
        write_reference(root, reference, model, cuts, row_group)
        with dask.config.set(scheduler="sync"):
            rows, scores = sample_on_dask(
                root / "data/prepared/test.parquet", root / "data/features/test.parquet", columns, SPEC, model, 300, 0
            )
        assert len(rows) == 300
        np.testing.assert_array_equal(rows["temp"].to_numpy(), reference["temp"].to_numpy()[positions])
        np.testing.assert_array_equal(rows[SPEC.target].to_numpy(), reference[SPEC.target].to_numpy()[positions])
        assert rows["origin"].astype(str).tolist() == reference["origin"].iloc[positions].tolist()
        np.testing.assert_array_equal(scores, expected_scores)


def test_dle_on_the_dask_engine_equals_the_pandas_engines_with_every_row_and_with_a_sample(reference, model, tmp_path):
    production = tmp_path / "production"
    frames = [with_outcome(frame, 3 + index) for index, frame in enumerate(weekly_batches(2, per_week=600, seed=8))]
    frames = [frame.assign(prediction=frame["temp"] / 10) for frame in frames]
    write_batch(production, 1, frames[0])
    write_labels(production, 1, frames[0], "batch-0001")
    write_batch(production, 2, frames[1])  # no outcomes yet: judged on its estimate
    features = reference[SPEC.features].astype(dict.fromkeys(CATEGORICAL, "category"))
    in_memory = Reference.of(reference, predict_scores(model, features, SPEC.task))
    estimates = {}
    for limit in (None, 400):
        expected = monitor(store(production), in_memory, MODEL_MD5, settings(limit), ChunkCache(None))
        estimated = [chunk["estimated"] for chunk in expected.chunks if chunk["rows"]]
        assert estimated and all(found is not None and found["value"] is not None for found in estimated)
        estimates[limit] = estimated
        for cuts, row_group in ((0, 2000), (3, 250)):
            root = tmp_path / f"cut-{cuts}-{limit}"
            write_reference(root, reference, model, cuts, row_group)
            with dask.config.set(scheduler="sync"):
                found = monitor(
                    store(production), load_reference_on_dask(SPEC, 1_000_000, root), MODEL_MD5, settings(limit), ChunkCache(None)
                )
            assert found.chunks == expected.chunks
            assert output_bytes(found, settings(limit)) == output_bytes(expected, settings(limit))
    assert estimates[None] != estimates[400]  # the sample is another fit: the key is read


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "must be at least 1 or null, got 0"), ("many", "must be int or null, got 'many'"), (True, "must be int or null, got True")],
)
def test_a_bad_estimator_rows_is_one_line_naming_the_key(value, expected):
    params = project_params()
    params["monitor"]["estimator_rows"] = value
    with pytest.raises(UserError) as error:
        parse_params(params)
    assert str(error.value) == f"params.yaml: 'monitor.estimator_rows' {expected}"
    params["monitor"]["estimator_rows"] = 5000
    assert parse_params(params).monitor.estimator_rows == 5000
