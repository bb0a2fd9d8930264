"""Spans of time in a data contract's own units, and the one place that does arithmetic with them.

A span is either fixed, a `Duration` (13h, 1D, 7D, 30min, 4 weeks: a pd.Timedelta that remembers its
text), or calendar, a `CalendarSpan` (1 month, 12 months, 1 year, 5 years): a whole number of months,
applied with calendar arithmetic (2013-01-01 minus 1 year is 2012-01-01, whatever the leap days).
History windows, `known_after` and the data's time step are spans; `before` moves timestamps back by
one, for featurize's history features and scoring's coverage rule alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

# Words for calendar units, as months; written out, so "1M" (minute or month?) stays refused by pandas.
CALENDAR_UNITS = {"month": 1, "months": 1, "year": 12, "years": 12}
WEEK_UNITS = ("week", "weeks")  # pandas reads "4W" but not "4 weeks"
_WORDS = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
SPAN_EXAMPLES = "e.g. 13h, 1D, 7D, 4 weeks, 1 month, 12 months, 1 year"


class Duration(pd.Timedelta):
    """A pd.Timedelta that remembers its text ("13h"), so outputs that quote the config stay as written."""

    text: str

    def __new__(cls, text: str, value: pd.Timedelta | None = None) -> Duration:
        # From nanoseconds, not the Timedelta: pandas would hand that same object back instead of a Duration.
        duration = super().__new__(cls, text) if value is None else super().__new__(cls, int(value.value), unit="ns")
        duration.text = text
        return duration


@dataclass(frozen=True)
class CalendarSpan:
    """A whole number of calendar months (a year is 12); equal spans compare equal however written."""

    months: int
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        """The canonical text (spec.json), which `parse_span` reads back: "1 year", "5 years", "3 months"."""
        count, unit = (self.months // 12, "year") if self.months % 12 == 0 else (self.months, "month")
        return f"{count} {unit}{'' if count == 1 else 's'}"

    def offset(self) -> pd.DateOffset:
        return pd.DateOffset(months=self.months)


Span = pd.Timedelta | CalendarSpan


def parse_span(text: str) -> Span:
    """A span from its text: calendar words (month(s), year(s)), weeks as words, or anything pd.Timedelta reads.

    Raises:
        ValueError: the text is no span, or not a positive one.
    """
    words = _WORDS.match(text)
    span: Span
    if words and words.group(2) in CALENDAR_UNITS:
        span = CalendarSpan(int(words.group(1)) * CALENDAR_UNITS[words.group(2)], text)
        if span.months <= 0:
            raise ValueError(f"must be positive, got {text!r}")
        return span
    weeks = words and words.group(2) in WEEK_UNITS
    span = Duration(text, pd.Timedelta(weeks=int(words.group(1)))) if weeks and words else Duration(text)
    if span <= pd.Timedelta(0):
        raise ValueError(f"must be positive, got {text!r}")
    return span


def span_text(span: Span) -> str:
    """The text a span was written as; for one built in code, a text `parse_span` reads back (largest whole unit)."""
    written = getattr(span, "text", "")
    if written:
        return str(written)
    if isinstance(span, CalendarSpan):
        return str(span)
    nanoseconds = int(span.value)
    for unit, size in (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    return f"{nanoseconds}ns"


def before(stamps: np.ndarray, span: Span) -> np.ndarray:
    """Timestamps (int64 nanoseconds since the epoch, UTC) moved back by `span`.

    Fixed spans subtract their nanoseconds; calendar spans subtract whole months on the UTC calendar,
    with the day clipped to the month's end (2013-03-31 minus 1 month is 2013-02-28).
    """
    if isinstance(span, CalendarSpan):
        moved = pd.DatetimeIndex(np.asarray(stamps, dtype=np.int64).view("datetime64[ns]")) - span.offset()
        shifted: np.ndarray = moved.as_unit("ns").asi8
        return shifted
    return np.asarray(stamps, dtype=np.int64) - int(span.value)


@lru_cache(maxsize=64)
def _month_lengths(months: int) -> tuple[pd.Timedelta, pd.Timedelta]:
    # Every month start of a whole 400-year Gregorian cycle: the shortest and longest `months` months there are.
    starts = pd.date_range("2000-01-01", periods=4800, freq="MS")
    lengths = (starts + pd.DateOffset(months=months)) - starts
    return lengths.min(), lengths.max()


def bounds(span: Span) -> tuple[pd.Timedelta, pd.Timedelta]:
    """The shortest and longest the span can be (equal for a fixed span; 28 and 31 days for 1 month)."""
    if isinstance(span, CalendarSpan):
        return _month_lengths(span.months)
    return pd.Timedelta(span), pd.Timedelta(span)


def shorter(window: Span, step: Span) -> bool:
    """Whether `window` can be shorter than `step` somewhere on the calendar."""
    if isinstance(window, CalendarSpan) and isinstance(step, CalendarSpan):
        return window.months < step.months
    return bounds(window)[0] < bounds(step)[1]


def widest(spans: tuple[Span, ...] | list[Span]) -> Span:
    """The span that can reach back furthest (for messages; coverage compares every window)."""
    return max(spans, key=lambda span: bounds(span)[1])


def infer_step(times: pd.Series, timezone: str | None) -> tuple[Span, str] | None:
    """The data's own time step, from its timestamps in local time, and how it was found (None: under two distinct times).

    All on 1 January at midnight: 1 year; all on the 1st of a month at midnight: 1 month; all at midnight:
    7 days if every row falls on one weekday, else 1 day; otherwise the smallest gap between distinct times.
    """
    local = times.dt.tz_convert(timezone) if timezone else times
    distinct = pd.Series(local.unique()).sort_values(ignore_index=True)
    if len(distinct) < 2:
        return None
    if (distinct == distinct.dt.normalize()).all():
        if (distinct.dt.day == 1).all():
            if (distinct.dt.month == 1).all():
                return CalendarSpan(12), "every train time is 1 January at midnight"
            return CalendarSpan(1), "every train time is the 1st of a month at midnight"
        weekdays = distinct.dt.day_name().unique()
        if len(weekdays) == 1:
            return pd.Timedelta(days=7), f"every train time is a {weekdays[0]} at midnight"
        return pd.Timedelta(days=1), "every train time is at midnight"
    gap = distinct.diff().dropna().min()
    return pd.Timedelta(gap), "the smallest gap between distinct train times"


def schema_step(times: pd.Series, timezone: str | None, declared: Span | None, column: str) -> dict[str, str]:
    """The `time_step` entries of data/schema.yaml: the declared step, or the one inferred from train, and how it was found.

    Raises:
        UserError: the step is auto but train holds fewer than two distinct times.
    """
    if declared is not None:
        return {"time_step": span_text(declared), "time_step_source": "declared in data.time.step"}
    found = infer_step(times, timezone)
    if found is None:
        from stages.lib.errors import fail

        fail(
            f"conf/data/: data.time.step is auto, but the train split has {times.nunique()} distinct time(s) in column '{column}': "
            f"no step to infer; declare data.time.step ({SPAN_EXAMPLES}) or widen data.splits.train"
        )
    step, how = found
    return {"time_step": span_text(step), "time_step_source": f"inferred from train: {how}"}
