"""Building blocks of the params models: a strict base model, scalar types that refuse what YAML
would let slip (a `true` where a number belongs, text where a number belongs), durations and dates
parsed once, and the translation of a validation error into one line naming the key's full path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError, model_validator

from stages.lib.timespan import SPAN_EXAMPLES, CalendarSpan, Duration, Span, parse_span, span_text

PARAMS_FILE = "params.yaml"
NoneType = type(None)


class ConfigError(ValueError):
    """One broken rule. `message` may hold `{key}` (the key's full path) and `{conf}` (the conf/ folder it
    comes from); without `{key}` the line starts with the key. `at` extends the path past the validated node."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


class Strict(BaseModel):
    """A params mapping: every key required unless its model says otherwise, no key unknown, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, serialize_by_alias=True)

    @classmethod
    def known_keys(cls) -> list[str]:
        """The keys a params file may hold here (aliases where a key is not a Python attribute name)."""
        return sorted(field.alias or name for name, field in cls.model_fields.items() if not field.exclude)

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(f"must be a mapping, got {data!r}")
        accepted = {field.alias or name for name, field in cls.model_fields.items()}
        unknown = sorted((str(key) for key in data if key not in accepted), key=str)
        if unknown:
            raise ConfigError(
                f"unknown key '{{key}}' (from {{conf}} or a -S override); known keys: {', '.join(cls.known_keys())}", at=(unknown[0],)
            )
        return data

    @classmethod
    def parse(cls, mapping: Any, where: Sequence[str | int] = (), source: str = PARAMS_FILE, context: dict | None = None) -> Any:
        """Validate `mapping` as the section at path `where` of `source`; a one-line UserError on the first problem."""
        from stages.lib.errors import fail

        try:
            return cls.model_validate(mapping, context=context)
        except ValidationError as error:
            fail(first_problem(error, tuple(where), source))


def key_path(parts: Sequence[str | int]) -> str:
    """('features', 'history', 'windows', 1) -> features.history.windows[1]"""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def conf_folder(path: Sequence[str | int]) -> str:
    return f"conf/{path[0]}/" if len(path) > 1 else "conf/config.yaml"


def first_problem(error: ValidationError, prefix: tuple[str | int, ...] = (), source: str = PARAMS_FILE) -> str:
    """The first error of a validation as one line: the file, the key's full path, what was expected, the value."""
    problem = error.errors(include_url=False)[0]
    path = (*prefix, *problem["loc"])
    cause = (problem.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        path = (*path, *cause.at)
        key = key_path(path)
        message = cause.message if "{key}" in cause.message else f"'{{key}}' {cause.message}"
        return f"{source}: " + message.replace("{key}", key).replace("{conf}", conf_folder(path))
    key = key_path(path)
    if problem["type"] == "missing":
        if len(path) == 1:
            return f"{source}: missing section '{key}'; run `make params` to compose it from conf/"
        return f"{source}: missing key '{key}'; add it under {conf_folder(path)}"
    return f"{source}: '{key}' {problem['msg'][0].lower()}{problem['msg'][1:]}, got {problem['input']!r}"


# -- scalar types: the value's Python type is checked as written (YAML `true` is no number, "15" no int)


def _describe(kinds: tuple[type, ...]) -> str:
    return " or ".join("null" if kind is NoneType else kind.__name__ for kind in kinds)


def expect(*kinds: type, described: str | None = None) -> BeforeValidator:
    def check(value: Any) -> Any:
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ConfigError(f"must be {described or _describe(kinds)}, got {value!r}")
        return value

    return BeforeValidator(check)


Int = Annotated[int, expect(int)]
OptionalInt = Annotated[int | None, expect(int, NoneType)]
Number = Annotated[float, expect(int, float)]
OptionalNumber = Annotated[float | None, expect(int, float, NoneType)]
Text = Annotated[str, expect(str)]
OptionalText = Annotated[str | None, expect(str, NoneType)]
Flag = Annotated[bool, expect(bool)]


def rule(test: Callable[[Any], bool], expected: str) -> BeforeValidator:
    """A range or other domain rule, checked on a value that already has the right type (apply after `expect`)."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ConfigError(f"must be {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


def at_least(bound: int) -> BeforeValidator:
    return rule(lambda value: value >= bound, f"at least {bound}")


# Annotated applies BeforeValidators right to left: the type check (last) runs before the rule.
Positive = Annotated[int, at_least(1), expect(int)]
OptionalPositive = Annotated[int | None, rule(lambda value: value is None or value >= 1, "at least 1 or null"), expect(int, NoneType)]
Share = Annotated[float, rule(lambda value: 0.0 < value <= 1.0, "in (0, 1]"), expect(int, float)]
OptionalShare = Annotated[
    float | None, rule(lambda value: value is None or 0.0 < value <= 1.0, "in (0, 1] or null"), expect(int, float, NoneType)
]


def choice(choices: Sequence[str], described: str | None = None) -> BeforeValidator:
    """For `Annotated[str, choice(...)]`: a text that must be one of `choices`."""
    expected = described or f"one of {', '.join(choices)}"

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(f"must be {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


def _names(value: Any) -> Any:
    if not isinstance(value, list):
        raise ConfigError(f"must be list, got {value!r}")
    if not all(isinstance(name, str) for name in value):
        raise ConfigError(f"must be a list of column names, got {value!r}")
    return tuple(value)


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
OptionalNames = Annotated[tuple[str, ...] | None, BeforeValidator(lambda value: value if value is None else _names(value))]


# -- durations and dates: parsed once here; a duration keeps the text it was written as


def _duration(value: Any) -> pd.Timedelta:
    if not isinstance(value, str):
        raise ConfigError(f"must be a duration such as 6h, 1D or 28D, got {value!r}")
    try:
        duration = Duration(value)
    except ValueError:
        raise ConfigError(f"= {value!r} is not a duration (e.g. 6h, 1D, 28D)") from None
    if duration <= pd.Timedelta(0):
        raise ConfigError(f"must be positive, got {value!r}")
    return duration


def duration_text(duration: Span) -> str:
    """The text a duration (or calendar span) was written as in params; a readable text for one built in code."""
    return span_text(duration) if isinstance(duration, CalendarSpan) else str(getattr(duration, "text", duration))


DurationText = Annotated[pd.Timedelta, BeforeValidator(_duration), PlainSerializer(duration_text, return_type=str)]


def _span(value: Any) -> Span:
    if not isinstance(value, str):
        raise ConfigError(f"must be a duration such as 13h, 1D, 7D, 1 month or 1 year, got {value!r}")
    try:
        return parse_span(value)
    except ValueError as error:
        if "positive" in str(error):
            raise ConfigError(f"must be positive, got {value!r}") from None
        raise ConfigError(f"= {value!r} is not a duration ({SPAN_EXAMPLES})") from None


# A duration in the data's own units: fixed (13h, 1D, 7D, 4 weeks) or calendar (1 month, 12 months, 1 year).
SpanText = Annotated[Span, BeforeValidator(_span), PlainSerializer(duration_text, return_type=str)]


def _timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, pd.Timestamp):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"must be a date written as text (YYYY-MM-DD), got {value!r}")
    try:
        # ISO 8601 only: a lenient parser would read "9/1/2013" differently per locale.
        stamp = pd.Timestamp(datetime.fromisoformat(value))
    except ValueError:
        raise ConfigError(f"= {value!r} is not a date (use YYYY-MM-DD)") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _date_text(stamp: pd.Timestamp) -> str:
    """A UTC midnight as the YYYY-MM-DD the conf files use; any other time in full ISO 8601."""
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else stamp.isoformat()


UtcTimestamp = Annotated[pd.Timestamp, BeforeValidator(_timestamp), PlainSerializer(_date_text, return_type=str)]
