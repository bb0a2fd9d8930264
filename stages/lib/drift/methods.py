"""The drift methods, registered once with their metadata: the verdict rule, the HTML report and the PR
report all read this table (as Evidently registers each of its statistical tests), so a new method is a
row here, not a branch in three places.

A column is judged by the one method of its kind (numeric or categorical) for its reference size: a
p-value test when the reference has at most `small_reference_rows` values, an effect size otherwise
(at large N every test flags negligible shifts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from stages.lib.drift.p_values import chi2_p_values, ks_p_values

if TYPE_CHECKING:
    from stages.lib.config import DriftThresholds
    from stages.lib.drift.result import ColumnDrift

NO_METHOD = "none"  # a column with no values on one side: only its missing share is compared


def _ks(columns: Sequence[ColumnDrift]) -> np.ndarray:
    statistics = np.array([column.statistics["ks"] for column in columns])
    n = np.array([column.reference_rows for column in columns], dtype=np.float64)
    m = np.array([column.current_rows for column in columns], dtype=np.float64)
    return ks_p_values(statistics, n, m)


def _chi2(columns: Sequence[ColumnDrift]) -> np.ndarray:
    chi2 = np.array([column.statistics["chi2"] for column in columns])
    dof = np.array([column.statistics["chi2_dof"] for column in columns])
    return chi2_p_values(chi2, dof)


@dataclass(frozen=True)
class DriftMethod:
    """One way to decide whether a column drifted."""

    name: str  # what reports/drift.json and the reports show as a column's `method`
    kind: Literal["numeric", "categorical"]  # the columns it judges
    small_reference: bool  # chosen for references of at most `small_reference_rows` values (else for larger ones)
    statistic: str  # the key of ColumnDrift.statistics that holds its score
    threshold_key: str  # the field of DriftThresholds (conf/drift/) that holds its threshold
    direction: Literal["above", "below"]  # drifted when the score is at or above the threshold, or below it
    description: str  # for the reports and the glossary
    p_values: Callable[[Sequence[ColumnDrift]], np.ndarray] | None = None  # raw p-values of its kind's columns (tests only)

    def threshold(self, thresholds: DriftThresholds) -> float:
        """Its threshold in `thresholds` (the `drift` section)."""
        return float(getattr(thresholds, self.threshold_key))

    def drifted(self, score: float, threshold: float) -> bool:
        """The verdict for a score against the threshold."""
        return bool(score >= threshold) if self.direction == "above" else bool(score < threshold)

    def severity(self, score: float, threshold: float) -> float:
        """How far past the threshold a score is: 1 at the threshold, above 1 when drifted.

        A p-value is compared on a log scale (0.0005 against 0.05 is 2.5 times past it), a distance as a ratio.
        """
        if self.direction == "below":
            return math.log(max(score, 1e-300)) / math.log(threshold)
        return score / threshold


METHODS: tuple[DriftMethod, ...] = (
    DriftMethod(
        "ks_p_value", "numeric", True, "p_value_adjusted", "p_value", "below",
        "Kolmogorov-Smirnov test p-value, Benjamini-Hochberg adjusted over all columns; drifted below the threshold",
        p_values=_ks,
    ),
    DriftMethod(
        "chi2_p_value", "categorical", True, "p_value_adjusted", "p_value", "below",
        "chi-squared test p-value, Benjamini-Hochberg adjusted over all columns; drifted below the threshold",
        p_values=_chi2,
    ),
    DriftMethod(
        "wasserstein_norm", "numeric", False, "wasserstein_norm", "wasserstein", "above",
        "Wasserstein distance divided by the reference standard deviation; drifted at or above the threshold",
    ),
    DriftMethod(
        "jensen_shannon", "categorical", False, "jensen_shannon", "jensen_shannon", "above",
        "Jensen-Shannon distance between the two shares; drifted at or above the threshold",
    ),
)  # fmt: skip
METHODS_BY_NAME = {method.name: method for method in METHODS}
# The effect size the HTML report shows beside the verdict for each kind of column: (statistic, label).
EFFECT_SIZES = {"numeric": ("ks", "KS"), "categorical": ("cramers_v", "Cramér's V")}


def method_for(kind: str, reference_rows: int, thresholds: DriftThresholds) -> DriftMethod:
    """The method that judges a column.

    Args:
        kind: how the column was compared, "numeric" or "categorical".
        reference_rows: its non-missing reference values.
        thresholds: the `drift` section (`small_reference_rows`).

    Returns:
        The one method of that kind for that reference size.
    """
    small = reference_rows <= thresholds.small_reference_rows
    return next(method for method in METHODS if method.kind == kind and method.small_reference == small)


def p_value_tests() -> list[DriftMethod]:
    """The method of each kind that computes p-values (every tested column gets its kind's p-value)."""
    return [method for method in METHODS if method.p_values is not None]
