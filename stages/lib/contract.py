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
# An integer column unique per row is an identifier (a row number, an order id) from this many rows on:
# over fewer rows a measurement (a price in cents) can be unique by chance.
IDENTIFIER_MIN_ROWS = 100
# A source column missing on at least POST_OUTCOME_MISSING of the rows without a target (at least
# POST_OUTCOME_MIN_ROWS of them) but present on at least POST_OUTCOME_PRESENT of the labelled rows only
# exists once the outcome is known (a last payment date, a final balance): the leak screen reports it.
POST_OUTCOME_MISSING = 0.99
POST_OUTCOME_PRESENT = 0.5
POST_OUTCOME_MIN_ROWS = 20
# What model versions trained before data.missing_values existed read as missing (predict, on their schema).
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null")
# A text column whose values are at least this share numbers is a numeric column with stray text (the target's
# reading, stages/lib/target.py, and the wording of `refuse_text_in_numbers`).
NUMBERS_WITH_TEXT_SHARE = 0.9


def mixes_numbers_and_text(numbers: int, present: int) -> bool:
    """A column read as text where some values are numbers and some are not: stray text in a numeric column ("?",
    "n/a" not declared missing) or numbers among categories. Neither is guessed: it stops until declared."""
    return 0 < numbers < present


def identifier_evidence(series: pd.Series) -> str | None:
    """Why a column looks like an identifier, from its values alone; None when it does not.

    Text with many distinct values, mostly unique; or integers unique per row over at least
    IDENTIFIER_MIN_ROWS rows, with none missing (decimals and booleans are measurements).
    """
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return None
    if pd.api.types.is_numeric_dtype(series):
        if pd.api.types.is_integer_dtype(series) and len(series) >= IDENTIFIER_MIN_ROWS and series.notna().all() and series.is_unique:
            return f"unique per row over {len(series):,} rows"
        return None
    values = series.dropna().astype(str)
    distinct = values.nunique()
    if distinct > IDENTIFIER_MIN_DISTINCT and distinct > IDENTIFIER_UNIQUE_SHARE * len(values):
        return f"{distinct:,} distinct values in {len(values):,} rows"
    return None


def infer_type(series: pd.Series) -> str:
    """numeric, categorical, boolean, datetime or identifier, from the values alone."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if identifier_evidence(series):
        return "identifier"
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna()
        return "boolean" if len(values) and values.isin([0, 1]).all() and values.nunique() == 2 else "numeric"
    return "categorical"


def numeric_levels(series: pd.Series) -> str | None:
    """Whether a categorical column's levels are numbers ("all", "some") or none are (None): scoring input that
    gives numbers where training saw only text (carrier 1, 2 instead of "UA") is refused, not read as new levels."""
    distinct = pd.Series(series.dropna().unique())
    if distinct.empty or pd.api.types.is_bool_dtype(distinct):
        return None
    if pd.api.types.is_numeric_dtype(distinct):
        return "all"
    numbers = int(pd.to_numeric(distinct.astype("string"), errors="coerce").notna().sum())
    return "all" if numbers == len(distinct) else "some" if numbers else None


def type_fits(series: pd.Series, entry: dict[str, Any]) -> bool:
    """A column's values can be what data/schema.yaml says the column is (its `type`, and `numeric_levels`)."""
    kind = entry.get("type")
    if series.isna().all():
        return True
    if kind in ("numeric", "boolean"):
        return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(series)
    if kind == "categorical" and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return entry.get("numeric_levels") is not None
    return True


def refuse_type_mismatches(frame: pd.DataFrame, columns: dict[str, dict[str, Any]], where: str, fix: str) -> None:
    """Every column of `frame` that data/schema.yaml types (its `columns`) holds values of that type; else one line."""
    for name, entry in columns.items():
        if name in frame.columns and not type_fits(frame[name], entry):
            values = frame[name].dropna()
            levels = " (its training levels are text)" if entry.get("type") == "categorical" else ""
            fail(
                f"{where}: column '{name}' must be {entry.get('type')} as in training (data/schema.yaml){levels}, "
                f"got {frame[name].dtype} values such as {_shown(values.iloc[0])} in {len(values):,} row(s); {fix}"
            )


