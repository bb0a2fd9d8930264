"""File helpers: every output is written to a temporary file (or folder) and renamed into place; source tables are
read here, by both engines.

Source tables: one file or a glob of files, CSV (optionally compressed) or Parquet, read in pieces. The pandas
engine reads a whole file as one piece; the dask engine reads a CSV in byte ranges cut at line ends (one piece
per file when it is compressed: a compressed stream cannot be entered in the middle) and Parquet by row groups.
A CSV piece's column types are pandas' own inference over that piece; `merged_types` then gives every piece the
types pandas infers over the whole table (whole numbers with a missing cell anywhere are floats, a column with
text anywhere is text, read again as text in the pieces that looked numeric), so rows do not depend on the cut.
Everything here is pandas and pyarrow: Dask only schedules the pieces (stages/prepare.py).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import yaml

from stages.lib.errors import fail

# What a writer returns is ignored (Path.write_text returns a count): `object`, so any callable fits.
Writer = Callable[[Path], object]
# Mapping's key type is invariant: a TypeVar lets callers pass dict[Path, ...], dict[str, ...] or both mixed.
Target = TypeVar("Target", bound=str | Path)


@dataclass(frozen=True)
class FolderWriter:
    """A writer that fills a folder (a partitioned Parquet dataset) instead of a file."""

    write: Writer


def _stage(target: Path, writer: Writer | FolderWriter) -> Path:
    """An empty temporary file, or folder, next to `target`, filled by the writer."""
    if isinstance(writer, FolderWriter):
        temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        os.chmod(temporary, 0o777 & ~_umask())
        return temporary
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _put_in_place(written: Path, target: Path) -> None:
    """Rename into place; a folder where a file goes (or the other way round, or a folder over a folder) is moved
    aside first and deleted after, so a split written by one engine replaces the other's."""
    if target.is_dir() or (written.is_dir() and target.exists()):
        aside = target.with_name(f".{target.name}.{os.getpid()}.old")
        _remove(aside)
        os.replace(target, aside)
        os.replace(written, target)
        _remove(aside)
        return
    os.replace(written, target)


# A full disk (or quota), a file over the file system's or `ulimit -f`'s size: what the user can fix, not a bug.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
TOO_LARGE = (errno.EFBIG,)


def write_failure(target: Path, error: OSError) -> str:
    """One line for an output that could not be written: which file, why, and that nothing was replaced."""
    detail = error.strerror or (str(error).splitlines()[0] if str(error) else type(error).__name__)
    if error.errno in DISK_FULL:
        fix = f"the disk holding {target.parent}/ is full: free space and rerun"
    elif error.errno in TOO_LARGE:
        fix = "the file is larger than the file system or the process's file-size limit (ulimit -f) allows"
    else:
        fix = f"check that {target.parent}/ is writable and has space"
    return f"{target}: cannot write it ({detail}); {fix}. Nothing was replaced: the previous outputs are as they were, the temporary files removed"


