"""History features: the target's recent past per key, from outcomes known strictly before each row.

One sorted array of (key, time rank) per key lets a binary search count the events of a key up to a
time, so every row and window costs two searches, whatever the number of events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.features import category_text
from stages.lib.timespan import CalendarSpan, Span, before, bounds, parse_span


@dataclass(frozen=True)
class HistoryLookup:
    """What history features look back with: planned by featurize, kept in spec.json for scoring.

    keys: each a tuple of columns (empty: all rows); windows: their lengths; smoothing: shrink towards
    `prior` (the train mean of the target) as if this many prior rows were added; known_after: how long
    after its row an outcome is known.
    """

    keys: tuple[tuple[str, ...], ...]
    windows: tuple[Span, ...]
    smoothing: float
    prior: float
    known_after: Span

    def to_json(self) -> dict[str, Any]:
        """The spec.json form (fixed durations as pandas writes them, calendar ones as "1 year")."""
        return {
            "keys": [list(key) for key in self.keys],
            "windows": [str(window) for window in self.windows],
            "smoothing": self.smoothing,
            "prior": self.prior,
            "known_after": str(self.known_after),
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> HistoryLookup:
        return cls(
            keys=tuple(tuple(key) for key in payload["keys"]),
            windows=tuple(parse_span(window) for window in payload["windows"]),
            smoothing=float(payload["smoothing"]),
            prior=payload["prior"],
            known_after=parse_span(payload["known_after"]),
        )


def history_name(key: Sequence[str], window: Span, target: str, what: str) -> str:
    """The column name of one history feature.

    Args:
        key: the key columns (empty: all rows).
        window: how far back the feature looks.
        target: the target column.
        what: "mean" or "rows".

    Returns:
        e.g. history_origin_dest_30d_late_mean, history_all_7d_late_rows, history_all_5y_late_rows.
    """
    return f"history_{'_'.join(key) or 'all'}_{_duration(window)}_{target}_{what}"


def _duration(span: Span) -> str:
    """The largest whole unit that states the span exactly: 7d, 12h, 90min, 45s; calendar spans 5y or 18mo."""
    if isinstance(span, CalendarSpan):
        return f"{span.months // 12}y" if span.months % 12 == 0 else f"{span.months}mo"
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _key_codes(events: pd.DataFrame, rows: pd.DataFrame, key: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the key in both frames; -1 for row keys never seen among the events."""
    if not key:
        return np.zeros(len(events), dtype=np.int64), np.zeros(len(rows), dtype=np.int64)
    event_keys = pd.MultiIndex.from_frame(pd.DataFrame({name: category_text(events[[name]])[:, 0] for name in key}))
    row_keys = pd.MultiIndex.from_frame(pd.DataFrame({name: category_text(rows[[name]])[:, 0] for name in key}))
    levels = event_keys.unique().sort_values()
    return levels.get_indexer(event_keys).astype(np.int64), levels.get_indexer(row_keys).astype(np.int64)


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC), without a per-value Python detour."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def look_back(stamps: np.ndarray, known_after: Span, window: Span) -> tuple[np.ndarray, np.ndarray]:
    """The window of outcomes a row at each time reads: (start, end], with end = time - known_after and start = end - window.

    The one rule featurize's history features and scoring's coverage both apply; calendar spans move by whole
    months (`stages.lib.timespan.before`).

    Args:
        stamps: the rows' times, int64 nanoseconds since the epoch (UTC).
        known_after: how long after its row an outcome is known.
        window: how far back the feature looks.

    Returns:
        (start, end), int64 nanoseconds, like `stamps`.
    """
    end = before(stamps, known_after)
    return before(end, window), end


def _position(composite: np.ndarray, unique_times: np.ndarray, codes: np.ndarray, stride: int, bound: np.ndarray) -> np.ndarray:
    """Index into the sorted events just past those of each row's key at or before its bound."""
    rank = np.searchsorted(unique_times, bound, side="right")
    return np.searchsorted(composite, codes * stride + rank, side="left")


def history_features(
    rows: pd.DataFrame,
    events: pd.DataFrame,
    lookup: HistoryLookup,
    time: str,
    target: str,
) -> pd.DataFrame:
    """Per key and window, the smoothed target mean and the row count over outcomes known before each row.

    An event (a labelled row) counts for a row at time t once its outcome is known, `event time +
    known_after <= t`, and while it is in the window, `t - known_after - window < event time`.
    `known_after` must be positive, so a row never sees its own outcome or any later one. Calendar spans
    (1 month, 1 year) are applied month-wise (`look_back`).

    Args:
        rows: the rows to featurize (the time and key columns), in any order.
        events: the labelled rows to look back on (time, key and target columns).
        lookup: the keys, windows, smoothing, prior (the smoothed mean of a row with no known outcome)
            and known_after.
        time: the time column.
        target: the target column.

    Returns:
        Two columns per key and window (`history_name`: mean, rows), indexed like `rows`.

    Raises:
        ValueError: `known_after` is not positive.
    """
    event_times, row_times = _nanoseconds(events[time]), _nanoseconds(rows[time])
    values = events[target].to_numpy(dtype=np.float64)
    unique_times = np.unique(event_times)
    stride = len(unique_times) + 1
    prior, smoothing = lookup.prior, lookup.smoothing
    if bounds(lookup.known_after)[0] <= pd.Timedelta(0):
        raise ValueError("known_after must be positive")
    reaches = {window: look_back(row_times, lookup.known_after, window) for window in lookup.windows}
    columns: dict[str, np.ndarray] = {}
    for key in lookup.keys:
        event_codes, row_codes = _key_codes(events, rows, key)
        # One sorted array of (key, time rank) lets a single searchsorted count events per key and time.
        composite = event_codes * stride + np.searchsorted(unique_times, event_times)
        order = np.argsort(composite, kind="stable")
        composite = composite[order]
        sums = np.concatenate([[0.0], np.cumsum(values[order])])
        known = row_codes >= 0

        for window, (start, end) in reaches.items():
            upper = _position(composite, unique_times, row_codes, stride, end)
            lower = _position(composite, unique_times, row_codes, stride, start)
            count = np.where(known, upper - lower, 0).astype(np.float64)
            total = np.where(known, sums[upper] - sums[lower], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):  # no known outcome yet: NaN, or the prior when smoothed
                mean = (total + smoothing * prior) / (count + smoothing) if smoothing > 0 else total / count
            columns[history_name(key, window, target, "mean")] = np.where(count > 0, mean, prior if smoothing > 0 else np.nan)
            columns[history_name(key, window, target, "rows")] = count
    return pd.DataFrame(columns, index=rows.index)
