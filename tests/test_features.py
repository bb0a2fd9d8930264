"""The feature engine (stages/lib/features.py): leakage-safe history, target-free selection, the transformers,
and the plan/transformer as `featurize` uses them (fitted on train only)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from stages.featurize import FAMILIES, featurize
from stages.lib.config import HistoryFeatures, SelectionConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.features import (
    OTHER,
    CalendarFeatures,
    FrequencyEncoder,
    RareCategories,
    RatioFeatures,
    history_features,
    history_name,
    plan_features,
    select_features,
    signed_log1p,
)
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, project_params, replace

# ---------------------------------------------------------------- history helpers

START = pd.Timestamp("2013-03-01T00:00:00Z")


def at(hours: float) -> pd.Timestamp:
    return START + pd.Timedelta(hours=hours)


def events_frame(records) -> pd.DataFrame:
    """Labelled rows from (hours after START, origin, late) triples."""
    return pd.DataFrame(
        {
            "time": [at(hours) for hours, _, _ in records],
            "origin": [origin for _, origin, _ in records],
            "late": np.asarray([late for _, _, late in records], dtype=np.int8),
        }
    )


def rows_frame(records) -> pd.DataFrame:
    """Rows to featurize from (hours after START, origin) pairs."""
    return pd.DataFrame({"time": [at(hours) for hours, _ in records], "origin": [origin for _, origin in records]})


def history(rows, events, keys=(("origin",),), windows=("30D",), smoothing=0.0, prior=0.5, known_after="2h"):
    config = HistoryFeatures(
        enabled=True, keys=None, windows=tuple(pd.Timedelta(w) for w in windows), smoothing=smoothing, max_key_levels=100
    )
    return history_features(rows, events, keys, config, "time", "late", prior, pd.Timedelta(known_after))


def mean_of(key=("origin",), window="30D"):
    return history_name(key, pd.Timedelta(window), "late", "mean")


def rows_of(key=("origin",), window="30D"):
    return history_name(key, pd.Timedelta(window), "late", "rows")


# Events of one key, deliberately not in time order: (hour, origin, late)
ONE_KEY_EVENTS = [(5, "A", 1), (0, "A", 1), (2, "A", 1), (1, "A", 0)]
# With known_after = 2h, a row at hour t sees the events at hours <= t - 2.
QUERY_HOURS = [1, 2, 4, 6.5, 7]
EXPECTED_COUNTS = [0, 1, 3, 3, 4]
EXPECTED_SUMS = [0, 1, 2, 2, 3]


# ---------------------------------------------------------------- history: what a row may see


def test_history_counts_only_outcomes_known_by_the_row_time():
    rows = rows_frame([(hours, "A") for hours in QUERY_HOURS])
    features = history(rows, events_frame(ONE_KEY_EVENTS), smoothing=0.0)
    assert features[rows_of()].tolist() == EXPECTED_COUNTS
    expected_means = [np.nan, 1.0, 2 / 3, 2 / 3, 3 / 4]
    np.testing.assert_allclose(features[mean_of()].to_numpy(), expected_means)


def test_history_mean_is_smoothed_towards_the_prior():
    rows = rows_frame([(hours, "A") for hours in QUERY_HOURS])
    smoothing, prior = 2.0, 0.1
    features = history(rows, events_frame(ONE_KEY_EVENTS), smoothing=smoothing, prior=prior)
    expected = [(total + smoothing * prior) / (count + smoothing) for total, count in zip(EXPECTED_SUMS, EXPECTED_COUNTS, strict=True)]
    np.testing.assert_allclose(features[mean_of()].to_numpy(), expected)
    assert features[mean_of()].iloc[0] == pytest.approx(prior)  # nothing known yet: the prior itself
    assert features[rows_of()].tolist() == EXPECTED_COUNTS


def test_history_keeps_the_index_and_order_of_unsorted_rows():
    rows = rows_frame([(7, "A"), (1, "A"), (4, "A")]).set_axis([30, 10, 20])
    features = history(rows, events_frame(ONE_KEY_EVENTS))
    assert features.index.tolist() == [30, 10, 20]
    assert features[rows_of()].tolist() == [4, 0, 3]


def random_history_data(seed=0):
    rng = np.random.default_rng(seed)
    count = 300
    events = pd.DataFrame(
        {
            # whole hours over ten days, so several events share a time
            "time": START + pd.to_timedelta(rng.integers(0, 240, count), unit="h"),
            "origin": rng.choice(["A", "B", "C"], count),
            "late": rng.integers(0, 2, count).astype(np.int8),
        }
    )
    hours = np.arange(0, 264, 1.5)
    rows = pd.DataFrame({"time": START + pd.to_timedelta(hours, unit="h"), "origin": np.resize(["A", "B", "C", "D"], len(hours))})
    return rows, events


def test_history_never_changes_when_outcomes_known_later_change():
    rows, events = random_history_data()
    known_after = pd.Timedelta("13h")
    cutoff = at(120)
    flipped = events.copy()
    later = flipped["time"] >= cutoff
    flipped.loc[later, "late"] = 1 - flipped.loc[later, "late"]
    arguments = {"keys": (("origin",), ()), "windows": ("1D", "3D"), "smoothing": 5.0, "prior": 0.4, "known_after": "13h"}
    before, after = history(rows, events, **arguments), history(rows, flipped, **arguments)

    unaffected = (rows["time"] < cutoff + known_after).to_numpy()
    pd.testing.assert_frame_equal(before[unaffected], after[unaffected])
    # The check has teeth: rows once the flipped outcomes are known do see them.
    assert not before[~unaffected].equals(after[~unaffected])


def test_history_matches_a_direct_count_over_random_events():
    rows, events = random_history_data(seed=3)
    lag, window, smoothing, prior = pd.Timedelta("13h"), pd.Timedelta("2D"), 4.0, 0.3
    features = history(rows, events, windows=("2D",), smoothing=smoothing, prior=prior, known_after="13h")
    for index, row in rows.iterrows():
        seen = events[
            (events["origin"] == row["origin"]) & (events["time"] <= row["time"] - lag) & (events["time"] > row["time"] - lag - window)
        ]
        assert features.at[index, rows_of(window="2D")] == len(seen)
        expected = (seen["late"].sum() + smoothing * prior) / (len(seen) + smoothing)
        assert features.at[index, mean_of(window="2D")] == pytest.approx(expected)


def test_a_row_never_sees_its_own_outcome_nor_simultaneous_ones():
    labelled = events_frame([(0, "A", 1), (0, "A", 1), (10, "A", 0)])
    features = history(labelled, labelled)  # the rows are the events themselves
    assert features[rows_of()].tolist() == [0, 0, 2]
    assert features[mean_of()].iloc[2] == 1.0


# ---------------------------------------------------------------- history: keys


def test_history_keys_do_not_mix():
    events = events_frame([(0, "A", 1), (1, "A", 1), (0, "B", 0), (1, "B", 0), (2, "B", 0)])
    features = history(rows_frame([(10, "A"), (10, "B")]), events)
    assert features[rows_of()].tolist() == [2, 3]
    assert features[mean_of()].tolist() == [1.0, 0.0]


def test_an_unseen_key_gets_no_rows_and_the_prior():
    events = events_frame([(0, "A", 1), (1, "A", 1)])
    rows = rows_frame([(10, "NEW")])
    smoothed = history(rows, events, smoothing=3.0, prior=0.25)
    assert smoothed[rows_of()].tolist() == [0]
    assert smoothed[mean_of()].tolist() == [0.25]
    unsmoothed = history(rows, events, smoothing=0.0)
    assert unsmoothed[rows_of()].tolist() == [0]
    assert np.isnan(unsmoothed[mean_of()].iloc[0])


def test_multi_column_keys_match_on_every_column():
    events = events_frame([(0, "A", 1), (1, "A", 0), (2, "B", 0), (3, "A", 1)]).assign(dest=["X", "Y", "X", "X"])
    rows = rows_frame([(10, "A"), (10, "B"), (10, "B")]).assign(dest=["X", "X", "Y"])
    key = ("origin", "dest")
    features = history(rows, events, keys=(key,))
    assert mean_of(key) == "history_origin_dest_30d_late_mean"
    assert features[rows_of(key)].tolist() == [2, 1, 0]  # (B, Y): both parts seen, never together
    assert features[mean_of(key)].iloc[:2].tolist() == [1.0, 0.0]


def test_the_empty_key_aggregates_all_rows():
    events = events_frame([(0, "A", 1), (1, "B", 0), (2, "C", 0), (3, "A", 1), (9, "B", 1)])
    features = history(rows_frame([(10, "Z"), (10, "A")]), events, keys=((),))
    assert mean_of(()) == "history_all_30d_late_mean"
    assert features[rows_of(())].tolist() == [4, 4]  # the event at hour 9 is not known before hour 11
    assert features[mean_of(())].tolist() == [0.5, 0.5]


# ---------------------------------------------------------------- history: windows and lag


def test_window_ends_known_after_before_the_row_and_excludes_older_events():
    row_time = 100.0
    edge = row_time - 2 - 24  # exactly window + known_after before the row
    events = events_frame(
        [
            (edge - 1, "A", 1),  # too old for 1D
            (edge, "A", 1),  # on the window's open edge: excluded from 1D
            (edge + 1 / 3600, "A", 0),  # one second inside
            (row_time - 2, "A", 0),  # known exactly at the row's time
            (row_time - 1, "A", 1),  # not known yet
        ]
    )
    features = history(rows_frame([(row_time, "A")]), events, windows=("1D", "3D"), known_after="2h")
    assert features[rows_of(window="1D")].tolist() == [2]
    assert features[mean_of(window="1D")].tolist() == [0.0]
    assert features[rows_of(window="3D")].tolist() == [4]
    assert features[mean_of(window="3D")].tolist() == [0.5]


@pytest.mark.parametrize("known_after", ["0h", "-1h"])
def test_known_after_must_be_positive(known_after):
    events = events_frame(ONE_KEY_EVENTS)
    with pytest.raises(ValueError, match="known_after"):
        history(rows_frame([(10, "A")]), events, known_after=known_after)


def test_every_window_gets_its_own_columns_even_below_an_hour():
    events = events_frame([(0, "A", 1), (9.5, "A", 0)])
    features = history(rows_frame([(10, "A")]), events, windows=("30min", "45min"), known_after="1min")
    assert features.shape[1] == 4  # mean and rows for each of the two windows
    names = [history_name(("origin",), pd.Timedelta(span), "late", "rows") for span in ("30min", "45min", "90min", "1h", "7D")]
    assert names == [f"history_origin_{label}_late_rows" for label in ("30min", "45min", "90min", "1h", "7d")]


# ---------------------------------------------------------------- target-free selection

SELECTION = SelectionConfig(near_constant=0.95, duplicates=True, max_correlation=0.98)


@pytest.fixture
def candidates() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    count = 60
    base = rng.normal(size=count)
    return pd.DataFrame(
        {
            "independent": rng.normal(size=count),
            "copy_of_a": base.copy(),
            "close_to_a": 3 * base + 1 + rng.normal(scale=0.3, size=count),
            "a": base,
            "mostly_zero": np.r_[np.zeros(count - 1), 1.0],
            "label": ["x"] * count,  # not numeric: not the filters' business
        }
    )


def test_selection_drops_near_constant_duplicate_and_correlated_features_with_reasons(candidates):
    dropped = select_features(candidates, SELECTION)
    assert sorted(dropped) == ["close_to_a", "copy_of_a", "mostly_zero"]
    assert dropped["mostly_zero"] == "near-constant: 0 in 98.33% of train rows"
    assert dropped["copy_of_a"] == "duplicate of a"
    correlation = np.corrcoef(candidates["a"], candidates["close_to_a"])[0, 1]
    assert 0.98 < correlation < 0.9995
    assert dropped["close_to_a"] == f"correlated {correlation:.3f} with a"


def test_selection_filters_can_be_switched_off(candidates):
    assert select_features(candidates, SelectionConfig(near_constant=None, duplicates=False, max_correlation=None)) == {}
    only_duplicates = select_features(candidates, SelectionConfig(near_constant=None, duplicates=True, max_correlation=None))
    assert only_duplicates == {"copy_of_a": "duplicate of a"}


def test_selection_ignores_the_column_order(candidates):
    expected = select_features(candidates, SELECTION)
    rng = np.random.default_rng(1)
    for _ in range(5):
        shuffled = candidates[list(rng.permutation(candidates.columns))]
        assert select_features(shuffled, SELECTION) == expected


def test_in_a_duplicate_pair_the_name_first_in_sorted_order_is_kept():
    values = [1.0, np.nan, 3.0, 4.0]  # missing values in the same places still make a duplicate
    frame = pd.DataFrame({"zeta": values, "other": [4.0, 1.0, 2.0, 2.0], "alpha": values})
    config = SelectionConfig(near_constant=None, duplicates=True, max_correlation=None)
    assert select_features(frame, config) == {"zeta": "duplicate of alpha"}
    assert select_features(frame[["alpha", "other", "zeta"]], config) == {"zeta": "duplicate of alpha"}


def test_in_a_correlated_pair_the_name_first_in_sorted_order_is_kept():
    frame = pd.DataFrame({"zeta": [1.0, 2.0, 3.0, 4.1], "alpha": [2.0, 4.0, 6.0, 8.0]})
    config = SelectionConfig(near_constant=None, duplicates=True, max_correlation=0.98)
    assert list(select_features(frame, config)) == ["zeta"]
    assert select_features(frame, config)["zeta"].endswith("with alpha")


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


# ---------------------------------------------------------------- plan + transformer through featurize


@pytest.fixture(scope="module")
def prepared_flights():
    params = project_params()
    contract = parse_params(params).data
    flights = make_flights()
    prepared = prepare(flights, [make_weather(flights)], contract)
    base = parse_params(params).features
    # Tiny data: min_count 2 keeps levels; origin (3 levels) is one-hot, carrier and dest (4) are grouped.
    config = replace(
        base,
        categorical=replace(base.categorical, min_count=2, max_onehot=3),
        numeric=replace(base.numeric, ratios=(("distance", "temp"),)),
    )
    return prepared.splits, prepared.schema, config, contract.splits


@pytest.fixture(scope="module")
def featurized(prepared_flights):
    splits, schema, config, windows = prepared_flights
    return featurize(splits, schema, config, windows)


def learned_state(transformer) -> dict:
    named = transformer.named_transformers_
    return {
        "impute": dict(zip(named["numeric"].feature_names_in_, named["numeric"].named_steps["impute"].statistics_.tolist(), strict=True)),
        "frequency": dict(zip(named["frequency"].feature_names_in_, named["frequency"].shares_, strict=True)),
        "categories": named["categories"].levels_,
        "onehot": [levels.tolist() for levels in named["onehot_origin"].named_steps["encode"].categories_],
    }


def perturbed(frame: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """Numbers times ten, new category levels, flipped targets."""
    changed = frame.copy()
    for column, entry in schema["columns"].items():
        if column not in changed.columns or "role" in entry:
            continue
        if entry["type"] == "numeric":
            changed[column] = changed[column] * 10
        elif entry["type"] == "categorical":
            changed[column] = "ZZ" + changed[column].astype(str)
    changed[schema["target"]] = (1 - changed[schema["target"]]).astype(changed[schema["target"]].dtype)
    return changed


def test_the_transformer_learns_from_train_only(prepared_flights, featurized):
    splits, schema, config, windows = prepared_flights
    train = splits["train"]
    state = learned_state(featurized.transformer)
    assert set(state["impute"]) >= {"distance", "temp", "wind_gust"}
    assert state["impute"] == pytest.approx({name: float(train[name].median()) for name in state["impute"]})
    assert state["frequency"]["carrier"] == pytest.approx(train["carrier"].value_counts(normalize=True).to_dict())

    others = {name: perturbed(frame, schema) if name != "train" else frame for name, frame in splits.items()}
    again = featurize(others, schema, config, windows)
    assert learned_state(again.transformer) == state
    pd.testing.assert_frame_equal(again.frames["train"], featurized.frames["train"])
    # The perturbation reached the other splits: unseen carriers are grouped, numbers changed.
    assert set(again.frames["test"]["carrier"]) == {OTHER}
    assert list(again.frames["test"]["carrier"].cat.categories) == list(featurized.frames["train"]["carrier"].cat.categories)
    assert not again.frames["test"]["distance"].equals(featurized.frames["test"]["distance"])


def test_a_plan_wider_than_max_features_is_a_user_error(prepared_flights):
    splits, schema, config, windows = prepared_flights
    with pytest.raises(UserError, match=r"features\.max_features"):
        featurize(splits, schema, replace(config, max_features=5), windows)


def test_seasonal_calendar_parts_need_a_year_of_train(prepared_flights, featurized):
    not_built = featurized.manifest["not_built"]
    for part in ("calendar_month", "calendar_day_of_year"):
        assert "less than a year" in not_built[part]
        assert part not in featurized.frames["train"] and part not in featurized.manifest["columns"]
    assert "calendar_hour" in featurized.manifest["columns"]

    _, schema, config, _ = prepared_flights
    two_years = pd.DataFrame({"time_hour": pd.to_datetime(["2012-01-01", "2013-12-31"], utc=True), "late": [0, 1]})
    plan = plan_features(two_years, schema, config)
    assert plan.calendar_parts == ["hour", "day_of_week", "month", "day_of_year"]
    assert not any(name.startswith("calendar_") for name in plan.skipped)


def test_history_is_skipped_with_a_reason_without_known_after(prepared_flights, featurized):
    splits, schema, config, windows = prepared_flights
    assert any(name.startswith("history_") for name in featurized.manifest["columns"])
    undeclared = {key: value for key, value in copy.deepcopy(schema).items() if key != "known_after"}
    result = featurize(splits, undeclared, config, windows)
    assert "known_after" in result.manifest["not_built"]["history"]
    assert not any(name.startswith("history_") for name in result.manifest["columns"])
    assert not any(name.startswith("history_") for name in result.frames["train"])


def test_the_manifest_lists_every_feature_with_family_sources_and_selection(featurized):
    columns = featurized.manifest["columns"]
    selected = [name for name, entry in columns.items() if entry["selected"]]
    assert sorted(selected) == sorted(featurized.spec.features)
    assert list(featurized.frames["train"].columns) == [*featurized.spec.features, "late", "time_hour"]
    for name, entry in columns.items():
        assert entry["family"] in FAMILIES, name
        assert isinstance(entry["sources"], list), name
        assert ("reason" in entry) == (not entry["selected"]), name
    assert any(not entry["selected"] for entry in columns.values())
    expected = {
        "history_origin_1d_late_mean": ("history", ["origin"]),
        "history_all_7d_late_rows": ("history", []),
        "calendar_hour_sin": ("datetime", ["time_hour"]),
        "carrier_frequency": ("categorical", ["carrier"]),
        "carrier": ("categorical", ["carrier"]),
        "missingindicator_wind_gust": ("numeric", ["wind_gust"]),
        "distance_per_temp": ("numeric", ["distance", "temp"]),
        "temp": ("numeric", ["temp"]),
    }
    assert {name: (columns[name]["family"], columns[name]["sources"]) for name in expected} == expected
    dropped = {name: entry["reason"] for name, entry in columns.items() if not entry["selected"]}
    assert all(reason.split(":")[0].split(" ")[0] in ("near-constant", "duplicate", "correlated") for reason in dropped.values())
    assert sum(featurized.manifest["features"]["dropped_by_filter"].values()) == len(dropped)


def test_featurize_ignores_the_column_order_of_the_splits(prepared_flights, featurized):
    splits, schema, config, windows = prepared_flights
    reversed_columns = {name: frame[list(reversed(frame.columns))] for name, frame in splits.items()}
    again = featurize(reversed_columns, schema, config, windows)
    assert again.manifest["columns"] == featurized.manifest["columns"]
    for name, frame in featurized.frames.items():
        pd.testing.assert_frame_equal(again.frames[name], frame)
