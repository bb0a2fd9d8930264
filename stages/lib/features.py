"""The feature engine: typed, leakage-safe features planned from the schema and `conf/features/`.

Three parts, each fitted on the train split only:
- `build_transformer`: a scikit-learn `ColumnTransformer` (pandas output, named features) for the
  datetime, numeric and categorical families; saved with skops and reused for scoring;
- `history_features`: the target's recent past per key, from outcomes known strictly before each row;
- `select_features`: target-free filters in sorted column order.
Target encoding is not here: it needs the target, so train fits it out of fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, QuantileTransformer

from stages.lib.config import FeaturesConfig, HistoryFeatures, SelectionConfig
from stages.lib.errors import fail

MISSING = "__missing__"
OTHER = "__other__"
INPUT_TYPES = ("numeric", "boolean", "categorical")
# sin/cos periods of the calendar parts (values are 0-based before encoding)
PERIODS = {"hour": 24.0, "day_of_week": 7.0, "month": 12.0, "day_of_year": 365.25}
SEASONAL_PARTS = ("month", "day_of_year")
HOLIDAY_DISTANCE_CAP = 14
QUANTILE_SUBSAMPLE = 100_000


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """log1p that keeps the sign, so negative inputs stay ordered."""
    return np.sign(values) * np.log1p(np.abs(values))


def _text(frame: pd.DataFrame) -> np.ndarray:
    """Categories as plain strings, missing values as their own level."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        if not (pd.api.types.is_string_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype)):
            series = series.astype("string")  # numbers or flags used as categories: their text
        columns.append(series.to_numpy(dtype=object, na_value=MISSING))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0), dtype=object)


