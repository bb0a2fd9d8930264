"""Drift statistics: exact against scipy, calibrated on no-drift data, sensitive to each kind of shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from stages.lib.config import parse_params
from stages.lib.drift.columns import column_drift
from stages.lib.drift.detect import detect_drift
from stages.lib.drift.p_values import ks_p_values
from stages.lib.drift.statistics import categorical_statistics, numeric_statistics
from stages.lib.profile import read_sorted_columns, sorted_columns
from tests.conftest import project_params

THRESHOLDS = parse_params(project_params()).drift.thresholds  # conf/drift/default.yaml, as the tests compose it


def samples(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 1, rng.integers(1, 4000))
    current = rng.normal(rng.normal(0, 0.3), rng.uniform(0.5, 2), rng.integers(1, 4000))
    if ties:  # heavy ties, within and across the samples
        digits = int(rng.integers(0, 2))
        reference, current = reference.round(digits), current.round(digits)
    return reference, current


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "heavy-ties"])
@pytest.mark.parametrize("seed", range(25))
def test_ks_and_wasserstein_equal_scipy(seed, ties):
    reference, current = samples(seed, ties)
    ours = numeric_statistics(np.sort(reference), np.sort(current), bins=10)
    assert ours["ks"] == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-9)
    assert ours["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), abs=1e-9)


def test_ks_p_values_follow_scipy():
    for seed in range(10):
        reference, current = samples(seed, ties=False)
        statistic = numeric_statistics(np.sort(reference), np.sort(current), 10)["ks"]
        ours = ks_p_values(np.array([statistic]), np.array([len(reference)], float), np.array([len(current)], float))[0]
        assert ours == pytest.approx(stats.ks_2samp(reference, current, method="asymp").pvalue, rel=1e-6, abs=1e-12)


def test_large_sample_p_value_is_fast_and_tiny():
    ours = ks_p_values(np.array([0.05]), np.array([1e7]), np.array([1e7]))[0]
    assert 0 <= ours < 1e-100


@pytest.mark.parametrize("seed", range(10))
def test_chi_squared_cramers_v_and_jensen_shannon_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    reference_counts = rng.integers(0, 50, 6)
    current_counts = rng.integers(0, 50, 6)
    reference_counts[0], current_counts[1] = 0, 0  # a category missing on each side
    ours = categorical_statistics(reference_counts, current_counts)
    seen = (reference_counts + current_counts) > 0
    table = np.vstack([reference_counts[seen], current_counts[seen]])
    expected = stats.chi2_contingency(table, correction=False)
    assert ours["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert ours["chi2_dof"] == expected.dof
    assert ours["cramers_v"] == pytest.approx(stats.contingency.association(table, method="cramer", correction=False), rel=1e-12)
    assert ours["jensen_shannon"] == pytest.approx(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum()), rel=1e-9)


def test_psi_bins_follow_reference_quantiles_and_report_ties():
    rng = np.random.default_rng(0)
    reference = np.sort(rng.normal(size=10_000))
    assert numeric_statistics(reference, np.sort(rng.normal(size=5000)), bins=10)["psi_bins"] == 10
    # 70% zeros (like precipitation): the zero gets a bin of its own, and the report says bins were lost.
    tied = np.sort(np.where(rng.random(10_000) < 0.7, 0.0, rng.exponential(size=10_000)))
    statistics = numeric_statistics(tied, tied.copy(), bins=10)
    assert statistics["psi_bins"] < 10 and statistics["psi"] == pytest.approx(0.0, abs=1e-12)
    column = column_drift("precip", pd.Series(tied), pd.Series(tied), THRESHOLDS, "numeric")
    assert "PSI on" in column.note and "of 10 bins" in column.note


def frames(rows: int, seed: int, shift: dict[str, float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current from the same process; `shift` moves named columns of current."""
    shift = shift or {}
    rng = np.random.default_rng(seed)

    def one(size: int, shifted: bool) -> pd.DataFrame:
        move = shift if shifted else {}
        weights = np.array([0.5, 0.3, 0.2]) if not shifted or "city" not in move else np.array([0.2, 0.3, 0.5])
        frame = pd.DataFrame(
            {
                "temp": rng.normal(move.get("temp", 0.0), 1.0, size),
                "wind": rng.gamma(2.0, move.get("wind", 1.0), size),
                "pressure": rng.normal(1015, 5, size),
                "city": pd.Categorical(rng.choice(["a", "b", "c"], size, p=weights), categories=["a", "b", "c"]),
                "gusts": rng.integers(0, 4, size).astype(float),
            }
        )
        if "missing" in move:
            frame.loc[rng.random(size) < move["missing"], "pressure"] = np.nan
        return frame

    return one(rows, False), one(rows, True)


# Each column with its type, as data/schema.yaml would give it.
COLUMNS = {"temp": "numeric", "wind": "numeric", "pressure": "numeric", "city": "categorical", "gusts": "numeric"}


@pytest.mark.parametrize("rows", [300, 20_000], ids=["p-value-rule", "effect-size-rule"])
def test_no_drift_rarely_alarms(rows):
    seeds = range(60)
    column_alarms = dataset_alarms = 0
    for seed in seeds:
        result = detect_drift(*frames(rows, seed), COLUMNS, THRESHOLDS)
        column_alarms += len(result.drifted)
        dataset_alarms += result.dataset_drift
    # Measured: per-column false alarms stay well under the 5% test level; the dataset never drifts.
    assert column_alarms / (len(seeds) * len(COLUMNS)) < 0.05
    assert dataset_alarms == 0


