"""The monitor's reference (the test split) on the dask engine: every row group of its prepared rows and of its
features is one task, summarized on a worker into exact mergeable summaries (stages/lib/drift/summaries.py, the
drift-check's): each input column whole, each input column within each segment value, the model's scores (the model
applied per row group) and its scores' outcomes as counts per distinct score (exact.ScoreTable, what the calibrator
is fitted on). The summaries are merged in a tree of tasks (stages/lib/drift/partitioned.py); only the merged
tables reach the stage's process, never the reference's rows. Counts are exact, so the tables, and every finding
computed from them, do not depend on how the reference is cut into parts nor on the number of workers.

A regression's loss model (DLE) learns from rows, not summaries: the rows of the seeded sample monitor.estimator_rows
sets (stages/lib/monitor/sample.py: picked by a hash of each row's position, so by neither the parts nor the workers)
are taken per row group on the workers from the prepared rows (inputs and target) and from the features (the model's
scores of them), and joined by position in the stage's process: it holds the sample, never more of the reference.

The reference's fingerprint (part of every chunk's cache key) is computed the same way: a hash of each row with
its position in the table, summed over rows, from canonical values (numbers as float64, the rest as their text),
so that it depends on the rows and their order, not on the parts they are stored in.

Dask is imported inside the functions that build task graphs only; the per-part functions are module-level so that
workers import them by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator

from stages.lib import exact
from stages.lib.catalog import FeatureSpec
from stages.lib.drift.partitioned import (
    Part,
    _tree,
    merge_prepared,
    merge_scored,
    read_row_group,
    row_groups,
    score_part,
    summarize_prepared,
)
from stages.lib.drift.summaries import ColumnSummary, merge, summarize, within
from stages.lib.errors import fail
from stages.lib.io import parquet_schema
from stages.lib.models import predict_scores
from stages.lib.monitor.cache import digest
from stages.lib.monitor.sample import hash_threshold, sample_mask
from stages.lib.profile import category_strings, holds_numbers

SCORE = "__score__"
HASH_KEYS = ("0123456789123456", "monitor-referenc")  # 16 bytes each (pandas' key length)  # two 64-bit row hashes: a 128-bit fingerprint
POSITION = "__position__"


@dataclass(frozen=True)
class SegmentPart:
    """One part's rows of each segment: segment column -> value (its text) -> tested column -> summary, and the rows."""

    tables: dict[str, dict[str, dict[str, ColumnSummary]]]
    rows: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ReferenceTables:
    """The reference as the monitor compares chunks with it, merged from every part."""

    columns: dict[str, ColumnSummary]  # each input column, whole
    segments: dict[str, dict[str, dict[str, ColumnSummary]]]  # within each segment value, as `summaries.within` the whole
    segment_rows: dict[str, dict[str, int]]
    scores: ColumnSummary  # the model's scores of the reference's features
    score_table: exact.ScoreTable | None  # classification: rows and positives per distinct score
    rows: int


def summarize_segments(part: Part, segments: list[str], columns: dict[str, str]) -> SegmentPart:
    """One row group of the reference: each of `columns` ({name: schema type}) summarized within each value of each
    segment column (a segment column is not tested within its own segments; rows missing the value are in none)."""
    frame = read_row_group(part, [*segments, *columns])
    tables: dict[str, dict[str, dict[str, ColumnSummary]]] = {}
    rows: dict[str, dict[str, int]] = {}
    for segment in segments:
        if segment not in frame.columns:
            continue
        text = category_strings(frame[segment])
        tables[segment], rows[segment] = {}, {}
        for value in text.dropna().unique():
            mask = (text == value).fillna(False).to_numpy(dtype=bool)
            rows[segment][str(value)] = int(mask.sum())
            tables[segment][str(value)] = {
                name: summarize(frame[name][mask], kind) for name, kind in columns.items() if name != segment and name in frame.columns
            }
    return SegmentPart(tables, rows)


