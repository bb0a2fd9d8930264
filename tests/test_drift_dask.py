"""drift-check on the dask engine: exact mergeable summaries per row group, merged, give the pandas engine's report.

Checked against scipy (KS, Wasserstein) and against the pandas engine's own `drift_check` on the same files, for two
different cuts of the windows into parts; never against the dask code itself. Dask runs with its synchronous
scheduler here (the same task graph, in this process): what is tested is the arithmetic, not the processes.
"""

from __future__ import annotations

from fractions import Fraction

import dask
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stages.drift_check import DaskInputs, DriftInputs, drift_check, drift_check_on_dask, read_windows
from stages.lib.catalog import FEATURES_DIR, PREPARED_DIR, FeatureSpec
from stages.lib.config import DriftConfig, TrainConfig, parse_params
from stages.lib.drift.counts import ExactSum, ValueCounts, merge_value_counts
from stages.lib.drift.kernel import merge_walk, weighted_merge_walk
from stages.lib.drift.statistics import numeric_statistics, numeric_statistics_of_counts
from stages.lib.errors import UserError
from stages.lib.io import json_text, parquet_schema
from stages.lib.profile import read_sorted_columns, sorted_columns
from stages.train import train_model
from tests.conftest import model_config

INPUTS = {
    "temp": "numeric",  # continuous, with missing values
    "distance": "numeric",  # heavily tied
    "hour": "numeric",  # integers; missing in some parts only (int64 there, float64 where missing)
    "code": "numeric",  # four values: compared as categories
    "dest": "categorical",  # a level the reference never saw; parts with their own category lists
    "origin": "categorical",  # the same categories on both sides, unused ones included
    "carrier": "categorical",  # text with missing values
    "weekend": "boolean",  # flags; missing in the current window only (object dtype there)
}
FEATURES = ["temp", "distance", "dest"]
SPEC = FeatureSpec(
    features=FEATURES, categorical=["dest"], target_encoded=False, inputs=INPUTS, sources={name: [name] for name in FEATURES}
)


def window(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = rng.normal(60 if shifted else 45, 9, rows)
    temp[rng.random(rows) < 0.05] = np.nan
    hour = pd.array(rng.integers(5, 23, rows), dtype="Int64")
    hour[: rows // 10] = pd.NA  # only the first part of a window has missing hours
    levels = ["ATL", "ORD", "SEA", "BOS"] if shifted else ["ATL", "ORD", "SEA"]
    dest = rng.choice(levels, rows)
    weekend = pd.array(rng.random(rows) < (0.4 if shifted else 0.28), dtype="boolean")
    if shifted:
        weekend[rng.random(rows) < 0.1] = pd.NA
    carrier = pd.array(rng.choice(["AA", "UA", "DL"], rows), dtype="str")
    carrier[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "temp": temp,
            "distance": rng.choice([200.0, 733.0, 1089.0, 2475.0, 944.5, 1400.0, 187.0], rows) + (120.0 if shifted else 0.0),
            "hour": hour,
            "code": rng.integers(0, 4, rows),
            "dest": pd.Categorical(dest, categories=[*levels, "unused"]),
            "origin": pd.Categorical(
                rng.choice(["EWR", "JFK"], rows, p=[0.5, 0.5] if shifted else [0.7, 0.3]), categories=["JFK", "EWR", "LGA"]
            ),
            "carrier": carrier,
            "weekend": weekend,
            "late": (rng.random(rows) < (0.3 if shifted else 0.2)).astype(np.int8),
        }
    )


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    return {"reference": window(900, 1, False), "current": window(700, 2, True)}


@pytest.fixture(scope="module")
def model(windows):
    train = window(1500, 0, False)
    return train_model(
        train, SPEC, model_config(max_iter=10), TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None)
    ).model


@pytest.fixture
def config(params) -> DriftConfig:
    # The project's thresholds: references of 900 rows are judged by p-values (at most 1000), lowered below to
    # judge them by effect sizes.
    return parse_params(params).drift


def write_whole(root, windows) -> None:
    """Each window as one Parquet file of one row group: the pandas engine's layout."""
    for folder, columns in ((PREPARED_DIR, [*INPUTS, "late"]), (FEATURES_DIR, [*FEATURES, "late"])):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, frame in windows.items():
            frame[columns].to_parquet(root / folder / f"{name}.parquet", index=False)


