"""Declared types everywhere: the drift check, the reference profile and the monitor compare each column as
data/schema.yaml types it, never as its dtype suggests. An occupation code written as integers and declared
categorical is categories (chi-squared / Jensen-Shannon), not numbers (KS / Wasserstein between codes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LinearRegression, LogisticRegression

from stages.drift_check import DriftInputs, drift_check
from stages.lib.catalog import FeatureSpec
from stages.lib.config import parse_params
from stages.lib.config.monitor import Chunk
from stages.lib.drift.columns import column_drift
from stages.lib.drift.detect import detect_drift
from stages.lib.errors import UserError
from stages.lib.monitor.cache import ChunkCache
from stages.lib.monitor.segments import segment_drift
from stages.lib.production import PREDICTION, append_batch, batches, label_files, read_batch, read_labels
from stages.lib.profile import sorted_columns
from stages.monitor import Reference, Settings, Store, monitor
from tests.conftest import project_params, replace

CODES = np.arange(1, 10)  # nine occupation codes: more than few_values (5), so a numeric reading would use distances
BEFORE = np.array([0.25, 0.2, 0.15, 0.1, 0.1, 0.08, 0.06, 0.04, 0.02])
AFTER = BEFORE[::-1]  # the mix reverses: the codes' mean barely says how much
INPUTS = {"occupation": "categorical", "x": "numeric"}  # as data/schema.yaml types them (occupation declared categorical)
PARAMS = parse_params(project_params())


def window(rows: int, seed: int, shares: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, rows)
    return pd.DataFrame(
        {
            "occupation": rng.choice(CODES, rows, p=shares),  # int64, as prepare keeps integer codes
            "x": x,
            "late": (rng.random(rows) < 1 / (1 + np.exp(-x))).astype(np.int8),
        }
    )


def counts(values: pd.Series) -> np.ndarray:
    """How often each code occurs, counted here, independently of the drift engine."""
    return np.array([(values == code).sum() for code in CODES])


def spec(task: str = "classification") -> FeatureSpec:
    return FeatureSpec(features=["x"], categorical=[], target_encoded=False, inputs=INPUTS, sources={"x": ["x"]}, task=task, target="late")


@pytest.mark.parametrize(("rows", "method"), [(3000, "jensen_shannon"), (600, "chi2_p_value")], ids=["effect-size", "p-value"])
def test_drift_check_compares_integer_codes_declared_categorical_as_categories(rows, method):
    reference, current = window(rows, 1, BEFORE), window(rows, 2, AFTER)
    model = LogisticRegression().fit(reference[["x"]], reference["late"])
    report = drift_check(DriftInputs(reference, current, spec(), model), PARAMS.drift)
    occupation = next(column for column in report.ranked if column.column == "occupation")

    assert occupation.kind == "categorical" and occupation.method == method
    table = np.vstack([counts(reference["occupation"]), counts(current["occupation"])])
    expected = stats.chi2_contingency(table, correction=False)
    assert occupation.statistics["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert occupation.statistics["p_value"] == pytest.approx(stats.chi2.sf(expected.statistic, expected.dof), rel=1e-9, abs=1e-300)
    distance = jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum())
    assert occupation.statistics["jensen_shannon"] == pytest.approx(distance, rel=1e-9)
    # The verdict rule of categorical columns, on the independent numbers.
    if method == "jensen_shannon":
        assert occupation.score == pytest.approx(distance, rel=1e-9) and occupation.drifted == (
            distance >= PARAMS.drift.thresholds.jensen_shannon
        )
    else:
        assert occupation.score == occupation.statistics["p_value_adjusted"] and occupation.drifted
    assert occupation.drifted
    # Bars labelled by the codes as text, not by bins between codes.
    assert sorted(occupation.histogram["value"]) == sorted(str(code) for code in CODES)
    # The numeric input is compared as numbers, as before.
    assert next(column for column in report.ranked if column.column == "x").method in ("wasserstein_norm", "ks_p_value")


def test_the_same_integers_typed_numeric_are_still_compared_as_numbers():
    reference, current = window(3000, 1, BEFORE), window(3000, 2, AFTER)
    found = detect_drift(reference, current, {"occupation": "numeric"}, PARAMS.drift.thresholds).columns[0]
    assert found.kind == "numeric" and found.method == "wasserstein_norm"
    assert found.statistics["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference["occupation"], current["occupation"]))


def test_a_boolean_is_two_categories_whatever_few_values_says():
    """As before: 0/1 numbers counted by value ("0.0", "1.0"), True/False by label; never a distance between 0 and 1."""
    rng = np.random.default_rng(3)
    reference, current = rng.random(3000) < 0.2, rng.random(3000) < 0.4
    thresholds = replace(PARAMS.drift.thresholds, few_values=1)  # would make 0/1 numbers "many-valued"
    as_numbers = column_drift("flag", pd.Series(reference.astype(np.int8)), pd.Series(current.astype(np.int8)), thresholds, "boolean")
    as_flags = column_drift("flag", pd.Series(reference), pd.Series(current), thresholds, "boolean")
    assert as_numbers.kind == as_flags.kind == "categorical"
    assert as_numbers.histogram["value"][:2] == ["0.0", "1.0"] and sorted(as_flags.histogram["value"]) == ["False", "True"]
    table = np.array([[(~reference).sum(), reference.sum()], [(~current).sum(), current.sum()]])
    expected = stats.chi2_contingency(table, correction=False).statistic
    assert as_numbers.statistics["chi2"] == pytest.approx(expected) and as_flags.statistics["chi2"] == pytest.approx(expected)


def test_the_reference_profile_keeps_only_columns_typed_numeric_or_boolean():
    reference = window(500, 1, BEFORE)
    profile = sorted_columns(reference, {**INPUTS, "late": "boolean"})
    assert list(profile.columns) == ["x", "late"]  # the integer codes typed categorical are not sorted as numbers


def test_a_column_without_a_type_or_with_values_against_its_type_is_a_clear_error():
    reference = window(100, 1, BEFORE)
    with pytest.raises(TypeError, match="schema type"):
        detect_drift(reference, reference, ["occupation"], PARAMS.drift.thresholds)
    text = reference.assign(occupation=reference["occupation"].map(lambda code: f"job {code}"))
    with pytest.raises(UserError, match=r"^drift: column 'occupation' is typed numeric \(data/schema.yaml\), but its current values"):
        detect_drift(reference, text, {"occupation": "numeric"}, PARAMS.drift.thresholds)


# --- the monitor ----------------------------------------------------------------------------------------------------

ROWS = 2400


def scored(seed: int, shares: np.ndarray, start: str) -> pd.DataFrame:
    """Regression rows (prediction = x, outcome = x + noise) with an origin to segment by."""
    frame = window(ROWS, seed, shares)
    rng = np.random.default_rng(seed + 100)
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(ROWS) * 60, unit="s")
    return frame.assign(
        row_id=[f"r{seed}-{index:05d}" for index in range(ROWS)],
        time_hour=times,
        origin=rng.choice(["EWR", "JFK"], ROWS),
        late=frame["x"] + rng.normal(0.0, 1.0, ROWS),
        prediction=frame["x"],
    )


@pytest.mark.parametrize("stored_as", ["text", "integers"])
def test_the_monitor_compares_declared_categorical_codes_as_categories_per_chunk_and_in_segments(tmp_path: Path, stored_as: str):
    """The store keeps a categorical column as text (as make score-batch writes it), or as integers (any batch that
    holds them): either way the chunk's drift, its segments and the loss model read the codes as categories."""
    types = {"occupation": "categorical", "origin": "categorical", "x": "numeric"}
    regression = FeatureSpec(
        features=["x"], categorical=[], target_encoded=False, inputs=types, sources={"x": ["x"]}, task="regression", target="late"
    )
    base = PARAMS.monitor
    config = replace(
        base,
        chunk=Chunk(by="rows", size=ROWS),
        segments=("origin",),
        segment_min_rows=100,
        bootstrap=replace(base.bootstrap, resamples=50),
        alerts=replace(base.alerts, min_roc_auc=None, max_mae=None, min_rows=100),
    )
    settings = Settings(monitor=config, drift=PARAMS.drift.thresholds, threshold=0.5, spec=regression)
    reference = scored(1, BEFORE, "2013-09-01")
    batch = scored(2, AFTER, "2013-11-01")
    stored = batch.drop(columns="late").assign(
        occupation=batch["occupation"].astype("string") if stored_as == "text" else batch["occupation"]
    )
    append_batch(stored, "time_hour", "workspace", "0" * 40, "f" * 32, "2013-11-03T00:00:00+00:00", tmp_path)
    store = Store(
        batches=batches(tmp_path),
        labels=label_files(tmp_path),
        read_batch=lambda meta: read_batch(meta, tmp_path),
        read_labels=lambda meta: read_labels(meta, tmp_path),
    )
    model = LinearRegression().fit(reference[["x"]], reference["late"])
    rows = reference.drop(columns=["row_id", PREDICTION])
    report = monitor(store, Reference.of(rows, model.predict(reference[["x"]])), "f" * 32, settings, ChunkCache(None))

    (chunk,) = report.chunks
    occupation = chunk["drift"]["columns"]["occupation"]
    table = np.vstack([counts(reference["occupation"]), counts(batch["occupation"])])
    distance = jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum())
    assert occupation["method"] == "jensen_shannon"
    assert occupation["score"] == pytest.approx(distance, rel=1e-5)  # the chunk keeps 6 significant digits
    assert occupation["drifted"] == (distance >= PARAMS.drift.thresholds.jensen_shannon) and occupation["drifted"]
    assert chunk["drift"]["columns"]["x"]["method"] == "wasserstein_norm"
    assert chunk["estimated"]["metric"] == "mae" and chunk["estimated"]["value"] is not None  # the loss model read the codes
    assert {segment["value"] for segment in chunk["segments"]} == {"EWR", "JFK"} and all(segment["tested"] for segment in chunk["segments"])
    # Within each origin, the codes are tested by chi-squared, not by KS.
    within = segment_drift(rows, batch, ["origin"], types, PARAMS.drift.thresholds, 0.05, 100)
    assert {test.test for test in within.tests if test.column == "occupation"} == {"chi2"}


def test_codes_stored_as_floats_read_as_the_codes_a_scoring_file_holds():
    """An integer code column with a missing cell is stored as floats (3.0): featurize, the drift check and the monitor
    must read "3", the text the same code has in a scoring file without missing cells, or every such row is unseen."""
    from stages.lib.features import category_text

    stored = pd.DataFrame({"occupation": [3.0, np.nan, 12.0, 3.0]})  # as prepare keeps a code column with a gap
    scored = pd.DataFrame({"occupation": [3, 12, 12, 3]})  # as read from a scoring CSV
    assert list(category_text(stored)[:, 0]) == ["3", "__missing__", "12", "3"]
    assert set(category_text(scored)[:, 0]) == {"3", "12"}
    drift = column_drift("occupation", stored["occupation"], scored["occupation"], PARAMS.drift.thresholds, "categorical")
    assert drift.unseen_categories == [] and drift.kind == "categorical"  # "3" in both windows, not "3.0" against "3"
    mixed = pd.DataFrame({"code": [2.5, 3.0]})  # a fraction keeps its own text; the whole number beside it reads "3"
    assert list(category_text(mixed)[:, 0]) == ["2.5", "3"]
