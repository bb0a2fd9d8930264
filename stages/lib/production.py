"""The production store's layout: scored batches and the outcomes that arrive later, append-only.

    data/production/
      batches/<batch_id>.parquet   the batch's input rows as scored, plus `prediction` (and `history_complete`)
      batches/<batch_id>.json      BatchMeta: rows, time range, model version, scoring time, content hash
      labels/<labels_id>.parquet   outcomes: the id column and the target, as prepare defines it
      labels/<labels_id>.json      LabelsMeta: rows, which batches they belong to, arrival time, content hash

Ids are sequence numbers (`batch-0001`, `labels-0001`) so the folder lists in arrival order. Nothing in
it is ever rewritten: `make score-batch` and `make add-labels` only add files (all-or-nothing), and refuse
a row id the store already holds. The monitor stage reads it; DVC versions it (see dvc.yaml).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.io import read_json, read_parquet

PREDICTION = "prediction"
HISTORY_COMPLETE = "history_complete"  # False where a history window reached past the outcomes known at scoring
BATCHES = "batches"
LABELS = "labels"
HINT = "the production store is written only by make score-batch / add-labels; restore it with `dvc checkout data/production`"


@dataclass(frozen=True)
class BatchMeta:
    batch_id: str  # batch-0001, ...
    rows: int
    first: str  # ISO time of the earliest row (UTC)
    last: str  # ISO time of the latest row (UTC)
    model: str  # as the user named it: model@v1.0.0, model#prod, or workspace
    model_sha: str  # the git commit the model came from
    model_md5: str  # md5 of the model file (what dvc.lock records), so the monitor knows which model scored it
    scored_at: str  # ISO time the batch was scored (the simulation uses the batch's end)
    sha256: str  # of the batch's parquet file

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelsMeta:
    labels_id: str  # labels-0001, ...
    rows: int
    batches: dict[str, int]  # batch_id -> outcomes of its rows in this file
    added_at: str  # ISO time the outcomes arrived
    sha256: str  # of the labels' parquet file

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def batch_path(batch_id: str, root: Path = PRODUCTION_DIR) -> Path:
    return root / BATCHES / f"{batch_id}.parquet"


def labels_path(labels_id: str, root: Path = PRODUCTION_DIR) -> Path:
    return root / LABELS / f"{labels_id}.parquet"


def batches(root: Path = PRODUCTION_DIR) -> list[BatchMeta]:
    """Every batch's metadata, in arrival order (empty for a new store)."""
    return [BatchMeta(**read_json(path, HINT)) for path in sorted((root / BATCHES).glob("batch-*.json"))]


def label_files(root: Path = PRODUCTION_DIR) -> list[LabelsMeta]:
    """Every outcomes file's metadata, in arrival order."""
    return [LabelsMeta(**read_json(path, HINT)) for path in sorted((root / LABELS).glob("labels-*.json"))]


def read_batch(meta: BatchMeta, root: Path = PRODUCTION_DIR) -> pd.DataFrame:
    return read_parquet(batch_path(meta.batch_id, root), HINT)


def read_labels(meta: LabelsMeta, root: Path = PRODUCTION_DIR) -> pd.DataFrame:
    return read_parquet(labels_path(meta.labels_id, root), HINT)
