"""prepare: read the table the data contract declares, join related tables, label, validate and split by time.

Everything dataset-specific lives in `conf/data/<name>.yaml`; this module knows no column names.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR, SCHEMA_FILE
from stages.lib.config import DataContract, load_params
from stages.lib.contract import (
    infer_schema,
    post_outcome_evidence,
    refuse_type_mismatches,
)
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.io import (
    FolderWriter,
    Writer,
    json_writer,
    parquet_writer,
    write_outputs,
)
from stages.lib.prepare_partitioned import Partitioned, prepare_partitioned
from stages.lib.prepare_steps import (
    UNREAD,
    _check_split_order,
    _check_values,
    _check_window,
    _empty_window,
    _join,
    _nothing_labelled,
    _one_class,
    _parse_time,
    _read_source,
    _require,
    _require_numeric,
    _settings,
    _stop_on_violations,
    validate,
    without_target,
)
from stages.lib.runtime import limit_threads
from stages.lib.target import target_values


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    schema: dict[str, Any]
    violations: list[str]
    warnings: list[str]  # besides the violations: e.g. too many rows without a target
    dropped: str | None  # the console's words on source rows dropped for lacking a target; None: none was


def where_source(contract: DataContract) -> str:
    """How messages name the source table: its file name."""
    return Path(contract.source.path).name


def _check_source(table: pd.DataFrame, where: str, contract: DataContract, dropped: Sequence[str]) -> set[str]:
    """The source table has the columns the contract names, with numbers where numbers are declared.

    Returns the columns that must be numeric (declared numeric, or with a min/max check)."""
    _require(table, where, [contract.target_column, contract.time], "the target and time columns")
    # Columns the reader left out (data.drop's, checked against the file's header there) are not asked for again.
    _require(table, where, [column for column in dropped if column not in table.attrs.get(UNREAD, ())], "listed in data.drop")
    numeric = {column for column, kind in contract.types.items() if kind == "numeric"}
    numeric |= {column for column, check in contract.checks.items() if check.min is not None or check.max is not None}
    for column in sorted(numeric & set(table.columns)):
        _require_numeric(table, where, column)
    kept = [column for column in table.columns if column not in {*dropped, contract.time} or column == contract.target_column]
    _check_values(table, where, kept, contract)
    return numeric


def _labelled_order(table: pd.DataFrame, where: str, contract: DataContract) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the rows that have a target (a sample of them when data.sample_rows says so), in time order
    (ties in source order), and their targets in that order."""
    present = table[contract.target_column].notna().to_numpy()
    if not present.any():
        _nothing_labelled(where, contract)
    labelled = positions = np.flatnonzero(present)
    # On every labelled row, before sampling: a positive label that never occurs is a typo, not bad luck.
    target = target_values(table[contract.target_column].iloc[positions], contract.target_spec, where, whole_column=True).to_numpy()
    if contract.sample_rows is not None and contract.sample_rows < len(positions):
        # The rows pandas' DataFrame.sample picks from the labelled rows (it draws positions from the length alone).
        chosen = pd.Series(positions).sample(n=contract.sample_rows, random_state=contract.sample_seed)
        positions = np.sort(chosen.to_numpy())
    order = positions[np.argsort(table[contract.time].iloc[positions].array.asi8, kind="stable")]
    # `target` follows the labelled rows' positions, which increase: each ordered row's is found by search.
    return order, target[np.searchsorted(labelled, order)]