def increases_with_time(values: pd.Series, times: pd.Series) -> bool:
    """True when ordering the rows by time orders the values too (ties in time in any order), strictly."""
    order = np.lexsort((values.to_numpy(dtype=np.float64), times.array.asi8))
    return bool(np.all(np.diff(values.to_numpy(dtype=np.float64)[order]) > 0))


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's position among the sorted distinct values, and how many there are (one hash, one small sort)."""
    codes, distinct = pd.factorize(values, sort=True)
    return codes, len(distinct)


def _average_ranks(codes: np.ndarray, size: int) -> np.ndarray:
    """1-based ranks from sorted codes, ties sharing their average rank (as pandas' rank(method="average"))."""
    counts = np.bincount(codes, minlength=size)
    ranks: np.ndarray = (np.cumsum(counts) - (counts - 1) / 2.0)[codes]
    return ranks


def _spearman(values: pd.Series, time_codes: np.ndarray, time_size: int) -> float | None:
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)  # numbers, even if read as text
    present = ~np.isnan(numbers)
    if present.sum() < 3:
        return None
    ranks, time_ranks = _average_ranks(*_sorted_codes(numbers[present])), _average_ranks(time_codes[present], time_size)
    if np.ptp(ranks) == 0 or np.ptp(time_ranks) == 0:  # a constant has no correlation
        return None
    return float(np.corrcoef(ranks, time_ranks)[0, 1])


def time_spearman(values: pd.Series, times: pd.Series) -> float | None:
    """Spearman's rank correlation between a numeric column and the time, over rows with a value; None if undefined."""
    return _spearman(values, *_sorted_codes(times.array.asi8))


def post_outcome_counts(table: pd.DataFrame, target_column: str, columns: Sequence[str]) -> dict[str, Any]:
    """What `post_outcome_evidence` decides from, as counts that add up over the parts of a table."""
    unlabelled = table[target_column].isna().to_numpy()
    missing = {column: table[column].isna().to_numpy() for column in columns}
    return {
        "without": int(unlabelled.sum()),
        "labelled": int((~unlabelled).sum()),
        "missing_without": {column: int(values[unlabelled].sum()) for column, values in missing.items()},
        "missing_with": {column: int(values[~unlabelled].sum()) for column, values in missing.items()},
    }


def merge_counts(parts: Sequence[Any]) -> Any:
    """Counts (ints, or dicts of them, nested) added up part by part."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: merge_counts([part[key] for part in parts]) for key in first}
    return sum(parts)


def post_outcome_evidence(table: pd.DataFrame, target_column: str, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Source columns (almost) always missing where the target is and mostly present where it is not.

    Computed on the source table, before the rows without a target are dropped: afterwards the pattern
    is gone. Returns, per such column (sorted), its missing share on rows without a target, its present
    share on labelled rows and the number of rows without a target.
    """
    return post_outcome_from_counts(post_outcome_counts(table, target_column, columns), columns)


