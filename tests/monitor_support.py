"""Production stores for the monitor's tests, appended with the store's own functions (stages/lib/production.py),
and synthetic data whose scores are calibrated probabilities of its outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.catalog import FeatureSpec
from stages.lib.production import PREDICTION, BatchMeta, LabelsMeta, append_batch, append_labels

MODEL_MD5 = "0123456789abcdef0123456789abcdef"
SPEC = FeatureSpec.plain(numeric=["temp", "distance"], categorical=["origin", "carrier"])
ID = "row_id"


def rows(count: int, start: str, days: float, seed: int, shift: float = 0.0, first_id: int = 0) -> pd.DataFrame:
    """`count` flights spread evenly over `days` from `start` (UTC), scored by a calibrated model; `shift` moves temp."""
    rng = np.random.default_rng(seed)
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, count)).round(), unit="s")
    temp = rng.normal(60 + shift, 10, count)
    score = 1 / (1 + np.exp(-(temp - 60) / 8 - 1.2))
    return pd.DataFrame(
        {
            ID: [f"r{first_id + index:07d}" for index in range(count)],
            "time_hour": times,
            "temp": temp,
            "distance": rng.uniform(100, 2500, count).round(),
            "origin": rng.choice(["EWR", "JFK", "LGA"], count),
            "carrier": rng.choice(["AA", "B6", "UA"], count),
            PREDICTION: score,
            "late": (rng.random(count) < score).astype(np.int8),
        }
    )


def reference_rows(count: int = 4000, seed: int = 99) -> tuple[pd.DataFrame, np.ndarray]:
    """The reference (test split): prepared rows with the outcome, and the model's scores of them."""
    frame = rows(count, "2013-09-01", 61, seed)
    return frame.drop(columns=[ID, PREDICTION]), frame[PREDICTION].to_numpy()


def write_batch(root: Path, index: int, frame: pd.DataFrame, model_md5: str = MODEL_MD5) -> BatchMeta:
    """A scored batch (without its outcomes), appended as make score-batch appends it: it must be the store's batch `index`."""
    meta = append_batch(
        frame.drop(columns=["late"]), "time_hour", "workspace", "0" * 40, model_md5, frame["time_hour"].max().isoformat(), root
    )
    assert meta.batch_id == f"batch-{index:04d}", "batches are appended in order"
    return meta


def write_labels(root: Path, index: int, frame: pd.DataFrame, batch_id: str) -> LabelsMeta:
    """Outcomes of rows of one batch, appended as make add-labels appends them."""
    meta = append_labels(frame[[ID, "late"]], ID, "2014-01-01T00:00:00+00:00", root)
    assert meta.labels_id == f"labels-{index:04d}" and set(meta.batches) == {batch_id}
    return meta


def weekly_batches(weeks: int, per_week: int = 1400, seed: int = 0, shifts: dict[int, float] | None = None) -> list[pd.DataFrame]:
    """Weekly batches from Friday 2013-11-01 (so each straddles two Monday-based chunks), ids unique across them."""
    shifts = shifts or {}
    start = pd.Timestamp("2013-11-01", tz="UTC")
    return [
        rows(per_week, (start + pd.Timedelta(days=7 * week)).isoformat(), 7, seed + week, shifts.get(week, 0.0), first_id=week * per_week)
        for week in range(weeks)
    ]


def write_labelled_batches(root: Path, frames: list[pd.DataFrame]) -> None:
    """Each frame appended as a batch, with its outcomes right after it."""
    for index, frame in enumerate(frames, start=1):
        write_batch(root, index, frame)
        write_labels(root, index, frame, f"batch-{index:04d}")
