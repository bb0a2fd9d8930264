"""The drift check of a whole table: every column in threads, then the verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from stages.lib.config import DriftThresholds
from stages.lib.drift.columns import column_drift
from stages.lib.drift.result import ColumnDrift, DriftResult
from stages.lib.drift.verdict import decide


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, str],
    thresholds: DriftThresholds,
    reference_sorted: Mapping[str, np.ndarray] | None = None,
    threads: int | None = None,
) -> DriftResult:
    """Compare `current` with `reference` on `columns` (present in both). Deterministic for any thread count.

    Args:
        reference: the reference window.
        current: the current window.
        columns: {column: its type in data/schema.yaml}, in the order the result keeps. The type decides how a
            column is compared (`column_drift`); there is no default and no guess from the dtype: a caller without
            a schema (a score column, a synthetic frame) states each column's type.
        thresholds: the `drift` section.
        reference_sorted: stored sorted reference profiles by column (featurize's), to skip their sort.
        threads: columns compared at once (default 1).

    Returns:
        Every column's finding and the dataset verdict.
    """
    if not isinstance(columns, Mapping):
        raise TypeError("detect_drift: columns must map each column to its schema type ({name: 'numeric'|'boolean'|'categorical'})")
    reference_sorted = reference_sorted or {}

    def one(name: str) -> ColumnDrift:
        return column_drift(name, reference[name], current[name], thresholds, columns[name], reference_sorted.get(name))

    # NumPy sorts release the GIL, so columns run in parallel; results keep column order.
    with ThreadPoolExecutor(max_workers=threads or 1) as pool:
        results = list(pool.map(one, columns))
    decide(results, thresholds)
    return DriftResult(columns=results, thresholds=thresholds)
