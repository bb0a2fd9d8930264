"""Reading the windows the drift check compares: only the columns it checks, straight from Arrow's buffers.

At 10M rows reading whole Parquet files cost more than the statistics. A file or a folder of parts (the dask
engine writes a split as `part-00000.parquet`, ... in time order) is read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages.lib.drift.columns import LevelCounts, Scratch, SortedSample, categorical_levels, level_counts
from stages.lib.drift.kernel import code_counts
from stages.lib.errors import fail
from stages.lib.io import parquet_files, parquet_schema
from stages.lib.profile import MOMENTS_KEY


def _one_chunk_each(table: pa.Table) -> pa.Table:
    """Each column as one chunk (one copy per column, one column at a time), so that `to_pandas` hands a numeric column
    without nulls over as is; converting the row groups' chunks one by one cost twice as much. Dictionary columns
    keep their chunks: pandas unifies their categories in its own order, which the drift check's results follow."""
    for index, column in enumerate(table.columns):
        if column.num_chunks > 1 and not pa.types.is_dictionary(column.type):
            table = table.set_column(index, table.field(index), pa.chunked_array([column.combine_chunks()], type=column.type))
    return table


def _frame(table: pa.Table) -> pd.DataFrame:
    """The table as `pd.read_parquet` gives it (read with its pandas metadata), converted as `read_columns` says."""
    frame: pd.DataFrame = _one_chunk_each(table).to_pandas(split_blocks=True, self_destruct=True)
    return frame


