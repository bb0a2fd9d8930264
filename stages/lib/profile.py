"""How column values are read (stored as numbers; as the text of a category), and the stored reference profile:
each column the schema types numeric or boolean, sorted on its own.

featurize writes it, drift-check reads it. It lives apart from the drift statistics so that
featurize (and everything downstream of it) does not depend on, nor rerun for, the drift code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

# The schema types whose values the drift check compares, or counts, as numbers (stages/lib/drift/columns.py).
SORTED_TYPES = ("numeric", "boolean")


def holds_numbers(series: pd.Series) -> bool:
    """The values are stored as numbers (True/False flags are not: they are counted by their labels).

    How a column is stored, not what it is: its type comes from data/schema.yaml."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def category_strings(series: pd.Series) -> pd.Series:
    """A column's values as the text of a category (pandas string dtype, missing kept): the one rule featurize, the drift
    check and the monitor share. Codes stored as floats (an integer column with a missing cell) read as their integers,
    3.0 as "3", as the same code reads from a scoring file without missing cells; other values keep their own text."""
    if not pd.api.types.is_float_dtype(series):
        return series.astype("string")
    numbers = series.astype(np.float64)
    text = numbers.astype("string")
    whole = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (numbers.abs() < 2**63)
    text[whole] = numbers[whole].astype(np.int64).astype("string")
    return text


def profile_values(series: pd.Series) -> np.ndarray | None:
    """A column's values as the profile stores them (float64, missing as NaN, unsorted), or None when the column is not
    stored as numbers (`holds_numbers`): such a column is not profiled."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan) if holds_numbers(series) else None


def sorted_columns(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """The stored reference profile: each column typed numeric or boolean (`types`: {column: schema type}) and
    stored as numbers, sorted on its own, missing values last. A categorical column is never in it, whatever its values."""
    profiled = {name: profile_values(frame[name]) for name, kind in types.items() if kind in SORTED_TYPES}
    return pd.DataFrame({name: np.sort(values) for name, values in profiled.items() if values is not None})


# The key of the profile file's metadata that holds each column's `moments`, which the drift check would otherwise
# compute again on every run (two passes over the reference's values).
MOMENTS_KEY = b"moments"


def moments(values: np.ndarray) -> tuple[float, float]:
    """The mean and the (population) standard deviation of a sorted sample without NaN (not empty): the reference's
    `reference_mean` and `reference_std` in the drift statistics, stored with the profile as floats in hex (exact)."""
    return float(np.mean(values)), float(np.std(values))


def write_sorted_columns(profile: pd.DataFrame, path: str | Path) -> None:
    """Store the profile as an uncompressed Arrow IPC file, which drift-check memory-maps: reading it costs no
    decoding and no copy (from zstd Parquet, decoding the sorted doubles, which do not compress, cost more than sorting
    the columns again). Missing values become Arrow nulls, last in each column, so a reader knows their count without
    a pass over the values; each column's `moments` go to the file's metadata. Equal profiles give byte-identical files."""
    columns, stored = {}, {}
    for name in profile.columns:
        values = profile[name].to_numpy(dtype=np.float64)
        columns[name] = pa.array(values, from_pandas=True)
        present = values[: len(values) - int(np.count_nonzero(np.isnan(values)))]
        if len(present):
            stored[name] = [number.hex() for number in moments(present)]
    _write_table(columns, stored, path)


def _write_table(columns: Mapping[str, pa.Array], stored: Mapping[str, list[str]], path: str | Path) -> None:
    table = pa.table(dict(columns)).replace_schema_metadata({MOMENTS_KEY: json.dumps(stored, sort_keys=True).encode()})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


@dataclass(frozen=True)
class Spooled:
    """One sorted profile column kept in a file of raw float64 (`spool_column`) instead of in memory."""

    path: Path
    rows: int
    nulls: int  # NaN, last
    moments: list[str] | None  # `moments` of the present values in hex, None when every value is missing


SPOOL_CHUNK = 1 << 23  # values copied at a time (64 MB) from a spooled column into the profile file


def spool_column(values: np.ndarray, path: Path) -> Spooled:
    """Write one sorted column (float64, NaN last, as `sorted_columns` sorts it) to `path` with what the file needs of it."""
    nulls = int(np.count_nonzero(np.isnan(values)))
    present = values[: len(values) - nulls]
    values.astype(np.float64, copy=False).tofile(path)
    return Spooled(path, len(values), nulls, [number.hex() for number in moments(present)] if len(present) else None)


def validity_bits(length: int, present: int) -> np.ndarray:
    """Arrow's validity bitmap (least significant bit first) of `length` values whose first `present` are valid."""
    bitmap = np.zeros((length + 7) // 8, dtype=np.uint8)
    bitmap[: present // 8] = 0xFF
    if present % 8:
        bitmap[present // 8] = (1 << (present % 8)) - 1
    return bitmap


def write_sorted_spooled(columns: Mapping[str, Spooled], path: str | Path) -> None:
    """`write_sorted_columns` of the spooled columns, byte for byte, holding about one column in memory: the Arrow
    writer lays the file out from placeholder columns that share one buffer (the layout depends only on each column's
    length and null count), then each column's validity bits and values are written into its place."""
    rows = {column.rows for column in columns.values()}
    if len(rows) > 1:
        raise ValueError(f"profile columns of different lengths: {sorted(rows)}")
    length = rows.pop() if rows else 0
    if length == 0:
        write_sorted_columns(pd.DataFrame({name: np.empty(0) for name in columns}), path)
        return
    data = pa.py_buffer(np.zeros(length, dtype=np.float64))
    validity = pa.py_buffer(np.zeros((length + 7) // 8, dtype=np.uint8))
    placeholders = {
        name: pa.Array.from_buffers(pa.float64(), length, [validity if column.nulls else None, data], null_count=column.nulls)
        for name, column in columns.items()
    }
    _write_table(placeholders, {name: column.moments for name, column in columns.items() if column.moments is not None}, path)
    del placeholders, data, validity
    with pa.memory_map(str(path)) as mapped:
        base = mapped.read_buffer(1).address
        batch = pa.ipc.open_file(mapped).get_batch(0)
        places = {name: [None if buffer is None else buffer.address - base for buffer in batch.column(name).buffers()] for name in columns}
        del batch
    with open(path, "r+b") as target:
        for name, column in columns.items():
            bits, values = places[name]
            if column.nulls:
                assert bits is not None
                target.seek(bits)
                target.write(validity_bits(length, length - column.nulls).tobytes())
            assert values is not None  # a float64 column always has its values buffer
            target.seek(values)
            with open(column.path, "rb") as source:
                while chunk := source.read(SPOOL_CHUNK * 8):
                    target.write(chunk)


def read_sorted_columns(profile: pd.DataFrame) -> dict[str, np.ndarray]:
    """The stored profile as sorted arrays without their missing values."""
    arrays = {}
    for name in profile.columns:
        values = profile[name].to_numpy(dtype=np.float64)
        arrays[name] = values[: len(values) - int(np.isnan(values).sum())]
    return arrays
