"""The drift check from mergeable per-part summaries of each column: the dask engine summarizes every partition of
both windows on its own (`summarize`), merges the summaries exactly (`merge`: counts added, category lists united in
the order a whole read gives them) and judges each column from the merged pair (`column_drift_of_summaries`), with
the same findings as `stages.lib.drift.columns.column_drift` on the whole columns.

A part is summarized as the whole-column code would see it: its numbers as a `ValueCounts` table (float64, as the
sorted profile holds them), its categories as counts per level (codes counted, never a text per row), plus what the
whole column's type will be once the parts are read together (pandas gives a column with a missing cell another
dtype than one without: an integer column becomes float, a flag column object; `ColumnSummary` keeps what decides).

Pure pandas and NumPy, no Dask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from stages.lib.config import DriftThresholds
from stages.lib.drift.columns import COMPARED_TYPES, _check_type, _common, _level_counts, categorical_drift
from stages.lib.drift.counts import ValueCounts, merge_value_counts
from stages.lib.drift.histograms import numeric_histogram_of_counts
from stages.lib.drift.kernel import code_counts
from stages.lib.drift.result import ColumnDrift, DriftResult
from stages.lib.drift.statistics import numeric_statistics_of_counts
from stages.lib.drift.verdict import decide
from stages.lib.errors import fail
from stages.lib.profile import category_strings, holds_numbers


@dataclass(frozen=True)
class ColumnSummary:
    """One column of one part (or of several parts merged, in order)."""

    rows: int
    missing: int
    numbers: bool  # some part stores it as numbers (the whole column then does: Arrow unifies to a numeric type)
    flags: bool  # every part stores it as True/False without a missing cell (the whole column is then bool)
    categorical: bool  # some part holds a pandas Categorical (the whole column is one)
    values: ValueCounts | None  # its values as numbers, when every part with values stores numbers or flags
    categories: pd.Index | None  # Categorical parts: their categories, united in the order a whole read gives
    category_counts: np.ndarray | None  # how often each of `categories` occurs
    texts: pd.Series | None  # other parts: each level's text (category_strings), distinct
    text_counts: np.ndarray | None  # how often each text occurs
    example: str  # the first part with values that are neither numbers nor flags: "<dtype> (e.g. <value>)"

    @property
    def present(self) -> int:
        """Its non-missing values."""
        return self.rows - self.missing

    @property
    def numbers_or_flags(self) -> bool:
        """`columns._numbers_or_flags` of the whole column."""
        return self.numbers or self.flags or not self.present


def summarize(series: pd.Series, column_type: str) -> ColumnSummary:
    """One part's summary of a column typed `column_type` (data/schema.yaml): what `merge` and
    `column_drift_of_summaries` need for the verdict of the whole column.

    Args:
        series: the part's values, as the pandas engine's reader gives them (stages.lib.drift.tables).
        column_type: numeric, boolean or categorical.
    """
    if column_type not in COMPARED_TYPES:
        raise ValueError(f"drift: type {column_type!r}; the drift check compares {', '.join(COMPARED_TYPES)}")
    missing = int(series.isna().sum())
    present = len(series) - missing
    numbers, flags = holds_numbers(series), pd.api.types.is_bool_dtype(series)
    categorical = isinstance(series.dtype, pd.CategoricalDtype)
    # A categorical column's numbers are labels: never a table of values (an identifier-like code column would be huge).
    as_numbers = column_type != "categorical" and (numbers or flags)
    values = ValueCounts.of(series.to_numpy(dtype=np.float64, na_value=np.nan)) if as_numbers else None
    example = "" if numbers or flags or not present else f"{series.dtype} (e.g. {series.dropna().iloc[0]!r})"
    categories = category_counts = texts = text_counts = None
    if column_type != "numeric" and categorical:
        # Kept even without values: a whole read unites the categories of every part, used or not.
        categories = series.cat.categories
        codes = series.cat.codes.to_numpy()
        category_counts = code_counts(codes, len(categories))
    elif column_type != "numeric" and present:
        counts, labels = _level_counts(series)
        texts, text_counts = _by_text(labels, counts)
    return ColumnSummary(
        rows=len(series), missing=missing, numbers=numbers, flags=flags or not len(series), categorical=categorical,
        values=values if present or values is None else ValueCounts.empty(), categories=categories,
        category_counts=category_counts, texts=texts, text_counts=text_counts, example=example,
    )  # fmt: skip


def _by_text(texts: pd.Series, counts: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """Counts added per distinct text (two levels may share one), texts in first-seen order."""
    codes, distinct = pd.factorize(texts, use_na_sentinel=True)
    summed = np.zeros(len(distinct), dtype=np.int64)
    np.add.at(summed, codes[codes >= 0], counts[codes >= 0])
    return pd.Series(distinct, dtype=texts.dtype), summed


def merge(parts: Iterable[ColumnSummary], cap: int | None = None, what: str = "") -> ColumnSummary:
    """Summaries of consecutive parts, in order, as one: exact, and associative (merging in a tree gives the same).

    Args:
        parts: the parts' summaries, in the table's order.
        cap: the most distinct numbers the merged table may hold (None: no limit).
        what: the column and its table, for the error message.

    Raises:
        UserError: more than `cap` distinct numbers.
    """
    parts = list(parts)
    held = [part for part in parts if part.present]
    values = [part.values for part in held]
    categories, category_counts = _merge_categories(parts)
    texts, text_counts = _merge_texts([part for part in held if part.texts is not None])
    return ColumnSummary(
        rows=sum(part.rows for part in parts),
        missing=sum(part.missing for part in parts),
        numbers=any(part.numbers for part in parts),
        flags=all(part.flags for part in parts),
        categorical=any(part.categorical for part in parts),
        values=None if any(value is None for value in values) else merge_value_counts([v for v in values if v is not None], cap, what),
        categories=categories,
        category_counts=category_counts,
        texts=texts,
        text_counts=text_counts,
        example=next((part.example for part in held if part.example), ""),
    )


def _merge_categories(parts: list[ColumnSummary]) -> tuple[pd.Index | None, np.ndarray | None]:
    """Categories united in first-seen order (what Arrow's dictionary unification gives a whole read), counts mapped."""
    held = [(part.categories, part.category_counts) for part in parts if part.categories is not None and part.category_counts is not None]
    if not held:
        return None, None
    united = held[0][0]
    for categories, _ in held[1:]:
        united = united.append(categories).unique()
    counts = np.zeros(len(united), dtype=np.int64)
    for categories, own in held:
        np.add.at(counts, united.get_indexer(categories), own)
    return united, counts


def _merge_texts(parts: list[ColumnSummary]) -> tuple[pd.Series | None, np.ndarray | None]:
    if not parts:
        return None, None
    texts = pd.concat([part.texts for part in parts], ignore_index=True)
    return _by_text(texts, np.concatenate([part.text_counts for part in parts]))


def _level_texts(summary: ColumnSummary) -> tuple[np.ndarray, pd.Series]:
    """The side's counts per level and each level's text, as `columns._level_counts` gives them for the whole column."""
    if summary.categorical and summary.categories is not None and summary.category_counts is not None:
        dtype = pd.CategoricalDtype(summary.categories)
        levels = pd.Series(pd.Categorical.from_codes(np.arange(len(summary.categories)), dtype=dtype))
        return summary.category_counts, category_strings(levels)
    if summary.texts is None or summary.text_counts is None:
        return np.zeros(0, dtype=np.int64), pd.Series([], dtype="string")
    return summary.text_counts, summary.texts


def _category_counts(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`columns.category_counts` of the whole columns, from their summaries."""
    if (
        reference.categorical
        and current.categorical
        and reference.categories is not None
        and current.categories is not None
        and list(reference.categories) == list(current.categories)
    ):
        return reference.category_counts, current.category_counts, np.asarray(reference.categories, dtype=object)  # type: ignore[return-value]
    (reference_own, reference_levels), (current_own, current_levels) = _level_texts(reference), _level_texts(current)
    union, texts = pd.factorize(pd.concat([reference_levels, current_levels], ignore_index=True), sort=True)
    reference_counts, current_counts = np.zeros(len(texts), dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    np.add.at(reference_counts, union[: len(reference_levels)], reference_own)
    np.add.at(current_counts, union[len(reference_levels) :], current_own)
    held = (reference_counts + current_counts) > 0
    return reference_counts[held], current_counts[held], np.asarray(texts, dtype=object)[held]


def _compared_as_numbers(name: str, column_type: str, reference: ColumnSummary, current: ColumnSummary) -> bool:
    """`columns._compared_as_numbers` of the whole columns.

    Raises:
        UserError: a column typed numeric whose values are not numbers.
    """
    if column_type == "categorical":
        return False
    if column_type == "boolean":
        return reference.numbers_or_flags and current.numbers_or_flags and (reference.numbers or current.numbers)
    for side, summary in (("reference", reference), ("current", current)):
        if not summary.numbers_or_flags:
            fail(
                f"drift: column '{name}' is typed numeric (data/schema.yaml), but its {side} values are {summary.example}; "
                "rerun `dvc repro prepare` so that the data and data/schema.yaml agree"
            )
    return True


def _few_values(reference: ValueCounts, current: ValueCounts, limit: int) -> bool:
    return len(np.union1d(reference.values, current.values)) <= limit


def _counts_over(table: ValueCounts, categories: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(categories), dtype=np.int64)
    counts[np.searchsorted(categories, table.values)] = table.counts
    return counts


def column_drift_of_summaries(
    name: str, reference: ColumnSummary, current: ColumnSummary, thresholds: DriftThresholds, column_type: str
) -> ColumnDrift:
    """`columns.column_drift` of the whole columns, from their merged summaries: the same statistics, counts and
    verdict inputs (KS, Wasserstein, PSI, chi-squared, Jensen-Shannon and the histograms exactly; the means and the
    reference standard deviation to rounding).

    Raises:
        ValueError: a type the drift check does not compare.
        UserError: a column typed numeric whose values are not numbers.
    """
    _check_type(name, column_type)
    missing_reference = reference.missing / reference.rows if reference.rows else 0.0
    missing_current = current.missing / current.rows if current.rows else 0.0
    common = _common(name, missing_reference, missing_current, thresholds)
    if _compared_as_numbers(name, column_type, reference, current):
        if reference.values is None or current.values is None:
            raise ValueError(f"drift: column '{name}': a part without its numbers")  # summarize keeps them for numbers and flags
        reference_values, current_values = reference.values, current.values
        numeric = column_type == "numeric" and bool(len(reference_values)) and bool(len(current_values))
        if numeric and not _few_values(reference_values, current_values, thresholds.few_values):
            statistics = numeric_statistics_of_counts(reference_values, current_values, thresholds.psi_bins)
            collapsed = statistics["psi_bins"] < thresholds.psi_bins
            return ColumnDrift(
                kind="numeric", reference_rows=reference_values.total, current_rows=current_values.total, statistics=statistics,
                note=f"PSI on {statistics['psi_bins']} of {thresholds.psi_bins} bins: tied reference quantiles" if collapsed else "",
                histogram=numeric_histogram_of_counts(reference_values, current_values), **common,
            )  # fmt: skip
        categories = np.union1d(reference_values.values, current_values.values)
        reference_counts = _counts_over(reference_values, categories)
        current_counts = _counts_over(current_values, categories)
    else:
        reference_counts, current_counts, categories = _category_counts(reference, current)
    return categorical_drift(common, reference_counts, current_counts, categories)


def detect_drift_of_summaries(
    reference: Mapping[str, ColumnSummary], current: Mapping[str, ColumnSummary], columns: Mapping[str, str], thresholds: DriftThresholds
) -> DriftResult:
    """`detect.detect_drift` from each column's merged summaries: every column, then the verdicts.

    Args:
        reference: {column: its merged summary} of the reference window.
        current: the same for the current window.
        columns: {column: its type in data/schema.yaml}, in the order the result keeps.
        thresholds: the `drift` section.
    """
    results = [column_drift_of_summaries(name, reference[name], current[name], thresholds, kind) for name, kind in columns.items()]
    decide(results, thresholds)
    return DriftResult(columns=results, thresholds=thresholds)


def without_values(summary: ColumnSummary) -> ColumnSummary:
    """The summary without its numbers (a column compared as categories only needs its counts per level)."""
    return replace(summary, values=None)


def within(whole: ColumnSummary, subset: ColumnSummary) -> ColumnSummary:
    """A subset's merged summary (the rows of one segment, say) as pandas sees `column.iloc[rows]` of the whole column:
    with the whole column's type (numbers, flags, categorical, its category list united over every part, also parts
    without a row of the subset); counts, missing values and texts stay the subset's own."""
    counts = None
    if whole.categories is not None:
        counts = np.zeros(len(whole.categories), dtype=np.int64)
        if subset.categories is not None and subset.category_counts is not None:
            np.add.at(counts, whole.categories.get_indexer(subset.categories), subset.category_counts)
    return replace(
        subset, numbers=whole.numbers, flags=whole.flags, categorical=whole.categorical, categories=whole.categories,
        category_counts=counts, values=None if whole.values is None else subset.values,
    )  # fmt: skip
