"""The steps of prepare that both engines share: the contract's checks on a table, the joins, the split-window
checks and the words prepare stops or warns with (stages/prepare.py runs them on the whole table, the dask
engine's path in stages/lib/prepare_partitioned.py on pieces), so both engines stop with the same line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pandera.pandas as pa

from stages.lib.config import DataContract, Join, Window
from stages.lib.contract import (
    parse_time,
    refuse_infinite,
    refuse_text_in_numbers,
)
from stages.lib.csv_shape import check_csv
from stages.lib.errors import fail
from stages.lib.io import (
    READ_ERRORS,
    conform,
    is_parquet,
    mask_tokens,
    merged_types,
    parquet_schema,
    profile,
    read_files,
    read_verified_parquet,
    reread_as_text,
    sha256_file,
    source_files,
)

MAX_REPORTED_VIOLATIONS = 20
FIX_TIME = "fix the values, or data.time.format in conf/data/ (iso8601, year, epoch_s, epoch_ms or a strptime pattern)"
FIX_INFINITE = 'fix the source, or list how it writes them (e.g. "inf", "-inf") in data.missing_values to read them as missing'


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


def _joinable(related: pd.DataFrame, join: Join, where: str) -> pd.DataFrame:
    """The related table's keys and joined columns, one row per key (checked, or deduplicated as data.join says)."""
    _require(related, where, join.keys, "a join key")
    columns = [column for column in (join.columns or related.columns) if column not in join.keys]
    _require(related, where, columns, "listed in data.join columns")
    if join.deduplicate:
        related = related.drop_duplicates(subset=list(join.keys), keep="first")
    elif related.duplicated(subset=list(join.keys)).any():
        fail(f"{where}: several rows share one ({', '.join(join.keys)}) key; set deduplicate: true in data.join to keep the first")
    return related.loc[:, [*join.keys, *columns]]


def _merge(table: pd.DataFrame, related: pd.DataFrame, join: Join) -> tuple[pd.DataFrame, int]:
    """`table` left-joined with a `_joinable` table; with the count of its rows left unmatched."""
    keys = list(join.keys)
    if set(table.columns) & (set(related.columns) - set(keys)):  # names in both: pandas' suffixes, from the whole merge
        joined = table.merge(related, on=keys, how="left", validate="many_to_one", indicator=True)
        unmatched = int((joined.pop("_merge") == "left_only").sum())
        # A left many-to-one merge keeps the left rows in order: give them back their index (source positions).
        return joined.set_axis(table.index), unmatched
    # Only the keys go through pandas' merge, to find each row's match (its position in `related`, -1: none); each
    # joined column is then taken from `related` and put beside the table's own columns, which are not copied. The
    # same frame as the whole merge (pandas' take: a missing match makes integers floats), at a fraction of its memory.
    position = "position" + "_" * max(len(str(key)) for key in keys)  # a name that is no key
    matches = table.loc[:, keys].merge(
        related.loc[:, keys].assign(**{position: np.arange(len(related))}), on=keys, how="left", validate="many_to_one"
    )
    found = matches[position].fillna(-1).to_numpy(dtype=np.int64)
    del matches
    joined = table.copy(deep=False)
    if joined.attrs != related.attrs:  # as pandas' merge: attrs (e.g. UNREAD) stay only when both tables hold the same
        joined.attrs = {}
    for name in [column for column in related.columns if column not in keys]:
        joined[name] = pd.Series(pd.api.extensions.take(related[name].array, found, allow_fill=True), index=table.index)
    return joined, int((found == -1).sum())


def _join(table: pd.DataFrame, related: pd.DataFrame, join: Join, where: str) -> tuple[pd.DataFrame, int]:
    return _merge(table, _joinable(related, join, where), join)


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
        # Only the checked columns: pandera copies what it validates (inplace=True on this selection spares that copy).
        pa.DataFrameSchema(columns).validate(table.loc[:, [name for name in columns if name in table.columns]], lazy=True, inplace=True)
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


def _stop_on_violations(violations: Sequence[str], where: str, contract: DataContract) -> None:
    if violations and contract.on_violation == "error":
        fail(
            f"{where}: the data breaks {len(violations)} rule(s) of data.checks in conf/data/ "
            f"(fix the data, or the rule, or set data.on_violation: warn):\n  " + "\n  ".join(violations)
        )


def _nothing_labelled(where: str, contract: DataContract) -> NoReturn:
    fail(f"{where}: every row lacks '{contract.target_column}', nothing to learn from; check the source file")


def _empty_window(window: Window) -> NoReturn:
    fail(f"conf/data/: split '{window.name}' [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) holds no rows; widen it")


def _check_split_order(contract: DataContract) -> None:
    train, test = contract.split("train"), contract.split("test")
    if test.start < train.end:
        fail(
            f"conf/data/: split 'test' starts {test.start:%Y-%m-%d}, before 'train' ends {train.end:%Y-%m-%d}; the test window must come strictly after training"
        )


def _one_class(only: int, contract: DataContract) -> NoReturn:
    fail(
        f"split 'train': target '{contract.target}' has one class only ({only}); widen the train window or check data.target "
        f"in conf/data/ ({contract.target_spec.rule})"
    )


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


def source_summary(path: Path, table: pd.DataFrame) -> dict[str, Any]:
    """What was read: the file's hash, its rows, and per column how many cells were read as missing
    (a data.missing_values token in text, a null in Parquet), so a token that swallowed values shows."""
    return _summary(path, len(table), {str(name): int(count) for name, count in table.isna().sum().items()})


