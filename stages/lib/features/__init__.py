"""The feature engine: typed, leakage-safe features planned from the schema and `conf/features/`.

One job per module, each fitted on the train split only:
- `plan`: which input goes to which family (from the schema, the config and train counts);
- `build`: the scikit-learn `ColumnTransformer` for the datetime, numeric and categorical families,
  and what each of its outputs is made from;
- `history`: the target's recent past per key, from outcomes known strictly before each row;
- `selection`: target-free filters in sorted column order;
- `manifest`: the train summary of each feature the manifest records;
- `serving`: the model's inputs for new rows, exactly as featurize built them.
Target encoding is not here: it needs the target, so train fits it out of fold.

This module holds the transformers themselves. A fitted transformer file (skops) names each class
and function by its module path (`stages.lib.features.CalendarFeatures`, the allow-list in
`stages.lib.models` too), so they are defined here, at the path every saved file uses;
tests/test_model_compat.py loads files saved before the split into modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from stages.lib.profile import category_strings

MISSING = "__missing__"
OTHER = "__other__"
# sin/cos periods of the calendar parts (values are 0-based before encoding)
PERIODS = {"hour": 24.0, "day_of_week": 7.0, "month": 12.0, "day_of_year": 365.25}
HOLIDAY_DISTANCE_CAP = 14


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """log1p that keeps the sign, so negative inputs stay ordered.

    Args:
        values: numbers of any sign.

    Returns:
        sign(values) * log1p(|values|), element by element.
    """
    signed: np.ndarray = np.sign(values) * np.log1p(np.abs(values))
    return signed


def category_text(frame: pd.DataFrame) -> np.ndarray:
    """Categories as plain strings, missing values as their own level.

    Args:
        frame: the columns to read as categories (strings, categoricals, or numbers and flags used as categories).

    Returns:
        An object array, one column per frame column, with `MISSING` where a value is missing.
    """
    columns = []
    for name in frame.columns:
        series = frame[name]
        if not (pd.api.types.is_string_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype)):
            series = category_strings(series)  # numbers or flags used as categories: their text
        columns.append(series.to_numpy(dtype=object, na_value=MISSING))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0), dtype=object)


def _level_counts(frame: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each column's distinct levels (as text, sorted) and how many rows hold each."""
    text = category_text(frame)
    return [np.unique(text[:, index], return_counts=True) for index in range(text.shape[1])]


class TextCategories(TransformerMixin, BaseEstimator):
    """Cast categorical columns to strings, with missing values as a level of their own."""

    def fit(self, frame: pd.DataFrame, target: Any = None) -> TextCategories:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return category_text(frame)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Each level's share of the train rows; levels unseen in train get 0."""

    def fit(self, frame: pd.DataFrame, target: Any = None) -> FrequencyEncoder:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.shares_ = [dict(zip(levels.tolist(), (counts / len(frame)).tolist(), strict=True)) for levels, counts in _level_counts(frame)]
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        text = category_text(frame)
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
        text = category_text(frame)
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
    """Calendar parts of a timestamp column in a local time zone, their sin/cos, and public holidays.

    The holiday calendar (the contract's data.time.holidays: a country and an optional subdivision) is a
    parameter, so the fitted file scoring loads flags the same days featurize did.
    """

    # Files saved before subdivisions existed hold no such attribute: they read this class default (nationwide).
    holidays_subdivision: str | None = None

    def __init__(
        self,
        timezone: str | None = None,
        parts: Sequence[str] = (),
        cyclical: bool = True,
        holidays_country: str | None = None,
        holidays_subdivision: str | None = None,
    ) -> None:
        self.timezone = timezone
        self.parts = parts
        self.cyclical = cyclical
        self.holidays_country = holidays_country
        self.holidays_subdivision = holidays_subdivision

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
            columns |= self._holidays(local, self.holidays_country)
        return pd.DataFrame(columns, index=frame.index)

    def _holidays(self, local: pd.Series, country: str) -> dict[str, np.ndarray]:
        import holidays  # imported here: only calendars with a country need it

        days = local.dt.tz_localize(None).dt.normalize() if local.dt.tz is not None else local.dt.normalize()
        ordinal = (days.to_numpy(dtype="datetime64[D]")).astype(np.int64)
        years = range(int(days.dt.year.min()) - 1, int(days.dt.year.max()) + 2)
        calendar = holidays.country_holidays(country, subdiv=self.holidays_subdivision, years=years)
        holiday_days = np.unique(np.array(sorted(calendar), dtype="datetime64[D]").astype(np.int64))
        position = np.clip(np.searchsorted(holiday_days, ordinal), 1, len(holiday_days) - 1)
        distance = np.minimum(np.abs(ordinal - holiday_days[position - 1]), np.abs(holiday_days[position] - ordinal))
        return {
            "calendar_holiday": (distance == 0).astype(np.float64),
            "calendar_days_to_holiday": np.minimum(distance, HOLIDAY_DISTANCE_CAP).astype(np.float64),
        }
