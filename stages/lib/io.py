"""File helpers: every output is written to a temporary file and renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml

from stages.lib.errors import fail

# What a writer returns is ignored (Path.write_text returns a count): `object`, so any callable fits.
Writer = Callable[[Path], object]
# Mapping's key type is invariant: a TypeVar lets callers pass dict[Path, ...], dict[str, ...] or both mixed.
Target = TypeVar("Target", bound=str | Path)


def write_outputs(writers: Mapping[Target, Writer]) -> None:
    """Write several outputs all-or-nothing.

    Each writer fills a temporary file next to its target; only when every writer has
    succeeded are they renamed into place, so a failure leaves no half-written output.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for name, writer in writers.items():
            target = Path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(handle)
            staged.append((Path(temporary), target))
            writer(Path(temporary))
            # mkstemp makes private files; outputs get the usual permissions.
            os.chmod(temporary, 0o666 & ~_umask())
    except BaseException:
        for written, _ in staged:
            written.unlink(missing_ok=True)
        raise
    for written, target in staged:
        os.replace(written, target)


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


def read_parquet(path: str | Path, hint: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        fail(f"{path}: file not found; {hint}")
    return pd.read_parquet(path, engine="pyarrow")


def read_table(path: str | Path, hint: str, missing_values: Sequence[str]) -> pd.DataFrame:
    """A CSV (optionally zipped) or Parquet table; exactly the `missing_values` strings are read as missing.

    `hint` finishes the message when the file does not exist (which setting to fix). pandas' own list of
    missing tokens is switched off, so a column's missing cells come only from the declared tokens.
    """
    path = Path(path)
    if not path.exists():
        fail(f"{path}: file not found; {hint}")
    tokens = list(missing_values)
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path, engine="pyarrow")
            text = [
                name for name in table.columns if pd.api.types.is_object_dtype(table[name]) or pd.api.types.is_string_dtype(table[name])
            ]
            # Parquet has real nulls; text cells holding a declared token are missing too, as in a CSV.
            return table.assign(**{name: table[name].mask(table[name].isin(tokens)) for name in text}) if tokens else table
        return pd.read_csv(path, low_memory=False, keep_default_na=False, na_values=tokens)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError) as error:
        fail(f"{path}: cannot read it as a table ({str(error).splitlines()[0] if str(error) else type(error).__name__})")


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
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
