"""One column's drift statistics, compared as the schema types it (data/schema.yaml, never the dtype): a numeric
column as numbers (as categories when both samples together hold only a few distinct values), a categorical one as
categories whatever its values look like (integer codes too), a boolean one as its two values. Verdicts come later
(`verdict`), once p-values are adjusted together."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pandas as pd

from stages.lib.config import DriftThresholds
from stages.lib.drift.histograms import categorical_histogram, numeric_histogram
from stages.lib.drift.kernel import code_counts
from stages.lib.drift.methods import NO_METHOD
from stages.lib.drift.result import ColumnDrift
from stages.lib.drift.statistics import categorical_statistics, numeric_statistics
from stages.lib.errors import fail
from stages.lib.profile import category_strings, holds_numbers

# The schema types (data/schema.yaml) the drift check compares; datetime and identifier columns are no model inputs.
COMPARED_TYPES = ("numeric", "boolean", "categorical")
# A model's scores (probabilities or predicted values) are no column of the schema: they are numbers.
SCORE_TYPE = "numeric"


class _Common(TypedDict):
    """The `ColumnDrift` fields every branch of `column_drift` fills the same way."""

    column: str
    missing_reference: float
    missing_current: float
    missing_drifted: bool
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class SortedSample:
    """A column compared as numbers, as the drift check needs it: its values sorted without the missing ones
    (`sorted_profile`), and how many rows it has, missing ones included."""

    values: np.ndarray
    rows: int
    moments: tuple[float, float] | None = None  # `profile.moments` of the values, when the stored profile holds them

    @property
    def missing_share(self) -> float:
        # missing / rows: the same float as `Series.isna().mean()` (a sum of whole numbers over the row count)
        return (self.rows - len(self.values)) / self.rows if self.rows else 0.0


class Scratch:
    """A float64 buffer reused by one thread for the columns it reads with `tables.read_sorted`, one after the other: a
    fresh 80 MB array per 10M-row column cost more in page faults (the kernel zeroes every new page) than the copy
    into it. Not shared between threads; what `tables.read_sorted` returns is a view of it, valid until the next read."""

    def __init__(self) -> None:
        self._buffer = np.empty(0, dtype=np.float64)

    def take(self, size: int) -> np.ndarray:
        """The first `size` values of the buffer (its contents undefined), grown when too small."""
        if len(self._buffer) < size:
            self._buffer = np.empty(size, dtype=np.float64)
        return self._buffer[:size]


def sorted_sample(values: pd.Series) -> SortedSample:
    """The column's `SortedSample`."""
    return SortedSample(sorted_profile(values), len(values))


def _check_type(name: str, column_type: str) -> None:
    if column_type not in COMPARED_TYPES:
        raise ValueError(f"drift: column '{name}' has type {column_type!r}; the drift check compares {', '.join(COMPARED_TYPES)}")


def _common(name: str, missing_reference: float, missing_current: float, thresholds: DriftThresholds) -> _Common:
    return {
        "column": name,
        "missing_reference": missing_reference,
        "missing_current": missing_current,
        # A change in how often a value is missing is drift of its own: the usual tools drop NaN and miss it.
        "missing_drifted": abs(missing_current - missing_reference) >= thresholds.missing_share,
        "method": "",
        "score": math.nan,
        "threshold": math.nan,
        "drifted": False,
    }


def sorted_profile(values: np.ndarray | pd.Series) -> np.ndarray:
    """A numeric column sorted with missing values dropped: what the reference keeps on disk.

    Args:
        values: the column (a Series of numbers or booleans, or an array of numbers).

    Returns:
        A sorted float64 copy without NaN.
    """
    array = _as_numeric(values) if isinstance(values, pd.Series) else np.array(values, dtype=np.float64)
    array.sort()  # in place; NaN sorts last
    if not len(array) or not np.isnan(array[-1]):
        return array
    return array[: len(array) - int(np.count_nonzero(np.isnan(array)))]


