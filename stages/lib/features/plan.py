"""The feature plan: which input goes to which family, decided from the schema, the config and train counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stages.lib.catalog import SCHEMA_FILE
from stages.lib.config import FeaturesConfig
from stages.lib.errors import fail
from stages.lib.features import category_text
from stages.lib.timespan import CalendarSpan, Span, parse_span, shorter, span_text

INPUT_TYPES = ("numeric", "boolean", "categorical")
SEASONAL_PARTS = ("month", "day_of_year")


@dataclass
class Plan:
    """Which inputs go to which family, decided from the schema, the config and train counts."""

    numeric: list[str]
    onehot: list[str]
    high_cardinality: list[str]
    calendar_parts: list[str]
    history_keys: list[tuple[str, ...]]
    skipped: dict[str, str] = field(default_factory=dict)  # what the plan left out, and why
    holidays: dict[str, str | None] | None = None  # {country, subdivision} of the holiday flag; None: no flag
    history_windows: tuple[Span, ...] = ()  # the history windows (none without history keys)
    windows_source: str = ""  # how the windows were chosen (for the manifest)


def plan_features(train: pd.DataFrame, schema: dict[str, Any], config: FeaturesConfig, leave_out: dict[str, str] | None = None) -> Plan:
    """Assign inputs to families; columns are visited in sorted order so the plan ignores column order.

    Args:
        train: the prepared train split (counts and the time span come from it only).
        schema: data/schema.yaml as prepare wrote it (column types and roles, time, known_after).
        config: the `features` section.
        leave_out: columns the screen leaves out of the inputs (time proxies, leaks), with why.

    Returns:
        The plan, with what it left out and why in `skipped`.

    Raises:
        UserError: an excluded or history-key column that is not prepared, a history key on the target
            or the time, or a column typed numeric in the schema that holds something else.
    """
    columns = schema["columns"]
    unknown = [column for column in config.exclude if column not in columns]
    if unknown:
        fail(
            f"params.yaml: 'features.exclude' names '{unknown[0]}', which is not a prepared column; columns are: {', '.join(sorted(columns))}"
        )
    leave_out = leave_out or {}
    inputs = sorted(
        column
        for column, entry in columns.items()
        if "role" not in entry
        and entry["type"] in INPUT_TYPES
        and column not in config.exclude
        and column not in leave_out
        and column in train.columns
    )
    skipped = {
        column: f"type {entry['type']}" + (f" ({entry['identifier']})" if "identifier" in entry else "")
        for column, entry in columns.items()
        if "role" not in entry and entry["type"] not in INPUT_TYPES
    }
    skipped |= {column: why for column, why in leave_out.items() if column in columns}
    numeric = [column for column in inputs if columns[column]["type"] != "categorical"]
    _check_numeric(train, numeric, columns)
    categorical = [column for column in inputs if columns[column]["type"] == "categorical"]
    if not config.numeric.enabled:
        skipped |= dict.fromkeys(numeric, "features.numeric.enabled is false")
        numeric = []
    onehot: list[str] = []
    high_cardinality: list[str] = []
    if config.categorical.enabled:
        onehot, high_cardinality = _split_categorical(train, categorical, config)
    else:
        skipped |= dict.fromkeys(categorical, "features.categorical.enabled is false")
    local = _local_times(train, schema)
    parts = _calendar_parts(local, config, skipped) if config.datetime.enabled else []
    holidays = _holidays(local, schema, config, skipped)
    keys = _history_keys(train, schema, categorical, config, skipped)
    windows, source = history_windows(schema, config.history.windows) if keys else ((), "")
    return Plan(
        numeric=numeric,
        onehot=onehot,
        high_cardinality=high_cardinality,
        calendar_parts=parts,
        history_keys=keys,
        skipped=skipped,
        holidays=holidays,
        history_windows=windows,
        windows_source=source,
    )


def _check_numeric(train: pd.DataFrame, numeric: list[str], columns: dict[str, Any]) -> None:
    """Fail on the first column the schema types numeric (or boolean) whose train values are not numbers.

    Args:
        train: the prepared train split.
        numeric: the numeric and boolean inputs, sorted.
        columns: the schema's `columns` section.

    Raises:
        UserError: a column whose dtype contradicts its schema type, naming the conf/data/ key to fix.
    """
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(train[column]):
            fail(
                f"data/schema.yaml: column '{column}' is typed {columns[column]['type']} but holds {train[column].dtype}; fix data.types in conf/data/"
            )


def _split_categorical(train: pd.DataFrame, categorical: list[str], config: FeaturesConfig) -> tuple[list[str], list[str]]:
    """One-hot the categorical inputs with few common levels in train; the rest are high-cardinality.

    Args:
        train: the prepared train split.
        categorical: the categorical inputs, sorted.
        config: the `features` section (`categorical.min_count`, `categorical.max_onehot`).

    Returns:
        (one-hot columns, high-cardinality columns), each in the order of `categorical`.
    """
    onehot: list[str] = []
    high_cardinality: list[str] = []
    for column in categorical:
        counts = pd.Series(category_text(train[[column]])[:, 0]).value_counts()
        common = int((counts >= config.categorical.min_count).sum())
        (onehot if common <= config.categorical.max_onehot else high_cardinality).append(column)
    return onehot, high_cardinality


def _local_times(train: pd.DataFrame, schema: dict[str, Any]) -> pd.Series:
    """The train times in the contract's time zone (as written when it declares none), as calendar features read them."""
    times: pd.Series = train[schema["time"]]
    timezone = schema.get("timezone")
    return times.dt.tz_convert(timezone) if timezone else times