def merge_segments(parts: list[SegmentPart], cap: int, where: str) -> SegmentPart:
    """Consecutive parts' segment summaries as one (a value only some parts hold: from those)."""
    tables: dict[str, dict[str, dict[str, ColumnSummary]]] = {}
    rows: dict[str, dict[str, int]] = {}
    segments = list(dict.fromkeys(segment for part in parts for segment in part.rows))
    for segment in segments:
        held = [part for part in parts if segment in part.rows]
        values = list(dict.fromkeys(value for part in held for value in part.rows[segment]))
        rows[segment] = {value: sum(part.rows[segment].get(value, 0) for part in held) for value in values}
        tables[segment] = {}
        for value in values:
            having = [part.tables[segment][value] for part in held if value in part.tables[segment]]
            names = list(dict.fromkeys(name for table in having for name in table))
            tables[segment][value] = {
                name: merge([table[name] for table in having if name in table], cap, f"column '{name}' ({segment} {value}) of {where}")
                for name in names
            }
    return SegmentPart(tables, rows)


def _canonical(series: pd.Series) -> pd.Series:
    """A column's values as the fingerprint hashes them, whatever type one part stores: numbers and flags as
    float64, anything else as its text (category_strings)."""
    if holds_numbers(series) or pd.api.types.is_bool_dtype(series):
        return pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return category_strings(series).reset_index(drop=True)


def fingerprint_part(part: Part, columns: list[str], first_row: int) -> tuple[int, ...]:
    """One row group's rows, their count and their hashes (each row's values and its position in the table) summed
    modulo 2**64, one sum per key of HASH_KEYS: sums of consecutive parts add up to the whole table's."""
    frame = read_row_group(part, columns)
    canonical = pd.DataFrame({name: _canonical(frame[name]) for name in sorted(frame.columns)})
    canonical[POSITION] = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    sums = [int(pd.util.hash_pandas_object(canonical, index=False, hash_key=key).to_numpy().sum(dtype=np.uint64)) for key in HASH_KEYS]
    return (len(frame), *sums)


def _first_rows(parts: Sequence[Part]) -> list[int]:
    """Each row group's first row's position in the table (from the footers)."""
    return _boundaries(parts)[:-1]


def _boundaries(parts: Sequence[Part]) -> list[int]:
    """Each row group's first row's position, then the table's row count (from the footers)."""
    sizes = [pq.ParquetFile(file).metadata.row_group(group).num_rows for file, group in parts]
    return [int(start) for start in np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])]


def sample_rows_part(part: Part, columns: list[str], first_row: int, threshold: int | None, seed: int) -> pd.DataFrame:
    """One row group's rows of the loss model's sample (`columns`, those it holds), with their positions in the table."""
    frame = read_row_group(part, columns)
    positions = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    mask = sample_mask(positions, threshold, seed)
    return frame[mask].reset_index(drop=True).assign(**{POSITION: positions[mask]})


def sample_scores_part(
    part: Part, model: BaseEstimator, spec: FeatureSpec, first_row: int, threshold: int | None, seed: int
) -> pd.DataFrame:
    """One row group's features of the loss model's sample, scored by the model: positions and scores."""
    frame = read_row_group(part, spec.features)
    positions = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    mask = sample_mask(positions, threshold, seed)
    chosen = frame[mask]
    scores = predict_scores(model, chosen[spec.features], spec.task) if len(chosen) else np.zeros(0)
    return pd.DataFrame({POSITION: positions[mask], SCORE: np.asarray(scores, dtype=np.float64)})


