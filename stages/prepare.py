"""prepare: read the table the data contract declares, join related tables, label, validate and split by time.

Everything dataset-specific lives in `conf/data/<name>.yaml`; this module knows no column names.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR, SCHEMA_FILE
from stages.lib.config import DataContract, Join, Window, load_params
from stages.lib.contract import infer_schema, parse_time, post_outcome_evidence, refuse_infinite, refuse_text_in_numbers
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, parquet_writer, read_table, sha256_file, write_outputs
from stages.lib.runtime import limit_threads
from stages.lib.target import target_values

MAX_REPORTED_VIOLATIONS = 20
FIX_TIME = "fix the values, or data.time.format in conf/data/ (iso8601, year, epoch_s, epoch_ms or a strptime pattern)"
FIX_INFINITE = 'fix the source, or list how it writes them (e.g. "inf", "-inf") in data.missing_values to read them as missing'


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    schema: dict[str, Any]
    violations: list[str]
    warnings: list[str]  # besides the violations: e.g. too many rows without a target
    dropped: str | None  # the console's words on source rows dropped for lacking a target; None: none was


def _require(frame: pd.DataFrame, where: str, columns: Sequence[str], why: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        fail(f"{where}: missing column '{missing[0]}' ({why}); rename it in the source or fix conf/data/")


def _require_numeric(frame: pd.DataFrame, where: str, column: str) -> None:
    series = frame[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return
    values = series.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    example = f"{bad.iloc[0]!r} in {len(bad):,} row(s)" if len(bad) else series.dtype
    fail(
        f"{where}: column '{column}' must be numeric, got {example}; if that means missing, add it to data.missing_values, "
        f"else fix the values or data.types in conf/data/"
    )


def _parse_time(frame: pd.DataFrame, where: str, contract: DataContract) -> pd.DataFrame:
    return frame.assign(**{contract.time: parse_time(frame[contract.time], contract.time_format, where, contract.time, FIX_TIME)})


def _check_values(frame: pd.DataFrame, where: str, columns: Sequence[str], contract: DataContract) -> None:
    """Columns that stay: no stray text among numbers (unless declared non-numeric), no infinite numbers."""
    text = {column for column, kind in contract.types.items() if kind != "numeric"}
    refuse_text_in_numbers(frame, where, [column for column in columns if column not in text])
    refuse_infinite(frame, where, columns, FIX_INFINITE)


def _join(table: pd.DataFrame, related: pd.DataFrame, join: Join, where: str) -> tuple[pd.DataFrame, int]:
    _require(related, where, join.keys, "a join key")
    columns = [column for column in (join.columns or related.columns) if column not in join.keys]
    _require(related, where, columns, "listed in data.join columns")
    if join.deduplicate:
        related = related.drop_duplicates(subset=list(join.keys), keep="first")
    elif related.duplicated(subset=list(join.keys)).any():
        fail(f"{where}: several rows share one ({', '.join(join.keys)}) key; set deduplicate: true in data.join to keep the first")
    joined = table.merge(related.loc[:, [*join.keys, *columns]], on=list(join.keys), how="left", validate="many_to_one", indicator=True)
    unmatched = int((joined.pop("_merge") == "left_only").sum())
    # A left many-to-one merge keeps the left rows in order: give them back their index (source positions).
    return joined.set_axis(table.index), unmatched


def _check_window(window: Window, times: pd.Series) -> None:
    first, last = times.min(), times.max()
    if window.end <= first or window.start > last:
        fail(
            f"conf/data/: split '{window.name}' [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) is outside the data "
            f"({first:%Y-%m-%d} to {last:%Y-%m-%d}); move data.splits.{window.name} inside that range"
        )


def validate(table: pd.DataFrame, contract: DataContract) -> list[str]:
    """Every violation of the contract's checks at once (pandera, lazy), one readable line each."""
    columns = {}
    for name, check in sorted(contract.checks.items()):
        rules = []
        if check.min is not None or check.max is not None:
            low, high = -np.inf if check.min is None else check.min, np.inf if check.max is None else check.max
            rules.append(pa.Check.in_range(low, high))
        if check.allowed is not None:
            rules.append(pa.Check.isin(list(check.allowed)))
        if check.max_null_share is not None:
            share = check.max_null_share
            rules.append(
                pa.Check(lambda series, share=share: bool(series.isna().mean() <= share), name=f"null share <= {share}", ignore_na=False)
            )
        columns[name] = pa.Column(checks=rules, nullable=True, required=True)
    if not columns:
        return []
    try:
        pa.DataFrameSchema(columns).validate(table, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        lines = []
        for (column, check), group in cases.groupby(["column", "check"], sort=True, dropna=False):
            examples = ", ".join(
                repr(value) if isinstance(value, str) else str(value) for value in group["failure_case"].dropna().unique()[:3]
            )
            what = (
                "column is missing"
                if str(check).startswith("column_in_dataframe")
                else f"{len(group):,} failing rows"
                if group["index"].notna().any()
                else "fails"
            )
            lines.append(f"{column}: {check}: {what}{f' (e.g. {examples})' if examples and 'null share' not in str(check) else ''}")
        return lines[:MAX_REPORTED_VIOLATIONS]
    return []


def _check_source(table: pd.DataFrame, where: str, contract: DataContract, dropped: Sequence[str]) -> set[str]:
    """The source table has the columns the contract names, with numbers where numbers are declared.

    Returns the columns that must be numeric (declared numeric, or with a min/max check)."""
    _require(table, where, [contract.target_column, contract.time], "the target and time columns")
    _require(table, where, dropped, "listed in data.drop")
    numeric = {column for column, kind in contract.types.items() if kind == "numeric"}
    numeric |= {column for column, check in contract.checks.items() if check.min is not None or check.max is not None}
    for column in sorted(numeric & set(table.columns)):
        _require_numeric(table, where, column)
    kept = [column for column in table.columns if column not in {*dropped, contract.time} or column == contract.target_column]
    _check_values(table, where, kept, contract)
    return numeric


def _labelled(table: pd.DataFrame, where: str, contract: DataContract) -> tuple[pd.DataFrame, pd.Series]:
    """The rows that have a target (a sample of them when data.sample_rows says so), and their target."""
    labelled = table[table[contract.target_column].notna()]
    if labelled.empty:
        fail(f"{where}: every row lacks '{contract.target_column}', nothing to learn from; check the source file")
    # On every labelled row, before sampling: a positive label that never occurs is a typo, not bad luck.
    target = target_values(labelled[contract.target_column], contract.target_spec, where, whole_column=True)
    if contract.sample_rows is not None and contract.sample_rows < len(labelled):
        labelled = labelled.sample(n=contract.sample_rows, random_state=contract.sample_seed).sort_index()
    return labelled, target.loc[labelled.index]


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
    """The rows of each data.splits window; every window holds rows, test comes after train, train has both classes."""
    splits: dict[str, pd.DataFrame] = {}
    for window in contract.splits:
        _check_window(window, prepared[contract.time])
        rows = prepared[(prepared[contract.time] >= window.start) & (prepared[contract.time] < window.end)].reset_index(drop=True)
        if rows.empty:
            fail(f"conf/data/: split '{window.name}' [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) holds no rows; widen it")
        splits[window.name] = rows
    train, test = contract.split("train"), contract.split("test")
    if test.start < train.end:
        fail(
            f"conf/data/: split 'test' starts {test.start:%Y-%m-%d}, before 'train' ends {train.end:%Y-%m-%d}; the test window must come strictly after training"
        )
    if contract.task == "classification" and splits["train"][contract.target].nunique() < 2:
        only = int(splits["train"][contract.target].iloc[0])
        fail(
            f"split 'train': target '{contract.target}' has one class only ({only}); widen the train window or check data.target "
            f"in conf/data/ ({contract.target_spec.rule})"
        )
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


def labelled_rows(table: pd.DataFrame, related: Sequence[pd.DataFrame], contract: DataContract) -> Labelled:
    """Everything prepare does before splitting: label, join, validate; pure apart from its inputs."""
    where = Path(contract.source.path).name
    if table.empty:
        fail(f"{where}: no rows; point data.source in conf/data/ at a non-empty file")
    dropped = [*contract.identifiers, *contract.leaks, *contract.other_drops]
    # The target's source column is the outcome itself: it never stays as an input.
    source_of_target = [contract.target_column] if contract.target_column != contract.target else []
    numeric = _check_source(table, where, contract, dropped)
    table = _parse_time(table, where, contract)
    labelled, target = _labelled(table, where, contract)
    labelled, unmatched = _join_related(labelled, related, contract)

    declared = sorted(set(contract.types) | set(contract.checks))
    _require(labelled, where, declared, "declared in data.types or data.checks")
    for column in sorted(numeric - set(table.columns)):
        _require_numeric(labelled, where, column)
    prepared = labelled.drop(columns=[column for column in [*dropped, *source_of_target] if column in labelled.columns]).assign(
        **{contract.target: target}
    )
    prepared = prepared.sort_values(contract.time, kind="stable")

    violations = validate(prepared, contract)
    if violations and contract.on_violation == "error":
        fail(
            f"{where}: the data breaks {len(violations)} rule(s) of data.checks in conf/data/ "
            f"(fix the data, or the rule, or set data.on_violation: warn):\n  " + "\n  ".join(violations)
        )
    return Labelled(rows=prepared, used=len(labelled), unmatched=unmatched, violations=violations)


def without_target(source_rows: int, missing: int, contract: DataContract) -> tuple[str | None, list[str]]:
    """What prepare says of the source rows it dropped for lacking a target: the words for the console line
    (None when it dropped none) and a warning when their share is above data.target.max_missing_share."""
    if not missing:
        return None, []
    share = missing / source_rows
    dropped = f"{missing:,} of {source_rows:,} source rows ({share:.1%}) had no '{contract.target_column}' and were dropped"
    limit = contract.target_spec.max_missing_share
    if limit is None or share <= limit:
        return dropped, []
    return dropped, [
        f"data.target: {dropped}, more than data.target.max_missing_share ({limit:g}) allows; check the source and "
        f"data.missing_values (a token read as missing hides outcomes), or raise the share in conf/data/"
    ]


def prepare(
    table: pd.DataFrame, related: Sequence[pd.DataFrame], contract: DataContract, sources: dict[str, Any] | None = None
) -> Prepared:
    """Label, join, validate and split; pure apart from its inputs."""
    labelled = labelled_rows(table, related, contract)
    splits = _split(labelled.rows.reset_index(drop=True), contract)
    prepared, unmatched, violations = labelled.rows, labelled.unmatched, labelled.violations

    def target_summary(rows: pd.DataFrame) -> dict[str, float]:
        key = "positive_share" if contract.task == "classification" else "target_mean"
        return {key: round(float(rows[contract.target].mean()), 6)}

    missing = int(table[contract.target_column].isna().sum())
    dropped, warnings = without_target(len(table), missing, contract)
    summary = {
        "dataset": contract.name,
        "sources": sources or {},
        "rows": {"source": len(table), "without_target": missing, "used": labelled.used},
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
    # Before the rows without a target are gone: a column that only exists with an outcome is a leak.
    kept = [column for column in splits["train"].columns if column in table.columns and column not in (contract.target, contract.time)]
    post_outcome = post_outcome_evidence(table, contract.target_column, kept)
    schema = infer_schema(splits["train"], contract, post_outcome)
    return Prepared(splits=splits, summary=summary, schema=schema, violations=violations, warnings=warnings, dropped=dropped)


def source_summary(path: Path, table: pd.DataFrame) -> dict[str, Any]:
    """What was read: the file's hash, its rows, and per column how many cells were read as missing
    (a data.missing_values token in text, a null in Parquet), so a token that swallowed values shows."""
    missing = table.isna().sum()
    return {"sha256": sha256_file(path), "rows": len(table), "read_as_missing": {name: int(n) for name, n in missing.items() if n}}


def read_sources(contract: DataContract) -> tuple[list[Path], list[pd.DataFrame]]:
    """The contract's source table and its data.join tables (paths and tables, in that order), as read."""
    paths = [contract.source.locate(), *(join.source.locate() for join in contract.joins)]
    settings = ["data.source", *(f"data.join[{index}].source" for index in range(len(contract.joins)))]
    tables = [
        read_table(path, f"fix {setting} in conf/data/", contract.missing_values) for path, setting in zip(paths, settings, strict=True)
    ]
    return paths, tables


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    contract = params.data
    paths, tables = read_sources(contract)
    sources = {path.name: source_summary(path, frame) for path, frame in zip(paths, tables, strict=True)}
    prepared = prepare(tables[0], tables[1:], contract, sources)
    for violation in prepared.violations:
        print(f"warning: data.checks: {violation}", file=sys.stderr)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    outputs = {PREPARED_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in prepared.splits.items()}
    outputs[PREPARE_SUMMARY] = json_writer(prepared.summary)
    schema_text = yaml.safe_dump(prepared.schema, sort_keys=False, allow_unicode=True)
    outputs[SCHEMA_FILE] = lambda path: path.write_text(
        f"# Inferred by prepare from the train split; declared types come from conf/data/.\n{schema_text}", encoding="utf-8"
    )
    write_outputs(outputs)
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in prepared.splits.items())
    print(f"prepare: {contract.name}: {counts} rows -> {PREPARED_DIR}/" + (f"; {prepared.dropped}" if prepared.dropped else ""))


if __name__ == "__main__":
    run_stage(main)
