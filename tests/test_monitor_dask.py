"""The monitor on the dask engine: the reference (the test split) summarized row group by row group on the workers,
merged, never loaded whole; the chunks compared with those tables give the pandas engine's monitor output.

Checked against the pandas engine's own `monitor` (the reference's rows and the model's scores in memory) and
against sklearn's isotonic fit on the rows, for two different cuts of the reference into parts; never against the
dask code itself. Dask runs with its synchronous scheduler (the same task graph, in this process).
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from stages.lib.catalog import FEATURES_DIR, MODEL_FILE, PREPARED_DIR
from stages.lib.config import TrainConfig
from stages.lib.models import model_writer, predict_scores
from stages.lib.monitor.cache import ChunkCache
from stages.lib.monitor.estimation import estimate_classification, fit_calibrator, fit_calibrator_of_counts
from stages.monitor import Reference, load_reference_on_dask, monitor
from stages.train import train_model
from tests.conftest import model_config
from tests.monitor_support import MODEL_MD5, SPEC, reference_rows, weekly_batches, write_labelled_batches
from tests.test_monitor import SETTINGS, output_bytes, store

CATEGORICAL = ["origin", "carrier"]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    frame, _ = reference_rows(3000, seed=5)
    frame.loc[frame.index[::37], "temp"] = np.nan  # missing values, in some row groups more than others
    return frame


@pytest.fixture(scope="module")
def model(reference):
    train, _ = reference_rows(3000, seed=6)
    train[CATEGORICAL] = train[CATEGORICAL].astype("category")
    config = TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None)
    return train_model(train, SPEC, model_config(max_iter=10), config).model


def features_of(rows: pd.DataFrame) -> pd.DataFrame:
    """The reference's features as featurize would write them for this spec: the inputs (categories typed) and the target."""
    features = rows[[*SPEC.features, SPEC.target]].copy()
    features[CATEGORICAL] = features[CATEGORICAL].astype("category")
    return features


def write_reference(root, rows: pd.DataFrame, model, cuts: int, row_group: int) -> None:
    """The test split as the dask engine writes it (a folder of `cuts` parts of `row_group`-row groups; `cuts` 0: one
    file), and the model file."""
    for folder, frame in ((PREPARED_DIR, rows), (FEATURES_DIR, features_of(rows))):
        target = root / folder / "test.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cuts:
            frame.to_parquet(target, index=False, row_group_size=row_group)
            continue
        target.mkdir()
        for index, piece in enumerate(np.array_split(np.arange(len(frame)), cuts)):
            frame.iloc[piece].reset_index(drop=True).to_parquet(target / f"part-{index:05d}.parquet", index=False, row_group_size=row_group)
    (root / MODEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    model_writer(model)(root / MODEL_FILE)


def on_dask(production, root, cache=None):
    with dask.config.set(scheduler="sync"):
        reference = load_reference_on_dask(SPEC, 1_000_000, root)
        return reference, monitor(store(production), reference, MODEL_MD5, SETTINGS, ChunkCache(cache))


def test_the_dask_monitor_equals_the_pandas_engines_for_two_cuts_of_the_reference(reference, model, tmp_path):
    production = tmp_path / "production"
    write_labelled_batches(production, weekly_batches(3, per_week=700, seed=3, shifts={2: 9.0}))
    scores = predict_scores(model, features_of(reference)[SPEC.features], SPEC.task)
    expected = monitor(store(production), Reference.of(reference, scores), MODEL_MD5, SETTINGS, ChunkCache(None))
    chunks = expected.chunks
    # The store exercises what is compared: estimates, prediction drift, input drift and tested segments.
    assert all(chunk["estimated"] is not None and chunk["prediction_drift"] is not None for chunk in chunks if chunk["rows"])
    assert any(chunk["drift"]["drifted"] for chunk in chunks if chunk["rows"])
    assert any(segment["tested"] for chunk in chunks for segment in chunk["segments"])
    fingerprints = set()
    for cuts, row_group in ((0, 3000), (3, 170)):  # one row group; 3 parts of 170-row groups (18 tasks per table)
        root = tmp_path / f"cut-{cuts}"
        write_reference(root, reference, model, cuts, row_group)
        found_reference, found = on_dask(production, root)
        fingerprints.add(found_reference.fingerprint)
        assert found.chunks == chunks
        assert (found.performance, found.drift) == (expected.performance, expected.drift)
        assert output_bytes(found) == output_bytes(expected)
    assert len(fingerprints) == 1  # the cache key does not depend on the parts


def test_the_chunk_cache_survives_a_new_cut_of_the_reference_but_not_a_changed_row(reference, model, tmp_path):
    production, cache = tmp_path / "production", tmp_path / "cache"
    write_labelled_batches(production, weekly_batches(2, per_week=600, seed=4))
    write_reference(tmp_path / "a", reference, model, cuts=2, row_group=400)
    first = on_dask(production, tmp_path / "a", cache)[1]
    assert first.computed == [1, 2, 3]
    write_reference(tmp_path / "b", reference, model, cuts=4, row_group=250)
    again = on_dask(production, tmp_path / "b", cache)[1]
    assert again.computed == [] and again.chunks == first.chunks  # every chunk read back: no reference pass needed
    changed = reference.copy()
    changed.loc[changed.index[10], "distance"] += 1.0
    write_reference(tmp_path / "c", changed, model, cuts=4, row_group=250)
    assert on_dask(production, tmp_path / "c", cache)[1].computed == [1, 2, 3]
    swapped = reference.iloc[[1, 0, *range(2, len(reference))]].reset_index(drop=True)  # the same rows, two swapped
    write_reference(tmp_path / "d", swapped, model, cuts=4, row_group=250)
    assert on_dask(production, tmp_path / "d", cache)[1].computed == [1, 2, 3]


@pytest.mark.parametrize("ties", [False, True])
def test_the_calibrator_of_counts_per_score_is_sklearns_isotonic_fit_on_the_rows(ties):
    rng = np.random.default_rng(7)
    scores = rng.uniform(0, 1, 5000)
    if ties:
        scores = np.round(scores, 2)  # about 100 distinct scores, each with outcomes of both kinds
    labels = (rng.random(5000) < scores**2).astype(np.int64)
    distinct, inverse = np.unique(scores, return_inverse=True)
    rows, positives = np.bincount(inverse), np.bincount(inverse, weights=labels)
    assert (len(distinct) < 200) == ties
    expected = fit_calibrator(scores, labels)
    assert fit_calibrator_of_counts(distinct, rows, positives) == expected  # the same breakpoints, bit for bit
    assert len(expected.x) > 5


def test_a_reference_of_one_class_is_refused_as_on_the_pandas_engine():
    with pytest.raises(ValueError, match="both present"):
        fit_calibrator_of_counts(np.array([0.1, 0.5]), np.array([3, 4]), np.array([0.0, 0.0]))


def test_an_estimate_for_a_chunk_whose_rows_are_all_predicted_positive_has_real_bands():
    # Every row at or above the threshold: fn's variance is a difference of two equal sums, rounded below zero
    # for these scores (its square root was complex and the band crashed).
    p = np.random.default_rng(0).uniform(0.2, 0.9, 1000)
    found = estimate_classification(p, p, 0.0, 0.95)
    assert found["fn"]["estimate"] == pytest.approx(0.0, abs=1e-9) and found["fn"]["low"] == 0.0
    assert found["fn"]["high"] == pytest.approx(0.0, abs=1e-5)
