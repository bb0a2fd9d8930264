"""The `monitor` section (conf/monitor/): the production store's row id, how the monitor cuts it into
chunks, segments, intervals, the loss model's sample, alert bounds, and how `make simulate-production`
replays the default data."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import model_validator

from stages.lib.config.base import (
    ConfigError,
    DurationText,
    Flag,
    Int,
    Names,
    OptionalNumber,
    OptionalPositive,
    Positive,
    Share,
    Strict,
    Text,
    choice,
    expect,
    rule,
)

CHUNK_BY = ("time", "rows")
MONTH = "month"


class Chunk(Strict):
    """by time: calendar chunks of `size` (a duration, or `month`); by rows: `size` rows each, in time order."""

    by: Annotated[str, choice(CHUNK_BY)]
    size: Annotated[str | int, expect(str, int, described="a duration (7D), month, or a whole number of rows")]

    @model_validator(mode="after")
    def _size_fits(self) -> Chunk:
        if self.by == "rows":
            if not isinstance(self.size, int) or self.size < 1:
                raise ConfigError(f"must be a whole number of rows (at least 1) when chunk.by is rows, got {self.size!r}", at=("size",))
        elif isinstance(self.size, int) or (self.size != MONTH and not _is_duration(self.size)):
            raise ConfigError(f"must be a duration such as 7D or 1D, or month, when chunk.by is time, got {self.size!r}", at=("size",))
        return self

    @property
    def duration(self) -> pd.Timedelta | None:
        """The fixed length of a time chunk; None for calendar months or row chunks."""
        return pd.Timedelta(self.size) if self.by == "time" and self.size != MONTH else None


def _is_duration(text: str) -> bool:
    try:
        return pd.Timedelta(text) > pd.Timedelta(0)
    except ValueError:
        return False


class Bootstrap(Strict):
    resamples: Annotated[int, rule(lambda value: value >= 100, "at least 100"), expect(int)]
    level: Annotated[float, rule(lambda value: 0.5 <= value < 1.0, "in [0.5, 1)"), expect(int, float)]
    seed: Int


class Alerts(Strict):
    """Bounds a chunk must stay within (None: off)."""

    min_rows: Positive  # fewer rows: too small to judge; the chunk says so and does not alert
    min_roc_auc: OptionalNumber  # realized, or estimated while outcomes are missing (classification)
    max_mae: OptionalNumber  # realized, or estimated (regression)
    max_drift_share: Annotated[float | None, rule(lambda value: value is None or 0.0 < value <= 1.0, "in (0, 1] or null")]
    prediction_drift: Flag


class Simulation(Strict):
    batch: DurationText  # the length of one replayed batch
    labels_delay: Annotated[int, rule(lambda value: value >= 0, "0 or more batches"), expect(int)]


class MonitorConfig(Strict):
    id_column: Text
    chunk: Chunk
    segments: Names
    segment_min_rows: Positive
    segment_fdr: Share
    bootstrap: Bootstrap
    estimator_rows: OptionalPositive  # regression (DLE): the loss model's seeded sample of reference rows; None: every row
    alerts: Alerts
    simulation: Simulation
