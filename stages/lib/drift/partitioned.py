"""drift-check's reading and summing on the dask engine: every row group of both windows is one task, summarized on a
worker into exact mergeable per-column summaries (`stages.lib.drift.summaries`; the model's scores too, the model
applied per row group), merged in a tree of tasks in the tables' order; only the merged summaries reach this process.
The findings equal the pandas engine's (`stages.drift_check.drift_findings`): the counts are exact, so they do not
depend on how the windows are cut into parts, nor on the number of workers.

Dask is imported inside `findings_on_dask` only, so the pandas engine never loads it; the per-part functions are
module-level so that workers import them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator

from stages.lib import exact
from stages.lib.catalog import FeatureSpec
from stages.lib.drift.counts import ExactSum
from stages.lib.drift.summaries import ColumnSummary, merge, summarize
from stages.lib.drift.tables import _one_chunk_each
from stages.lib.errors import fail
from stages.lib.io import parquet_files
from stages.lib.models import predict_scores

MERGED_AT_ONCE = 8  # parts merged by one task of the tree: its depth is log8 of the row groups

Part = tuple[str, int]  # (Parquet file, row group): one task


def row_groups(path: Path, hint: str) -> list[Part]:
    """Every row group of a table (a Parquet file or a folder of parts), in the table's order; from the footers only."""
    parts: list[Part] = []
    for file in parquet_files(path, hint):
        try:
            groups = pq.ParquetFile(file).num_row_groups
        except (pa.ArrowException, OSError) as error:
            fail(f"{file}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
        parts.extend((str(file), group) for group in range(groups))
    return parts


def read_row_group(part: Part, columns: Sequence[str]) -> pd.DataFrame:
    """One row group's `columns` (those it holds), converted as `tables.read_columns` converts the whole table."""
    file, group = part
    try:
        parquet = pq.ParquetFile(file)
        wanted = [name for name in dict.fromkeys(columns) if name in parquet.schema_arrow.names]
        table = _one_chunk_each(parquet.read_row_group(group, columns=wanted, use_pandas_metadata=True))
        frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True)
        return frame
    except (pa.ArrowException, OSError) as error:
        fail(f"{file}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")


def summarize_prepared(part: Part, columns: dict[str, str]) -> dict[str, ColumnSummary]:
    """One row group of a prepared window: each of `columns` ({name: schema type}) it holds, summarized."""
    frame = read_row_group(part, list(columns))
    return {name: summarize(frame[name], kind) for name, kind in columns.items() if name in frame.columns}


def merge_prepared(parts: list[dict[str, ColumnSummary]], cap: int, where: str) -> dict[str, ColumnSummary]:
    """Consecutive row groups' summaries as one, per column (a column only some parts hold: from those)."""
    names = list(dict.fromkeys(name for part in parts for name in part))
    return {name: merge([part[name] for part in parts if name in part], cap, f"column '{name}' of {where}") for name in names}


@dataclass(frozen=True)
class ScoredPart:
    """What drift-check needs of one window's features: the model's scores summarized, and for the current window
    the outcomes by score (the window's metrics) and the exact sums of the numeric features (their shifts)."""

    prediction: ColumnSummary
    table: exact.ScoreTable | None  # classification: rows and positives per distinct score
    errors: exact.ErrorSums | None  # regression: the error sums
    sums: dict[str, ExactSum]


def score_part(part: Part, model: BaseEstimator, spec: FeatureSpec, outcomes: bool, numeric: list[str]) -> ScoredPart:
    """One row group of a window's features: the model applied to it, its scores summarized (`outcomes`: with the
    target's table or error sums; `numeric`: the features whose exact sums are kept)."""
    frame = read_row_group(part, [*spec.features, spec.target])
    scores = predict_scores(model, frame[spec.features], spec.task) if len(frame) else np.zeros(0)
    table = errors = None
    if outcomes and spec.target in frame.columns:
        actual = frame[spec.target].to_numpy(dtype=np.float64, na_value=np.nan)
        if spec.task == "classification":
            table = exact.score_table(actual, scores)
        else:
            errors = exact.error_sums(actual, scores)
    sums = {name: ExactSum.of(frame[name].to_numpy(dtype=np.float64, na_value=np.nan)) for name in numeric if name in frame.columns}
    return ScoredPart(summarize(pd.Series(scores, dtype=np.float64), "numeric"), table, errors, sums)


def merge_scored(parts: list[ScoredPart], cap: int, where: str) -> ScoredPart:
    tables = [part.table for part in parts if part.table is not None]
    errors = [part.errors for part in parts if part.errors is not None]
    sums: dict[str, ExactSum] = {}
    for part in parts:
        for name, value in part.sums.items():
            sums[name] = sums[name] + value if name in sums else value
    return ScoredPart(
        prediction=merge([part.prediction for part in parts], cap, f"the model's scores of {where}"),
        table=exact.merge_score_tables(tables) if tables else None,
        errors=exact.merge_error_sums(errors) if errors else None,
        sums=sums,
    )


def _tree(parts: list[Any], combine: Callable[..., Any], *arguments: Any) -> Any:
    """The parts merged in a tree of Dask tasks, consecutive parts together (the order a whole read has); None if none."""
    import dask

    if not parts:
        return None
    while True:  # at least once: a single part is checked against the cap too
        parts = [dask.delayed(combine)(parts[start : start + MERGED_AT_ONCE], *arguments) for start in range(0, len(parts), MERGED_AT_ONCE)]
        if len(parts) == 1:
            return parts[0]


@dataclass(frozen=True)
class WindowSummaries:
    """Both windows, summarized: prepared columns by name, and the model's scores of their features."""

    reference: dict[str, ColumnSummary]
    current: dict[str, ColumnSummary]
    reference_scores: ScoredPart | None
    current_scores: ScoredPart | None


def findings_on_dask(
    prepared: tuple[Path, Path],
    features: tuple[Path, Path],
    columns: dict[str, str],
    spec: FeatureSpec,
    model: BaseEstimator,
    numeric: list[str],
    cap: int,
) -> WindowSummaries:
    """Both windows summarized on the cluster (the default Dask client, or any Dask scheduler set).

    Args:
        prepared: the reference and current prepared tables (absolute paths: workers read them).
        features: the reference and current feature tables.
        columns: {prepared column: schema type} to summarize (the inputs and the target).
        spec: the feature spec (features, target, task).
        model: the model whose scores are compared (sent to each worker once).
        numeric: the current window's features whose exact sums are wanted (for their shifts).
        cap: engine.max_distinct_values, the most distinct numbers a merged column may hold.
    """
    import dask

    hint = "run `dvc repro prepare` first"
    model_task = dask.delayed(model, pure=True)
    merged = []
    for name, table in zip(("reference", "current"), prepared, strict=True):
        parts = [dask.delayed(summarize_prepared)(part, columns) for part in row_groups(table, hint)]
        merged.append(_tree(parts, merge_prepared, cap, f"the {name} window ({table})"))
    hint = "run `dvc repro featurize` first"
    for name, table in zip(("reference", "current"), features, strict=True):
        current = name == "current"
        scored = [dask.delayed(score_part)(part, model_task, spec, current, numeric if current else []) for part in row_groups(table, hint)]
        merged.append(_tree(scored, merge_scored, cap, f"the {name} window ({table})"))
    reference, current, reference_scores, current_scores = dask.compute(*merged)
    return WindowSummaries(reference or {}, current or {}, reference_scores, current_scores)
