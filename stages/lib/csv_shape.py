"""The shape of a CSV file, checked before pandas reads it: pandas renames a repeated header name ('temp' becomes
'temp.1', every later name then means another column than the contract says), fills a row with too few fields with
missing cells, takes the first column as the index when every row has one field too many, and reads a
';'-separated file as one column. Each of these stops here with one line naming the file and the fix.

One streaming pass over the bytes (compressed files through pandas' own opener), in blocks: without quotes in a
block, a row's field count is its commas plus one (NumPy); a file with quotes is counted by Python's csv module,
which splits quoted fields as pandas does.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from pandas.io.common import get_handle  # type: ignore[import-not-found]  # pandas' own opener: no stub

from stages.lib.errors import fail

BLOCK_BYTES = 1 << 24
OTHER_DELIMITERS = (";", "\t", "|")
NEWLINE, COMMA, QUOTE, CARRIAGE_RETURN = 10, 44, b'"', 13


class Miscounted(NamedTuple):
    """Rows whose field count differs from the header's: how many, and the first one's line and count."""

    rows: int
    line: int
    fields: int


@contextmanager
def _binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed as pandas decompresses it (by its suffix)."""
    with get_handle(path, "rb", compression="infer", is_text=False) as handles:
        yield handles.handle


def header_names(path: Path) -> list[str]:
    with _binary(path) as stream:
        first = stream.readline().decode("utf-8-sig", errors="replace")
    return next(csv.reader([first]), [])


def check_header(names: list[str], where: str) -> None:
    """No name twice; not one name holding another delimiter's list of names."""
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        positions = [str(index + 1) for index, name in enumerate(names) if name == repeated[0]]
        fail(
            f"{where}: column '{repeated[0]}' appears {len(positions)} times in the header (columns {', '.join(positions)}); "
            f"pandas would rename one and shift the names: rename or remove the duplicate in the file"
        )
    if len(names) == 1:
        counts = {delimiter: names[0].count(delimiter) for delimiter in OTHER_DELIMITERS}
        delimiter = max(counts, key=lambda key: counts[key])
        if counts[delimiter]:
            fail(
                f"{where}: the header is one column holding {counts[delimiter] + 1} names separated by {delimiter!r} "
                f"({names[0][:60]!r}); the file must be comma-separated: save it with ',' as the delimiter"
            )


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """Whole lines, in blocks of about BLOCK_BYTES (the last one may lack its line end)."""
    carry = b""
    while block := stream.read(BLOCK_BYTES):
        data = carry + block
        end = data.rfind(b"\n") + 1
        carry = data[end:]
        if end:
            yield data[:end]
    if carry:
        yield carry


def _count_unquoted(block: bytes, expected: int, first_line: int) -> tuple[int, int, int, int]:
    """Miscounted rows in a block without quotes: (rows, first line, its fields, lines in the block)."""
    values = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(values == NEWLINE)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(values))
    starts = np.concatenate(([0], ends[:-1] + 1))
    fields = np.diff(np.searchsorted(np.flatnonzero(values == COMMA), ends), prepend=0) + 1
    length = ends - starts
    blank = (length == 0) | ((length == 1) & (values[np.minimum(starts, len(values) - 1)] == CARRIAGE_RETURN))
    wrong = np.flatnonzero((fields != expected) & ~blank)
    if not len(wrong):
        return 0, 0, 0, len(ends)
    return len(wrong), first_line + int(wrong[0]), int(fields[wrong[0]]), len(ends)


def _count_quoted(path: Path, expected: int) -> Miscounted | None:
    rows, first = 0, None
    with _binary(path) as stream:
        reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))
        next(reader, None)
        for row in reader:
            if row and len(row) != expected:
                rows += 1
                first = first or (reader.line_num, len(row))
    return None if first is None else Miscounted(rows, *first)


def miscounted_rows(path: Path, expected: int) -> Miscounted | None:
    """Rows (blank lines aside, as pandas skips them) whose field count is not the header's `expected`."""
    rows, first, line = 0, None, 2
    with _binary(path) as stream:
        stream.readline()
        for block in _blocks(stream):
            if QUOTE in block:
                return _count_quoted(path, expected)
            wrong, at, fields, lines = _count_unquoted(block, expected, line)
            rows += wrong
            first = first or ((at, fields) if wrong else None)
            line += lines
    return None if first is None else Miscounted(rows, *first)


def check_csv(path: Path, where: str) -> list[str]:
    """The file's header names, once its header and every row's field count are checked (module docstring)."""
    names = header_names(path)
    check_header(names, where)
    wrong = miscounted_rows(path, len(names))
    if wrong:
        fail(
            f"{where}: {wrong.rows:,} row(s) do not have the header's {len(names)} fields (line {wrong.line} has "
            f"{wrong.fields}); fix those rows (a comma inside a value must be quoted)"
        )
    return names