def _as_numeric(series: pd.Series) -> np.ndarray:
    """A float64 copy of the column, missing values as NaN (the copy may be sorted in place)."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


def _numbers_or_flags(series: pd.Series) -> bool:
    """Values a float array holds exactly: numbers, booleans (as 0 and 1), or nothing but missing values."""
    return holds_numbers(series) or pd.api.types.is_bool_dtype(series) or not series.notna().any()


def _compared_as_numbers(name: str, column_type: str, reference: pd.Series, current: pd.Series) -> bool:
    """Whether the column's values are compared (or counted) as numbers; the type comes from the schema.

    Raises:
        UserError: a column typed numeric whose values are not numbers.
    """
    if column_type == "categorical":
        return False  # categories whatever they look like: integer codes are labels, not quantities
    if column_type == "boolean":
        # Two values: counted as numbers when either side stores them as numbers (bools read as 0 and 1), else by
        # their labels (True/False on both sides).
        both = _numbers_or_flags(reference) and _numbers_or_flags(current)
        return both and (holds_numbers(reference) or holds_numbers(current))
    for side, values in (("reference", reference), ("current", current)):
        if not _numbers_or_flags(values):
            example = values.dropna().iloc[0]
            fail(
                f"drift: column '{name}' is typed numeric (data/schema.yaml), but its {side} values are {values.dtype} "
                f"(e.g. {example!r}); rerun `dvc repro prepare` so that the data and data/schema.yaml agree"
            )
    return True


@dataclass(frozen=True)
class LevelCounts:
    """One window's column counted as categories, without a text per row: how often each level occurs, the levels
    (a Categorical's categories, in order, used or not; otherwise the distinct values), and the rows and missing rows.
    `level_counts` gives it from a Series, `tables.read_level_counts` from a Parquet column's Arrow buffers."""

    counts: np.ndarray  # int64, one per level
    levels: pd.Series  # the levels as the column types them (a Categorical of its categories, when `categorical`)
    rows: int
    missing: int
    categorical: bool  # a pandas Categorical: its categories, in their order, decide the categories when both sides agree

    @property
    def missing_share(self) -> float:
        # missing / rows: the same float as `Series.isna().mean()` (a sum of whole numbers over the row count)
        return self.missing / self.rows if self.rows else 0.0

    @property
    def categories(self) -> pd.Index:
        """A Categorical's categories, in order (empty for other columns)."""
        return self.levels.cat.categories if self.categorical else pd.Index([])


def categorical_levels(dtype: pd.CategoricalDtype) -> pd.Series:
    """Every category of `dtype` once, in order, as a Series of that dtype."""
    return pd.Series(pd.Categorical.from_codes(np.arange(len(dtype.categories)), dtype=dtype))


def level_counts(series: pd.Series) -> LevelCounts:
    """How often each level of one sample occurs, without a string per row.

    A Categorical's codes are counted as they are; numbers, flags and text are factorized on their own values, which
    are equal exactly when their texts are (whole floats read as their integers on both sides of that rule). Only
    values of mixed Python types (object dtype: 1 and "1" hash apart, 1 and True together) go through a text per row.
    """
    missing = int(series.isna().sum())
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        levels = categorical_levels(series.dtype)
        return LevelCounts(code_counts(codes, len(levels)), levels, len(series), missing, categorical=True)
    exact = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.StringDtype)
    values = series if exact else category_strings(series)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    levels = pd.Series(uniques, dtype=values.dtype)
    return LevelCounts(code_counts(codes, len(levels)), levels, len(series), missing, categorical=False)


