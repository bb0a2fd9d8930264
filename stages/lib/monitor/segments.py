"""Drift within segments: each value of each declared segment column (for flights: every origin, every carrier),
the chunk's rows of that segment against the reference's rows of the same segment.

Every (segment, column) pair is a p-value test, chosen by the column's type in data/schema.yaml: Kolmogorov-Smirnov
for numeric columns, chi-squared for categorical and boolean ones (and for numeric columns with few distinct values),
the drift engine's statistics (stages/lib/drift/columns.py) and p-values (stages/lib/drift/p_values.py). With dozens
of segments times dozens of columns, raw p-values would raise alarms on every chunk, so all tests of one chunk are
adjusted together by Benjamini-Hochberg at `fdr`: among the tests it flags, the expected share of false ones is at
most `fdr`; when nothing drifted at all, the chance that a chunk raises any alarm is at most `fdr`. A segment with
fewer than `min_rows` rows in the chunk or in the reference is not tested (too few rows to judge) and is listed as
skipped; a segment value the reference never saw is skipped with 0 reference rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.config import DriftThresholds
from stages.lib.drift.columns import column_drift
from stages.lib.drift.methods import NO_METHOD
from stages.lib.drift.p_values import benjamini_hochberg, chi2_p_values, ks_p_values
from stages.lib.drift.result import ColumnDrift, json_ready
from stages.lib.drift.summaries import ColumnSummary, column_drift_of_summaries, summarize
from stages.lib.profile import category_strings


@dataclass(frozen=True)
class SegmentTest:
    segment: str  # the segment column, e.g. origin
    value: str  # its value, e.g. JFK
    column: str  # the column tested within that segment
    test: str  # "ks", "chi2", or "none" (no values on one side: nothing to test)
    statistic: float  # the KS statistic or the chi-squared statistic
    p_value: float
    p_value_adjusted: float  # Benjamini-Hochberg over every test of the chunk
    drifted: bool  # adjusted p-value below the fdr
    reference_rows: int  # non-missing values compared
    current_rows: int


@dataclass(frozen=True)
class SkippedSegment:
    segment: str
    value: str
    reference_rows: int
    current_rows: int


@dataclass(frozen=True)
class SegmentDrift:
    """Every segment test of one chunk, in order: segment columns as declared, values sorted, columns as given."""

    tests: list[SegmentTest]
    skipped: list[SkippedSegment]
    fdr: float
    min_rows: int

    @property
    def alarms(self) -> list[tuple[str, str, list[str]]]:
        """The drifted segments: (segment column, value, its drifted columns), in test order."""
        found: dict[tuple[str, str], list[str]] = {}
        for test in self.tests:
            if test.drifted:
                found.setdefault((test.segment, test.value), []).append(test.column)
        return [(segment, value, columns) for (segment, value), columns in found.items()]

    def to_json(self) -> dict[str, Any]:
        return {
            "fdr": self.fdr,
            "min_rows": self.min_rows,
            "alarms": [{"segment": segment, "value": value, "columns": columns} for segment, value, columns in self.alarms],
            "tests": [json_ready(asdict(test)) for test in self.tests],
            "skipped": [asdict(skipped) for skipped in self.skipped],
        }


def segment_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    segments: Sequence[str],
    columns: Mapping[str, str],
    thresholds: DriftThresholds,
    fdr: float,
    min_rows: int,
) -> SegmentDrift:
    """Drift of each segment of the chunk against the same segment of the reference, FDR-controlled over all tests.

    Args:
        reference: the reference rows (with the segment columns and `columns`).
        current: the chunk's rows (the same columns).
        segments: the segment columns (monitor.segments); rows missing a segment value belong to none of its segments.
        columns: the columns to test within each segment, {column: its type in data/schema.yaml} (a segment column is
            not tested within its own segments): numeric columns by KS, categorical and boolean ones by chi-squared.
        thresholds: the `drift` section (few_values: numeric columns with at most that many values are tested as categories).
        fdr: the Benjamini-Hochberg false discovery rate over all tests of the chunk (monitor.segment_fdr).
        min_rows: segments with fewer rows than this in either window are skipped (monitor.segment_min_rows).

    Returns:
        The tests and the skipped segments.

    Raises:
        KeyError: a segment column or a tested column missing from either frame.
    """
    for frame, side in ((reference, "reference"), (current, "current")):
        missing = [name for name in [*segments, *columns] if name not in frame.columns]
        if missing:
            raise KeyError(f"segment drift: the {side} rows lack column(s) {', '.join(missing)}")
    found: list[tuple[str, str, ColumnDrift]] = []
    skipped: list[SkippedSegment] = []
    for segment in segments:
        reference_rows, current_rows = _rows_by_value(reference[segment]), _rows_by_value(current[segment])
        for value in sorted(set(reference_rows) | set(current_rows)):
            mine, theirs = reference_rows.get(value, _NONE), current_rows.get(value, _NONE)
            if len(mine) < min_rows or len(theirs) < min_rows:
                skipped.append(SkippedSegment(segment, value, len(mine), len(theirs)))
                continue
            for column, kind in columns.items():
                if column != segment:
                    drift = column_drift(column, reference[column].iloc[mine], current[column].iloc[theirs], thresholds, kind)
                    found.append((segment, value, drift))
    return SegmentDrift(tests=_decide(found, fdr), skipped=skipped, fdr=fdr, min_rows=min_rows)


# The reference's segments as merged summaries (the dask engine): segment column -> value (its text) -> tested column
# -> that column's summary over the reference rows of the segment; and segment column -> value -> its rows.
SegmentTables = Mapping[str, Mapping[str, Mapping[str, ColumnSummary]]]
SegmentRows = Mapping[str, Mapping[str, int]]


def segment_drift_of_tables(
    reference: SegmentTables,
    reference_rows: SegmentRows,
    current: pd.DataFrame,
    segments: Sequence[str],
    columns: Mapping[str, str],
    thresholds: DriftThresholds,
    fdr: float,
    min_rows: int,
) -> SegmentDrift:
    """`segment_drift` with the reference given as merged summaries per segment (`summaries.within` the whole
    columns): the same tests, statistics and verdicts, the reference's rows never in this process.

    Raises:
        KeyError: a segment column or a tested column missing from the chunk or the reference's tables.
    """
    missing = [name for name in [*segments, *columns] if name not in current.columns]
    if missing:
        raise KeyError(f"segment drift: the current rows lack column(s) {', '.join(missing)}")
    found: list[tuple[str, str, ColumnDrift]] = []
    skipped: list[SkippedSegment] = []
    for segment in segments:
        mine_rows, current_rows = reference_rows.get(segment, {}), _rows_by_value(current[segment])
        for value in sorted(set(mine_rows) | set(current_rows)):
            mine, theirs = mine_rows.get(value, 0), current_rows.get(value, _NONE)
            if mine < min_rows or len(theirs) < min_rows:
                skipped.append(SkippedSegment(segment, value, mine, len(theirs)))
                continue
            for column, kind in columns.items():
                if column != segment:
                    chunk = summarize(current[column].iloc[theirs], kind)
                    found.append(
                        (segment, value, column_drift_of_summaries(column, reference[segment][value][column], chunk, thresholds, kind))
                    )
    return SegmentDrift(tests=_decide(found, fdr), skipped=skipped, fdr=fdr, min_rows=min_rows)


_NONE = np.zeros(0, dtype=np.intp)


def _rows_by_value(values: pd.Series) -> dict[str, np.ndarray]:
    """Row positions of each non-missing value, keyed by the value as text (one key per distinct text)."""
    text = category_strings(values)
    return {str(value): np.flatnonzero((text == value).fillna(False).to_numpy()) for value in text.dropna().unique()}


def _decide(found: list[tuple[str, str, ColumnDrift]], fdr: float) -> list[SegmentTest]:
    """Raw p-values of every test, adjusted together; a test drifts when its adjusted p-value is below `fdr`."""
    raw = np.full(len(found), np.nan)
    numeric = [index for index, (_, _, drift) in enumerate(found) if drift.method != NO_METHOD and drift.kind == "numeric"]
    categorical = [index for index, (_, _, drift) in enumerate(found) if drift.method != NO_METHOD and drift.kind != "numeric"]
    if numeric:
        drifts = [found[index][2] for index in numeric]
        raw[numeric] = ks_p_values(
            np.array([drift.statistics["ks"] for drift in drifts], dtype=np.float64),
            np.array([drift.reference_rows for drift in drifts], dtype=np.float64),
            np.array([drift.current_rows for drift in drifts], dtype=np.float64),
        )
    if categorical:
        drifts = [found[index][2] for index in categorical]
        raw[categorical] = chi2_p_values(
            np.array([drift.statistics["chi2"] for drift in drifts], dtype=np.float64),
            np.array([drift.statistics["chi2_dof"] for drift in drifts]),
        )
    adjusted = benjamini_hochberg(raw)
    tests = []
    for (segment, value, drift), p_value, p_adjusted in zip(found, raw, adjusted, strict=True):
        tested = not math.isnan(p_value)
        test = "none" if not tested else "ks" if drift.kind == "numeric" else "chi2"
        statistic = drift.statistics.get("ks" if drift.kind == "numeric" else "chi2", math.nan) if tested else math.nan
        tests.append(
            SegmentTest(
                segment=segment,
                value=value,
                column=drift.column,
                test=test,
                statistic=float(statistic),
                p_value=float(p_value),
                p_value_adjusted=float(p_adjusted),
                drifted=bool(tested and p_adjusted < fdr),
                reference_rows=drift.reference_rows,
                current_rows=drift.current_rows,
            )
        )
    return tests