def _join_related(labelled: pd.DataFrame, related: Sequence[pd.DataFrame], contract: DataContract) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every data.join table joined in order; with the count of rows each left unmatched, by file name."""
    unmatched = {}
    for join, other in zip(contract.joins, related, strict=True):
        other_where = Path(join.source.path).name
        if contract.time in join.keys:
            other = _parse_time(other, other_where, contract)
        labelled, unmatched[other_where] = _join(labelled, other, join, other_where)
        _check_values(other, other_where, [column for column in (join.columns or other.columns) if column not in join.keys], contract)
    return labelled, unmatched


def _split(prepared: pd.DataFrame, contract: DataContract) -> dict[str, pd.DataFrame]:
    """The rows of each data.splits window (`prepared` is in time order); every window holds rows, test comes after train, train has both classes."""
    splits: dict[str, pd.DataFrame] = {}
    times = prepared[contract.time]
    for window in contract.splits:
        _check_window(window, times)
        # The rows are in time order: a window is one slice of them, a view rather than a copy.
        start, end = times.searchsorted([window.start, window.end], side="left")
        rows = prepared.iloc[start:end].reset_index(drop=True)
        if rows.empty:
            _empty_window(window)
        splits[window.name] = rows
    _check_split_order(contract)
    if contract.task == "classification" and splits["train"][contract.target].nunique() < 2:
        _one_class(int(splits["train"][contract.target].iloc[0]), contract)
    return splits


@dataclass(frozen=True)
class Labelled:
    """Every labelled source row, prepared: joined, typed, with its target, validated, sorted by time.

    Indexed by each row's position among the source file's data rows (0 for the first), so a row keeps
    one name through sampling and joins (`make simulate-production` builds its row ids from it)."""

    rows: pd.DataFrame
    used: int  # labelled source rows kept (after data.sample_rows)
    unmatched: dict[str, int]  # rows each data.join table left unmatched, by file name
    violations: list[str]
    source_rows: int  # rows of the source table
    without_target: int  # source rows without a target
    post_outcome: dict[str, dict[str, Any]]  # `post_outcome_evidence` of the source table's kept columns


def labelled_rows(table: pd.DataFrame, related: Sequence[pd.DataFrame], contract: DataContract) -> Labelled:
    """Everything prepare does before splitting: label, join, validate; pure apart from its inputs."""
    return _labelled_rows([table], related, contract)


def _labelled_rows(holder: list[pd.DataFrame], related: Sequence[pd.DataFrame], contract: DataContract) -> Labelled:
    """`labelled_rows` of the table in `holder`, which it empties: when the caller holds no other reference, the
    source table is freed as soon as its labelled rows are taken (prepare's peak memory, issue 16 item 5)."""
    table = holder.pop()
    where = where_source(contract)
    if table.empty:
        fail(f"{where}: no rows; point data.source in conf/data/ at a non-empty file")
    dropped = [*contract.identifiers, *contract.leaks, *contract.other_drops]
    # The target's source column is the outcome itself: it never stays as an input.
    source_of_target = [contract.target_column] if contract.target_column != contract.target else []
    removed = {*dropped, *source_of_target}
    numeric = _check_source(table, where, contract, dropped)
    # What the summary and the leak screen need of the source table, before the rows without a target are gone.
    missing = int(table[contract.target_column].isna().sum())
    kept = [column for column in table.columns if column not in removed and column not in (contract.target, contract.time)]
    post_outcome = post_outcome_evidence(table, contract.target_column, kept)
    table = _parse_time(table, where, contract)
    order, target = _labelled_order(table, where, contract)
    source_rows, source_columns = len(table), list(table.columns)
    keys = {key for join in contract.joins for key in join.keys}
    # One copy: the labelled rows, in time order, of the columns that stay (and the join keys), column by column, each
    # source column let go once taken (a column pandas keeps in one block with others goes with the block's last).
    labelled = pd.DataFrame(index=table.index[order])
    labelled.attrs = deepcopy(table.attrs)  # as DataFrame.take keeps them
    for column in source_columns:
        if column not in removed or column in keys:
            labelled[column] = table[column].array.take(order)
        del table[column]
    del table
    labelled, unmatched = _join_related(labelled, related, contract)

    declared = sorted(set(contract.types) | set(contract.checks))
    available = [*source_columns, *(column for column in labelled.columns if column not in source_columns)]
    _require(pd.DataFrame(columns=available), where, declared, "declared in data.types or data.checks")
    for column in sorted(numeric - set(source_columns)):
        _require_numeric(labelled, where, column)
    removed_keys = [column for column in removed if column in labelled.columns]
    prepared = (labelled.drop(columns=removed_keys) if removed_keys else labelled).assign(**{contract.target: target})
    del labelled

    violations = validate(prepared, contract)
    _stop_on_violations(violations, where, contract)
    return Labelled(
        rows=prepared,
        used=len(order),
        unmatched=unmatched,
        violations=violations,
        source_rows=source_rows,
        without_target=missing,
        post_outcome=post_outcome,
    )


def prepare(
    table: pd.DataFrame, related: Sequence[pd.DataFrame], contract: DataContract, sources: dict[str, Any] | None = None
) -> Prepared:
    """Label, join, validate and split; pure apart from its inputs. The source table is not kept: a caller that passes
    it without holding it (`prepare(tables.pop(0), ...)`) lets it be freed once its labelled rows are taken."""
    holder = [table]
    del table
    labelled = _labelled_rows(holder, related, contract)
    splits = _split(labelled.rows.reset_index(drop=True), contract)
    prepared, unmatched, violations = labelled.rows, labelled.unmatched, labelled.violations

    def target_summary(rows: pd.DataFrame) -> dict[str, float]:
        key = "positive_share" if contract.task == "classification" else "target_mean"
        return {key: round(float(rows[contract.target].mean()), 6)}

    missing = labelled.without_target
    dropped, warnings = without_target(labelled.source_rows, missing, contract)
    summary = {
        "dataset": contract.name,
        "sources": sources or {},
        "rows": {"source": labelled.source_rows, "without_target": missing, "used": labelled.used},
        "unmatched_join_rows": unmatched,
        "violations": violations,
        "warnings": warnings,
        "splits": {
            name: {
                "rows": len(rows),
                **target_summary(rows),
                "first": rows[contract.time].min().isoformat(),
                "last": rows[contract.time].max().isoformat(),
            }
            for name, rows in splits.items()
        },
    } | target_summary(prepared)
    # From the source table, before the rows without a target were dropped: a column that only exists with an outcome is a leak.
    schema = infer_schema(splits["train"], contract, labelled.post_outcome)
    for name, rows in splits.items():  # the types inferred from train hold on every split
        refuse_type_mismatches(
            rows, schema["columns"], f"{where_source(contract)}: split '{name}'", "fix those rows or data.types in conf/data/"
        )
    return Prepared(splits=splits, summary=summary, schema=schema, violations=violations, warnings=warnings, dropped=dropped)


def read_sources(contract: DataContract) -> tuple[dict[str, Any], list[pd.DataFrame]]:
    """The contract's source table and its data.join tables, as read (in that order); with each file's summary."""
    summaries: dict[str, Any] = {}
    tables = []
    for path, setting in _settings(contract):
        summary, table = _read_source(path, setting, contract)
        summaries |= summary
        tables.append(table)
    return summaries, tables


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    contract = params.data
    with engine_session(params.engine) as client:
        if client is None:
            sources, tables = read_sources(contract)
            # Handed over, not kept here: prepare frees the source table once its labelled rows are taken.
            prepared: Prepared | Partitioned = prepare(tables.pop(0), tables, contract, sources)
            _write(prepared, contract)
            return
        # The months' parts are staged next to the outputs (one file system: moved, not copied) and the folder
        # removed whatever happens, so a failed run leaves nothing behind. Absolute: the workers write the parts, and a
        # worker's working folder is its own (a `dask worker` started elsewhere), not the project's.
        PREPARED_DIR.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".prepare-", suffix=".tmp", dir=PREPARED_DIR.parent.resolve()) as staging:
            _write(prepare_partitioned(contract, Path(staging)), contract)


