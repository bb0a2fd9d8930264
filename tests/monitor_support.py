"""Production stores for the monitor's tests, written in the store's layout (stages/lib/production.py) directly,
and synthetic data whose scores are calibrated probabilities of its outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.catalog import FeatureSpec
from stages.lib.io import parquet_writer, sha256_file
from stages.lib.production import BATCHES, LABELS, PREDICTION, BatchMeta, LabelsMeta, batch_path, labels_path

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
    """A scored batch (without its outcomes) and its metadata, as make score-batch appends them."""
    batch_id = f"batch-{index:04d}"
    path = batch_path(batch_id, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet_writer(frame.drop(columns=["late"]))(path)
    meta = BatchMeta(
        batch_id=batch_id,
        rows=len(frame),
        first=frame["time_hour"].min().isoformat(),
        last=frame["time_hour"].max().isoformat(),
        model="workspace",
        model_sha="0" * 40,
        model_md5=model_md5,
        scored_at=frame["time_hour"].max().isoformat(),
        sha256=sha256_file(path),
    )
    (root / BATCHES / f"{batch_id}.json").write_text(json.dumps(meta.to_json()))
    return meta


def write_labels(root: Path, index: int, frame: pd.DataFrame, batch_id: str) -> LabelsMeta:
    """Outcomes of rows of one batch, as make add-labels appends them."""
    labels_id = f"labels-{index:04d}"
    path = labels_path(labels_id, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet_writer(frame[[ID, "late"]])(path)
    meta = LabelsMeta(
        labels_id=labels_id, rows=len(frame), batches={batch_id: len(frame)}, added_at="2014-01-01T00:00:00+00:00", sha256=sha256_file(path)
    )
    (root / LABELS / f"{labels_id}.json").write_text(json.dumps(meta.to_json()))
    return meta


def weekly_batches(weeks: int, per_week: int = 1400, seed: int = 0, shifts: dict[int, float] | None = None) -> list[pd.DataFrame]:
    """Weekly batches from Friday 2013-11-01 (so each straddles two Monday-based chunks), ids unique across them."""
    shifts = shifts or {}
    start = pd.Timestamp("2013-11-01", tz="UTC")
    return [
        rows(per_week, (start + pd.Timedelta(days=7 * week)).isoformat(), 7, seed + week, shifts.get(week, 0.0), first_id=week * per_week)
        for week in range(weeks)
    ]
