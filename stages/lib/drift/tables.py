"""Reading the windows the drift check compares: only the columns it checks, straight from Arrow's buffers.

At 10M rows reading whole Parquet files cost more than the statistics. A file or a folder of parts (the dask
engine writes a split as `part-00000.parquet`, ... in time order) is read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages.lib.errors import fail
from stages.lib.io import parquet_schema


def _one_chunk_each(table: pa.Table) -> pa.Table:
    """Each column as one chunk (one copy per column, one column at a time), so that `to_pandas` hands a numeric column
    without nulls over as is; converting the row groups' chunks one by one cost twice as much. Dictionary columns
    keep their chunks: pandas unifies their categories in its own order, which the drift check's results follow."""
    for index, column in enumerate(table.columns):
        if column.num_chunks > 1 and not pa.types.is_dictionary(column.type):
            table = table.set_column(index, table.field(index), pa.chunked_array([column.combine_chunks()], type=column.type))
    return table


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
        table = _one_chunk_each(pq.read_table(path, columns=wanted, use_threads=True, use_pandas_metadata=True))
        frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True)
        return frame
    except (pa.ArrowException, OSError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