def post_outcome_from_counts(counts: dict[str, Any], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`post_outcome_evidence` from `post_outcome_counts` (of a whole table, or merged over its parts)."""
    without, labelled = counts["without"], counts["labelled"]
    if without < POST_OUTCOME_MIN_ROWS or not labelled:
        return {}
    evidence = {}
    for column in sorted(columns):
        # A share of counts, as NumPy's mean of a boolean mask gives it (an exact sum, one division).
        missing_without = counts["missing_without"][column] / without
        present_with = 1.0 - counts["missing_with"][column] / labelled
        if missing_without >= POST_OUTCOME_MISSING and present_with >= POST_OUTCOME_PRESENT:
            evidence[column] = {
                "missing_without_target": round(missing_without, 6),
                "present_with_target": round(present_with, 6),
                "rows_without_target": without,
            }
    return evidence


def infer_schema(train: pd.DataFrame, contract: DataContract, post_outcome: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Column types (declared or inferred) and train statistics, in column-name order for stable diffs.

    Besides types, the evidence the leak screen in featurize reports on: why a column looks like an
    identifier (`identifier`), each numeric column's Spearman correlation with the time (`time_spearman`),
    and `post_outcome` (from `post_outcome_evidence`, on the source table before unlabelled rows are dropped).
    """
    columns = {}
    times = train[contract.time]
    time_codes = _sorted_codes(times.array.asi8)  # once for every column's time_spearman
    for name in sorted(train.columns):
        series = train[name]
        role = "target" if name == contract.target else "time" if name == contract.time else None
        evidence = None if role else identifier_evidence(series)
        inferred = infer_type(series)
        if role and inferred == "identifier" and pd.api.types.is_numeric_dtype(series):  # a target of unique integers is numeric
            inferred = "numeric"
        kind = contract.types.get(name) or inferred
        entry: dict[str, Any] = {
            "type": kind,
            "declared": name in contract.types,
            "null_share": round(float(series.isna().mean()), 6),
        }
        if role:
            entry["role"] = role
        if kind == "numeric" and series.notna().any():
            entry["min"], entry["max"] = (
                float(np.nanmin(series.to_numpy(dtype=np.float64, na_value=np.nan))),
                float(np.nanmax(series.to_numpy(dtype=np.float64, na_value=np.nan))),
            )
        elif kind == "categorical":
            entry["categories"] = int(series.dropna().nunique())
            if levels := numeric_levels(series):
                entry["numeric_levels"] = levels
        if evidence:
            numeric = pd.api.types.is_numeric_dtype(series)
            entry["identifier"] = evidence + (", increases with time" if numeric and increases_with_time(series, times) else "")
        if kind == "numeric" and not role:
            correlation = _spearman(series, *time_codes)
            if correlation is not None:
                entry["time_spearman"] = round(correlation, 6)
        if post_outcome and name in post_outcome:
            entry["post_outcome"] = post_outcome[name]
        columns[name] = entry
    return {
        "dataset": contract.name,
        "task": contract.task,
        "target": contract.target,
        "target_rule": contract.target_spec.rule,  # how prepare made it from the source column (data.target)
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


def _parse_distinct(values: pd.Series, time_format: str) -> pd.Series:
    """`_parse_time_values` of each distinct value once, put back in place: a value parses the same wherever it
    stands, and a time column repeats its values (hourly rows); no Python string per row (pandas' own cache made
    one: 0.45 GB at peak on 5.7M rows)."""
    codes, distinct = pd.factorize(values)
    parsed = _parse_time_values(pd.Series(distinct), time_format)
    return pd.Series(parsed.array.take(codes, allow_fill=True), index=values.index, name=values.name)


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
            parsed = _parse_distinct(values, time_format)
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
    """A text column mixing numbers and other text stops: stray text (e.g. "?", "n/a") would otherwise turn a
    numeric column into a category, and numbers among categories are ambiguous until data.types declares them."""
    for column in columns:
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        values = series.dropna()
        numbers = pd.to_numeric(values.astype("string"), errors="coerce")
        if not mixes_numbers_and_text(int(numbers.notna().sum()), len(values)):
            continue
        text, found = values[numbers.isna()], values[numbers.notna()]
        if len(found) >= NUMBERS_WITH_TEXT_SHARE * len(values) or len(text.unique()) <= 3:
            fail(
                f"{where}: column '{column}' holds numbers, but {len(text):,} row(s) hold text such as {_shown(text.iloc[0])}; "
                f"if it means missing, add it to data.missing_values in conf/data/, else declare "
                f"data.types.{column}: categorical"
            )
        fail(
            f"{where}: column '{column}' holds text, but {len(found):,} of {len(values):,} row(s) hold numbers such as "
            f"{_shown(found.iloc[0])}; declare data.types.{column}: categorical in conf/data/ to read them all as categories, "
            f"else fix those rows"
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