def _level_counts(series: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """`level_counts`' counts, and each level's text (`category_strings`)."""
    counted = level_counts(series)
    return counted.counts, category_strings(counted.levels)


def category_counts(reference: LevelCounts, current: LevelCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of both samples over their categories: the reference's categories when both are Categoricals with the
    same ones, else the sorted texts of the levels either sample holds (a level only one side has, in any code order).

    Each side is counted over its own levels, then the counts are added onto the union of the levels' texts: the
    work per row is one count, never a text (a 10M-row column with a new level took 6 s as text per row)."""
    if reference.categorical and current.categorical and list(reference.categories) == list(current.categories):
        return reference.counts, current.counts, np.asarray(reference.categories, dtype=object)
    reference_levels, current_levels = category_strings(reference.levels), category_strings(current.levels)
    union, texts = pd.factorize(pd.concat([reference_levels, current_levels], ignore_index=True), sort=True)
    reference_counts, current_counts = np.zeros(len(texts), dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    np.add.at(reference_counts, union[: len(reference_levels)], reference.counts)  # two levels may share a text
    np.add.at(current_counts, union[len(reference_levels) :], current.counts)
    held = (reference_counts + current_counts) > 0  # the categories are the values present, not every declared level
    return reference_counts[held], current_counts[held], np.asarray(texts, dtype=object)[held]


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _sorted_counts(sorted_values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """How often each of `categories` (sorted, covering every value) occurs: binary search, no pass over the values."""
    return np.diff(np.searchsorted(sorted_values, categories, side="right"), prepend=0)


def _few_values(reference_sorted: np.ndarray, current_sorted: np.ndarray, limit: int) -> bool:
    """At most `limit` distinct values in the two samples together."""
    for values in (reference_sorted, current_sorted):
        # A strided look finds most many-valued columns without a pass over every value.
        if len(_distinct_sorted(values[:: max(1, len(values) // 4096)])) > limit:
            return False
    reference_distinct = _distinct_sorted(reference_sorted)
    if len(reference_distinct) > limit:
        return False
    current_distinct = _distinct_sorted(current_sorted)
    return len(current_distinct) <= limit and len(np.union1d(reference_distinct, current_distinct)) <= limit


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    thresholds: DriftThresholds,
    column_type: str,
    reference_sorted: np.ndarray | None = None,
) -> ColumnDrift:
    """Every statistic for one column; verdicts come later, once p-values are adjusted together.

    Args:
        name: the column's name.
        reference: its reference values.
        current: its current values.
        thresholds: the `drift` section (few_values, psi_bins, missing_share).
        column_type: its type in data/schema.yaml (one of COMPARED_TYPES): numeric columns are compared as numbers
            (as categories when both samples hold at most `few_values` distinct values), categorical and boolean
            ones as categories. Never read from the dtype: a categorical column of integer codes is categories.
        reference_sorted: the reference's sorted profile, when featurize stored it (saves a sort).

    Returns:
        The column's statistics, missing shares and histogram; method, score and verdict still unset
        (method "none" when one side has no values).

    Raises:
        ValueError: a type the drift check does not compare (datetime, identifier).
        UserError: a column typed numeric whose values are not numbers.
    """
    _check_type(name, column_type)
    if _compared_as_numbers(name, column_type, reference, current):
        reference_sample = SortedSample(reference_sorted, len(reference)) if reference_sorted is not None else sorted_sample(reference)
        return numbers_drift(name, reference_sample, sorted_sample(current), thresholds, column_type)
    return counted_drift(name, level_counts(reference), level_counts(current), thresholds)


def counted_drift(name: str, reference: LevelCounts, current: LevelCounts, thresholds: DriftThresholds) -> ColumnDrift:
    """`column_drift` of a column compared as categories, from both sides' `LevelCounts` alone: what drift-check
    computes for a categorical column counted straight from each window's Parquet buffers (`tables.read_level_counts`).

    Returns:
        The column's statistics, missing shares and histogram; method, score and verdict still unset.
    """
    common = _common(name, reference.missing_share, current.missing_share, thresholds)
    reference_counts, current_counts, categories = category_counts(reference, current)
    return categorical_drift(common, reference_counts, current_counts, categories)


def profiled_drift(name: str, reference: SortedSample, current: pd.Series, thresholds: DriftThresholds, column_type: str) -> ColumnDrift:
    """`column_drift` against a reference known only by its stored profile (featurize stores a column there only when
    the reference holds it as numbers): the reference's raw column is never read.

    Raises:
        ValueError: a type the drift check does not compare.
        UserError: a column typed numeric whose current values are not numbers.
    """
    _check_type(name, column_type)
    # Any float column stands for the reference here: the decision only asks whether it holds numbers.
    if _compared_as_numbers(name, column_type, pd.Series(dtype=np.float64), current):
        return numbers_drift(name, reference, sorted_sample(current), thresholds, column_type)
    # A boolean column stored as 0/1 in the reference but as labels in the current window: counted by text, which does
    # not depend on the order of the rows, so the profile with its missing values stands for the column.
    missing = np.full(reference.rows - len(reference.values), np.nan)
    return column_drift(name, pd.Series(np.concatenate([reference.values, missing])), current, thresholds, column_type)


def numbers_drift(name: str, reference: SortedSample, current: SortedSample, thresholds: DriftThresholds, column_type: str) -> ColumnDrift:
    """`column_drift` of a column compared as numbers, from both sides' sorted values and row counts alone: what
    drift-check computes from the stored reference profile without reading the reference's raw column.

    Args:
        name: the column's name.
        reference: the reference's sorted values and rows.
        current: the current window's.
        thresholds: the `drift` section.
        column_type: "numeric" (as numbers, or as categories when both samples hold at most `few_values` distinct
            values) or "boolean" (as categories, counted on the sorted values).

    Returns:
        The column's statistics, missing shares and histogram; method, score and verdict still unset.
    """
    _check_type(name, column_type)
    common = _common(name, reference.missing_share, current.missing_share, thresholds)
    reference_values, current_values = reference.values, current.values
    numeric = column_type == "numeric" and bool(len(reference_values)) and bool(len(current_values))
    if numeric and not _few_values(reference_values, current_values, thresholds.few_values):
        statistics = numeric_statistics(reference_values, current_values, thresholds.psi_bins, reference.moments)
        collapsed = statistics["psi_bins"] < thresholds.psi_bins
        return ColumnDrift(
            kind="numeric", reference_rows=len(reference_values), current_rows=len(current_values), statistics=statistics,
            note=f"PSI on {statistics['psi_bins']} of {thresholds.psi_bins} bins: tied reference quantiles" if collapsed else "",
            histogram=numeric_histogram(reference_values, current_values), **common,
        )  # fmt: skip
    # A boolean, few distinct values or an empty side: compare them as categories, counted on the sorted values.
    categories = np.union1d(_distinct_sorted(reference_values), _distinct_sorted(current_values))
    return categorical_drift(common, _sorted_counts(reference_values, categories), _sorted_counts(current_values, categories), categories)


def categorical_drift(common: _Common, reference_counts: np.ndarray, current_counts: np.ndarray, categories: np.ndarray) -> ColumnDrift:
    """A column compared as categories, from its counts per category (`column_drift` and, from merged summaries,
    `summaries.column_drift_of_summaries`).

    Args:
        common: the fields every branch fills the same way (name, missing shares; method, score and verdict unset).
        reference_counts: the reference's count of each category, in the order of `categories`.
        current_counts: the same for the current window.
        categories: the union of both windows' categories.

    Returns:
        The column's statistics and histogram, or method "none" when one side has no values.
    """
    reference_rows, current_rows = int(reference_counts.sum()), int(current_counts.sum())
    if not reference_rows or not current_rows:
        common |= {"method": NO_METHOD}
        side = "reference" if not reference_rows else "current"
        return ColumnDrift(
            kind="categorical", reference_rows=reference_rows, current_rows=current_rows,
            note=f"no values in the {side} window: only the missing share is compared", **common,
        )  # fmt: skip
    unseen = (reference_counts == 0) & (current_counts > 0)
    statistics = categorical_statistics(reference_counts, current_counts)
    statistics["unseen_rows"] = int(current_counts[unseen].sum())
    return ColumnDrift(
        kind="categorical", reference_rows=reference_rows, current_rows=current_rows, statistics=statistics,
        unseen_categories=[str(category) for category in categories[unseen]],
        histogram=categorical_histogram(categories, reference_counts, current_counts), **common,
    )  # fmt: skip
