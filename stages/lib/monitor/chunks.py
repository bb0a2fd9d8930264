"""The monitor's chunk grid: which rows of the production store each chunk holds, planned from batch metadata alone.

By time, the grid does not depend on the store: chunks of a duration are counted from Monday 1970-01-05
00:00 UTC (so 7D chunks are ISO weeks in UTC and 1D chunks UTC days), and `month` chunks are UTC calendar
months. By rows, chunk k holds rows k*size .. (k+1)*size - 1 of the store in time order (ties by row id).
A plan names the batches whose rows may fall in each chunk, so the monitor reads only those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from stages.lib.config.monitor import MONTH, Chunk
from stages.lib.production import BatchMeta

ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: weekly chunks are ISO weeks (UTC)


@dataclass(frozen=True)
class ChunkPlan:
    """One chunk: its place on the grid and the batches that may hold its rows."""

    index: int  # 0-based position in the timeline
    label: str  # its start (time chunks) or its row range (row chunks), for people
    batches: tuple[str, ...]  # ids of the batches whose rows may fall in it, in arrival order
    start: pd.Timestamp | None = None  # time chunks: the half-open window [start, end)
    end: pd.Timestamp | None = None
    first_row: int = 0  # row chunks: positions [first_row, stop_row) in the store's time order
    stop_row: int = 0
    offset: int = 0  # row chunks: the position of the first row of `batches` taken together

    def identity(self) -> dict[str, object]:
        """What places the chunk on the grid (part of its cache key)."""
        if self.start is not None and self.end is not None:
            return {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"first_row": self.first_row, "stop_row": self.stop_row, "offset": self.offset}


def utc(text: str) -> pd.Timestamp:
    """An ISO time from batch metadata, in UTC."""
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _cell(stamp: pd.Timestamp, chunk: Chunk) -> int:
    """The grid cell a time falls in."""
    if chunk.size == MONTH:
        return stamp.year * 12 + stamp.month - 1
    duration = chunk.duration
    assert duration is not None  # Chunk validates: by time, size is month or a duration
    return int((stamp - ORIGIN) // duration)


def _cell_window(cell: int, chunk: Chunk) -> tuple[pd.Timestamp, pd.Timestamp]:
    if chunk.size == MONTH:
        start = pd.Timestamp(year=cell // 12, month=cell % 12 + 1, day=1, tz="UTC")
        return start, start + pd.DateOffset(months=1)
    duration = chunk.duration
    assert duration is not None
    return ORIGIN + cell * duration, ORIGIN + (cell + 1) * duration


def _time_label(start: pd.Timestamp, chunk: Chunk) -> str:
    if chunk.size == MONTH:
        return start.strftime("%Y-%m")
    return start.strftime("%Y-%m-%d") if start == start.normalize() else start.strftime("%Y-%m-%d %H:%M")


def plan_time_chunks(metas: Iterable[BatchMeta], chunk: Chunk) -> list[ChunkPlan]:
    """Every grid cell a batch's time range touches, in time order, with the batches touching it."""
    touching: dict[int, list[str]] = {}
    for meta in metas:
        for cell in range(_cell(utc(meta.first), chunk), _cell(utc(meta.last), chunk) + 1):
            touching.setdefault(cell, []).append(meta.batch_id)
    plans = []
    for index, cell in enumerate(sorted(touching)):
        start, end = _cell_window(cell, chunk)
        plans.append(ChunkPlan(index=index, label=_time_label(start, chunk), batches=tuple(touching[cell]), start=start, end=end))
    return plans


def _clusters(metas: Iterable[BatchMeta]) -> list[list[BatchMeta]]:
    """Batches grouped where their time ranges overlap (or touch): only inside a group must rows be sorted together."""
    clusters: list[list[BatchMeta]] = []
    latest: pd.Timestamp | None = None
    for meta in sorted(metas, key=lambda meta: (utc(meta.first), meta.batch_id)):
        if clusters and latest is not None and utc(meta.first) <= latest:
            clusters[-1].append(meta)
            latest = max(latest, utc(meta.last))
        else:
            clusters.append([meta])
            latest = utc(meta.last)
    return clusters


def plan_row_chunks(metas: Iterable[BatchMeta], size: int) -> list[ChunkPlan]:
    """Chunks of `size` rows in the store's time order (the last one may be shorter)."""
    spans = []  # (first position, stop position, batch ids) per cluster
    position = 0
    for cluster in _clusters(metas):
        rows = sum(meta.rows for meta in cluster)
        spans.append((position, position + rows, [meta.batch_id for meta in cluster]))
        position += rows
    plans = []
    for index, first in enumerate(range(0, position, size)):
        stop = min(first + size, position)
        involved = [span for span in spans if span[0] < stop and span[1] > first]
        batches = tuple(batch for span in involved for batch in span[2])
        plans.append(
            ChunkPlan(
                index=index, label=f"rows {first + 1:,}-{stop:,}", batches=batches, first_row=first, stop_row=stop, offset=involved[0][0]
            )
        )
    return plans


def plan_chunks(metas: list[BatchMeta], chunk: Chunk) -> list[ChunkPlan]:
    """The chunks of the store, in time order (empty for an empty store)."""
    if chunk.by == "rows":
        assert isinstance(chunk.size, int)
        return plan_row_chunks(metas, chunk.size)
    return plan_time_chunks(metas, chunk)


def in_time_order(rows: pd.DataFrame, time: str, id_column: str) -> pd.DataFrame:
    """Rows sorted by time, then row id (stable): the order every chunk keeps, whatever the batches' order."""
    return rows.sort_values([time, id_column], kind="mergesort", ignore_index=True)


def chunk_rows(plan: ChunkPlan, frames: Mapping[str, pd.DataFrame], time: str, id_column: str) -> pd.DataFrame:
    """The chunk's rows, in time order, from its batches' frames (each with `time` as UTC datetimes)."""
    parts = [frames[batch] for batch in plan.batches]
    if not parts:
        return pd.DataFrame()
    rows = in_time_order(pd.concat(parts, ignore_index=True), time, id_column)
    if plan.start is not None and plan.end is not None:
        inside = (rows[time] >= plan.start) & (rows[time] < plan.end)
        return rows[inside.to_numpy()].reset_index(drop=True)
    return rows.iloc[plan.first_row - plan.offset : plan.stop_row - plan.offset].reset_index(drop=True)