def _summary(path: Path, rows: int, missing: dict[str, int]) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "rows": rows, "read_as_missing": {name: int(n) for name, n in missing.items() if n}}


def _settings(contract: DataContract) -> list[tuple[Path, str]]:
    """Each source path (the table's, then each data.join table's) and the setting that names it."""
    return [(source.locate(), setting) for setting, source in contract.sources]


# Rows per chunk of a CSV read: a chunk's columns as text and numbers stay well under 1 GB (module `read_needed`).
CHUNK_ROWS = 1_000_000
UNREAD = "unread_columns"  # table.attrs key: columns of the file the reader left out on purpose (data.drop)


def _dropped(contract: DataContract) -> list[str]:
    return [*contract.identifiers, *contract.leaks, *contract.other_drops]


def needed_columns(names: Sequence[str], contract: DataContract) -> list[str]:
    """The source table's columns prepare uses: all but data.drop's (the target's own column, the time and the
    join keys stay)."""
    keys = {key for join in contract.joins for key in join.keys}
    dropped = set(_dropped(contract)) - {contract.target_column, contract.time, *keys}
    return [name for name in names if name not in dropped]


def _chunks(file: Path, tokens: Sequence[str], columns: Sequence[str] | None, where: str) -> list[pd.DataFrame]:
    """One file's rows in chunks of CHUNK_ROWS (Parquet: one), only `columns` (None: all); progress on stdout."""
    try:
        if is_parquet(file):
            return [mask_tokens(read_verified_parquet(file, columns), tokens)]
        options: dict[str, Any] = {"low_memory": False, "keep_default_na": False, "na_values": list(tokens), "usecols": columns}
        chunks, rows = [], 0
        with pd.read_csv(file, chunksize=CHUNK_ROWS, **options) as reader:
            for chunk in reader:
                chunks.append(chunk)
                rows += len(chunk)
                if len(chunk) == CHUNK_ROWS:  # a long read says how far it got
                    print(f"prepare: {where}: {rows:,} rows read", flush=True)
        return chunks or [pd.read_csv(file, **options)]  # a header without rows: no chunk, an empty table
    except READ_ERRORS as error:
        fail(f"{file}: cannot read it as a table ({str(error).splitlines()[0] if str(error) else type(error).__name__})")


FIX_OVERSIZED = "raise it in conf/data/ if the machine has about 3 times that in memory (or use engine=dask), or split the file"
FIX_OVERSIZED_DASK = "raise it in conf/data/ to read a larger source on the dask engine"


def _refuse_oversized(files: Sequence[Path], setting: str, limit: int, fix: str = FIX_OVERSIZED) -> None:
    size = sum(file.stat().st_size for file in files)
    if size > limit:
        fail(f"{files[0] if len(files) == 1 else files[0].parent}: {size:,} bytes, above data.max_source_bytes ({limit:,}); {fix}")


def check_pieced_source(files: Sequence[Path], contract: DataContract, where: str) -> None:
    """What the pandas engine checks of the source's files before reading them, for the dask engine, which reads them in
    pieces cut from the files: data.max_source_bytes, and every CSV's shape (`check_csv`)."""
    _refuse_oversized(files, "data.source", contract.max_source_bytes, FIX_OVERSIZED_DASK)
    for file in files:
        if not is_parquet(file):
            check_csv(file, where)


def read_needed(files: Sequence[Path], tokens: Sequence[str], contract: DataContract, where: str, table: bool) -> list[pd.DataFrame]:
    """Each file as pandas reads it whole (types merged over every chunk and file, as `read_files`), but in chunks
    and, for the source table (`table`), only the `needed_columns`: the peak stays near the size of the kept table."""
    names = [check_csv(file, where) if not is_parquet(file) else list(parquet_schema(file, where)) for file in files]
    columns = None
    if table:
        _require(pd.DataFrame(columns=names[0]), where, _dropped(contract), "listed in data.drop")
        columns = needed_columns(names[0], contract)
    per_file = [_chunks(file, tokens, columns, where) for file in files]
    chunks = [chunk for file_chunks in per_file for chunk in file_chunks]
    if len(chunks) == 1:
        return chunks
    profiles = [profile(chunk) for chunk in chunks]
    types = merged_types(profiles, where)
    if any(reread_as_text(seen, types) for seen in profiles):  # text in some chunks, numbers in others: read whole
        return [frame if columns is None else frame.loc[:, list(columns)] for frame in read_files(files, tokens, where)]
    return [pd.concat([conform(chunk, types) for chunk in file_chunks], ignore_index=True) for file_chunks in per_file]


def _read_source(path: Path, setting: str, contract: DataContract) -> tuple[dict[str, Any], pd.DataFrame]:
    """One source as the pandas engine reads it: every file its path (or glob) names, in file-name order, as one table;
    with each file's summary. The source table keeps only the columns prepare uses (`needed_columns`)."""
    files = source_files(path, f"fix {setting} in conf/data/")
    _refuse_oversized(files, setting, contract.max_source_bytes)
    table = setting == "data.source"
    frames = read_needed(files, contract.missing_values, contract, path.name, table)
    summaries = {file.name: source_summary(file, frame) for file, frame in zip(files, frames, strict=True)}
    read = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if table:
        read.attrs[UNREAD] = [name for name in _dropped(contract) if name not in read.columns]
    return summaries, read
