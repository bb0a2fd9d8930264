"""The production store's layout: scored batches and the outcomes that arrive later, append-only.

    data/production/
      store.json                   StoreMeta: the id column the store's rows are named by (written once, when created)
      batches/<batch_id>.parquet   the batch's input rows as scored, plus `prediction` (and `history_complete`)
      batches/<batch_id>.json      BatchMeta: rows, time range, model version, scoring time, content hash
      labels/<labels_id>.parquet   outcomes: the id column and the target, as prepare defines it
      labels/<labels_id>.json      LabelsMeta: rows, which batches they belong to, arrival time, content hash

Ids are sequence numbers (`batch-0001`, `labels-0001`) so the folder lists in arrival order. Nothing in
it is ever rewritten: `make score-batch` and `make add-labels` only add files (all-or-nothing), and refuse
a row id the store already holds. The monitor stage reads it; DVC versions it: the `production-store`
stage (stages/production_store.py) creates it empty when missing and verifies it otherwise, and records
its hash in dvc.lock.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.errors import fail
from stages.lib.io import json_writer, read_json, read_parquet, sha256_file, write_outputs

PREDICTION = "prediction"
HISTORY_COMPLETE = "history_complete"  # False where a history window reached past the outcomes known at scoring
BEYOND_HISTORY = "beyond_history"  # True where the row lies wholly beyond the known outcomes (scored only when asked)
# How the scoring commands name their input files in messages.
INPUT_HINT = "check --input (INPUT= with make predict)"
OUTCOMES_HINT = "check --outcomes (OUTCOMES= with make predict)"
BATCHES = "batches"
LABELS = "labels"
STORE_FILE = "store.json"
BATCH_ID = "batch"  # in outcome_rows: the batch a row was scored in
ID_DIGITS = 4  # batch-0001: ids sort in arrival order up to 9999 files of each kind
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


@dataclass(frozen=True)
class StoreMeta:
    """Written once when the store is created: an empty folder would not survive git or DVC, and a store
    whose rows are named by another id column than params.monitor.id_column must stop every reader."""

    id_column: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Labelled:
    """Outcomes checked against the store: the new ones to append, and how many were already stored."""

    new: pd.DataFrame  # id column + target, one row per id not yet labelled
    repeated: int  # given again with the value already stored: not stored twice


def batch_meta_path(batch_id: str, root: Path = PRODUCTION_DIR) -> Path:
    return root / BATCHES / f"{batch_id}.json"


def labels_meta_path(labels_id: str, root: Path = PRODUCTION_DIR) -> Path:
    return root / LABELS / f"{labels_id}.json"


def store_meta(root: Path = PRODUCTION_DIR) -> StoreMeta:
    return StoreMeta(**read_json(root / STORE_FILE, "create an empty store with `make repro` (stage production-store)"))


def create_store(id_column: str, root: Path = PRODUCTION_DIR) -> None:
    """An empty store: only store.json (the batches/ and labels/ folders appear with their first file)."""
    write_outputs({root / STORE_FILE: json_writer(StoreMeta(id_column).to_json())})


def check_store(id_column: str, root: Path = PRODUCTION_DIR) -> None:
    """The store exists, its id column is `id_column`, and every file is a complete pair of an append.

    Cheap (names only): appends call it before reading the store. `verify_store` also checks the content.
    """
    where = root / STORE_FILE
    if not where.is_file():
        fail(f"{where}: file not found; create an empty store with `make repro` (stage production-store) or `dvc pull`")
    stored = store_meta(root).id_column
    if stored != id_column:
        fail(
            f"{where}: the store's rows are named by '{stored}', but monitor.id_column in conf/monitor/ is '{id_column}'; "
            f"set it back, or start a new store (move {root} away and run `make repro`)"
        )
    for kind, prefix in ((BATCHES, "batch"), (LABELS, "labels")):
        folder = root / kind
        names = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
        stems = {name.rsplit(".", 1)[0] for name in names if name.endswith((".parquet", ".json"))}
        for name in names:
            if not (name.startswith(f"{prefix}-") and name.endswith((".parquet", ".json"))):
                fail(f"{folder / name}: not a file of the store (an interrupted append leaves such files); delete it. {HINT}")
        for stem in sorted(stems):
            for suffix in (".parquet", ".json"):
                if not (folder / f"{stem}{suffix}").is_file():
                    fail(f"{folder / stem}{suffix}: file not found, though its pair is there; {HINT}")


def next_id(prefix: str, existing: Sequence[str]) -> str:
    """The next sequence number after the highest of `existing` (batch-0001 ... batch-9999)."""
    numbers = [int(name.rsplit("-", 1)[1]) for name in existing]
    number = max(numbers, default=0) + 1
    if number >= 10**ID_DIGITS:
        fail(f"the production store holds {number - 1} files of kind {prefix}: start a new store (the ids would no longer sort)")
    return f"{prefix}-{number:0{ID_DIGITS}d}"


def stored_ids(id_column: str, root: Path = PRODUCTION_DIR) -> pd.DataFrame:
    """Every stored row id with its batch id (columns: the id column, `batch`), in arrival order."""
    frames = [
        pd.read_parquet(batch_path(meta.batch_id, root), columns=[id_column], engine="pyarrow").assign(**{BATCH_ID: meta.batch_id})
        for meta in batches(root)
    ]
    if not frames:
        return pd.DataFrame({id_column: pd.Series(dtype="string"), BATCH_ID: pd.Series(dtype="string")})
    return pd.concat(frames, ignore_index=True).astype({id_column: "string", BATCH_ID: "string"})


def stored_outcomes(id_column: str, target: str, root: Path = PRODUCTION_DIR) -> pd.DataFrame:
    """Every stored outcome (columns: the id column, the target), in arrival order."""
    frames = [read_labels(meta, root) for meta in label_files(root)]
    if not frames:
        return pd.DataFrame({id_column: pd.Series(dtype="string"), target: pd.Series(dtype="float64")})
    return pd.concat(frames, ignore_index=True).astype({id_column: "string"})


def outcome_rows(id_column: str, target: str, root: Path = PRODUCTION_DIR) -> pd.DataFrame | None:
    """The stored rows that have an outcome, with it (their time, keys and target feed history features);
    None while the store holds no outcome."""
    outcomes = stored_outcomes(id_column, target, root)
    if outcomes.empty:
        return None
    rows = pd.concat([read_batch(meta, root) for meta in batches(root)], ignore_index=True).astype({id_column: "string"})
    return rows.merge(outcomes, on=id_column, how="inner", validate="one_to_one")


def example(values: pd.Series) -> str:
    """`count (e.g. 'first')`, for one-line errors about a set of ids."""
    return f"{len(values):,} (e.g. {str(values.iloc[0])!r})"


def checked_ids(frame: pd.DataFrame, id_column: str, where: str, fix: str) -> pd.Series:
    """The id column as text; an absent column or a missing id is one line."""
    if id_column not in frame.columns:
        fail(f"{where}: missing column '{id_column}' (the row id, monitor.id_column in conf/monitor/); {fix}")
    ids = frame[id_column]
    if ids.isna().any():
        fail(f"{where}: column '{id_column}' is missing in {int(ids.isna().sum()):,} row(s); every row needs its id")
    return ids.astype("string")


def refuse_stored(ids: pd.Series, id_column: str, root: Path, where: str) -> None:
    """A row id the store already holds is refused: a batch scored twice must not count twice."""
    known = stored_ids(id_column, root)
    repeated = ids[ids.isin(known[id_column])]
    if len(repeated):
        first = known.loc[known[id_column] == repeated.iloc[0], BATCH_ID].iloc[0]
        fail(
            f"{where}: {example(repeated)} row id(s) of column '{id_column}' are already in the production store "
            f"({first} holds the first); a batch is scored once: leave those rows out"
        )


def labelled(outcomes: pd.DataFrame, id_column: str, target: str, root: Path, where: str) -> Labelled:
    """Outcomes (id column + target, ids as text) checked against the store.

    Every id must be a stored row; an id given twice in `outcomes` or already labelled must carry the same
    value (then it counts once), else the whole file is refused.
    """
    known = stored_ids(id_column, root)
    unknown = outcomes.loc[~outcomes[id_column].isin(known[id_column]), id_column]
    if len(unknown):
        fail(
            f"{where}: {example(unknown)} id(s) of column '{id_column}' are not in the production store; score their rows first (make score-batch)"
        )
    distinct = outcomes.drop_duplicates(ignore_index=True)
    clashing = distinct.loc[distinct[id_column].duplicated(), id_column]
    if len(clashing):
        fail(f"{where}: {example(clashing)} id(s) appear more than once with different '{target}' values; keep one outcome per id")
    stored = stored_outcomes(id_column, target, root)
    both = distinct.merge(stored, on=id_column, how="inner", suffixes=("", "_stored"))
    differing = both[both[target].astype("float64") != both[f"{target}_stored"].astype("float64")]
    if len(differing):
        row = differing.iloc[0]
        fail(
            f"{where}: {example(differing[id_column])} id(s) already have a different '{target}' in the production store "
            f"(e.g. {row[id_column]!r}: stored {row[f'{target}_stored']:g}, given {row[target]:g}); outcomes are never rewritten"
        )
    new = distinct[~distinct[id_column].isin(stored[id_column])].reset_index(drop=True)
    return Labelled(new=new, repeated=len(distinct) - len(new))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as the store writes it (no index, zstd): its sha256 goes into the metadata before the write."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


def _bytes_writer(data: bytes) -> Any:
    return lambda path: path.write_bytes(data)


def append_batch(scored: pd.DataFrame, time: str, model: str, model_sha: str, model_md5: str, scored_at: str, root: Path) -> BatchMeta:
    """Add one scored batch (the rows, with `prediction` and `history_complete`): both files or neither."""
    batch_id = next_id("batch", [meta.batch_id for meta in batches(root)])
    data = parquet_bytes(scored)
    meta = BatchMeta(
        batch_id=batch_id,
        rows=len(scored),
        first=scored[time].min().isoformat(),
        last=scored[time].max().isoformat(),
        model=model,
        model_sha=model_sha,
        model_md5=model_md5,
        scored_at=scored_at,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    write_outputs({batch_path(batch_id, root): _bytes_writer(data), batch_meta_path(batch_id, root): json_writer(meta.to_json())})
    return meta


def append_labels(new: pd.DataFrame, id_column: str, added_at: str, root: Path) -> LabelsMeta:
    """Add outcomes `labelled` accepted as new (id column + target): both files or neither."""
    labels_id = next_id("labels", [meta.labels_id for meta in label_files(root)])
    known = stored_ids(id_column, root)
    per_batch = known[known[id_column].isin(new[id_column])][BATCH_ID].value_counts()
    data = parquet_bytes(new)
    meta = LabelsMeta(
        labels_id=labels_id,
        rows=len(new),
        batches={str(batch): int(count) for batch, count in sorted(per_batch.items())},
        added_at=added_at,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    write_outputs({labels_path(labels_id, root): _bytes_writer(data), labels_meta_path(labels_id, root): json_writer(meta.to_json())})
    return meta


def verify_store(id_column: str, root: Path = PRODUCTION_DIR) -> tuple[list[BatchMeta], list[LabelsMeta]]:
    """Every check an append relies on, over the whole store; the first failure is one line.

    Each file matches the sha256 its metadata recorded, row ids are unique across batches, outcomes
    name stored rows only, and each row has at most one outcome.
    """
    check_store(id_column, root)
    metas = batches(root)
    files = label_files(root)
    recorded = [(batch_path(m.batch_id, root), m.sha256) for m in metas] + [(labels_path(m.labels_id, root), m.sha256) for m in files]
    for path, sha256 in recorded:
        if sha256_file(path) != sha256:
            fail(f"{path}: its content differs from what was appended (sha256 in its .json); {HINT}")
    ids = stored_ids(id_column, root)
    repeated = ids.loc[ids[id_column].duplicated(), id_column]
    if len(repeated):
        fail(f"{root / BATCHES}: {example(repeated)} row id(s) are in more than one batch; {HINT}")
    outcome_ids = pd.Series([], dtype="string")
    for meta in files:
        labels = read_labels(meta, root)
        if id_column not in labels.columns:
            fail(f"{labels_path(meta.labels_id, root)}: missing column '{id_column}'; {HINT}")
        outcome_ids = pd.concat([outcome_ids, labels[id_column].astype("string")], ignore_index=True)
    strangers = outcome_ids[~outcome_ids.isin(ids[id_column])]
    if len(strangers):
        fail(f"{root / LABELS}: {example(strangers)} outcome id(s) name no stored row; {HINT}")
    twice = outcome_ids[outcome_ids.duplicated()]
    if len(twice):
        fail(f"{root / LABELS}: {example(twice)} row id(s) have more than one outcome; {HINT}")
    return metas, files