def write_parts(root, windows, cuts: int, row_group: int, reorder: bool = False) -> None:
    """Each window as a folder of `cuts` parts of `row_group`-row groups, as the dask engine writes a split; the
    current window's parts each with only the destinations they hold (their own category lists, in their own order).
    `reorder`: the current window's first part lists origins as EWR, JFK (the reference: JFK, EWR, LGA)."""
    for folder, columns in ((PREPARED_DIR, [*INPUTS, "late"]), (FEATURES_DIR, [*FEATURES, "late"])):
        for name, frame in windows.items():
            target = root / folder / f"{name}.parquet"
            target.mkdir(parents=True, exist_ok=True)
            for index, piece in enumerate(np.array_split(np.arange(len(frame)), cuts)):
                part = frame.iloc[piece][columns].reset_index(drop=True)
                if name == "current" and folder == PREPARED_DIR:
                    present = list(dict.fromkeys(part["dest"].dropna()))
                    part["dest"] = part["dest"].cat.set_categories(present[::-1])
                    # The first part without LGA: united in first-seen order the lists equal the reference's again
                    # (compared as the same categories), or not when reordered (compared by their texts).
                    first = ["EWR", "JFK"] if reorder else ["JFK", "EWR"]
                    part["origin"] = part["origin"].cat.set_categories(first if index == 0 else ["JFK", "EWR", "LGA"])
                part.to_parquet(target / f"part-{index:05d}.parquet", index=False, row_group_size=row_group)


def pandas_report(root, model, config):
    """What the pandas engine's drift-check computes from the files under `root` (as its main() reads them)."""
    (reference, current), features = read_windows(SPEC, root)
    inputs = DriftInputs(
        reference, current, SPEC, model, reference_sorted=read_sorted_columns(sorted_columns(reference, SPEC.inputs)), features=features,
        schemas=tuple(parquet_schema(root / PREPARED_DIR / f"{name}.parquet", "") for name in ("reference", "current")),  # type: ignore[arg-type]
        importance={"temp": 0.02, "dest": 0.01}, test_metrics={"roc_auc": 0.7}, train_statistics={"temp": {"mean": 45.0, "std": 9.0}},
    )  # fmt: skip
    return drift_check(inputs, config)


def dask_report(root, model, config, cap: int = 1_000_000):
    schemas = tuple(parquet_schema(root / PREPARED_DIR / f"{name}.parquet", "") for name in ("reference", "current"))
    inputs = DaskInputs(
        SPEC, model, importance={"temp": 0.02, "dest": 0.01}, test_metrics={"roc_auc": 0.7}, schemas=schemas,  # type: ignore[arg-type]
        train_statistics={"temp": {"mean": 45.0, "std": 9.0}},
    )  # fmt: skip
    with dask.config.set(scheduler="sync"):
        return drift_check_on_dask(inputs, config, cap, root)


def assert_same_findings(expected, found) -> None:
    """Same verdicts and methods, statistics to 1e-9, and the same bytes once written."""
    assert [column.column for column in found.ranked] == [column.column for column in expected.ranked]
    pairs = [*zip(expected.ranked, found.ranked, strict=True), (expected.prediction, found.prediction), (expected.target, found.target)]
    for want, got in pairs:
        assert (got.method, got.drifted, got.missing_drifted, got.kind) == (want.method, want.drifted, want.missing_drifted, want.kind)
        assert (got.reference_rows, got.current_rows, got.unseen_categories) == (
            want.reference_rows,
            want.current_rows,
            want.unseen_categories,
        )
        assert got.statistics.keys() == want.statistics.keys()
        for key, value in want.statistics.items():
            assert got.statistics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (want.column, key)
        assert got.histogram == want.histogram
    assert json_text(found.summary) == json_text(expected.summary)
    assert found.plots == expected.plots


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_walk_gives_scipys_exact_ks_and_wasserstein(ties):
    rng = np.random.default_rng(3)
    reference, current = rng.normal(0, 1, 5000), rng.normal(0.2, 1.3, 3000)
    if ties:
        reference, current = np.round(reference, 1), np.round(current, 1)  # about 80 distinct values for 8000
    left, right = ValueCounts.of(reference), ValueCounts.of(current)
    assert (len(left) < 100) == ties
    largest, area = weighted_merge_walk(left.values, left.counts, right.values, right.counts)
    n, m = len(reference), len(current)
    assert largest / (n * m) == pytest.approx(stats.ks_2samp(reference, current).statistic, rel=1e-12)
    assert area / (n * m) == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12)
    # And bit for bit what the walk over the raw sorted samples (the pandas engine's) gives.
    assert (largest, area) == merge_walk(np.sort(reference), np.sort(current))