def constant_grains(local: pd.Series) -> dict[str, str]:
    """The calendar parts the train times do not vary at, each with the reason (a part built there would be a
    constant, or a disguised date code: on rows all stamped 1 January the weekday only says which year).

    Args:
        local: the train times in local time.

    Returns:
        {part: reason} for hour, day_of_week, day_of_year and month where they do not vary.
    """
    reasons: dict[str, str] = {}
    hours, days, months = local.dt.hour.unique(), local.dt.day.unique(), local.dt.month.unique()
    if len(hours) == 1:
        reasons["hour"] = f"the local hour is always {hours[0]} in train"
    if len(days) == 1:
        encoded = "year" if len(months) == 1 else "month and year"
        reasons["day_of_week"] = f"every train row falls on day {days[0]} of its month: the weekday would only encode the {encoded}"
        reasons["day_of_year"] = f"every train row falls on day {days[0]} of its month: the day of the year would only encode the month"
    else:
        weekdays = local.dt.day_name().unique()
        if len(weekdays) == 1:
            reasons["day_of_week"] = f"every train row falls on a {weekdays[0]}"
    if len(months) == 1:
        reasons["month"] = f"the month is always {months[0]} in train"
    return reasons


def _calendar_parts(local: pd.Series, config: FeaturesConfig, skipped: dict[str, str]) -> list[str]:
    """The calendar parts to build: each only where train varies at its grain, and a seasonal part only when
    train spans a year; what is left out goes to `skipped` with the reason.

    Args:
        local: the train times in local time.
        config: the `features` section (`datetime.parts`).
        skipped: what the plan left out, and why; updated in place.

    Returns:
        The parts kept, in config order.
    """
    span = local.max() - local.min()
    constant = constant_grains(local)
    parts: list[str] = []
    for part in config.datetime.parts:
        if part in constant:
            skipped[f"calendar_{part}"] = constant[part]
        # A seasonal part seen over less than a year only extrapolates under a time split.
        elif part in SEASONAL_PARTS and span < pd.Timedelta(days=365):
            skipped[f"calendar_{part}"] = f"train spans {span.days} days, less than a year"
        else:
            parts.append(part)
    return parts


def _holidays(local: pd.Series, schema: dict[str, Any], config: FeaturesConfig, skipped: dict[str, str]) -> dict[str, str | None] | None:
    """The contract's holiday calendar ({country, subdivision}) when the holiday flag is built; None, with the reason
    in `skipped`, when it is switched off, no calendar is declared, or every train row falls on one day of the month."""
    if not config.datetime.enabled:
        return None
    calendar: dict[str, str | None] | None = schema.get("holidays")
    reason = None
    if not config.datetime.holidays:
        reason = "features.datetime.holidays is false" if calendar else None
    elif calendar is None:
        reason = "data.time.holidays is null in conf/data/ (no holiday calendar declared)"
    elif local.dt.day.nunique() == 1:
        reason = f"every train row falls on day {local.dt.day.iloc[0]} of its month: the holiday flag would only encode the month"
    if reason:
        skipped["calendar_holiday"] = reason
    return None if reason or not config.datetime.holidays else calendar


def auto_windows(step: Span) -> tuple[Span, ...]:
    """History windows planned from the data's time step: the last step or so, and a longer cycle.

    Up to daily: [1D, 7D] (the last day, the last week); weekly: [4 weeks, 52 weeks] (a month of rows, a year of
    rows: a single weekly row is too few for a rate); monthly: [1 month, 12 months]; yearly: [1 year, 5 years];
    other steps: [one step, 12 steps] (5 steps for whole years).
    """
    if isinstance(step, CalendarSpan):
        if step.months % 12 == 0:
            return step, CalendarSpan(step.months * 5)
        return (step, CalendarSpan(12, "12 months")) if step.months < 12 else (step, CalendarSpan(step.months * 12))
    if step <= pd.Timedelta(days=1):
        return parse_span("1D"), parse_span("7D")
    if step <= pd.Timedelta(days=7):
        return parse_span("4 weeks"), parse_span("52 weeks")
    return step, step * 12


