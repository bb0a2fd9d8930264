"""The transformers fitted featurize saves (stages/lib/features/__init__.py): frequencies, rare levels, ratios,
calendar parts and holidays, the signed log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.lib.features import OTHER, CalendarFeatures, FrequencyEncoder, RareCategories, RatioFeatures, signed_log1p

# ---------------------------------------------------------------- transformers


def test_frequency_encoder_uses_train_shares_with_missing_as_a_level_and_unseen_as_zero():
    train = pd.DataFrame({"carrier": pd.array(["UA", "UA", "AA", None], dtype="string")})
    encoder = FrequencyEncoder().fit(train)
    scored = pd.DataFrame({"carrier": ["AA", "ZZ", None, "UA"]}, index=[7, 8, 9, 10])
    encoded = encoder.transform(scored)
    assert list(encoded.columns) == list(encoder.get_feature_names_out()) == ["carrier_frequency"]
    assert encoded.index.tolist() == [7, 8, 9, 10]
    assert encoded["carrier_frequency"].tolist() == [0.25, 0.0, 0.25, 0.5]


def test_rare_categories_group_rare_and_unseen_levels_with_fixed_ordered_categories():
    train = pd.DataFrame({"dest": ["b", "a", "b", "a", "b", "c", None]})
    grouper = RareCategories(min_count=2).fit(train)
    assert grouper.levels_ == [["a", "b", OTHER]]
    grouped = grouper.transform(pd.DataFrame({"dest": ["c", "zz", "a", None, "b"]}))
    assert grouped["dest"].tolist() == [OTHER, OTHER, "a", OTHER, "b"]
    only_b = grouper.transform(pd.DataFrame({"dest": ["b"]}))
    assert list(only_b["dest"].cat.categories) == ["a", "b", OTHER]


def test_ratio_is_missing_where_the_denominator_is_zero_or_missing():
    frame = pd.DataFrame({"distance": [100.0, 50.0, 10.0, np.nan, -9.0], "air_time": [4.0, 0.0, np.nan, 5.0, 3.0]})
    ratio = RatioFeatures().fit(frame)
    assert list(ratio.get_feature_names_out()) == ["distance_per_air_time"]
    result = ratio.transform(frame)["distance_per_air_time"]
    np.testing.assert_array_equal(result.to_numpy(), [25.0, np.nan, np.nan, np.nan, -3.0])


def calendar(timezone, parts=("hour", "day_of_week", "month", "day_of_year"), cyclical=True, holidays=None):
    return CalendarFeatures(timezone, parts, cyclical, holidays)


def times(*stamps) -> pd.DataFrame:
    return pd.DataFrame({"time_hour": pd.to_datetime(list(stamps), utc=True)})


def test_calendar_parts_are_in_the_local_time_zone():
    new_year_utc = times("2013-01-01T03:00:00Z", "2013-07-01T03:00:00Z")
    local = calendar("America/New_York", cyclical=False).fit(new_year_utc).transform(new_year_utc)
    # Monday 31 December 2012, 22:00 (EST); 30 June 2013 (a Sunday), 23:00 (EDT)
    assert local.iloc[0].to_dict() == {"calendar_hour": 22, "calendar_day_of_week": 0, "calendar_month": 11, "calendar_day_of_year": 365}
    assert local.iloc[1].to_dict() == {"calendar_hour": 23, "calendar_day_of_week": 6, "calendar_month": 5, "calendar_day_of_year": 180}
    utc = calendar(None, cyclical=False).fit(new_year_utc).transform(new_year_utc)
    assert utc.iloc[0].to_dict() == {"calendar_hour": 3, "calendar_day_of_week": 1, "calendar_month": 0, "calendar_day_of_year": 0}


def test_calendar_sin_cos_put_late_evening_next_to_midnight():
    stamps = times("2013-01-01T22:00:00Z", "2013-01-01T23:00:00Z", "2013-01-02T00:00:00Z", "2013-01-02T12:00:00Z")
    encoder = calendar(None, parts=("hour",)).fit(stamps)
    encoded = encoder.transform(stamps)
    assert list(encoded.columns) == list(encoder.get_feature_names_out()) == ["calendar_hour", "calendar_hour_sin", "calendar_hour_cos"]
    np.testing.assert_allclose(encoded["calendar_hour_sin"], np.sin(2 * np.pi * np.array([22, 23, 0, 12]) / 24), atol=1e-12)
    np.testing.assert_allclose(encoded["calendar_hour_cos"], np.cos(2 * np.pi * np.array([22, 23, 0, 12]) / 24), atol=1e-12)
    points = encoded[["calendar_hour_sin", "calendar_hour_cos"]].to_numpy()
    step = np.linalg.norm(points[0] - points[1])
    assert np.linalg.norm(points[1] - points[2]) == pytest.approx(step)  # 23:00 -> 00:00 is one hour, like 22:00 -> 23:00
    assert np.linalg.norm(points[2] - points[3]) == pytest.approx(2.0)  # noon is opposite midnight


def test_calendar_holidays_in_local_time_with_capped_distance():
    stamps = times(
        "2013-07-04T16:00:00Z",  # Independence Day, noon in New York
        "2013-07-06T16:00:00Z",  # two days after
        "2013-06-15T16:00:00Z",  # 19 days from Memorial Day and from 4 July: capped at 14
        "2013-07-05T02:00:00Z",  # still 4 July, 22:00, in New York
    )
    encoder = calendar("America/New_York", parts=(), holidays="US").fit(stamps)
    encoded = encoder.transform(stamps)
    assert list(encoded.columns) == list(encoder.get_feature_names_out()) == ["calendar_holiday", "calendar_days_to_holiday"]
    assert encoded["calendar_holiday"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert encoded["calendar_days_to_holiday"].tolist() == [0.0, 2.0, 14.0, 0.0]
    in_utc = calendar(None, parts=(), holidays="US").fit(stamps).transform(stamps)
    assert in_utc["calendar_holiday"].tolist()[3] == 0.0  # 5 July in UTC


def test_signed_log1p_keeps_sign_and_order():
    values = np.array([-100.0, -1.0, -0.5, 0.0, 0.5, 1.0, 100.0])
    result = signed_log1p(values)
    assert np.all(np.diff(result) > 0)
    np.testing.assert_array_equal(np.sign(result), np.sign(values))
    np.testing.assert_allclose(np.abs(result), np.log1p(np.abs(values)))
