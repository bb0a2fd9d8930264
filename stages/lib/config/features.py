"""The `conf/features/` group (the `features` section): which feature families featurize builds, and how."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from stages.lib.config.base import (
    ConfigError,
    Flag,
    Int,
    Names,
    OptionalPositive,
    OptionalShare,
    Positive,
    Share,
    SpanText,
    Strict,
    at_least,
    choice,
    duration_text,
    expect,
    rule,
)

DATETIME_PARTS = ("hour", "day_of_week", "month", "day_of_year")
NUMERIC_IMPUTE = ("median", "mean", "none")
NUMERIC_TRANSFORMS = ("none", "log", "quantile")


def _parts(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
        raise ConfigError(f"must be a list of column names, got {value!r}")
    unknown = [part for part in value if part not in DATETIME_PARTS]
    if unknown:
        raise ConfigError(f"has '{unknown[0]}'; choose from {', '.join(DATETIME_PARTS)}")
    return tuple(sorted(set(value), key=DATETIME_PARTS.index))


class DatetimeFeatures(Strict):
    enabled: Flag
    parts: Annotated[tuple[str, ...], BeforeValidator(_parts), PlainSerializer(list)]
    cyclical: Flag
    holidays: Flag  # flag the public holidays of the calendar the data contract declares (data.time.holidays)


def _ratios(value: Any) -> Any:
    pairs = isinstance(value, list) and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(name, str) for name in pair) for pair in value
    )
    if not pairs:
        raise ConfigError(f"must be a list of [numerator, denominator] column pairs, got {value!r}")
    return tuple((pair[0], pair[1]) for pair in value)


class NumericFeatures(Strict):
    enabled: Flag
    impute: Annotated[str, choice(NUMERIC_IMPUTE)]
    missing_indicators: Flag
    transform: Annotated[str, choice(NUMERIC_TRANSFORMS)]
    ratios: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_ratios)]


NotNegative = Annotated[int, at_least(0), expect(int)]


class CategoricalFeatures(Strict):
    enabled: Flag
    min_count: Positive
    max_onehot: NotNegative
    frequency: Flag
    target_encoding: Flag


def _keys(value: Any) -> Any:
    if value == "auto":
        return None
    if isinstance(value, list) and all(isinstance(key, list) and all(isinstance(name, str) for name in key) for key in value):
        return tuple(tuple(key) for key in value)
    raise ConfigError(f"must be auto or a list of column lists ([] means all rows), got {value!r}")


def _windows(value: Any) -> Any:
    if value == "auto":
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(f"must be auto or a non-empty list of durations (e.g. [1D, 7D] or [1 month, 12 months]), got {value!r}")
    return value


def _distinct(windows: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if windows is not None and len(set(windows)) < len(windows):
        raise ConfigError(f"lists one duration twice: {[duration_text(window) for window in windows]!r}")
    return windows


def _windows_text(windows: tuple[Any, ...] | None) -> Any:
    return "auto" if windows is None else [duration_text(window) for window in windows]


class HistoryFeatures(Strict):
    enabled: Flag
    keys: Annotated[
        tuple[tuple[str, ...], ...] | None, BeforeValidator(_keys), PlainSerializer(lambda keys: "auto" if keys is None else keys)
    ]
    # None (auto): planned by featurize from the data's time step (data/schema.yaml).
    windows: Annotated[tuple[SpanText, ...] | None, AfterValidator(_distinct), BeforeValidator(_windows), PlainSerializer(_windows_text)]
    smoothing: Annotated[float, rule(lambda value: value >= 0, "0 or more"), expect(int, float)]
    max_key_levels: Positive


class SelectionConfig(Strict):
    near_constant: OptionalShare
    duplicates: Flag
    max_correlation: OptionalShare


ON_LEAK = ("warn", "drop", "error")
# A single column's out-of-fold ROC AUC is max(auc, 1 - auc): 0.5 is no relation, so a bound below it flags everything.
AucBound = Annotated[float, rule(lambda value: 0.5 < value <= 1.0, "in (0.5, 1]"), expect(int, float)]


class ScreenConfig(Strict):
    """The screen featurize runs on train before building anything: leaks, identifiers, time proxies."""

    on_leak: Annotated[str, choice(ON_LEAK)]  # what a suspected leak does
    max_auc: AucBound  # classification: one input alone above this out-of-fold ROC AUC is a suspected leak
    max_r2: Share  # regression: one input alone above this out-of-fold R^2 is a suspected leak
    folds: Annotated[int, at_least(2), expect(int)]  # K of the seeded K-fold (features.seed)
    bins: Annotated[int, at_least(2), expect(int)]  # quantile bins of a numeric input, fitted in each fold
    time_proxy: Share  # a numeric column with |Spearman| with the time at least this is a copy of the time


class FeaturesConfig(Strict):
    exclude: Names  # prepared columns to leave out of the model
    max_features: Positive
    seed: Int  # the quantile transform's row sample, the screen's folds and the fit sample
    # Above this many train rows, featurize fits on a seeded sample of this many (both engines); None: every row.
    fit_sample_rows: OptionalPositive
    datetime: DatetimeFeatures
    numeric: NumericFeatures
    categorical: CategoricalFeatures
    history: HistoryFeatures
    selection: SelectionConfig
    screen: ScreenConfig
