"""score-batch: score one batch of new rows and append it to the production store (data/production/).

    python -m commands.score_batch --input rows.csv [--model workspace|model@v1.0.0|model#prod] [--scored-at ISO]
    make score-batch INPUT=rows.csv [MODEL=model@v1.0.0] [SCORED_AT=2013-11-08T00:00:00Z] [BEYOND_HISTORY=1]

The rows look like the prepared table (every column of data/schema.yaml but the target) plus the row id
(monitor.id_column in conf/monitor/), unique within the batch and new to the store. History features see
the outcomes the store already holds (labels joined to their stored rows by id give time, keys and
target). The batch is stored typed as data/schema.yaml says, with `prediction` and `history_complete`,
as batches/<batch_id>.parquet + .json, both or neither (layout: stages/lib/production.py).

With `engine: dask` in params.yaml the checked rows are scored on a Dask cluster piece by piece (row groups of
scoring_versions.PIECE_ROWS rows), as `make predict` scores (stages/lib/scoring_partitioned.py): the same
scores, so the same stored bytes (make simulate-production appends through the same function). This process
still reads, checks and stores the whole batch (one Parquet file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.catalog import PRODUCTION_DIR, SCHEMA_FILE
from stages.lib.config import Params, load_params
from stages.lib.contract import parse_time
from stages.lib.errors import fail, run_stage
from stages.lib.io import read_table, read_yaml
from stages.lib.production import (
    HISTORY_COMPLETE,
    PREDICTION,
    BatchMeta,
    append_batch,
    check_store,
    checked_ids,
    outcome_rows,
    read_batch,
    refuse_stored,
)
from stages.lib.runtime import limit_threads
from stages.lib.scoring_versions import WORKSPACE, score_frame

INPUT_HINT = "check --input (INPUT= with make score-batch)"
SCHEMA_HINT = "run `make repro` first: the store types rows as data/schema.yaml says"


def utc_time(text: str | None, option: str) -> str:
    """An ISO time in UTC (now when `text` is None); naive times are UTC."""
    try:
        stamp = pd.Timestamp.now(tz="UTC") if text is None else pd.Timestamp(text)
    except ValueError:
        fail(f"{option} {text!r}: expected an ISO time such as 2013-11-08T00:00:00Z")
    if pd.isna(stamp):
        fail(f"{option} {text!r}: expected an ISO time such as 2013-11-08T00:00:00Z")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()


def typed_batch(rows: pd.DataFrame, schema: dict[str, Any], id_column: str, outcome_columns: list[str], where: str) -> pd.DataFrame:
    """The batch as the store keeps it: the id (text), then every column of data/schema.yaml but the target,
    typed as it says (time in UTC, numbers as float64, the rest as text); other columns are not kept.

    An empty batch, a missing or repeated id, an outcome column, a missing column or a wrong type is one line.
    """
    if rows.empty:
        fail(f"{where}: no rows to score")
    ids = checked_ids(rows, id_column, where, "add it: every scored row needs an id its outcome can name later")
    repeated = ids[ids.duplicated()]
    if len(repeated):
        fail(f"{where}: column '{id_column}' repeats {len(repeated):,} id(s) (e.g. {repeated.iloc[0]!r}); each row needs its own id")
    given = [column for column in outcome_columns if column in rows.columns]
    if given:
        fail(f"{where}: column '{given[0]}' is the outcome: leave it out and send it later with make add-labels")
    columns = [name for name, column in schema["columns"].items() if column.get("role") != "target"]
    missing = [column for column in columns if column not in rows.columns]
    if missing:
        fail(f"{where}: missing column '{missing[0]}' (data/schema.yaml lists {len(columns)} input columns); add it to the file")
    typed: dict[str, pd.Series] = {id_column: ids}
    for column in columns:
        kind, values = schema["columns"][column]["type"], rows[column]
        if column == schema["time"]:
            fix = f"write it as in training (data.time.format: {schema['time_format']})"
            typed[column] = parse_time(values, schema["time_format"], where, column, fix)
        elif kind in ("numeric", "boolean"):
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna()]
            if len(bad):
                fail(f"{where}: column '{column}' must be {kind} (data/schema.yaml), got {bad.iloc[0]!r} in {len(bad):,} row(s)")
            if np.isinf(numbers.to_numpy(dtype=np.float64, na_value=np.nan)).any():
                fail(f"{where}: column '{column}' holds infinite values; write a missing value instead")
            typed[column] = numbers.astype(np.float64)
        else:
            typed[column] = values.astype("string")
    return pd.DataFrame(typed).reset_index(drop=True)


def outcome_columns(params: Params) -> list[str]:
    """The target as prepare names it, and the source column it comes from."""
    return list(dict.fromkeys([params.data.target, params.data.target_column]))


def score_into_store(
    rows: pd.DataFrame,
    where: str,
    params: Params,
    model: str = WORKSPACE,
    scored_at: str | None = None,
    allow_beyond_history: bool = False,
    repo: Path = Path(),
    root: Path = PRODUCTION_DIR,
) -> BatchMeta:
    """Check, score and append one batch (scored on the engine params.engine names); the store is unchanged unless
    every step succeeds."""
    id_column = params.monitor.id_column
    check_store(id_column, root)
    schema = read_yaml(repo / SCHEMA_FILE, SCHEMA_HINT)
    typed = typed_batch(rows, schema, id_column, outcome_columns(params), where)
    refuse_stored(typed[id_column], id_column, root, where)
    stamp = utc_time(scored_at, "--scored-at")
    outcomes = outcome_rows(id_column, params.data.target, root)
    scored = score_frame(model, typed, outcomes, allow_beyond_history, repo.resolve(), params.engine)
    kept = typed.assign(
        **{PREDICTION: scored.scores[PREDICTION].to_numpy(), HISTORY_COMPLETE: scored.scores[HISTORY_COMPLETE].to_numpy(dtype=bool)}
    )
    return append_batch(kept, schema["time"], model, scored.model_sha, scored.model_md5, stamp, root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet rows shaped like the prepared table, with the row id")
    parser.add_argument("--model", default=WORKSPACE, help=f"{WORKSPACE} (default), <name>@<version> or <name>#<stage>")
    parser.add_argument("--scored-at", default=None, help="the scoring time to record (ISO; default: now)")
    parser.add_argument(
        "--score-beyond-history",
        action="store_true",
        help=f"score rows whose every history window lies past the known outcomes too, marked by {HISTORY_COMPLETE} = false",
    )
    args = parser.parse_args(argv)
    params = load_params()
    limit_threads(params.runtime)
    rows = read_table(args.input, INPUT_HINT, params.data.missing_values)
    meta = score_into_store(rows, str(args.input), params, args.model, args.scored_at, args.score_beyond_history)
    print(
        f"score-batch: {meta.batch_id}: {meta.rows:,} rows from {meta.first} to {meta.last} scored with {meta.model} "
        f"({meta.model_sha[:8]}) -> {PRODUCTION_DIR}/batches/{meta.batch_id}.parquet"
    )
    incomplete = int((~read_batch(meta)[HISTORY_COMPLETE]).sum())
    if incomplete:
        print(
            f"score-batch: note: {incomplete:,} row(s) scored with history windows reaching past the known outcomes ({HISTORY_COMPLETE} false)"
        )


if __name__ == "__main__":
    run_stage(main)
