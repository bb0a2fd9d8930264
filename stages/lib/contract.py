"""The data contract: what a table is (`conf/data/<name>.yaml`), read strictly, plus schema inference.

A data scientist declares the source, the target and task, the time column, the columns to
drop as identifiers or leaks, related tables to join, split windows and, optionally, column
types and validation rules. Everything not declared is inferred from the train split and
written to a schema file that lives in git, so a reviewer sees type changes in a diff.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.config import PARAMS_FILE, SPLIT_NAMES, Section, Window, parse_duration, parse_timestamp
from stages.lib.errors import fail

TASKS = ("classification", "regression")
TYPES = ("numeric", "categorical", "boolean", "datetime", "identifier")
IDENTIFIER_MIN_DISTINCT = 1000  # a text column with more distinct values than this, and mostly unique,
IDENTIFIER_UNIQUE_SHARE = 0.5  # is an identifier, not a category
# data.time.format: these names, or a strptime pattern (anything holding '%', e.g. "%d/%m/%Y").
TIME_FORMATS = ("iso8601", "year", "epoch_s", "epoch_ms")
# data.missing_values when a contract does not set it: the strings a source writes for "no value".
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null")
# A text column whose values are at least this share numbers is a numeric column with stray text.
NUMBERS_WITH_TEXT_SHARE = 0.9


@dataclass(frozen=True)
class Source:
    """A CSV (optionally zipped) or Parquet file: inside an installed package, or a path from the project root."""

    path: str
    package: str | None = None

    @classmethod
    def parse(cls, section: Section) -> Source:
        source = cls(path=section.get("path", str), package=section.get("package", (str, type(None)), None))
        section.done()
        return source

    def locate(self) -> Path:
        if self.package is None:
            return Path(self.path)
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            fail(f"package '{self.package}' is not installed; run `make setup` (it installs requirements.lock)")
        # Not `import <package>`: dataset packages often load every table at import time.
        return Path(spec.submodule_search_locations[0]) / self.path


@dataclass(frozen=True)
class Join:
    source: Source
    keys: tuple[str, ...]
    columns: tuple[str, ...] | None  # None: every column of the related table
    deduplicate: bool


@dataclass(frozen=True)
class Check:
    """Rules for one column, validated with pandera on every run."""

    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    max_null_share: float | None = None


@dataclass(frozen=True)
class DataContract:
    name: str
    source: Source
    joins: tuple[Join, ...]
    task: str
    target: str  # the name of the target column in prepared data
    target_column: str  # the source column it comes from
    greater_than: float | None  # classification: target = target_column > greater_than
    time: str
    timezone: str | None
    time_format: str  # one of TIME_FORMATS, or a strptime pattern
    missing_values: tuple[str, ...]  # the exact strings read as missing
    known_after: str | None  # how long after its row's time an outcome is known; history features wait this long
    identifiers: tuple[str, ...]
    leaks: tuple[str, ...]
    other_drops: tuple[str, ...]
    types: dict[str, str]
    checks: dict[str, Check]
    on_violation: str  # "error" or "warn"
    sample_rows: int | None
    sample_seed: int
    splits: tuple[Window, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DataContract:
        data = Section(params.get("data"), "data")
        source = Source.parse(data.section("source"))
        joins = []
        for index, raw in enumerate(data.get("join", list, [])):
            join = Section(raw, f"data.join[{index}]")
            keys = tuple(join.names("keys"))
            columns = join.get("columns", (list, type(None)), None)
            joins.append(
                Join(
                    source=Source.parse(join.section("source")),
                    keys=keys,
                    columns=None if columns is None else tuple(str(column) for column in columns),
                    deduplicate=join.get("deduplicate", bool, False),
                )
            )
            join.done()
        task = data.get("task", str)
        if task not in TASKS:
            fail(f"{PARAMS_FILE}: 'data.task' must be one of {', '.join(TASKS)}, got {task!r}")
        target = data.section("target")
        greater_than = target.get("greater_than", (int, float, type(None)), None)
        if task == "classification" and greater_than is None:
            fail(f"{PARAMS_FILE}: 'data.target.greater_than' is needed for classification (target = column > value)")
        if task == "regression" and greater_than is not None:
            fail(f"{PARAMS_FILE}: 'data.target.greater_than' makes a binary target; remove it for regression")
        target_name, target_column = target.get("name", str), target.get("column", str)
        known_after = target.get("known_after", (str, type(None)), None)
        if known_after is not None:
            parse_duration(target, "known_after")
        target.done()
        time = data.section("time")
        time_column, timezone = time.get("column", str), time.get("timezone", (str, type(None)), None)
        time_format = time.get("format", str, "iso8601")
        if time_format not in TIME_FORMATS and "%" not in time_format:
            fail(
                f"{PARAMS_FILE}: 'data.time.format' must be one of {', '.join(TIME_FORMATS)} or a strptime pattern "
                f"such as '%d/%m/%Y', got {time_format!r}"
            )
        time.done()
        missing_values = data.get("missing_values", list, list(DEFAULT_MISSING_VALUES))
        if not all(isinstance(value, str) for value in missing_values):
            fail(f"{PARAMS_FILE}: 'data.missing_values' must be a list of strings (quote numbers: \"-999\"), got {missing_values!r}")
        drop = data.section("drop")
        identifiers, leaks = drop.names("identifiers"), drop.names("leaks")
        other = tuple(drop.get("other", list, []))
        drop.done()
        types = dict(data.get("types", (Mapping, type(None)), None) or {})
        for column, kind in types.items():
            if kind not in TYPES:
                fail(f"{PARAMS_FILE}: 'data.types.{column}' must be one of {', '.join(TYPES)}, got {kind!r}")
        checks = {}
        for column, raw in (data.get("checks", (Mapping, type(None)), None) or {}).items():
            rules = Section(raw, f"data.checks.{column}")
            allowed = rules.get("allowed", (list, type(None)), None)
            checks[column] = Check(
                min=rules.get("min", (int, float, type(None)), None),
                max=rules.get("max", (int, float, type(None)), None),
                allowed=None if allowed is None else tuple(str(value) for value in allowed),
                max_null_share=rules.get("max_null_share", (int, float, type(None)), None),
            )
            rules.done()
        removed = {*identifiers, *leaks, *other} | ({target_column} - {target_name})
        checked_but_removed = sorted(set(checks) & removed)
        if checked_but_removed:
            fail(
                f"{PARAMS_FILE}: 'data.checks.{checked_but_removed[0]}' checks a column that prepare drops (data.drop, or the target's "
                f"source column); checks run on prepared data: remove the check or the drop"
            )
        on_violation = data.get("on_violation", str, "error")
        if on_violation not in ("error", "warn"):
            fail(f"{PARAMS_FILE}: 'data.on_violation' must be error or warn, got {on_violation!r}")
        splits_section = data.section("splits")
        windows = []
        for name in SPLIT_NAMES:
            window = splits_section.section(name)
            start, end = parse_timestamp(window, "start"), parse_timestamp(window, "end")
            window.done()
            if start >= end:
                fail(
                    f"{PARAMS_FILE}: split 'data.splits.{name}' starts at {start:%Y-%m-%d} but ends at {end:%Y-%m-%d}; start must be before end"
                )
            windows.append(Window(name, start, end))
        splits_section.done()
        sample_rows = data.get("sample_rows", (int, type(None)), None)
        if sample_rows is not None and sample_rows < 1:
            fail(f"{PARAMS_FILE}: 'data.sample_rows' must be a positive number of rows or null, got {sample_rows}")
        contract = cls(
            name=data.get("name", str),
            source=source,
            joins=tuple(joins),
            task=task,
            target=target_name,
            target_column=target_column,
            greater_than=None if greater_than is None else float(greater_than),
            time=time_column,
            timezone=timezone,
            time_format=time_format,
            missing_values=tuple(missing_values),
            known_after=known_after,
            identifiers=identifiers,
            leaks=leaks,
            other_drops=other,
            types=types,
            checks=checks,
            on_violation=on_violation,
            sample_rows=sample_rows,
            sample_seed=data.get("sample_seed", int, 0),
            splits=tuple(windows),
        )
        data.done()
        return contract

    def split(self, name: str) -> Window:
        return next(window for window in self.splits if window.name == name)


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
        "known_after": contract.known_after,
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
        unit = "s" if time_format == "epoch_s" else "ms"
        return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce").astype("datetime64[us, UTC]")
    return pd.to_datetime(_as_text(values), format=time_format, utc=True, errors="coerce").astype("datetime64[us, UTC]")


def parse_time(values: pd.Series, time_format: str, where: str, column: str, fix: str) -> pd.Series:
    """The time column as UTC timestamps, parsed exactly as `data.time.format` declares (prepare and predict).

    A column already stored as timestamps (Parquet) is used as it is; naive times, stored or written
    without an offset, are UTC. Any value that does not match the format, or a missing one, stops with
    the column, the format, an example and the number of rows; `fix` says what to change.
    """
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