def write_outputs(writers: Mapping[Target, Writer | FolderWriter]) -> None:
    """Write several outputs all-or-nothing.

    Each writer fills a temporary file (a `FolderWriter`: a temporary folder) next to its target; only when
    every writer has succeeded are they renamed into place, so a failure leaves no half-written output. A write
    that fails with an OSError (a full disk, a file-size limit, a folder not writable) is one UserError line naming
    the output.
    """
    staged: list[tuple[Path, Path]] = []
    target = Path()
    try:
        for name, writer in writers.items():
            target = Path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = _stage(target, writer)
            staged.append((temporary, target))
            if isinstance(writer, FolderWriter):
                writer.write(temporary)
            else:
                writer(temporary)
                # mkstemp makes private files; outputs get the usual permissions.
                os.chmod(temporary, 0o666 & ~_umask())
    except BaseException as error:
        for written, _ in staged:
            _remove(written)
        if isinstance(error, OSError):
            fail(write_failure(target, error))
        raise
    for written, target in staged:
        _put_in_place(written, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_text(payload: Any) -> str:
    """Stable JSON: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"


def json_writer(payload: Any) -> Writer:
    text = json_text(payload)
    return lambda path: path.write_text(text, encoding="utf-8")


def parquet_writer(frame: pd.DataFrame) -> Writer:
    # No index and fixed settings, so equal frames give byte-identical files.
    return lambda path: frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")


def parquet_files(path: str | Path, hint: str) -> list[Path]:
    """The files of a table: one Parquet file, or a folder's parts (part-00000.parquet, ... as the dask engine writes
    a split) in order."""
    path = Path(path)
    if not path.exists():
        fail(f"{path}: file not found; {hint}")
    if not path.is_dir():
        return [path]
    parts = sorted(path.glob("part-*.parquet"))
    if not parts:
        fail(f"{path}: a folder without part-*.parquet files; {hint}")
    return parts


def read_parquet(path: str | Path, hint: str) -> pd.DataFrame:
    """One Parquet file, or a folder of parts, in order."""
    files = parquet_files(path, hint)
    if len(files) == 1 and files[0] == Path(path):
        return pd.read_parquet(path, engine="pyarrow")
    return pd.concat([pd.read_parquet(part, engine="pyarrow") for part in files], ignore_index=True)


def parquet_schema(path: str | Path, hint: str) -> dict[str, str]:
    """Column -> Arrow type of a table (a Parquet file or a folder of parts), from the footers only. Over parts the
    types are unified: a column missing in every row of one part (Arrow's `null` type there) takes the others' type.

    Raises:
        UserError: the path does not exist, or is not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pa.unify_schemas([pq.read_schema(part) for part in parquet_files(path, hint)])
    except (pa.ArrowException, OSError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    return {field.name: str(field.type) for field in schema}


def read_table(path: str | Path, hint: str, missing_values: Sequence[str]) -> pd.DataFrame:
    """A CSV (optionally zipped) or Parquet table; exactly the `missing_values` strings are read as missing.

    `hint` finishes the message when the file does not exist (which setting to fix). pandas' own list of
    missing tokens is switched off, so a column's missing cells come only from the declared tokens.
    """
    path = Path(path)
    if not path.exists():
        fail(f"{path}: file not found; {hint}")
    if not is_parquet(path):
        from stages.lib.csv_shape import check_csv  # it imports nothing of this module; here: only for text files

        check_csv(path, str(path))
    return Piece(path).read(missing_values)


def _read_text_file(path: str | Path, hint: str, shown_as: str | Path | None, kind: str, parse: Callable[[str], Any]) -> Any:
    """A JSON or YAML file's payload; a missing or damaged file is one line naming it (as `shown_as`, e.g.
    its path in the project when it is read from another revision's temporary checkout) and the fix."""
    path = Path(path)
    name = path if shown_as is None else shown_as
    if not path.exists():
        fail(f"{name}: file not found; {hint}")
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        fail(f"{name}: not valid {kind} ({str(error).splitlines()[0]}); {hint}")


def read_json(path: str | Path, hint: str, shown_as: str | Path | None = None) -> Any:
    return _read_text_file(path, hint, shown_as, "JSON", json.loads)


def read_yaml(path: str | Path, hint: str, shown_as: str | Path | None = None) -> Any:
    return _read_text_file(path, hint, shown_as, "YAML", yaml.safe_load)


def sha256_file(path: str | Path) -> str:
    """The file's sha256; of a folder (a split written as parts), the hash of each file's name and bytes, in name order."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(found for found in path.rglob("*") if found.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


# --- source tables (module docstring) ---

GLOB_CHARACTERS = "*?["
COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".zst", ".tar")
READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError)


def source_files(path: Path, hint: str) -> list[Path]:
    """The files a source path names: itself, or every file matching a glob in its file name, in file-name order."""
    if any(character in path.name for character in GLOB_CHARACTERS):
        files = sorted(found for found in path.parent.glob(path.name) if found.is_file())
        if not files:
            fail(f"{path}: no file matches; {hint}")
        return files
    if not path.exists():
        fail(f"{path}: file not found; {hint}")
    return [path]


def is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet"


def mask_tokens(table: pd.DataFrame, tokens: Sequence[str]) -> pd.DataFrame:
    """Parquet has real nulls; text cells holding a declared token are missing too, as in a CSV."""
    if not tokens:
        return table
    text = [name for name in table.columns if pd.api.types.is_object_dtype(table[name]) or pd.api.types.is_string_dtype(table[name])]
    return table.assign(**{name: table[name].mask(table[name].isin(list(tokens))) for name in text})


@dataclass(frozen=True)
class Piece:
    """A part of one source file: the whole file, a byte range of a CSV (`offset`, `length`), or a Parquet row group."""

    path: Path
    offset: int | None = None
    length: int | None = None
    row_group: int | None = None

    def read(self, tokens: Sequence[str], text: Sequence[str] = ()) -> pd.DataFrame:
        """The piece as pandas reads it: exactly the `tokens` strings are missing; `text` columns are read as text."""
        try:
            if is_parquet(self.path):
                return mask_tokens(read_verified_parquet(self.path, row_group=self.row_group), tokens)
            options: dict[str, Any] = {"low_memory": False, "keep_default_na": False, "na_values": list(tokens)}
            if text:
                options["dtype"] = dict.fromkeys(text, "str")
            source = self.path if self.offset is None else BytesIO(self._csv_bytes())
            read: pd.DataFrame = pd.read_csv(source, **options)
            return read
        except READ_ERRORS as error:
            fail(f"{self.path}: cannot read it as a table ({str(error).splitlines()[0] if str(error) else type(error).__name__})")

    def _csv_bytes(self) -> bytes:
        from fsspec.utils import read_block  # type: ignore[import-untyped]  # Dask's file layer, untyped

        assert self.offset is not None and self.length is not None
        with open(self.path, "rb") as stream:
            header = stream.readline()
            block: bytes = read_block(stream, self.offset, self.length, delimiter=b"\n")
        return block if self.offset == 0 else header + block


def pieces(path: Path, blocksize: int | None) -> list[Piece]:
    """The pieces of one file: whole (blocksize None, or a compressed CSV), CSV byte ranges of `blocksize`, Parquet row groups."""
    if blocksize is None:
        return [Piece(path)]
    if is_parquet(path):
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(path).num_row_groups
        return [Piece(path, row_group=index) for index in range(groups)] or [Piece(path)]
    if path.suffix.lower() in COMPRESSED_SUFFIXES:
        return [Piece(path)]
    size = path.stat().st_size
    return [Piece(path, offset, blocksize) for offset in range(0, max(size, 1), blocksize)]


class Profile(NamedTuple):
    """What one piece holds, column by column: pandas' type, whether any and whether every cell is missing."""

    dtypes: dict[str, Any]
    any_missing: dict[str, bool]
    all_missing: dict[str, bool]


def profile(frame: pd.DataFrame) -> Profile:
    missing = frame.isna()
    return Profile(
        dtypes={str(name): dtype for name, dtype in frame.dtypes.items()},
        any_missing={str(name): bool(value) for name, value in missing.any().items()},
        all_missing={str(name): bool(value) for name, value in missing.all().items()},
    )


def _merged_type(dtypes: list[Any], any_missing: bool, first: Any) -> Any:
    kinds = {str(dtype) for dtype in dtypes}
    if not kinds:  # missing in every piece: as pandas reads a column of missing cells
        return first
    if len(kinds) == 1:
        kind = dtypes[0]
        if any_missing and str(kind) == "int64":
            return np.dtype("float64")
        if any_missing and str(kind) == "bool":
            return np.dtype("object")
        return kind
    if kinds <= {"int64", "float64"}:
        return np.dtype("float64")
    if kinds <= {"bool", "object"}:
        return np.dtype("object")
    return pd.StringDtype(na_value=np.nan)  # text anywhere: text everywhere, as pandas reads one file


def merged_types(profiles: Sequence[Profile], where: str) -> dict[str, Any]:
    """Each column's type over all pieces: the type pandas infers over the whole table (module docstring)."""
    first = profiles[0]
    for other in profiles[1:]:
        if list(other.dtypes) != list(first.dtypes):
            fail(
                f"{where}: the files or pieces do not share one header ({', '.join(first.dtypes)} vs {', '.join(other.dtypes)}); "
                "give every file of data.source the same columns in the same order"
            )
    types = {}
    for name in first.dtypes:
        present = [piece.dtypes[name] for piece in profiles if not piece.all_missing[name]]
        types[name] = _merged_type(present, any(piece.any_missing[name] for piece in profiles), first.dtypes[name])
    return types


def reread_as_text(piece: Profile, types: Mapping[str, Any]) -> list[str]:
    """The columns a CSV piece must read again as text: text elsewhere, but numbers (or true/false) here."""
    return [
        name
        for name, dtype in types.items()
        if isinstance(dtype, pd.StringDtype) and not piece.all_missing[name] and not isinstance(piece.dtypes[name], pd.StringDtype)
    ]


def conform(frame: pd.DataFrame, types: Mapping[str, Any]) -> pd.DataFrame:
    """The piece with the merged types: a column missing throughout gets the type's own missing cells."""
    changes = {}
    for name, dtype in types.items():
        series = frame[name]
        if series.dtype == dtype:
            continue
        if series.isna().all():
            changes[name] = pd.Series(np.nan, index=frame.index, dtype=dtype)
        else:
            changes[name] = series.astype(dtype)
    return frame.assign(**changes) if changes else frame


def read_typed(piece: Piece, tokens: Sequence[str], types: Mapping[str, Any], seen: Profile) -> pd.DataFrame:
    """A piece read with the merged types (`seen`: its profile as first read)."""
    text = [] if is_parquet(piece.path) else reread_as_text(seen, types)
    return conform(piece.read(tokens, text), types)


def read_files(files: Sequence[Path], tokens: Sequence[str], where: str) -> list[pd.DataFrame]:
    """Whole files (the pandas engine), with the types merged over all of them; one frame per file."""
    frames = [Piece(path).read(tokens) for path in files]
    if len(frames) == 1:
        return frames
    profiles = [profile(frame) for frame in frames]
    types = merged_types(profiles, where)
    return [
        conform(Piece(path).read(tokens, reread_as_text(seen, types)) if reread_as_text(seen, types) else frame, types)
        for path, frame, seen in zip(files, frames, profiles, strict=True)
    ]


# --- Parquet tables read as input: the file's own checksums and statistics ---
# A damaged page can decode to other values silently: 200 zeroed bytes of a dictionary-encoded date column turned 146
# dates into the dictionary's first one, every value still inside the column's min and max. Only the pages' CRC
# checksums catch that. Every Parquet table read here (sources, scoring input, outcomes) has its pages' CRCs checked
# where it has them, and each row group's min, max and null count against the footer's statistics, in the one pass
# that reads it (`read_verified_parquet`); the data
# contract's sources must have them (the sources stage refuses a Parquet source without: `require_page_checksums`).

CHECKSUMS_FIX = (
    "rewrite it with page checksums (pandas: frame.to_parquet(path, write_page_checksum=True); pyarrow: "
    "pyarrow.parquet.write_table(table, path, write_page_checksum=True)) or give the table as CSV"
)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(data):
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7
    raise ValueError("truncated varint")


def page_has_checksum(header: bytes) -> bool:
    """Whether a Parquet page header (Thrift compact protocol) holds its `crc` (field 4): read the i32 fields 1-3
    (page type, uncompressed and compressed size), then look at the next field's id."""
    position = field = 0
    while position < len(header):
        byte = header[position]
        position += 1
        kind, delta = byte & 0x0F, byte >> 4
        if delta:
            field += delta
        else:
            zigzag, position = _varint(header, position)
            field = (zigzag >> 1) ^ -(zigzag & 1)
        if field == 4:
            return True
        if field > 4 or kind != 5:  # past the crc, or not an i32: the crc is absent
            return False
        _, position = _varint(header, position)
    return False


def _first_pages_checksummed(path: Path, metadata: Any) -> bool:
    """Whether the first page of every column chunk holds a CRC (a writer that writes them writes them on every page)."""
    with open(path, "rb") as stream:
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                offset = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                stream.seek(offset)
                if not page_has_checksum(stream.read(64)):
                    return False
    return True


def _bounds(values: Any) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    found = pc.min_max(values)
    return found["min"].as_py(), found["max"].as_py()


def _disagreement(statistics: Any, values: Any) -> str | None:
    """How a column chunk's values disagree with the footer's statistics of them; None when they agree."""
    if statistics is None:
        return None
    if statistics.has_null_count and values.null_count != statistics.null_count:
        return f"{values.null_count:,} missing values where the footer records {statistics.null_count:,}"
    if not statistics.has_min_max or values.null_count == len(values):
        return None
    low, high = _bounds(values)
    exact = statistics.physical_type != "BYTE_ARRAY"  # other writers may truncate text bounds
    if (low != statistics.min if exact else low < statistics.min) or (high != statistics.max if exact else high > statistics.max):
        return f"values from {low} to {high} where the footer records {statistics.min} to {statistics.max}"
    return None


def require_page_checksums(path: Path, setting: str) -> None:
    """A Parquet source must carry page checksums, or damaged bytes could change its values unseen (a CSV is not checked).

    Raises:
        UserError: it has none (or is not Parquet).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        checksummed = _first_pages_checksummed(path, pq.ParquetFile(path).metadata)
    except (pa.ArrowException, OSError, ValueError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    if not checksummed:
        fail(f"{path} ({setting}): a Parquet file without page checksums, so damaged bytes could change its values unseen; {CHECKSUMS_FIX}")


def _index_columns(schema: Any) -> list[str]:
    """The stored index columns pandas' metadata names (pandas reads them back with any column selection)."""
    metadata = (schema.metadata or {}).get(b"pandas")
    return [name for name in json.loads(metadata).get("index_columns", []) if isinstance(name, str)] if metadata else []


def read_verified_parquet(path: Path, columns: Sequence[str] | None = None, row_group: int | None = None) -> pd.DataFrame:
    """A Parquet table as `pd.read_parquet` reads it (`columns`: only those; `row_group`: that one only), decoded once:
    each column chunk's pages are checked against their CRC checksums (where the file has them) as they are read, and
    its values against the footer's statistics; one line naming the file, row group and column when they disagree.

    Raises:
        UserError: a page's checksum fails, values disagree with the statistics, or the file is not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def damaged(group: int, name: str, problem: str) -> None:
        fail(f"{path}: row group {group}, column '{name}': {problem}; the file is damaged: restore or rewrite it")

    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        stored = parquet.schema_arrow
        wanted = list(stored.names) if columns is None else [*columns, *(name for name in _index_columns(stored) if name not in columns)]
        schema = pa.schema([stored.field(name) for name in wanted], metadata=stored.metadata)
        groups = []
        for group in range(parquet.num_row_groups) if row_group is None else [row_group]:
            chunks = parquet.metadata.row_group(group)
            statistics = {chunks.column(index).path_in_schema: chunks.column(index).statistics for index in range(chunks.num_columns)}
            arrays = []
            for name in wanted:
                try:
                    values = parquet.read_row_group(group, columns=[name]).column(0)
                except (pa.ArrowException, OSError) as error:
                    damaged(group, name, f"cannot be read intact ({str(error).splitlines()[0]})")
                problem = _disagreement(statistics.get(name), values)  # a nested column's leaves have other names: unchecked
                if problem:
                    damaged(group, name, f"{problem} (the file's own statistics)")
                arrays.append(values)
            groups.append(pa.Table.from_arrays(arrays, schema=schema))
        table = pa.concat_tables(groups) if groups else schema.empty_table()
    except (pa.ArrowException, OSError, ValueError) as error:
        fail(f"{path}: cannot read it as Parquet ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    frame: pd.DataFrame = table.to_pandas()  # pyarrow's conversion, which pd.read_parquet uses: the same column types
    return frame
