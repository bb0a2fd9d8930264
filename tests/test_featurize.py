"""featurize: model-ready tables from the schema and conf/features/, fitted on train only, with a manifest."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

from stages.featurize import featurize, history_events
from stages.lib.config import FeaturesConfig
from stages.lib.errors import UserError
from stages.prepare import prepare


@pytest.fixture
def prepared(flights, weather, contract):
    return prepare(flights, [weather], contract)


@pytest.fixture
def splits(prepared) -> dict[str, pd.DataFrame]:
    return prepared.splits


@pytest.fixture
def schema(prepared) -> dict:
    return prepared.schema


@pytest.fixture
def windows(contract):
    return contract.splits


@pytest.fixture
def config(params) -> FeaturesConfig:
    base = FeaturesConfig.from_params(params)
    return dataclasses.replace(base, categorical=dataclasses.replace(base.categorical, min_count=2, max_onehot=3))


def test_inputs_are_the_schema_typed_columns_minus_target_time_and_drops(splits, schema, config, windows):
    spec = featurize(splits, schema, config, windows).spec
    flight = ["carrier", "dest", "origin", "distance", "hour", "minute", "sched_dep_time", "sched_arr_time"]
    weather = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    assert sorted(spec.inputs) == sorted([*flight, *weather])
    used = {source for sources in spec.sources.values() for source in sources}
    assert not {"late", "year", "month", "day", "tailnum", "arr_delay", "dep_delay"} & used
    assert (spec.target, spec.time, spec.task) == ("late", "time_hour", "classification")


def test_every_family_is_built_and_named(splits, schema, config, windows):
    result = featurize(splits, schema, config, windows)
    features = set(result.spec.features)
    assert {"origin_EWR", "origin_JFK", "origin_LGA"} <= features  # one-hot: 3 levels <= max_onehot
    assert {"carrier", "dest", "carrier_frequency"} <= features  # wider: left for target encoding in train
    assert result.spec.categorical == ["carrier", "dest"] and result.spec.target_encoded
    assert {"calendar_hour_sin", "calendar_day_of_week", "calendar_holiday"} <= features
    assert "missingindicator_wind_gust" in features  # wind_gust is 70% missing
    assert {"history_carrier_1d_late_mean", "history_all_7d_late_rows"} <= features
    assert result.counts["by_family"] == {
        family: sum(entry["family"] == family and entry["selected"] for entry in result.manifest["columns"].values())
        for family in ("datetime", "numeric", "categorical", "history")
    }


def test_every_split_gets_the_same_columns_and_types(splits, schema, config, windows):
    result = featurize(splits, schema, config, windows)
    train_dtypes = result.frames["train"].dtypes
    for name, frame in result.frames.items():
        assert list(frame.columns) == [*result.spec.features, "late", "time_hour"], name
        pd.testing.assert_series_equal(frame.dtypes, train_dtypes)
        assert len(frame) == len(splits[name])


def test_imputed_numeric_features_have_no_missing_values(splits, schema, config, windows):
    result = featurize(splits, schema, config, windows)
    numeric = result.frames["test"][result.spec.numeric]
    assert not numeric.isna().any().any()


def test_excluded_columns_stay_out(splits, schema, config, windows):
    spec = featurize(splits, schema, dataclasses.replace(config, exclude=("temp", "dest")), windows).spec
    assert not {"temp", "dest"} & set(spec.inputs)
    assert not any(source in ("temp", "dest") for sources in spec.sources.values() for source in sources)


def test_excluding_an_unknown_column_is_named(splits, schema, config, windows):
    with pytest.raises(UserError, match="'features.exclude' names 'seat_pitch', which is not a prepared column"):
        featurize(splits, schema, dataclasses.replace(config, exclude=("seat_pitch",)), windows)


def test_perturbing_test_and_current_does_not_change_what_is_fitted(splits, schema, config, windows):
    before = featurize(splits, schema, config, windows)
    changed = dict(splits)
    changed["test"] = splits["test"].assign(carrier="ZZ", dest="XYZ", temp=splits["test"]["temp"] * 10)
    changed["current"] = changed["test"]
    after = featurize(changed, schema, config, windows)
    assert after.spec == before.spec
    assert after.manifest == before.manifest  # train statistics, selection and reasons
    pd.testing.assert_frame_equal(after.frames["train"], before.frames["train"])
    # A category only seen after training is encoded like any rare one.
    assert (after.frames["test"]["carrier"] == "__other__").all()
    assert (after.frames["test"]["carrier_frequency"] == 0.0).all()


def test_column_order_of_the_input_does_not_change_the_features(splits, schema, config, windows):
    before = featurize(splits, schema, config, windows)
    reordered = {name: frame[frame.columns[::-1]] for name, frame in splits.items()}
    after = featurize(reordered, schema, config, windows)
    assert after.spec == before.spec
    pd.testing.assert_frame_equal(after.frames["test"], before.frames["test"])


def test_history_events_hold_each_row_once_although_windows_overlap(splits, windows):
    events = history_events(splits, windows, ["time_hour", "late"], "time_hour")
    everything = pd.concat([splits["train"], splits["test"]])  # reference lies inside train, current equals test
    assert len(events) == len(everything)
    assert events["time_hour"].is_monotonic_increasing
    assert events["late"].sum() == everything["late"].sum()


def test_too_many_features_fail_before_anything_is_built(splits, schema, config, windows):
    with pytest.raises(UserError, match=r"the feature plan has \d+ features .* more than features.max_features = 5"):
        featurize(splits, schema, dataclasses.replace(config, max_features=5), windows)


def test_without_known_after_there_are_no_history_features(splits, schema, config, windows):
    without = {**schema, "known_after": None}
    result = featurize(splits, without, config, windows)
    assert result.counts["by_family"]["history"] == 0
    assert "known_after" in result.manifest["not_built"]["history"]


def test_manifest_records_family_sources_statistics_and_reasons(splits, schema, config, windows):
    manifest = featurize(splits, schema, config, windows).manifest
    temp = manifest["columns"]["temp"]
    assert temp["family"] == "numeric" and temp["sources"] == ["temp"] and temp["selected"] is True
    assert temp["train"]["mean"] == pytest.approx(splits["train"]["temp"].mean(), rel=1e-6)
    dropped = {name: entry["reason"] for name, entry in manifest["columns"].items() if not entry["selected"]}
    assert dropped["hour"].endswith("calendar_hour")  # the departure hour is (nearly) the local hour of time_hour
    assert set(manifest["libraries"]) == {"scikit-learn", "pandas", "numpy", "holidays"}
    assert list(manifest["columns"]) == sorted(manifest["columns"])  # stable order for git diffs


def test_seasonal_calendar_parts_need_a_year_of_train(splits, schema, config, windows):
    manifest = featurize(splits, schema, config, windows).manifest
    assert "calendar_month" not in manifest["columns"]  # train covers January to August
    assert "less than a year" in manifest["not_built"]["calendar_month"]


def test_schema_type_that_disagrees_with_the_data_is_named(splits, schema, config, windows):
    wrong = copy.deepcopy(schema)
    wrong["columns"]["carrier"]["type"] = "numeric"
    with pytest.raises(UserError, match="column 'carrier' is typed numeric but holds str"):
        featurize(splits, wrong, config, windows)


def test_log_and_ratio_transforms(splits, schema, config, windows):
    numeric = dataclasses.replace(config.numeric, transform="log", ratios=(("distance", "wind_speed"),))
    result = featurize(splits, schema, dataclasses.replace(config, numeric=numeric), windows)
    test = result.frames["test"]
    assert np.allclose(test["distance"], np.log1p(splits["test"]["distance"]))
    raw = splits["test"]["distance"] / splits["test"]["wind_speed"].where(splits["test"]["wind_speed"] != 0)
    assert result.manifest["columns"]["distance_per_wind_speed"]["sources"] == ["distance", "wind_speed"]
    assert np.allclose(test["distance_per_wind_speed"], raw, equal_nan=True)  # NaN where there is no wind
