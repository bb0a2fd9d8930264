"""The verdict rule, driven by the method table: p-values of every tested column (adjusted together),
then each column judged by the method of its kind and reference size."""

from __future__ import annotations

import numpy as np

from stages.lib.config import DriftThresholds
from stages.lib.drift.methods import NO_METHOD, method_for, p_value_tests
from stages.lib.drift.p_values import benjamini_hochberg
from stages.lib.drift.result import ColumnDrift


def decide(columns: list[ColumnDrift], thresholds: DriftThresholds) -> None:
    """Fill p-values (BH-adjusted over all columns) and apply the verdict rule, in place.

    Args:
        columns: every column's statistics (`column_drift`); those with method "none" are left alone.
        thresholds: the `drift` section.
    """
    tested = [column for column in columns if column.method != NO_METHOD]
    p_values: dict[str, float] = {}
    for test in p_value_tests():
        of_kind = [column for column in tested if column.kind == test.kind]
        if of_kind and test.p_values is not None:
            p_values |= dict(zip((column.column for column in of_kind), test.p_values(of_kind), strict=True))
    names = list(p_values)
    adjusted = dict(zip(names, benjamini_hochberg(np.array([p_values[name] for name in names])), strict=True))
    for column in tested:
        column.statistics["p_value"] = float(p_values[column.column])
        column.statistics["p_value_adjusted"] = float(adjusted[column.column])
        method = method_for(column.kind, column.reference_rows, thresholds)
        column.method, column.threshold = method.name, method.threshold(thresholds)
        column.score = column.statistics[method.statistic]
        column.drifted = method.drifted(column.score, column.threshold)
