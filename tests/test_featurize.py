"""featurize: inputs chosen by the schema, statistics fitted on train only, stable categories, clear errors."""

from __future__ import annotations

import copy
import dataclasses

import pandas as pd
import pytest

from stages.featurize import OTHER, apply_spec, featurize, fit_spec
from stages.lib.config import FeaturizeConfig
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
def config(params) -> FeaturizeConfig:
    return dataclasses.replace(FeaturizeConfig.from_params(params), min_category_count=2)


def test_inputs_are_the_schema_typed_columns_minus_target_time_and_drops(splits, schema, config):
    spec, _ = featurize(splits, schema, config)
    assert sorted(spec.categorical) == ["carrier", "dest", "origin"]
    assert {"temp", "distance", "sched_dep_time", "day_of_week"} <= set(spec.numeric)
    assert not {"late", "time_hour", "year", "month", "day", "tailnum", "arr_delay"} & set(spec.features)
    assert (spec.target, spec.time, spec.task) == ("late", "time_hour", "classification")


def test_every_split_gets_the_same_columns_and_types(splits, schema, config):
    spec, features = featurize(splits, schema, config)
    reference_dtypes = features["train"].dtypes
    for name, frame in features.items():
        assert list(frame.columns) == [*spec.features, "late", "time_hour"], name
        pd.testing.assert_series_equal(frame.dtypes, reference_dtypes)
        for column, levels in spec.categorical.items():
            assert list(frame[column].cat.categories) == levels


def test_excluded_columns_stay_out(splits, schema, config):
    spec, _ = featurize(splits, schema, dataclasses.replace(config, exclude=("temp", "dest")))
    assert "temp" not in spec.features and "dest" not in spec.categorical


def test_excluding_an_unknown_column_is_named(splits, schema, config):
    with pytest.raises(UserError, match="'featurize.exclude' names 'seat_pitch', which is not a prepared column"):
        featurize(splits, schema, dataclasses.replace(config, exclude=("seat_pitch",)))


def test_spec_is_fitted_on_train_only(splits, schema, config):
    spec, _ = featurize(splits, schema, config)
    changed = dict(splits)
    changed["test"] = splits["test"].assign(carrier="ZZ", dest="XYZ", temp=splits["test"]["temp"] * 10)
    changed["current"] = changed["test"]
    changed_spec, changed_features = featurize(changed, schema, config)
    assert changed_spec == spec
    # A category only seen after training falls into the shared "other" level.
    assert (changed_features["test"]["carrier"] == OTHER).all()


def test_rare_categories_are_grouped(splits, schema, config):
    train = splits["train"].copy()
    train.loc[train.index[:1], "dest"] = "RARE"
    spec = fit_spec(train, schema, config)
    assert "RARE" not in spec.categorical["dest"]
    assert spec.categorical["dest"][-1] == OTHER
    assert apply_spec(train, spec, schema, config, "train")["dest"].iloc[0] == OTHER


def test_missing_category_stays_missing(splits, schema, config):
    train = splits["train"].copy()
    train.loc[train.index[:2], "carrier"] = None
    spec = fit_spec(train, schema, config)
    assert apply_spec(train, spec, schema, config, "train")["carrier"].isna().sum() == 2


def test_day_of_week_is_the_local_day(splits, schema, config):
    # 03:00 UTC on Wednesday 2013-01-02 is still Tuesday evening in New York.
    frame = splits["train"].head(2).assign(time_hour=pd.to_datetime(["2013-01-02T03:00:00Z", "2013-01-06T18:00:00Z"], utc=True))
    features = apply_spec(frame, fit_spec(splits["train"], schema, config), schema, config, "frame")
    assert features["day_of_week"].tolist() == [1.0, 6.0]


def test_schema_type_that_disagrees_with_the_data_is_named(splits, schema, config):
    wrong = copy.deepcopy(schema)
    wrong["columns"]["carrier"]["type"] = "numeric"
    with pytest.raises(UserError, match="column 'carrier' is typed numeric but holds str"):
        fit_spec(splits["train"], wrong, config)
