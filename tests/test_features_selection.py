"""Target-free selection (stages/lib/features/selection.py): filters, reasons, and independence of column order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.lib.config import SelectionConfig
from stages.lib.features.selection import select_features

# ---------------------------------------------------------------- target-free selection

SELECTION = SelectionConfig(near_constant=0.95, duplicates=True, max_correlation=0.98)


@pytest.fixture
def candidates() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    count = 60
    base = rng.normal(size=count)
    return pd.DataFrame(
        {
            "independent": rng.normal(size=count),
            "copy_of_a": base.copy(),
            "close_to_a": 3 * base + 1 + rng.normal(scale=0.3, size=count),
            "a": base,
            "mostly_zero": np.r_[np.zeros(count - 1), 1.0],
            "label": ["x"] * count,  # not numeric: not the filters' business
        }
    )


def test_selection_drops_near_constant_duplicate_and_correlated_features_with_reasons(candidates):
    dropped = select_features(candidates, SELECTION)
    assert sorted(dropped) == ["close_to_a", "copy_of_a", "mostly_zero"]
    assert dropped["mostly_zero"] == "near-constant: 0 in 98.33% of train rows"
    assert dropped["copy_of_a"] == "duplicate of a"
    correlation = np.corrcoef(candidates["a"], candidates["close_to_a"])[0, 1]
    assert 0.98 < correlation < 0.9995
    assert dropped["close_to_a"] == f"correlated {correlation:.3f} with a"


def test_selection_filters_can_be_switched_off(candidates):
    assert select_features(candidates, SelectionConfig(near_constant=None, duplicates=False, max_correlation=None)) == {}
    only_duplicates = select_features(candidates, SelectionConfig(near_constant=None, duplicates=True, max_correlation=None))
    assert only_duplicates == {"copy_of_a": "duplicate of a"}


def test_selection_ignores_the_column_order(candidates):
    expected = select_features(candidates, SELECTION)
    rng = np.random.default_rng(1)
    for _ in range(5):
        shuffled = candidates[list(rng.permutation(candidates.columns))]
        assert select_features(shuffled, SELECTION) == expected


def test_in_a_duplicate_pair_the_name_first_in_sorted_order_is_kept():
    values = [1.0, np.nan, 3.0, 4.0]  # missing values in the same places still make a duplicate
    frame = pd.DataFrame({"zeta": values, "other": [4.0, 1.0, 2.0, 2.0], "alpha": values})
    config = SelectionConfig(near_constant=None, duplicates=True, max_correlation=None)
    assert select_features(frame, config) == {"zeta": "duplicate of alpha"}
    assert select_features(frame[["alpha", "other", "zeta"]], config) == {"zeta": "duplicate of alpha"}


def test_in_a_correlated_pair_the_name_first_in_sorted_order_is_kept():
    frame = pd.DataFrame({"zeta": [1.0, 2.0, 3.0, 4.1], "alpha": [2.0, 4.0, 6.0, 8.0]})
    config = SelectionConfig(near_constant=None, duplicates=True, max_correlation=0.98)
    assert list(select_features(frame, config)) == ["zeta"]
    assert select_features(frame, config)["zeta"].endswith("with alpha")