def read_columns(path: str | Path, columns: Iterable[str], hint: str) -> pd.DataFrame:
    """The `columns` of a Parquet table that it holds, in the order asked; the others are never read or decoded.

    A column asked for but absent is left out, not an error: the caller names what a window lacks in its own words.
    The frame equals `pd.read_parquet(path, columns=...)` (dtypes included): pyarrow's `to_pandas` with one block
    per column (`split_blocks`, no consolidation copy) and `self_destruct` (each Arrow column is freed once
    converted, so the peak is not two copies of the table); a numeric column without nulls in one chunk becomes
    a NumPy array over Arrow's buffer without a copy.

    Args:
        path: a Parquet file or a folder of Parquet parts.
        columns: the columns wanted.
        hint: what to run when the path does not exist (ends the error message).

    Returns:
        The columns held, as a DataFrame with the table's rows.

    Raises:
        UserError: the path does not exist or is not Parquet.
    """
    held = parquet_schema(path, hint)
    wanted = [name for name in dict.fromkeys(columns) if name in held]
    try:
        return _frame(pq.read_table(path, columns=wanted, use_threads=True, use_pandas_metadata=True))
    except (pa.ArrowException, OSError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")


def read_profile(path: str | Path, columns: Iterable[str], hint: str) -> dict[str, SortedSample]:
    """The stored sorted reference profile's `columns` (those it holds) as `SortedSample`s: the values without the
    missing ones, and the reference's row count. The file (`profile.write_sorted_columns`: Arrow IPC, uncompressed) is
    memory-mapped: the values are views of the page cache, with no decoding and no copy; missing values are nulls
    stored last, so their count is Arrow's.

    Args:
        path: the profile (data/features/reference_sorted.arrow).
        columns: the columns wanted.
        hint: what to run when the file does not exist.

    Raises:
        UserError: the file does not exist or is not an Arrow IPC file.
    """
    if not Path(path).is_file():
        fail(f"{path}: file not found; {hint}")
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (pa.ArrowException, OSError) as error:
        fail(f"{path}: cannot read it as an Arrow IPC file ({str(error).splitlines()[0] if str(error) else type(error).__name__}); {hint}")
    stored = json.loads((table.schema.metadata or {}).get(MOMENTS_KEY, b"{}"))
    samples = {}
    for name in dict.fromkeys(columns):
        if name in table.column_names:
            sample = _sorted_sample(table.column(name))
            exact = tuple(float.fromhex(number) for number in stored[name]) if name in stored else None
            samples[name] = replace(sample, moments=(exact[0], exact[1])) if exact and len(sample.values) else sample
    return samples


def _sorted_sample(column: pa.ChunkedArray) -> SortedSample:
    values = column.slice(0, len(column) - column.null_count)
    if values.null_count:  # nulls not all last: not a stored profile's layout; count them the long way
        array = np.sort(column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    else:  # one record batch as the profile is written: a view without a copy
        array = (values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()).to_numpy(zero_copy_only=False)
        array = array.astype(np.float64, copy=False)
    if len(array) and np.isnan(array[-1]):  # NaN stored as a value rather than a null: it sorts last
        array = array[: len(array) - int(np.count_nonzero(np.isnan(array)))]
    return SortedSample(array, len(column))


def sorted_readable(path: str | Path, columns: Iterable[str], hint: str) -> list[str]:
    """Those of `columns` that `read_sorted` can read from the table: stored as plain integers or floats (what pandas
    reads as numbers; a dictionary column, a decimal or a date goes through `read_columns`)."""
    schema = pq.read_schema(parquet_files(path, hint)[0])
    plain = {field.name for field in schema if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)}
    return [name for name in columns if name in plain]


def read_sorted(path: str | Path, column: str, scratch: Scratch | None = None) -> SortedSample:
    """One numeric column of a Parquet table (a `sorted_readable` one) as a `SortedSample`, without a DataFrame: each
    row group is decoded on its own and copied into one float64 array, which is sorted in place (`read_columns`, then
    `sorted_profile`, copied the column twice before the sort). The values are those of `sorted_profile` of the column
    `read_columns` gives (the order of the rows does not matter to a sorted sample), missing values (nulls or NaN)
    counted as pandas counts them.

    Args:
        path: a Parquet file or a folder of parts.
        column: the column.
        scratch: the array to fill (the returned values are a view of it, valid until its next use); default: a new one.

    Raises:
        UserError: the file cannot be read, or does not hold the column.
    """
    try:
        # Memory-mapped: the pages are decoded straight from the page cache, not first copied into a buffer (10% less CPU).
        files = [pq.ParquetFile(part, memory_map=True) for part in parquet_files(path, "")]
        values = (scratch or Scratch()).take(sum(file.metadata.num_rows for file in files))
        filled = 0
        for file in files:
            for group in range(file.num_row_groups):
                for chunk in file.read_row_group(group, columns=[column], use_threads=False).column(column).chunks:
                    end = filled + len(chunk)
                    if pa.types.is_null(chunk.type):  # a part where the column holds no value at all
                        values[filled:end] = np.nan
                    else:  # a view of Arrow's buffer where it can be (no nulls), cast while copied
                        values[filled:end] = chunk.to_numpy(zero_copy_only=False)
                    filled = end
    except (pa.ArrowException, OSError, KeyError) as error:
        fail(f"{path}: cannot read column '{column}' as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    if filled != len(values):
        fail(f"{path}: column '{column}' holds {filled} values for {len(values)} rows; the file is damaged, rerun `dvc repro prepare`")
    values.sort()  # in place; NaN sorts last
    rows = len(values)
    if rows and np.isnan(values[-1]):
        values = values[: rows - int(np.count_nonzero(np.isnan(values)))]
    return SortedSample(values, rows)


# Arrow value types whose dictionary `to_pandas` turns into categories of text; `read_level_counts` counts their codes.
_TEXT_TYPES = (pa.string(), pa.large_string())


def read_level_counts(path: str | Path, column: str, hint: str) -> LevelCounts:
    """One column of a Parquet table as `LevelCounts`, what `columns.level_counts` gives for the column
    `read_columns` reads, without converting it to pandas.

    A dictionary column of text (what pandas writes for a Categorical) is counted on Arrow's codes, chunk by chunk,
    and the chunks' dictionaries are united in their order of first appearance, as `to_pandas` unites them into the
    Categorical's categories; the codes are never copied, transposed or widened. Any other column (the default pipeline's
    prepared text columns are `large_string`, not dictionaries) is converted from the table already read, as `read_columns`
    converts it, and counted by `level_counts`.

    Raises:
        UserError: the table does not exist (the message ends with `hint`) or cannot be read.
    """
    parquet_files(path, hint)  # a missing table: one line saying what to run
    try:
        table = pq.read_table(path, columns=[column], use_threads=False, use_pandas_metadata=True, memory_map=True)
    except (pa.ArrowException, OSError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    values = table.column(column)
    if not pa.types.is_dictionary(values.type) or values.type.value_type not in _TEXT_TYPES:
        return level_counts(_frame(table)[column])  # the table already read, converted as `read_columns` converts it
    position: dict[str, int] = {}  # each text's category, in order of first appearance
    counts: list[int] = []
    for chunk in values.chunks:
        texts = chunk.dictionary.to_pylist()  # Parquet's reader gives each chunk a dictionary of distinct texts, no missing one
        codes = chunk.indices.drop_null() if chunk.null_count else chunk.indices
        own = code_counts(codes.to_numpy(), len(texts))
        for text, count in zip(texts, own.tolist(), strict=True):
            if text not in position:
                position[text] = len(counts)
                counts.append(0)
            counts[position[text]] += count
    # The categories typed as `to_pandas` types them: an empty dictionary array of them, converted.
    empty = pa.DictionaryArray.from_arrays(
        pa.array([], type=values.type.index_type), pa.array(list(position), type=values.type.value_type), ordered=values.type.ordered
    )
    dtype = empty.to_pandas().dtype
    return LevelCounts(np.asarray(counts, dtype=np.int64), categorical_levels(dtype), len(values), values.null_count, categorical=True)