def sample_on_dask(
    prepared: Path, features: Path, columns: list[str], spec: FeatureSpec, model: BaseEstimator, limit: int | None, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The loss model's sample of the reference, taken on the cluster: its prepared `columns` and the model's scores
    of its features, in table order (the pandas engine's `sample.sample_positions` of the whole table's rows).

    Raises:
        UserError: the tables hold no rows, or different numbers of rows.
    """
    import dask

    prepared_parts, feature_parts = (
        row_groups(prepared, "run `dvc repro prepare` first"),
        row_groups(features, "run `dvc repro featurize` first"),
    )
    prepared_bounds, feature_bounds = _boundaries(prepared_parts), _boundaries(feature_parts)
    rows = prepared_bounds[-1]
    if not rows:
        fail(f"{prepared}: the reference (the test split) has no rows; widen data.splits.test in conf/data/ and rerun `dvc repro prepare`")
    if feature_bounds[-1] != rows:
        fail(f"{prepared} and {features} hold different rows; run `dvc repro featurize`")
    threshold = hash_threshold(rows, limit, seed)  # from the row count alone: the same on both tables
    model_task = dask.delayed(model, pure=True)
    taken = [
        dask.delayed(sample_rows_part)(part, columns, first, threshold, seed)
        for part, first in zip(prepared_parts, prepared_bounds[:-1], strict=True)
    ]
    scored = [
        dask.delayed(sample_scores_part)(part, model_task, spec, first, threshold, seed)
        for part, first in zip(feature_parts, feature_bounds[:-1], strict=True)
    ]
    frames, scores = dask.compute(taken, scored)
    sample, joined = pd.concat(frames, ignore_index=True), pd.concat(scores, ignore_index=True)
    if not np.array_equal(sample[POSITION].to_numpy(), joined[POSITION].to_numpy()):
        raise RuntimeError("the loss model's sample: the prepared rows and the features took different positions")  # one rule on both
    return sample.drop(columns=[POSITION]), joined[SCORE].to_numpy(dtype=np.float64)


def fingerprint_on_dask(tables: Sequence[tuple[Path, list[str], str]]) -> str:
    """The reference's fingerprint: per table (path, columns, hint), its columns and its rows' hashes summed on the
    workers; equal rows in equal order give the same fingerprint however they are cut into files and row groups."""
    import dask

    found = []
    for path, columns, hint in tables:
        schema = parquet_schema(path, hint)
        parts = row_groups(path, hint)
        tasks = [dask.delayed(fingerprint_part)(part, columns, first) for part, first in zip(parts, _first_rows(parts), strict=True)]
        found.append((sorted(name for name in columns if name in schema), tasks))
    sums = dask.compute([tasks for _, tasks in found])[0]
    payload = []
    for (names, _), parts_sums in zip(found, sums, strict=True):
        rows = sum(values[0] for values in parts_sums)
        hashes = [sum(values[index] for values in parts_sums) % (1 << 64) for index in range(1, 1 + len(HASH_KEYS))]
        payload.append({"columns": names, "rows": rows, "hashes": hashes})
    return digest(payload)


def tables_on_dask(
    prepared: Path,
    features: Path,
    columns: dict[str, str],
    segments: list[str],
    spec: FeatureSpec,
    model: BaseEstimator,
    cap: int,
) -> ReferenceTables:
    """The reference summarized on the cluster (the default Dask client, or any Dask scheduler set).

    Args:
        prepared: its prepared rows (absolute path: workers read it).
        features: its features (with the target).
        columns: {input column: schema type}, in the order the monitor compares them.
        segments: the segment columns (monitor.segments).
        spec: the feature spec (features, target, task).
        model: the model whose scores the chunks' are compared with (sent to each worker once).
        cap: engine.max_distinct_values, the most distinct numbers a merged column may hold.

    Raises:
        UserError: the tables hold no rows, or different numbers of rows; a column past the cap.
    """
    import dask

    where = f"the reference ({prepared})"
    prepared_parts, feature_parts = (
        row_groups(prepared, "run `dvc repro prepare` first"),
        row_groups(features, "run `dvc repro featurize` first"),
    )
    summarized = _tree([dask.delayed(summarize_prepared)(part, columns) for part in prepared_parts], merge_prepared, cap, where)
    segmented = _tree([dask.delayed(summarize_segments)(part, segments, columns) for part in prepared_parts], merge_segments, cap, where)
    model_task = dask.delayed(model, pure=True)
    scored = [dask.delayed(score_part)(part, model_task, spec, True, []) for part in feature_parts]
    merged_scores = _tree(scored, merge_scored, cap, f"the reference ({features})")
    whole, by_segment, scores = dask.compute(summarized, segmented, merged_scores)
    rows = whole[next(iter(columns))].rows if whole and columns else 0
    if not rows or scores is None:
        fail(f"{prepared}: the reference (the test split) has no rows; widen data.splits.test in conf/data/ and rerun `dvc repro prepare`")
    if scores.prediction.rows != rows:
        fail(f"{prepared} and {features} hold different rows; run `dvc repro featurize`")
    by_segment = by_segment or SegmentPart({}, {})
    rebased = {
        segment: {value: {name: within(whole[name], table) for name, table in tables.items()} for value, tables in values.items()}
        for segment, values in by_segment.tables.items()
    }
    return ReferenceTables(whole, rebased, by_segment.rows, scores.prediction, scores.table, rows)
