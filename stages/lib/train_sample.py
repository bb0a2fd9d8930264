"""train.sample_rows: a seeded sample of the train split, stratified by calendar month of the time column.

Both engines draw the same rows. The sample is planned from the number of rows in each month (UTC) of the
time column, added up over the partitions in their order: each month gets its share of the sample (largest
remainders, so the shares add up to exactly `sample_rows`), and a seeded generator picks, month by month in
time order, which of that month's rows are kept, by their rank among the month's rows in table order. A
partition then keeps the ranks that fall inside it. Ranks count rows in table order whatever the cut, so the
sample depends on the rows, the size and the seed only, never on the partitions or the workers; the kept rows
stay in table order (time order, as featurize writes the split).

The pandas engine samples the loaded table as one partition; the dask engine (`sample_partitioned`) counts
each part's months on the workers, plans the sample in the stage, and collects only the sampled rows. Dask
is imported inside that function only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.errors import fail
from stages.lib.io import parquet_files

Counts = dict[int, int]  # calendar month (year * 12 + month - 1) -> rows


@dataclass(frozen=True)
class Sample:
    """The rows train fits on and how many the split had."""

    rows: pd.DataFrame
    available: int  # rows of the whole train split

    @property
    def card(self) -> dict[str, int]:
        """The model card's `sample`: rows used of rows available."""
        return {"rows_used": len(self.rows), "rows_available": self.available}


def month_keys(times: pd.Series, where: str) -> np.ndarray:
    """Each timestamp's calendar month as one number (year * 12 + month - 1); a missing or non-time value stops."""
    if not pd.api.types.is_datetime64_any_dtype(times):
        fail(
            f"{where}: column '{times.name}' must hold timestamps to stratify train.sample_rows by month, got {times.dtype}; rerun featurize"
        )
    if times.isna().any():
        fail(f"{where}: column '{times.name}' has {int(times.isna().sum()):,} missing time(s); train.sample_rows needs every row's month")
    months: np.ndarray = (times.dt.year * 12 + times.dt.month - 1).to_numpy(dtype=np.int64)
    return months


def month_counts(times: pd.Series, where: str) -> Counts:
    months, counts = np.unique(month_keys(times, where), return_counts=True)
    return {int(month): int(count) for month, count in zip(months, counts, strict=True)}


def allocate(counts: Mapping[int, int], size: int) -> Counts:
    """Rows to draw from each month: its share of `size` rounded down, the rows left over going one each to the
    months with the largest remainders (earlier months first on ties). Exact integers: shares add up to `size`."""
    total = sum(counts.values())
    months = sorted(counts)
    shares = {month: size * counts[month] // total for month in months}
    remainders = sorted(months, key=lambda month: (-(size * counts[month] % total), month))
    for month in remainders[: size - sum(shares.values())]:
        shares[month] += 1
    return shares


def plan(parts: Sequence[Counts], size: int | None, seed: int) -> list[dict[int, np.ndarray]] | None:
    """For each partition, per month, the ranks (among that partition's rows of the month) of the rows to keep;
    None when the whole split is used (`size` None or at least its rows)."""
    totals: Counts = {}
    for counts in parts:
        for month, count in counts.items():
            totals[month] = totals.get(month, 0) + count
    if size is None or size >= sum(totals.values()):
        return None
    generator = np.random.default_rng(seed)
    chosen = {month: np.sort(generator.choice(totals[month], share, replace=False)) for month, share in allocate(totals, size).items()}
    kept: list[dict[int, np.ndarray]] = []
    offsets = dict.fromkeys(totals, 0)
    for counts in parts:
        mine = {}
        for month, count in counts.items():
            start = offsets[month]
            ranks = chosen[month]
            mine[month] = ranks[(ranks >= start) & (ranks < start + count)] - start
            offsets[month] = start + count
        kept.append(mine)
    return kept


def take(frame: pd.DataFrame, time: str, keep: Mapping[int, np.ndarray] | None, where: str) -> pd.DataFrame:
    """The rows of one partition at the planned ranks of their month, in table order (all rows when `keep` is None)."""
    if keep is None:
        return frame
    months = month_keys(frame[time], where)
    mask = np.zeros(len(frame), dtype=bool)
    for month, ranks in keep.items():
        mask[np.flatnonzero(months == month)[ranks]] = True
    return frame[mask]


def sample_frame(frame: pd.DataFrame, time: str, size: int | None, seed: int, where: str) -> Sample:
    """The pandas engine: the loaded split as one partition; the same object back when the whole split is used."""
    kept = plan([month_counts(frame[time], where)], size, seed) if size is not None and size < len(frame) else None
    if kept is None:
        return Sample(rows=frame, available=len(frame))
    return Sample(rows=take(frame, time, kept[0], where).reset_index(drop=True), available=len(frame))


def _part_counts(path: Path, time: str) -> Counts:
    return month_counts(pd.read_parquet(path, engine="pyarrow", columns=[time])[time], str(path))


def _part_sample(path: Path, time: str, keep: Mapping[int, np.ndarray] | None) -> pd.DataFrame:
    return take(pd.read_parquet(path, engine="pyarrow"), time, keep, str(path))


def sample_partitioned(path: Path, time: str, size: int | None, seed: int, hint: str) -> Sample:
    """The dask engine (the default client runs the tasks): each part's month counts on the workers, the plan here,
    then each worker reads its part and sends back only the planned rows. A single file is one part. With `size`
    None the whole split is collected, as the pandas engine reads it."""
    import dask

    parts = [part.resolve() for part in parquet_files(path, hint)]
    counts = dask.compute(*[dask.delayed(_part_counts)(part, time) for part in parts]) if size is not None else None
    kept = None if counts is None else plan(counts, size, seed)
    frames = dask.compute(
        *[dask.delayed(_part_sample)(part, time, None if kept is None else kept[index]) for index, part in enumerate(parts)]
    )
    rows = pd.concat(frames, ignore_index=True)
    return Sample(rows=rows, available=len(rows) if counts is None else sum(sum(part.values()) for part in counts))