def _write(prepared: Prepared | Partitioned, contract: DataContract) -> None:
    for violation in prepared.violations:
        print(f"warning: data.checks: {violation}", file=sys.stderr)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    outputs: dict[Path, Writer | FolderWriter] = (
        {PREPARED_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in prepared.splits.items()}
        if isinstance(prepared, Prepared)
        else {PREPARED_DIR / f"{name}.parquet": FolderWriter(prepared.writer(name)) for name in prepared.rows}
    )
    outputs[PREPARE_SUMMARY] = json_writer(prepared.summary)
    schema_text = yaml.safe_dump(prepared.schema, sort_keys=False, allow_unicode=True)
    outputs[SCHEMA_FILE] = lambda path: path.write_text(
        f"# Inferred by prepare from the train split; declared types come from conf/data/.\n{schema_text}", encoding="utf-8"
    )
    write_outputs(outputs)
    counts = ", ".join(f"{name} {split['rows']:,}" for name, split in prepared.summary["splits"].items())
    print(f"prepare: {contract.name}: {counts} rows -> {PREPARED_DIR}/" + (f"; {prepared.dropped}" if prepared.dropped else ""))


if __name__ == "__main__":
    # Worker processes of the dask engine re-import the main module (hence the guard); run main from stages.prepare,
    # so nothing the workers are sent refers to __main__.
    from stages.prepare import main as stage_main

    run_stage(stage_main)
