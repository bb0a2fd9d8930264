"""Schema inference and the parsing of values the data contract (stages/lib/config/data.py) describes.

Everything the contract does not declare is inferred from the train split and written to a schema
file that lives in git, so a reviewer sees type changes in a diff. Time columns are parsed exactly as
`data.time.format` says, and stray text or infinite numbers stop with the column and the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from stages.lib.config.base import duration_text
from stages.lib.errors import fail
from stages.lib.timespan import schema_step

if TYPE_CHECKING:
    from stages.lib.config import DataContract

IDENTIFIER_MIN_DISTINCT = 1000  # a text column with more distinct values than this, and mostly unique,
IDENTIFIER_UNIQUE_SHARE = 0.5  # is an identifier, not a category
# What model versions trained before data.missing_values existed read as missing (predict, on their schema).
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null")
# A text column whose values are at least this share numbers is a numeric column with stray text.
NUMBERS_WITH_TEXT_SHARE = 0.9


def infer_type(series: pd.Series) -> str:
    """numeric, categorical, boolean, datetime or identifier, from the values alone."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna()
        return "boolean" if len(values) and values.isin([0, 1]).all() and values.nunique() == 2 else "numeric"
    values = series.dropna().astype(str)
    distinct = values.nunique()
    if distinct > IDENTIFIER_MIN_DISTINCT and distinct > IDENTIFIER_UNIQUE_SHARE * len(values):
        return "identifier"
    return "categorical"


def infer_schema(train: pd.DataFrame, contract: DataContract) -> dict[str, Any]:
    """Column types (declared or inferred) and train statistics, in column-name order for stable diffs."""
    columns = {}
    for name in sorted(train.columns):
        series = train[name]
        kind = contract.types.get(name) or infer_type(series)
        entry: dict[str, Any] = {
            "type": kind,
            "declared": name in contract.types,
            "null_share": round(float(series.isna().mean()), 6),
        }
        if name == contract.target:
            entry["role"] = "target"
        elif name == contract.time:
            entry["role"] = "time"
        if kind == "numeric" and series.notna().any():
            entry["min"], entry["max"] = (
                float(np.nanmin(series.to_numpy(dtype=np.float64, na_value=np.nan))),
                float(np.nanmax(series.to_numpy(dtype=np.float64, na_value=np.nan))),
            )
        elif kind == "categorical":
            entry["categories"] = int(series.dropna().nunique())
        columns[name] = entry
    return {
        "dataset": contract.name,
        "task": contract.task,
        "target": contract.target,
        "time": contract.time,
        "timezone": contract.timezone,
        "time_format": contract.time_format,
        "missing_values": list(contract.missing_values),
        "known_after": None if contract.known_after is None else duration_text(contract.known_after),  # as written
        "holidays": None if contract.holidays is None else contract.holidays.model_dump(),
        **schema_step(train[contract.time], contract.timezone, contract.time_step, contract.time),
        "columns": columns,
    }


def _shown(value: Any) -> str:
    """A value as the user wrote it: 2013, not np.int64(2013)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _describe_format(time_format: str) -> str:
    return {
        "iso8601": "ISO-8601 timestamps",
        "year": "whole years such as 2013",
        "epoch_s": "seconds since 1970-01-01 UTC",
        "epoch_ms": "milliseconds since 1970-01-01 UTC",
    }.get(time_format, f"times written as {time_format!r}")


def _as_text(values: pd.Series) -> pd.Series:
    """Text for a strptime pattern; whole numbers (20130301 read from a CSV as a number) keep their digits."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        whole = values.astype(np.float64).where(lambda n: np.isfinite(n) & (n == np.floor(n)))
        return whole.astype("Int64").astype("string")  # a fraction becomes missing, so it is reported
    return values.astype("string")


def _parse_time_values(values: pd.Series, time_format: str) -> pd.Series:
    """UTC timestamps, NaT where a value is missing or does not match the format (exact: never guesses)."""
    if time_format == "iso8601":
        if pd.api.types.is_numeric_dtype(values):  # numbers are no ISO-8601 text (pandas would read them as epochs)
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
        return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    if time_format in ("year", "epoch_s", "epoch_ms"):
        # Numbers only, written as numbers or as digits in text; never pandas' integer-with-format path.
        numbers = pd.to_numeric(values.astype("string"), errors="coerce").astype(np.float64)
        numbers = numbers.where(np.isfinite(numbers))
        if time_format == "year":
            years = numbers.where((numbers == np.floor(numbers)) & numbers.between(1, 9999))
            return pd.to_datetime(pd.DataFrame({"year": years, "month": 1, "day": 1}), utc=True, errors="coerce")
        unit: Literal["s", "ms"] = "s" if time_format == "epoch_s" else "ms"
        return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce").astype("datetime64[us, UTC]")
    return pd.to_datetime(_as_text(values), format=time_format, utc=True, errors="coerce").astype("datetime64[us, UTC]")


def parse_time(values: pd.Series, time_format: str, where: str, column: str, fix: str) -> pd.Series:
    """The time column as UTC timestamps, parsed exactly as `data.time.format` declares (prepare and predict).

    A column already stored as timestamps (Parquet) is used as it is; naive times, stored or written
    without an offset, are UTC. Any value that does not match the format, or a missing one, stops with
    the column, the format, an example and the number of rows; `fix` says what to change.
    """
    parsed: pd.Series
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    else:
        try:
            parsed = _parse_time_values(values, time_format)
        except ValueError as error:  # a pattern pandas cannot use, e.g. an unknown directive
            fail(f"{where}: data.time.format {time_format!r} is not a usable strptime pattern ({str(error).splitlines()[0]})")
        bad = values[parsed.isna() & values.notna()]
        if len(bad):
            fail(
                f"{where}: column '{column}' must hold {_describe_format(time_format)} (data.time.format: {time_format}), "
                f"got {_shown(bad.iloc[0])} in {len(bad):,} row(s); {fix}"
            )
    if parsed.isna().any():
        fail(f"{where}: column '{column}' has {int(parsed.isna().sum())} missing timestamps; every row needs one")
    return parsed


def refuse_text_in_numbers(frame: pd.DataFrame, where: str, columns: Sequence[str]) -> None:
    """A text column that is mostly numbers holds stray text (e.g. "n.a.") that would turn it into a category."""
    for column in columns:
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        values = series.dropna()
        numbers = pd.to_numeric(values, errors="coerce")
        share = float(numbers.notna().mean()) if len(values) else 0.0
        if NUMBERS_WITH_TEXT_SHARE <= share < 1.0:
            text = values[numbers.isna()]
            fail(
                f"{where}: column '{column}' holds numbers, but {len(text):,} row(s) hold text such as {_shown(text.iloc[0])}; "
                f"if it means missing, add it to data.missing_values in conf/data/, else declare data.types.{column}: categorical"
            )


def refuse_infinite(frame: pd.DataFrame, where: str, columns: Sequence[str], fix: str) -> None:
    """Infinite numbers stop here, with the column and row count, before they reach scikit-learn."""
    for column in columns:
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        infinite = np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            example = series[infinite].iloc[0]
            fail(f"{where}: column '{column}' holds infinite values ({float(example)}) in {int(infinite.sum()):,} row(s); {fix}")