@pytest.mark.parametrize("rows", [300, 20_000], ids=["p-value-rule", "effect-size-rule"])
@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ({"temp": 0.8}, {"temp"}),  # mean shift
        ({"wind": 2.0}, {"wind"}),  # scale change
        ({"city": 1.0}, {"city"}),  # category mix
        ({"missing": 0.3}, {"pressure"}),  # missing share
    ],
    ids=["mean", "scale", "category-mix", "missing-share"],
)
def test_each_kind_of_shift_is_detected(rows, shift, expected):
    result = detect_drift(*frames(rows, 1, shift), COLUMNS, THRESHOLDS)
    assert set(result.drifted) == expected


def test_tiny_shift_does_not_count_at_large_samples():
    result = detect_drift(*frames(200_000, 2, {"temp": 0.03}), COLUMNS, THRESHOLDS)
    temp = next(column for column in result.columns if column.column == "temp")
    assert temp.statistics["p_value"] < 1e-6  # a p-value test would flag it...
    assert not temp.drifted  # ...the effect-size rule does not


def test_missing_share_change_is_its_own_finding():
    reference, current = frames(5000, 3, {"missing": 0.3})
    pressure = column_drift("pressure", reference["pressure"], current["pressure"], THRESHOLDS, "numeric")
    assert pressure.missing_drifted
    assert pressure.missing_current == pytest.approx(0.3, abs=0.03)


def test_constant_column_is_a_row_not_a_crash():
    reference = pd.DataFrame({"constant": np.ones(2000), "other": np.arange(2000.0)})
    result = detect_drift(reference, reference.copy(), {"constant": "numeric", "other": "numeric"}, THRESHOLDS)
    constant = result.columns[0]
    assert constant.kind == "categorical" and not constant.drifted
    moved = detect_drift(reference, reference.assign(constant=2.0), {"constant": "numeric"}, THRESHOLDS).columns[0]
    assert moved.drifted


def test_all_missing_column_is_reported():
    reference = pd.DataFrame({"gone": np.arange(2000.0)})
    current = pd.DataFrame({"gone": np.full(2000, np.nan)})
    column = detect_drift(reference, current, {"gone": "numeric"}, THRESHOLDS).columns[0]
    assert column.method == "none" and column.missing_drifted and column.missing_current == 1.0
    assert "no values in the current window" in column.note


def test_category_only_in_current_is_counted():
    reference = pd.DataFrame({"dest": ["ATL"] * 600 + ["ORD"] * 400})
    current = pd.DataFrame({"dest": ["ATL"] * 500 + ["ORD"] * 300 + ["SEA"] * 200})
    column = detect_drift(reference, current, {"dest": "categorical"}, THRESHOLDS).columns[0]
    assert column.unseen_categories == ["SEA"]
    assert column.statistics["unseen_rows"] == 200
    assert column.drifted


def test_ten_row_current_window_works():
    reference, current = frames(5000, 4)
    result = detect_drift(reference, current.head(10), COLUMNS, THRESHOLDS)
    assert {column.current_rows for column in result.columns} == {10}
    assert all(column.method.endswith("p_value") is False for column in result.columns)  # large reference: effect sizes


def test_results_do_not_depend_on_thread_count():
    reference, current = frames(20_000, 5, {"temp": 0.5})
    one = detect_drift(reference, current, COLUMNS, THRESHOLDS, threads=1)
    four = detect_drift(reference, current, COLUMNS, THRESHOLDS, threads=4)
    assert [column.to_json() for column in one.columns] == [column.to_json() for column in four.columns]


def test_stored_sorted_reference_gives_the_same_answer():
    reference, current = frames(5000, 6, {"wind": 1.5})
    profile = read_sorted_columns(sorted_columns(reference.assign(wind=reference["wind"].where(reference.index % 7 > 0)), COLUMNS))
    masked = reference.assign(wind=reference["wind"].where(reference.index % 7 > 0))
    direct = detect_drift(masked, current, COLUMNS, THRESHOLDS)
    stored = detect_drift(masked, current, COLUMNS, THRESHOLDS, reference_sorted=profile)
    assert [column.to_json() for column in direct.columns] == [column.to_json() for column in stored.columns]
    assert "city" not in profile  # only numeric columns are stored sorted


def test_the_method_table_has_one_method_per_kind_and_reference_size_with_a_threshold_in_conf():
    from stages.lib.drift.methods import METHODS, method_for

    assert sorted((method.kind, method.small_reference) for method in METHODS) == [
        ("categorical", False), ("categorical", True), ("numeric", False), ("numeric", True),
    ]  # fmt: skip
    small, large = THRESHOLDS.small_reference_rows, THRESHOLDS.small_reference_rows + 1
    assert [method_for(kind, rows, THRESHOLDS).name for kind in ("numeric", "categorical") for rows in (small, large)] == [
        "ks_p_value", "wasserstein_norm", "chi2_p_value", "jensen_shannon",
    ]  # fmt: skip
    for method in METHODS:
        threshold = method.threshold(THRESHOLDS)
        assert threshold == getattr(THRESHOLDS, method.threshold_key) and method.description
        assert method.severity(threshold, threshold) == pytest.approx(1.0)
        # Drifted exactly on the far side of the threshold: at or above for distances, below for p-values.
        assert method.drifted(threshold, threshold) is (method.direction == "above")
        assert method.drifted(threshold * 2, threshold) is (method.direction == "above")
        assert method.drifted(threshold / 2, threshold) is (method.direction == "below")
