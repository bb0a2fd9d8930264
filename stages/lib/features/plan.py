"""The feature plan: which input goes to which family, decided from the schema, the config and train counts."""

from __future__ import annotations

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


def plan_features(train: pd.DataFrame, schema: dict[str, Any], config: FeaturesConfig) -> Plan:
    """Assign inputs to families; columns are visited in sorted order so the plan ignores column order.

    Args:
        train: the prepared train split (counts and the time span come from it only).
        schema: data/schema.yaml as prepare wrote it (column types and roles, time, known_after).
        config: the `features` section.

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
    inputs = sorted(
        column
        for column, entry in columns.items()
        if "role" not in entry and entry["type"] in INPUT_TYPES and column not in config.exclude and column in train.columns
    )
    skipped = {
        column: f"type {entry['type']}" for column, entry in columns.items() if "role" not in entry and entry["type"] not in INPUT_TYPES
    }
    numeric = [column for column in inputs if columns[column]["type"] != "categorical"]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(train[column]):
            fail(
                f"data/schema.yaml: column '{column}' is typed {columns[column]['type']} but holds {train[column].dtype}; fix data.types in conf/data/"
            )
    categorical = [column for column in inputs if columns[column]["type"] == "categorical"]
    if not config.numeric.enabled:
        skipped |= dict.fromkeys(numeric, "features.numeric.enabled is false")
        numeric = []
    onehot, high_cardinality = [], []
    if config.categorical.enabled:
        for column in categorical:
            counts = pd.Series(category_text(train[[column]])[:, 0]).value_counts()
            common = int((counts >= config.categorical.min_count).sum())
            (onehot if common <= config.categorical.max_onehot else high_cardinality).append(column)
    else:
        skipped |= dict.fromkeys(categorical, "features.categorical.enabled is false")

    parts: list[str] = []
    if config.datetime.enabled:
        times = train[schema["time"]]
        span = times.max() - times.min()
        for part in config.datetime.parts:
            # A seasonal part seen over less than a year only extrapolates under a time split.
            if part in SEASONAL_PARTS and span < pd.Timedelta(days=365):
                skipped[f"calendar_{part}"] = f"train spans {span.days} days, less than a year"
            else:
                parts.append(part)

    keys: list[tuple[str, ...]] = []
    if config.history.enabled and not schema.get("known_after"):
        skipped["history"] = "data.target.known_after is not declared in conf/data/ (when is an outcome known?)"
    elif config.history.enabled:
        if config.history.keys is None:
            for column in categorical:
                levels = int(train[column].nunique(dropna=False))
                if levels <= config.history.max_key_levels:
                    keys.append((column,))
                else:
                    skipped[f"history by {column}"] = f"{levels} levels, more than features.history.max_key_levels"
            keys.append(())
        else:
            for key in config.history.keys:
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
    return Plan(numeric=numeric, onehot=onehot, high_cardinality=high_cardinality, calendar_parts=parts, history_keys=keys, skipped=skipped)
