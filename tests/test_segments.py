"""Drift within segments: false alarms under no drift stay within the configured rate, a real shift in one
segment is found and named, small segments are skipped and listed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stages.lib.config import DriftThresholds
from stages.lib.monitor.segments import SkippedSegment, segment_drift

THRESHOLDS = DriftThresholds(
    small_reference_rows=1000,
    p_value=0.05,
    wasserstein=0.1,
    jensen_shannon=0.1,
    few_values=5,
    psi_bins=10,
    missing_share=0.1,
    drift_share=0.5,
)
SEGMENTS = ("a", "b", "c", "d")


def _rows(rng: np.random.Generator, rows: int, shift_in: str | None = None) -> pd.DataFrame:
    """Four segments of about equal size; numeric, few-valued and categorical columns independent of them."""
    segment = rng.choice(SEGMENTS, rows)
    level = rng.normal(0.0, 1.0, rows) + np.where(segment == shift_in, 0.5, 0.0)
    return pd.DataFrame(
        {
            "segment": segment,
            "level": level,
            "spread": rng.exponential(1.0, rows),
            "kind": pd.Categorical(rng.choice(["p", "q", "r"], rows, p=[0.5, 0.3, 0.2]), categories=["p", "q", "r"]),
            "count": rng.integers(0, 3, rows),  # few values: tested as categories
        }
    )


# Each column with its type, as data/schema.yaml would give it.
COLUMNS = {"level": "numeric", "spread": "numeric", "kind": "categorical", "count": "numeric"}


def test_false_alarms_without_drift_stay_at_or_below_the_configured_rate() -> None:
    rng = np.random.default_rng(0)
    repetitions, fdr = 200, 0.05
    reference = _rows(rng, 3000)
    with_alarm = sum(
        bool(segment_drift(reference, _rows(rng, 1200), ["segment"], COLUMNS, THRESHOLDS, fdr, 100).alarms) for _ in range(repetitions)
    )
    # With no drift anywhere, Benjamini-Hochberg bounds the chance of any alarm in a chunk by the fdr. The count of
    # chunks with an alarm must not be significantly above fdr * repetitions (one-sided binomial test at 0.001;
    # 17 or more of 200 fails it). Unadjusted p-values over these 16 tests would alarm in about 1 - 0.95^16 = 56%.
    assert stats.binom.sf(with_alarm - 1, repetitions, fdr) > 0.001, f"{with_alarm} of {repetitions} chunks alarmed"


def test_a_shift_in_one_segment_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    reference, current = _rows(rng, 4000), _rows(rng, 2000, shift_in="c")
    found = segment_drift(reference, current, ["segment"], COLUMNS, THRESHOLDS, 0.05, 100)
    assert found.alarms == [("segment", "c", ["level"])]
    # The whole chunk's `level` moved by only an eighth of that (one segment of four): segments see it sharper.
    shifted = next(test for test in found.tests if test.value == "c" and test.column == "level")
    assert shifted.test == "ks" and shifted.p_value_adjusted < 0.05
    assert {test.test for test in found.tests if test.column == "count"} == {"chi2"}


def test_small_and_unseen_segments_are_skipped_and_listed_in_order() -> None:
    rng = np.random.default_rng(2)
    reference, current = _rows(rng, 2000), _rows(rng, 1000)
    current.loc[current.index[:5], "segment"] = "e"  # a value the reference never saw
    found = segment_drift(reference, current, ["segment"], COLUMNS, THRESHOLDS, 0.05, min_rows=300)
    counts = current["segment"].value_counts()
    expected = [
        SkippedSegment("segment", value, int((reference["segment"] == value).sum()), int(counts.get(value, 0)))
        for value in [*SEGMENTS, "e"]
        if (reference["segment"] == value).sum() < 300 or counts.get(value, 0) < 300
    ]
    assert found.skipped == expected and expected[-1].value == "e" and expected[-1].reference_rows == 0
    tested = sorted({test.value for test in found.tests})
    assert tested == [value for value in SEGMENTS if value not in {skip.value for skip in expected}]
    assert found.to_json() == segment_drift(reference, current, ["segment"], COLUMNS, THRESHOLDS, 0.05, min_rows=300).to_json()


def test_a_missing_column_is_named() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(KeyError, match="current rows lack column"):
        segment_drift(_rows(rng, 100), _rows(rng, 100).drop(columns="kind"), ["segment"], COLUMNS, THRESHOLDS, 0.05, 10)
