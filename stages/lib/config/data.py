"""The data contract (`conf/data/<name>.yaml`, the `data` section): what a table is, every key required.

A data scientist declares the source, the target and task, the time column, the columns to drop as
identifiers or leaks, related tables to join, split windows, column types and validation rules.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field, PlainSerializer, SerializerFunctionWrapHandler, model_serializer, model_validator

from stages.lib.config.base import (
    ConfigError,
    Flag,
    Int,
    Names,
    OptionalNames,
    OptionalNumber,
    OptionalText,
    SpanText,
    Strict,
    Text,
    UtcTimestamp,
    choice,
    duration_text,
    expect,
    rule,
)
from stages.lib.errors import fail
from stages.lib.timespan import Span

SPLIT_NAMES = ("train", "test", "reference", "current")
TASKS = ("classification", "regression")
TYPES = ("numeric", "categorical", "boolean", "datetime", "identifier")
# data.time.format: these names, or a strptime pattern (anything holding '%', e.g. "%d/%m/%Y").
TIME_FORMATS = ("iso8601", "year", "epoch_s", "epoch_ms")


class Source(Strict):
    """A CSV (optionally zipped) or Parquet file: inside an installed package, or a path from the project root."""

    package: OptionalText
    path: Text

    def locate(self) -> Path:
        if self.package is None:
            return Path(self.path)
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            fail(f"package '{self.package}' is not installed; run `make setup` (it installs requirements.lock)")
        # Not `import <package>`: dataset packages often load every table at import time.
        return Path(spec.submodule_search_locations[0]) / self.path


class Join(Strict):
    source: Source
    keys: Names
    columns: OptionalNames  # None: every column of the related table
    deduplicate: Flag


def _texts(value: Any) -> Any:
    # Allowed values are compared as text (a category column holds text): 1 and "1" are the same value.
    return [str(item) for item in value] if isinstance(value, list) else value


# A bound as written (0 stays 0: pandera names its checks after it).
Bound = Annotated[int | float | None, expect(int, float, type(None))]


class Check(Strict):
    """Rules for one column, validated with pandera on every run. A check lists only the rules it applies:
    the rules are its content, not settings with defaults (null or absent: that rule is not checked)."""

    min: Bound = None
    max: Bound = None
    allowed: Annotated[tuple[str, ...] | None, BeforeValidator(_texts), expect(list, type(None))] = None
    max_null_share: Bound = None

    @model_serializer(mode="wrap")
    def _applied_rules(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {rule: value for rule, value in handler(self).items() if value is not None}


def label_text(label: Any) -> str:
    """A label (of data.target.positive, or a column's value) as the contract writes it: true, 1, 2.5, 'yes'."""
    if isinstance(label, bool | np.bool_):
        return "true" if label else "false"
    if isinstance(label, int | float | np.number):
        return f"{float(label):g}"
    return repr(str(label))


def _label(value: Any) -> Any:
    # A label is compared with the column's values (stages/lib/target.py): it must be able to equal one.
    if isinstance(value, str) and not value:
        raise ConfigError("must be a label as the column writes it, got an empty text (an empty cell is read as missing)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a label as the column writes it (true, a number or a quoted text), got {value!r}")
    return value


# data.target.positive: true, a number, or a text; bool before int: YAML `true` stays a boolean.
PositiveLabel = Annotated[
    bool | int | float | str | None,
    BeforeValidator(_label),
    expect(bool, int, float, str, type(None), described="true or false, a number, a quoted text or null"),
]
MissingShare = Annotated[
    float | None, rule(lambda value: value is None or 0.0 <= value <= 1.0, "a share from 0 to 1, or null"), expect(int, float, type(None))
]


class Target(Strict):
    """What the model predicts, from one source column: a threshold or a positive label (classification), or the
    value itself (regression). The rule is applied by stages/lib/target.py, in prepare and to outcomes given later."""

    name: Text  # the target column in prepared data
    column: Text  # the source column it comes from
    greater_than: OptionalNumber  # classification: target = column > greater_than
    positive: PositiveLabel  # classification: target = (column == positive), one class against the rest
    known_after: SpanText | None  # how long after its row's time an outcome is known (13h, 1 year); None: no history features
    max_missing_share: MissingShare  # warn when more of the source rows have no target; None: never warn

    @property
    def classifies(self) -> bool:
        """A 0/1 target (a threshold or a positive label); else the column's value (regression)."""
        return self.greater_than is not None or self.positive is not None

    @property
    def rule(self) -> str:
        """The rule in one line, as data/schema.yaml records it and messages quote it."""
        if self.greater_than is not None:
            return f"{self.name} = 1 where {self.column} > {self.greater_than:g}, else 0"
        if self.positive is not None:
            return f"{self.name} = 1 where {self.column} == {label_text(self.positive)}, else 0 (one class against the rest)"
        return f"{self.name} = {self.column} (regression)"


TimeFormat = Annotated[
    str,
    rule(lambda value: value in TIME_FORMATS or "%" in value, f"one of {', '.join(TIME_FORMATS)} or a strptime pattern such as '%d/%m/%Y'"),
    expect(str),
]


def _few(codes: list[str], count: int = 8) -> str:
    return ", ".join(codes[:count]) + (", ..." if len(codes) > count else "")


class Calendar(Strict):
    """The public-holiday calendar of the data's place: a country (and subdivision) of the offline `holidays` package."""

    country: Text
    subdivision: OptionalText  # None: the country's nationwide holidays

    @model_validator(mode="after")
    def _known_to_the_package(self) -> Calendar:
        import holidays  # the package's own list, so what compose accepts is what featurize can build

        countries = holidays.list_supported_countries(include_aliases=False)
        if self.country not in holidays.list_supported_countries(include_aliases=True):
            raise ConfigError(
                f"'{{key}}' = {self.country!r} is not a country code of the holidays package; use an ISO 3166 code such as "
                f"{_few(['DE', 'FR', 'GB', 'JP', 'US'], 5)} ({len(countries)} known: python -c 'import holidays; "
                f"print(sorted(holidays.list_supported_countries(include_aliases=False)))')",
                at=("country",),
            )
        subdivisions = holidays.list_supported_countries(include_aliases=True)[self.country]
        if self.subdivision is not None and self.subdivision not in subdivisions:
            known = f"one of {_few(sorted(subdivisions))}" if subdivisions else f"null ({self.country} has no subdivisions)"
            raise ConfigError(f"'{{key}}' = {self.subdivision!r} is not a subdivision of {self.country}; use {known}", at=("subdivision",))
        return self


def _step(value: Any) -> Any:
    return None if value == "auto" else value


class Time(Strict):
    column: Text
    format: TimeFormat
    timezone: OptionalText  # local time of calendar features; None: as written
    holidays: Calendar | None  # whose public holidays the calendar features flag; None: no holiday features
    # The data's own time step; None (auto): inferred from the train split by prepare (data/schema.yaml).
    step: Annotated[SpanText | None, BeforeValidator(_step), PlainSerializer(lambda step: "auto" if step is None else duration_text(step))]


class Drop(Strict):
    identifiers: Names
    leaks: Names
    other: Names


class Window(Strict):
    """A half-open time window [start, end) in UTC."""

    name: str = Field(exclude=True)  # the split's key in data.splits, not written in it
    start: UtcTimestamp
    end: UtcTimestamp

    @model_validator(mode="after")
    def _start_before_end(self) -> Window:
        if self.start >= self.end:
            raise ConfigError(f"split '{{key}}' starts at {self.start:%Y-%m-%d} but ends at {self.end:%Y-%m-%d}; start must be before end")
        return self


class Splits(Strict):
    train: Window
    test: Window
    reference: Window
    current: Window

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, window in data.items():
            if isinstance(window, dict) and "name" in window:
                raise ConfigError("unknown key '{key}'; a split window holds start and end", at=(name, "name"))
        return {name: {**window, "name": name} if isinstance(window, dict) else window for name, window in data.items()}

    @model_validator(mode="after")
    def _reference_before_current(self) -> Splits:
        # The drift check compares the current window against a reference of what came before it: a reference
        # after (or overlapping) the current window would report drift backwards in time without a word.
        if self.reference.end > self.current.start:
            raise ConfigError(
                f"'{{key}}.reference' ({self.reference.start:%Y-%m-%d} to {self.reference.end:%Y-%m-%d}) must end by the time "
                f"'{{key}}.current' starts ({self.current.start:%Y-%m-%d}): the drift reference comes before the current window; "
                "fix data.splits in conf/data/"
            )
        return self


def _missing_values(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'must be a list of strings (quote numbers: "-999"), got {value!r}')
    return tuple(value)


SampleRows = Annotated[
    int | None, rule(lambda value: value is None or value >= 1, "a positive number of rows or null"), expect(int, type(None))
]


# The largest source (its files' bytes on disk) prepare reads, on either engine; the pandas engine holds about 3 times
# this in memory at peak.
DEFAULT_MAX_SOURCE_BYTES = 4_000_000_000
SourceBytes = Annotated[int, rule(lambda value: value >= 1, "a positive number of bytes"), expect(int)]


class DataContract(Strict):
    name: Text
    source: Source
    joins: tuple[Join, ...] = Field(alias="join")
    task: Annotated[str, choice(TASKS)]
    target_spec: Target = Field(alias="target")
    time_spec: Time = Field(alias="time")
    missing_values: Annotated[tuple[str, ...], BeforeValidator(_missing_values)]  # the exact strings read as missing
    drop: Drop
    types: dict[str, Annotated[str, choice(TYPES)]]
    checks: dict[str, Check]
    on_violation: Annotated[str, choice(("error", "warn"), described="error or warn")]
    sample_rows: SampleRows
    sample_seed: Int
    max_source_bytes: SourceBytes = DEFAULT_MAX_SOURCE_BYTES
    windows: Splits = Field(alias="splits")

    @model_validator(mode="after")
    def _consistent(self) -> DataContract:
        target = self.target_spec
        if self.task == "classification" and target.greater_than is None and target.positive is None:
            raise ConfigError(
                "'{key}.greater_than' (target = column > value) or '{key}.positive' (target = column == label, e.g. true, 1 "
                'or "yes") is needed for classification; set one of them',
                at=("target",),
            )
        if target.greater_than is not None and target.positive is not None:
            raise ConfigError(
                "'{key}.greater_than' and '{key}.positive' are both set; keep one: greater_than for a threshold on a number, "
                "positive for a label",
                at=("target",),
            )
        for key in ("greater_than", "positive"):
            if self.task == "regression" and getattr(target, key) is not None:
                raise ConfigError("makes a binary target; set it to null for regression", at=("target", key))
        removed = {*self.identifiers, *self.leaks, *self.other_drops} | ({self.target_column} - {self.target})
        checked_but_removed = sorted(set(self.checks) & removed)
        if checked_but_removed:
            raise ConfigError(
                "checks a column that prepare drops (data.drop, or the target's source column); checks run on prepared data: "
                "remove the check or the drop",
                at=("checks", checked_but_removed[0]),
            )
        return self

    # The names the stages use: flat, as before the contract had its own model.
    @property
    def target(self) -> str:
        return self.target_spec.name

    @property
    def target_column(self) -> str:
        return self.target_spec.column

    @property
    def sources(self) -> list[tuple[str, Source]]:
        """Each source table's setting (data.source, then each data.join[i].source) and what it names, in reading order."""
        return [("data.source", self.source), *((f"data.join[{index}].source", join.source) for index, join in enumerate(self.joins))]

    @property
    def greater_than(self) -> float | None:
        return self.target_spec.greater_than

    @property
    def positive(self) -> bool | int | float | str | None:
        return self.target_spec.positive

    @property
    def known_after(self) -> Span | None:
        return self.target_spec.known_after

    @property
    def time(self) -> str:
        return self.time_spec.column

    @property
    def timezone(self) -> str | None:
        return self.time_spec.timezone

    @property
    def time_format(self) -> str:
        return self.time_spec.format

    @property
    def holidays(self) -> Calendar | None:
        return self.time_spec.holidays

    @property
    def time_step(self) -> Span | None:
        return self.time_spec.step

    @property
    def identifiers(self) -> tuple[str, ...]:
        return self.drop.identifiers

    @property
    def leaks(self) -> tuple[str, ...]:
        return self.drop.leaks

    @property
    def other_drops(self) -> tuple[str, ...]:
        return self.drop.other

    @property
    def splits(self) -> tuple[Window, ...]:
        return tuple(getattr(self.windows, name) for name in SPLIT_NAMES)

    def split(self, name: str) -> Window:
        window: Window = getattr(self.windows, name)
        return window