def test_numeric_statistics_of_merged_counts_equal_the_sorted_samples():
    rng = np.random.default_rng(4)
    reference, current = np.round(rng.gamma(2, 3, 4000), 2), np.round(rng.gamma(2.3, 3, 2500), 2)
    parts = [ValueCounts.of(piece) for piece in np.array_split(reference, 7)]
    merged = merge_value_counts(parts)
    assert merged.total == len(reference) and np.array_equal(merged.values, np.unique(reference))
    want = numeric_statistics(np.sort(reference), np.sort(current), 10)
    got = numeric_statistics_of_counts(merged, ValueCounts.of(current), 10)
    for key in ("ks", "wasserstein", "psi", "psi_bins"):
        assert got[key] == want[key], key  # the same integer counts and float terms: the same bits
    for key in ("reference_mean", "current_mean", "reference_std", "wasserstein_norm"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)


def test_exact_sum_does_not_depend_on_how_the_sample_is_cut():
    values = np.random.default_rng(5).normal(1e6, 1e3, 10_000) * np.random.default_rng(6).choice([1e-8, 1.0, 1e8], 10_000)
    sums = [ExactSum.of(piece) for piece in np.array_split(values, 13)]
    total = sums[0]
    for part in sums[1:]:
        total = total + part
    whole = ExactSum.of(values).mean()
    assert total.mean() == whole
    assert whole == float(sum(map(Fraction, values)) / len(values))  # the exact mean, rounded once


def test_dask_drift_check_equals_the_pandas_engine_for_two_cuts_of_the_windows(windows, model, config, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    write_whole(whole, windows)
    write_parts(parts, windows, cuts=3, row_group=97)
    expected = pandas_report(whole, model, config)
    assert expected.summary["columns"]["dest"]["unseen_categories"] == ["BOS"]  # the frames exercise what they claim
    assert expected.summary["columns"]["code"]["kind"] == "categorical"
    assert expected.summary["columns"]["temp"]["method"] == "ks_p_value"
    assert "LGA" in next(column for column in expected.ranked if column.column == "origin").histogram["value"]  # same categories
    assert_same_findings(expected, dask_report(whole, model, config))  # one row group per window
    assert_same_findings(expected, dask_report(parts, model, config))  # 3 parts of 97-row groups: 10 and 8 tasks
    # The pandas engine on the folder layout reads the same (category lists united across parts).
    assert_same_findings(pandas_report(parts, model, config), dask_report(parts, model, config))


def origin_values(report) -> list[str]:
    return next(column for column in report.ranked if column.column == "origin").histogram["value"]


def test_category_lists_are_united_across_parts_in_the_order_a_whole_read_gives(windows, model, config, tmp_path):
    write_parts(tmp_path, windows, cuts=3, row_group=150, reorder=True)
    expected = pandas_report(tmp_path, model, config)
    # United as EWR, JFK, LGA the current's list differs from the reference's: origins compared by their texts, the
    # unused LGA dropped (with the same lists it is kept, as the previous test shows).
    assert "LGA" not in origin_values(expected)
    assert_same_findings(expected, dask_report(tmp_path, model, config))


def test_effect_size_methods_agree_too(windows, model, params, tmp_path):
    params["drift"]["small_reference_rows"] = 100  # every column judged by its effect size
    config = parse_params(params).drift
    write_parts(tmp_path, windows, cuts=2, row_group=300)
    expected = pandas_report(tmp_path, model, config)
    assert expected.summary["columns"]["temp"]["method"] == "wasserstein_norm"
    assert_same_findings(expected, dask_report(tmp_path, model, config))


def test_a_column_past_the_distinct_value_cap_stops_the_stage_naming_it_and_the_key(windows, model, config, tmp_path):
    write_parts(tmp_path, windows, cuts=2, row_group=300)
    # temp and the model's scores both hold more: whichever merge the scheduler runs first stops the stage.
    message = r"drift: (column 'temp'|the model's scores) of the (reference|current) window \(.*\) holds more than 50 distinct values"
    with pytest.raises(UserError, match=message + r".*raise engine\.max_distinct_values in conf/engine/dask\.yaml"):
        dask_report(tmp_path, model, config, cap=50)
