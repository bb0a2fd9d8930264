"""Exact, mergeable summaries of a numeric sample: its distinct values with their counts (`ValueCounts`) and its
exact sum (`ExactSum`). A table of parts (a Dask partition each) is summarized part by part and the summaries are
merged by adding counts: the merged summary is the same whatever the parts, and every drift statistic computed
from it equals the one computed from the whole sorted sample (`stages.lib.drift.statistics`).

Pure NumPy, no Dask: the pandas engine may import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stages.lib.errors import fail


@dataclass(frozen=True)
class ValueCounts:
    """A numeric sample as its distinct values (ascending float64, no NaN) and how often each occurs (int64)."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        """The sample's size (its non-missing values)."""
        return int(self.counts.sum())

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def empty(cls) -> ValueCounts:
        return cls(np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, values: np.ndarray) -> ValueCounts:
        """The table of one part's values (float64; NaN, the missing values, left out)."""
        values = np.asarray(values, dtype=np.float64)
        distinct, counts = np.unique(values[~np.isnan(values)], return_counts=True)
        return cls(distinct, counts.astype(np.int64))

    def at_most(self, edges: np.ndarray) -> np.ndarray:
        """How many values are <= each edge: np.searchsorted(sorted sample, edges, side="right")."""
        return self._cumulative(np.searchsorted(self.values, edges, side="right"))

    def below(self, edges: np.ndarray) -> np.ndarray:
        """How many values are < each edge: np.searchsorted(sorted sample, edges, side="left")."""
        return self._cumulative(np.searchsorted(self.values, edges, side="left"))

    def _cumulative(self, positions: np.ndarray) -> np.ndarray:
        ends = np.concatenate([[0], np.cumsum(self.counts)])
        counted: np.ndarray = ends[positions]
        return counted

    def order_statistics(self, positions: np.ndarray) -> np.ndarray:
        """The values at 0-based positions of the sorted sample: sorted_sample[positions]."""
        ends = np.cumsum(self.counts)
        picked: np.ndarray = self.values[np.searchsorted(ends, positions, side="right")]
        return picked

    def mean(self) -> float:
        return float(np.sum(self.values * self.counts)) / self.total

    def std(self) -> float:
        """The population standard deviation (np.std's ddof=0), two passes as np.std."""
        deviation = self.values - self.mean()
        return float(np.sqrt(np.sum(deviation * deviation * self.counts) / self.total))


def merge_value_counts(tables: Iterable[ValueCounts], cap: int | None = None, what: str = "") -> ValueCounts:
    """Several parts' tables as one (counts added per distinct value).

    Args:
        tables: the parts' tables.
        cap: the most distinct values the merged table may hold (None: no limit).
        what: the column and where it comes from, for the error message.

    Raises:
        UserError: the merged table holds more than `cap` distinct values.
    """
    tables = [table for table in tables if len(table)]
    if not tables:
        return ValueCounts.empty()
    if len(tables) == 1:
        merged = tables[0]
    else:
        distinct, inverse = np.unique(np.concatenate([table.values for table in tables]), return_inverse=True)
        counts = np.zeros(len(distinct), dtype=np.int64)
        np.add.at(counts, inverse, np.concatenate([table.counts for table in tables]))
        merged = ValueCounts(distinct, counts)
    if cap is not None and len(merged) > cap:
        fail(
            f"drift: {what} holds more than {cap:,} distinct values, more than the dask engine merges for an exact drift "
            "statistic; raise engine.max_distinct_values in conf/engine/dask.yaml (memory: 16 bytes per distinct value)"
        )
    return merged


# np.frexp gives exponents from -1073 (the smallest subnormal) to 1024; a value is mantissa * 2**exponent.
_LOWEST_EXPONENT, _EXPONENTS = -1073, 1024 + 1073 + 1
_HALF = 26  # a 53-bit integer mantissa as two 26- and 27-bit halves, summed exactly in float64 below 2**26 values per part


@dataclass(frozen=True)
class ExactSum:
    """The exact sum of a sample's finite values, kept as integer mantissa sums per binary exponent; parts merge
    by adding them, so the mean does not depend on how the sample was cut (floating-point sums do, in the last bits)."""

    high: np.ndarray  # per exponent: sum of the mantissas' high halves (int64)
    low: np.ndarray  # per exponent: sum of the low halves (int64)
    count: int  # values summed

    @classmethod
    def of(cls, values: np.ndarray) -> ExactSum:
        """One part's sum (NaN, the missing values, left out; at most 2**26 values)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        mantissa, exponent = np.frexp(values)
        whole = (mantissa * 2.0**53).astype(np.int64)  # exact: |mantissa| < 1
        index = exponent - _LOWEST_EXPONENT
        # Float sums of integers below 2**27 are exact while the part has fewer than 2**26 values.
        high = np.bincount(index, weights=whole >> _HALF, minlength=_EXPONENTS).astype(np.int64)
        low = np.bincount(index, weights=whole & ((1 << _HALF) - 1), minlength=_EXPONENTS).astype(np.int64)
        return cls(high, low, len(values))

    def __add__(self, other: ExactSum) -> ExactSum:
        return ExactSum(self.high + other.high, self.low + other.low, self.count + other.count)

    def mean(self) -> float:
        """The exact mean, rounded once to float64 (NaN without values)."""
        if not self.count:
            return float("nan")
        total = Fraction(0)
        for index in np.flatnonzero((self.high != 0) | (self.low != 0)):
            exponent = int(index) + _LOWEST_EXPONENT - 53
            total += Fraction((int(self.high[index]) << _HALF) + int(self.low[index])) * Fraction(2) ** exponent
        return float(total / self.count)
