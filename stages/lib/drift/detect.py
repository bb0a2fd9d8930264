"""The drift check of a whole table: every column in threads, then the verdicts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from stages.lib.config import DriftThresholds
from stages.lib.drift.columns import LevelCounts, Scratch, SortedSample, column_drift, counted_drift, numbers_drift, profiled_drift
from stages.lib.drift.result import ColumnDrift, DriftResult
from stages.lib.drift.verdict import decide


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, str],
    thresholds: DriftThresholds,
    reference_sorted: Mapping[str, np.ndarray | SortedSample] | None = None,
    threads: int | None = None,
    current_sorted: Mapping[str, Callable[[Scratch], SortedSample]] | None = None,
    counted: Mapping[str, tuple[Callable[[], LevelCounts], Callable[[], LevelCounts]]] | None = None,
) -> DriftResult:
    """Compare `current` with `reference` on `columns` (present in both). Deterministic for any thread count.

    Args:
        reference: the reference window.
        current: the current window.
        columns: {column: its type in data/schema.yaml}, in the order the result keeps. The type decides how a
            column is compared (`column_drift`); there is no default and no guess from the dtype: a caller without
            a schema (a score column, a synthetic frame) states each column's type.
        thresholds: the `drift` section.
        reference_sorted: stored sorted reference profiles by column (featurize's), to skip their sort. A column
            given as a `SortedSample` (`tables.read_profile`) may be absent from `reference`: its raw values are then
            never needed (drift-check does not read them).
        threads: columns compared at once (default 1).
        current_sorted: for columns given as a `SortedSample` in `reference_sorted`, and stored as numbers in the
            current window, a reader of the current column's `SortedSample` (`tables.read_sorted`, given the task's
            thread's `Scratch`, whose view it may return); such a column may be absent from `current`. It is read
            inside the column's task, so reading one column overlaps the statistics of another.
        counted: for columns typed categorical, readers of the reference's and the current window's `LevelCounts`
            (`tables.read_level_counts`), called inside the column's task; such a column may be absent from both
            frames.

    Returns:
        Every column's finding and the dataset verdict.
    """
    if not isinstance(columns, Mapping):
        raise TypeError("detect_drift: columns must map each column to its schema type ({name: 'numeric'|'boolean'|'categorical'})")
    reference_sorted, current_sorted, counted = reference_sorted or {}, current_sorted or {}, counted or {}
    local = threading.local()  # each pool thread's Scratch: the current column it reads lives there until compared

    def one(name: str) -> ColumnDrift:
        if name in counted and columns[name] == "categorical":
            return counted_drift(name, counted[name][0](), counted[name][1](), thresholds)
        stored = reference_sorted.get(name)
        if isinstance(stored, SortedSample) and name in current_sorted and columns[name] != "categorical":
            if not hasattr(local, "scratch"):
                local.scratch = Scratch()
            # The sample is a view of the scratch: numbers_drift keeps none of it in what it returns.
            return numbers_drift(name, stored, current_sorted[name](local.scratch), thresholds, columns[name])
        if isinstance(stored, SortedSample):
            if name not in reference.columns:
                return profiled_drift(name, stored, current[name], thresholds, columns[name])
            stored = stored.values
        return column_drift(name, reference[name], current[name], thresholds, columns[name], stored)

    # NumPy sorts and pyarrow's reads release the GIL, so columns run in parallel; results keep column order. The
    # longest tasks (a current column to read and sort) start first, the categorical counts after them, so that the
    # threads finish together rather than one of them with a long task left at the end.
    cost_order = sorted(columns, key=lambda name: (name not in current_sorted, name not in counted))
    with ThreadPoolExecutor(max_workers=threads or 1) as pool:
        futures = {name: pool.submit(one, name) for name in cost_order}
        results = [futures[name].result() for name in columns]
    decide(results, thresholds)
    return DriftResult(columns=results, thresholds=thresholds)
