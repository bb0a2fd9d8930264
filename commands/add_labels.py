"""add-labels: append the outcomes of rows already in the production store (data/production/).

    python -m commands.add_labels --input outcomes.csv [--added-at ISO]
    make add-labels INPUT=outcomes.csv [ADDED_AT=2013-11-15T00:00:00Z]

The file holds the row id (monitor.id_column) and the outcome: the target as prepare names it (`late`,
0 or 1 for a classification), or the contract's source column (`arr_delay`), converted by prepare's
own rule (data.target: a threshold or a positive label; stages/lib/target.py). Every id must name a stored row. An outcome given again with the
value already stored is counted once; a different value is refused. New outcomes are appended as
labels/<labels_id>.parquet + .json, both or neither (layout: stages/lib/production.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from commands.score_batch import utc_time
from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.config import DataContract, Params, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import read_table
from stages.lib.production import LabelsMeta, append_labels, check_store, checked_ids, labelled
from stages.lib.target import target_values

INPUT_HINT = "check --input (INPUT= with make add-labels)"


def _known(values: pd.Series, where: str) -> None:
    if values.isna().any():
        fail(f"{where}: column '{values.name}' is missing in {int(values.isna().sum()):,} row(s); send outcomes only once they are known")


def _as_prepared(values: pd.Series, contract: DataContract, where: str) -> pd.Series:
    """The target given as prepare names it: 0 or 1 (classification) or a finite number (regression)."""
    column = values.name
    numbers = values.astype(np.float64) if pd.api.types.is_bool_dtype(values) else pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() & values.notna()]
    if len(bad):
        fail(f"{where}: column '{column}' must be numeric, got {bad.iloc[0]!r} in {len(bad):,} row(s)")
    _known(values, where)
    if np.isinf(numbers.to_numpy(dtype=np.float64)).any():
        fail(f"{where}: column '{column}' holds infinite values; send finite outcomes only")
    if contract.task == "classification":
        if not numbers.isin([0, 1]).all():
            odd = values[~numbers.isin([0, 1])]
            fail(f"{where}: column '{column}' must be 0 or 1 (the classification target), got {odd.iloc[0]!r} in {len(odd):,} row(s)")
        return numbers.astype(np.int8)
    return numbers.astype(np.float64)


def outcomes_of(frame: pd.DataFrame, params: Params, where: str) -> pd.DataFrame:
    """The id column (text) and the target as prepare makes it (int8 0/1, or float64 for a regression)."""
    contract, id_column = params.data, params.monitor.id_column
    if frame.empty:
        fail(f"{where}: no rows; give the id column '{id_column}' and the outcome '{contract.target}'")
    ids = checked_ids(frame, id_column, where, "add it: outcomes join their scored rows by it")
    given = [column for column in dict.fromkeys([contract.target, contract.target_column]) if column in frame.columns]
    if len(given) != 1:
        what = "both" if given else "neither"
        fail(
            f"{where}: has {what} of '{contract.target}' (the target, as prepare names it) and '{contract.target_column}' "
            f"(its source column); give exactly one of them"
        )
    values = frame[given[0]]
    if given[0] == contract.target_column and given[0] != contract.target:
        _known(values, where)
        target = target_values(values, contract.target_spec, where)  # prepare's own rule
    else:
        target = _as_prepared(values, contract, where)
    return pd.DataFrame({id_column: ids.to_numpy(), contract.target: target.to_numpy()})


def add_outcomes(
    frame: pd.DataFrame, where: str, params: Params, added_at: str | None = None, root: Path = PRODUCTION_DIR
) -> tuple[LabelsMeta | None, int]:
    """Check and append outcomes; (the new labels file or None when every outcome was already stored, repeats)."""
    id_column = params.monitor.id_column
    check_store(id_column, root)
    outcomes = outcomes_of(frame, params, where)
    stamp = utc_time(added_at, "--added-at")
    checked = labelled(outcomes, id_column, params.data.target, root, where)
    if checked.new.empty:
        return None, checked.repeated
    return append_labels(checked.new, id_column, stamp, root), checked.repeated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet: the row id and the outcome")
    parser.add_argument("--added-at", default=None, help="the arrival time to record (ISO; default: now)")
    args = parser.parse_args(argv)
    params = load_params()
    frame = read_table(args.input, INPUT_HINT, params.data.missing_values)
    meta, repeated = add_outcomes(frame, str(args.input), params, args.added_at)
    again = f"; {repeated:,} already stored with the same value, not added again" if repeated else ""
    if meta is None:
        print(f"add-labels: nothing new in {args.input}{again}")
        return
    per_batch = ", ".join(f"{batch} {count:,}" for batch, count in meta.batches.items())
    print(f"add-labels: {meta.labels_id}: {meta.rows:,} outcomes ({per_batch}){again} -> {PRODUCTION_DIR}/labels/{meta.labels_id}.parquet")


if __name__ == "__main__":
    run_stage(main)