def _level_counts(frame: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each column's distinct levels (as text, sorted) and how many rows hold each."""
    text = _text(frame)
    return [np.unique(text[:, index], return_counts=True) for index in range(text.shape[1])]


class TextCategories(TransformerMixin, BaseEstimator):
    """Cast categorical columns to strings, with missing values as a level of their own."""

    def fit(self, frame: pd.DataFrame, target: Any = None) -> TextCategories:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return _text(frame)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Each level's share of the train rows; levels unseen in train get 0."""

    def fit(self, frame: pd.DataFrame, target: Any = None) -> FrequencyEncoder:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.shares_ = [dict(zip(levels.tolist(), (counts / len(frame)).tolist(), strict=True)) for levels, counts in _level_counts(frame)]
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        text = _text(frame)
        columns = {
            f"{name}_frequency": pd.Series(text[:, index]).map(shares).fillna(0.0).to_numpy(dtype=np.float64)
            for index, (name, shares) in enumerate(zip(self.feature_names_in_, self.shares_, strict=True))
        }
        return pd.DataFrame(columns, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{name}_frequency" for name in self.feature_names_in_], dtype=object)


class RareCategories(TransformerMixin, BaseEstimator):
    """Keep levels seen at least `min_count` times in train; every other level (and unseen ones) becomes one."""

    def __init__(self, min_count: int = 50) -> None:
        self.min_count = min_count

    def fit(self, frame: pd.DataFrame, target: Any = None) -> RareCategories:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.levels_ = [[*sorted(levels[counts >= self.min_count].tolist()), OTHER] for levels, counts in _level_counts(frame)]
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        text = _text(frame)
        columns = {}
        for index, (name, levels) in enumerate(zip(self.feature_names_in_, self.levels_, strict=True)):
            values = pd.Series(text[:, index])
            grouped = values.where(values.isin(levels[:-1]), OTHER)
            columns[name] = pd.Categorical(grouped, categories=levels)
        return pd.DataFrame(columns, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class RatioFeatures(TransformerMixin, BaseEstimator):
    """numerator / denominator of two numeric columns; NaN where the denominator is 0 or missing."""

    def fit(self, frame: pd.DataFrame, target: Any = None) -> RatioFeatures:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        numerator, denominator = (frame.iloc[:, index].to_numpy(dtype=np.float64, na_value=np.nan) for index in (0, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(denominator == 0, np.nan, numerator / denominator)
        return pd.DataFrame({self.get_feature_names_out()[0]: ratio}, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{self.feature_names_in_[0]}_per_{self.feature_names_in_[1]}"], dtype=object)


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Calendar parts of a timestamp column in a local time zone, their sin/cos, and public holidays."""

    def __init__(
        self, timezone: str | None = None, parts: Sequence[str] = (), cyclical: bool = True, holidays_country: str | None = None
    ) -> None:
        self.timezone = timezone
        self.parts = parts
        self.cyclical = cyclical
        self.holidays_country = holidays_country

    def fit(self, frame: pd.DataFrame, target: Any = None) -> CalendarFeatures:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = []
        for part in self.parts:
            names.append(f"calendar_{part}")
            if self.cyclical:
                names += [f"calendar_{part}_sin", f"calendar_{part}_cos"]
        if self.holidays_country:
            names += ["calendar_holiday", "calendar_days_to_holiday"]
        return np.asarray(names, dtype=object)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        times = pd.to_datetime(frame.iloc[:, 0], utc=True)
        local = times.dt.tz_convert(self.timezone) if self.timezone else times
        values = {
            "hour": local.dt.hour,
            "day_of_week": local.dt.day_of_week,
            "month": local.dt.month - 1,
            "day_of_year": local.dt.day_of_year - 1,
        }
        columns: dict[str, np.ndarray] = {}
        for part in self.parts:
            value = values[part].to_numpy(dtype=np.float64)
            columns[f"calendar_{part}"] = value
            if self.cyclical:
                angle = 2 * np.pi * value / PERIODS[part]
                columns[f"calendar_{part}_sin"] = np.sin(angle)
                columns[f"calendar_{part}_cos"] = np.cos(angle)
        if self.holidays_country:
            columns |= self._holidays(local)
        return pd.DataFrame(columns, index=frame.index)

    def _holidays(self, local: pd.Series) -> dict[str, np.ndarray]:
        import holidays  # imported here: only calendars with a country need it

        days = local.dt.tz_localize(None).dt.normalize() if local.dt.tz is not None else local.dt.normalize()
        ordinal = (days.to_numpy(dtype="datetime64[D]")).astype(np.int64)
        years = range(int(days.dt.year.min()) - 1, int(days.dt.year.max()) + 2)
        calendar = holidays.country_holidays(self.holidays_country, years=years)
        holiday_days = np.unique(np.array(sorted(calendar), dtype="datetime64[D]").astype(np.int64))
        position = np.clip(np.searchsorted(holiday_days, ordinal), 1, len(holiday_days) - 1)
        distance = np.minimum(np.abs(ordinal - holiday_days[position - 1]), np.abs(holiday_days[position] - ordinal))
        return {
            "calendar_holiday": (distance == 0).astype(np.float64),
            "calendar_days_to_holiday": np.minimum(distance, HOLIDAY_DISTANCE_CAP).astype(np.float64),
        }


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
    """Assign inputs to families; columns are visited in sorted order so the plan ignores column order."""
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
            counts = pd.Series(_text(train[[column]])[:, 0]).value_counts()
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


# ColumnTransformer entry name prefix -> feature family
FAMILY_OF_ENTRY = {
    "numeric": "numeric",
    "missing": "numeric",
    "ratio": "numeric",
    "calendar": "datetime",
    "onehot": "categorical",
    "frequency": "categorical",
    "categories": "categorical",
}


def build_transformer(plan: Plan, schema: dict[str, Any], config: FeaturesConfig, train: pd.DataFrame) -> ColumnTransformer:
    """An unfitted ColumnTransformer for the datetime, numeric and categorical families (pandas output)."""
    entries: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        steps: list[tuple[str, Any]] = []
        if config.numeric.impute != "none":
            steps.append(("impute", SimpleImputer(strategy=config.numeric.impute, keep_empty_features=True)))
        if config.numeric.transform == "log":
            steps.append(("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")))
        elif config.numeric.transform == "quantile":
            steps.append(
                ("quantile", QuantileTransformer(output_distribution="normal", subsample=QUANTILE_SUBSAMPLE, random_state=config.seed))
            )
        entries.append(("numeric", Pipeline(steps) if steps else "passthrough", plan.numeric))
        with_missing = [column for column in plan.numeric if train[column].isna().any()]
        if config.numeric.missing_indicators and with_missing:
            entries.append(("missing", MissingIndicator(features="all", sparse=False), with_missing))
        for index, (numerator, denominator) in enumerate(config.numeric.ratios):
            entries.append((f"ratio{index}", RatioFeatures(), [numerator, denominator]))
    if plan.calendar_parts or (config.datetime.enabled and config.datetime.holidays):
        calendar = CalendarFeatures(schema.get("timezone"), tuple(plan.calendar_parts), config.datetime.cyclical, config.datetime.holidays)
        entries.append(("calendar", calendar, [schema["time"]]))
    for column in plan.onehot:
        encoder = OneHotEncoder(
            min_frequency=config.categorical.min_count, handle_unknown="infrequent_if_exist", sparse_output=False, dtype=np.float64
        )
        entries.append((f"onehot_{column}", Pipeline([("text", TextCategories()), ("encode", encoder)]), [column]))
    categorical = [*plan.onehot, *plan.high_cardinality]
    if config.categorical.frequency and categorical:
        entries.append(("frequency", FrequencyEncoder(), categorical))
    if plan.high_cardinality:
        entries.append(("categories", RareCategories(config.categorical.min_count), plan.high_cardinality))
    transformer = ColumnTransformer(entries, remainder="drop", verbose_feature_names_out=False)
    return transformer.set_output(transform="pandas")


def describe_outputs(transformer: ColumnTransformer) -> dict[str, dict[str, Any]]:
    """For each output feature of a fitted transformer: its family, source columns and transform."""
    described = {}
    for name, fitted, columns in transformer.transformers_:
        if name == "remainder" or fitted == "drop":
            continue
        family = FAMILY_OF_ENTRY[name.split("_")[0].rstrip("0123456789")]
        outputs = list(transformer.named_transformers_[name].get_feature_names_out(columns)) if fitted != "passthrough" else list(columns)
        one_to_one = len(outputs) == len(columns) and name not in ("calendar",)
        for index, output in enumerate(outputs):
            sources = [columns[index]] if one_to_one else list(columns)
            described[output] = {"family": family, "sources": sources, "transform": _transform_name(name, fitted)}
    return described


def _transform_name(entry: str, fitted: Any) -> str:
    if fitted == "passthrough":
        return "as is"
    if isinstance(fitted, Pipeline):
        return " -> ".join(type(step).__name__ for _, step in fitted.steps)
    return type(fitted).__name__


# ---------------------------------------------------------------- history


def history_name(key: Sequence[str], window: pd.Timedelta, target: str, what: str) -> str:
    return f"history_{'_'.join(key) or 'all'}_{_duration(window)}_{target}_{what}"


def _duration(span: pd.Timedelta) -> str:
    """The largest whole unit that states the span exactly: 7d, 12h, 90min, 45s."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _key_codes(events: pd.DataFrame, rows: pd.DataFrame, key: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the key in both frames; -1 for row keys never seen among the events."""
    if not key:
        return np.zeros(len(events), dtype=np.int64), np.zeros(len(rows), dtype=np.int64)
    event_keys = pd.MultiIndex.from_frame(pd.DataFrame({name: _text(events[[name]])[:, 0] for name in key}))
    row_keys = pd.MultiIndex.from_frame(pd.DataFrame({name: _text(rows[[name]])[:, 0] for name in key}))
    levels = event_keys.unique().sort_values()
    return levels.get_indexer(event_keys).astype(np.int64), levels.get_indexer(row_keys).astype(np.int64)


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC), without a per-value Python detour."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _position(composite: np.ndarray, unique_times: np.ndarray, codes: np.ndarray, stride: int, bound: np.ndarray) -> np.ndarray:
    """Index into the sorted events just past those of each row's key at or before its bound."""
    rank = np.searchsorted(unique_times, bound, side="right")
    return np.searchsorted(composite, codes * stride + rank, side="left")


def history_features(
    rows: pd.DataFrame,
    events: pd.DataFrame,
    keys: Sequence[Sequence[str]],
    config: HistoryFeatures,
    time: str,
    target: str,
    prior: float,
    known_after: pd.Timedelta,
) -> pd.DataFrame:
    """Per key and window, the smoothed target mean and the row count over outcomes known before each row.

    An event (a labelled row) counts for a row at time t once its outcome is known, `event time +
    known_after <= t`, and while it is in the window, `t - known_after - window < event time`.
    `known_after` must be positive, so a row never sees its own outcome or any later one.
    """
    event_times, row_times = _nanoseconds(events[time]), _nanoseconds(rows[time])
    values = events[target].to_numpy(dtype=np.float64)
    unique_times = np.unique(event_times)
    stride = len(unique_times) + 1
    lag = known_after.value
    if lag <= 0:
        raise ValueError("known_after must be positive")
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        event_codes, row_codes = _key_codes(events, rows, key)
        # One sorted array of (key, time rank) lets a single searchsorted count events per key and time.
        composite = event_codes * stride + np.searchsorted(unique_times, event_times)
        order = np.argsort(composite, kind="stable")
        composite = composite[order]
        sums = np.concatenate([[0.0], np.cumsum(values[order])])
        known = row_codes >= 0

        upper = _position(composite, unique_times, row_codes, stride, row_times - lag)
        for window in config.windows:
            lower = _position(composite, unique_times, row_codes, stride, row_times - lag - window.value)
            count = np.where(known, upper - lower, 0).astype(np.float64)
            total = np.where(known, sums[upper] - sums[lower], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):  # no known outcome yet: NaN, or the prior when smoothed
                mean = (total + config.smoothing * prior) / (count + config.smoothing) if config.smoothing > 0 else total / count
            columns[history_name(key, window, target, "mean")] = np.where(count > 0, mean, prior if config.smoothing > 0 else np.nan)
            columns[history_name(key, window, target, "rows")] = count
    return pd.DataFrame(columns, index=rows.index)


# ---------------------------------------------------------------- target-free selection


def select_features(train: pd.DataFrame, config: SelectionConfig) -> dict[str, str]:
    """Features the filters drop, with the reason; visited in sorted name order so column order does not matter."""
    names = sorted(column for column in train.columns if pd.api.types.is_numeric_dtype(train[column]))
    dropped: dict[str, str] = {}
    matrix = {name: train[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in names}
    if config.near_constant is not None:
        for name in names:
            values, counts = np.unique(matrix[name], return_counts=True, equal_nan=True)
            share = counts.max() / len(train) if len(train) else 1.0
            if share >= config.near_constant:
                dropped[name] = f"near-constant: {values[counts.argmax()]:g} in {share:.2%} of train rows"
    if config.duplicates:
        seen: dict[bytes, str] = {}
        for name in names:
            if name in dropped:
                continue
            # One bit pattern for every NaN, and -0.0 equal to 0.0, so equal values give equal bytes.
            digest = np.where(np.isnan(matrix[name]), np.nan, matrix[name] + 0.0).tobytes()
            if digest in seen:
                dropped[name] = f"duplicate of {seen[digest]}"
            else:
                seen[digest] = name
    if config.max_correlation is not None:
        kept = [name for name in names if name not in dropped]
        if kept:
            values = np.column_stack([matrix[name] for name in kept])
            means = np.nanmean(values, axis=0)
            # Missing values at the column mean: exact for complete columns, close for the rest.
            centred = np.where(np.isnan(values), 0.0, values - means)
            norms = np.sqrt((centred**2).sum(axis=0))
            norms[norms == 0] = np.inf
            correlation = np.abs((centred.T @ centred) / np.outer(norms, norms))
            chosen: list[int] = []
            for index, name in enumerate(kept):
                partner = next((other for other in chosen if correlation[index, other] >= config.max_correlation), None)
                if partner is None:
                    chosen.append(index)
                else:
                    dropped[name] = f"correlated {correlation[index, partner]:.3f} with {kept[partner]}"
    return dict(sorted(dropped.items()))


def train_statistics(values: pd.Series) -> dict[str, Any]:
    """Train summary of one feature, rounded so the manifest's git diff shows real changes only."""
    if not pd.api.types.is_numeric_dtype(values):
        counts = values.astype("object").value_counts(dropna=False)
        return {"levels": len(counts), "top": str(counts.index[0]) if len(counts) else None}
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    present = numbers[~np.isnan(numbers)]
    stats: dict[str, Any] = {"missing_share": round(float(np.isnan(numbers).mean()), 6) if len(numbers) else 0.0}
    if len(present):
        stats |= {
            "mean": float(np.round(present.mean(), 6)),
            "std": float(np.round(present.std(), 6)),
            "min": float(np.round(present.min(), 6)),
            "max": float(np.round(present.max(), 6)),
        }
    return stats


def apply_features(rows: pd.DataFrame, transformer: ColumnTransformer, events: pd.DataFrame, spec: Any) -> pd.DataFrame:
    """Model inputs for new rows, exactly as featurize built them: the fitted transformer, then history.

    `spec` is the FeatureSpec featurize wrote; `events` the labelled past it looked back on.
    """
    built = transformer.transform(rows)
    if spec.history:
        history = spec.history
        config = HistoryFeatures(
            enabled=True,
            keys=tuple(tuple(key) for key in history["keys"]),
            windows=tuple(pd.Timedelta(window) for window in history["windows"]),
            smoothing=float(history["smoothing"]),
            max_key_levels=0,
        )
        past = history_features(
            rows, events, config.keys, config, spec.time, spec.target, history["prior"], pd.Timedelta(history["known_after"])
        )
        built = pd.concat([built, past.set_axis(built.index)], axis=1)
    return model_columns(built, spec.features, spec.categorical)


def model_columns(built: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The selected features in order: categories as they are, everything else as float64."""
    return pd.DataFrame(
        {name: built[name] if name in categorical else built[name].astype(np.float64) for name in features}, index=built.index
    )