def history_windows(schema: dict[str, Any], declared: Sequence[Span] | None) -> tuple[tuple[Span, ...], str]:
    """The history windows and how they were chosen: planned from the data's time step (auto), or as declared,
    each at least one step long.

    Args:
        schema: data/schema.yaml (`time_step`, `time_step_source`).
        declared: `features.history.windows` (None: auto).

    Returns:
        (windows, a line saying where they come from).

    Raises:
        UserError: the schema has no time step (written before it existed), or a declared window is shorter than the step.
    """
    if not schema.get("time_step"):
        fail("data/schema.yaml: no time_step (written before data.time.step existed); run `dvc repro prepare` to write it")
    step, how = parse_span(schema["time_step"]), schema.get("time_step_source", "")
    planned = auto_windows(step)
    if declared is None:
        return planned, f"auto, from the time step {schema['time_step']} ({how})"
    for window in declared:
        if shorter(window, step):
            fail(
                f"params.yaml: 'features.history.windows' has {span_text(window)}, shorter than the data's time step "
                f"{schema['time_step']} ({how}; {SCHEMA_FILE}): such a window can hold no earlier row; write windows of at least "
                f"{schema['time_step']}, e.g. [{', '.join(span_text(span) for span in planned)}], or auto"
            )
    return tuple(declared), "as declared in features.history.windows"


def _history_keys(
    train: pd.DataFrame, schema: dict[str, Any], categorical: list[str], config: FeaturesConfig, skipped: dict[str, str]
) -> list[tuple[str, ...]]:
    """The keys history features are grouped by: declared in config, or each categorical input with few levels.

    Args:
        train: the prepared train split.
        schema: data/schema.yaml (`columns`, `known_after`).
        categorical: the categorical inputs, sorted.
        config: the `features` section (`history`).
        skipped: what the plan left out, and why; updated in place.

    Returns:
        The keys (the empty key is the overall history); none when history is off or `known_after` is undeclared.

    Raises:
        UserError: a declared key naming a column that is not prepared, or the target or the time.
    """
    if not config.history.enabled:
        return []
    if not schema.get("known_after"):
        skipped["history"] = "data.target.known_after is not declared in conf/data/ (when is an outcome known?)"
        return []
    if config.history.keys is None:
        return _automatic_history_keys(train, categorical, config.history.max_key_levels, skipped)
    return _declared_history_keys(train, schema["columns"], categorical, config.history.keys)


def _automatic_history_keys(train: pd.DataFrame, categorical: list[str], max_levels: int, skipped: dict[str, str]) -> list[tuple[str, ...]]:
    """Each categorical input with at most `max_levels` levels in train, then the empty key (overall history).

    Args:
        train: the prepared train split.
        categorical: the categorical inputs, sorted.
        max_levels: `features.history.max_key_levels`.
        skipped: what the plan left out, and why; updated in place.

    Returns:
        One single-column key per kept input, in order, and `()` last.
    """
    keys: list[tuple[str, ...]] = []
    for column in categorical:
        levels = int(train[column].nunique(dropna=False))
        if levels <= max_levels:
            keys.append((column,))
        else:
            skipped[f"history by {column}"] = f"{levels} levels, more than features.history.max_key_levels"
    keys.append(())
    return keys


def _declared_history_keys(
    train: pd.DataFrame, columns: dict[str, Any], categorical: list[str], declared: Sequence[Sequence[str]]
) -> list[tuple[str, ...]]:
    """The keys `features.history.keys` declares, checked against the prepared columns and their roles.

    Args:
        train: the prepared train split.
        columns: the schema's `columns` section.
        categorical: the categorical inputs, sorted (named in the error as examples).
        declared: `features.history.keys`.

    Returns:
        The declared keys as tuples, in order.

    Raises:
        UserError: a key naming a column that is not prepared, or the target or the time column.
    """
    keys: list[tuple[str, ...]] = []
    for key in declared:
        missing = [column for column in key if column not in train.columns]
        if missing:
            fail(
                f"params.yaml: 'features.history.keys' names '{missing[0]}', which is not a prepared column; columns are: {', '.join(sorted(columns))}"
            )
        # Keyed by its own outcome a row's history is that outcome (a leak); keyed by its time it is empty.
        roles = [(column, columns[column]["role"]) for column in key if "role" in columns.get(column, {})]
        if roles:
            fail(
                f"params.yaml: 'features.history.keys' names '{roles[0][0]}', the {roles[0][1]} column; "
                f"a history key must be an input column, e.g. one of {', '.join(categorical) or 'the categorical inputs'}"
            )
        keys.append(tuple(key))
    return keys
