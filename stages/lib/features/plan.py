"""The feature plan: which input goes to which family, decided from the schema, the config and train counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stages.lib.config import FeaturesConfig
from stages.lib.errors import fail
from stages.lib.features import category_text

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
    parts = _calendar_parts(train, schema["time"], config, skipped) if config.datetime.enabled else []
    keys = _history_keys(train, schema, categorical, config, skipped)
    return Plan(numeric=numeric, onehot=onehot, high_cardinality=high_cardinality, calendar_parts=parts, history_keys=keys, skipped=skipped)


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


def _calendar_parts(train: pd.DataFrame, time: str, config: FeaturesConfig, skipped: dict[str, str]) -> list[str]:
    """The calendar parts to build; a seasonal part is skipped (and why, in `skipped`) when train spans under a year.

    Args:
        train: the prepared train split.
        time: the time column's name.
        config: the `features` section (`datetime.parts`).
        skipped: what the plan left out, and why; updated in place.

    Returns:
        The parts kept, in config order.
    """
    times = train[time]
    span = times.max() - times.min()
    parts: list[str] = []
    for part in config.datetime.parts:
        # A seasonal part seen over less than a year only extrapolates under a time split.
        if part in SEASONAL_PARTS and span < pd.Timedelta(days=365):
            skipped[f"calendar_{part}"] = f"train spans {span.days} days, less than a year"
        else:
            parts.append(part)
    return parts


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
