"""featurize: statistics fitted on train only, stable categories, clear errors."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from stages.featurize import OTHER, apply_spec, featurize, fit_spec
from stages.lib.config import FeaturizeConfig
from stages.lib.errors import UserError
from stages.prepare import prepare


@pytest.fixture
def splits(flights, weather, data_config) -> dict[str, pd.DataFrame]:
    return prepare(flights, weather, data_config).splits


@pytest.fixture
def config(params) -> FeaturizeConfig:
    return dataclasses.replace(FeaturizeConfig.from_params(params), min_category_count=2)


def test_every_split_gets_the_same_columns_and_types(splits, config):
    spec, features = featurize(splits, config)
    assert spec.features == [*config.numeric, "day_of_week", *config.categorical]
    reference_dtypes = features["train"].dtypes
    for name, frame in features.items():
        assert list(frame.columns) == [*spec.features, "late", "time_hour"], name
        pd.testing.assert_series_equal(frame.dtypes, reference_dtypes)
        for column, levels in spec.categorical.items():
            assert list(frame[column].cat.categories) == levels


def test_spec_is_fitted_on_train_only(splits, config):
    spec, _ = featurize(splits, config)
    changed = dict(splits)
    changed["test"] = splits["test"].assign(carrier="ZZ", dest="XYZ", temp=splits["test"]["temp"] * 10)
    changed["current"] = changed["test"]
    changed_spec, changed_features = featurize(changed, config)
    assert changed_spec == spec
    # A category only seen after training falls into the shared "other" level.
    assert (changed_features["test"]["carrier"] == OTHER).all()


def test_rare_categories_are_grouped(splits, config):
    train = splits["train"].copy()
    train.loc[train.index[:1], "dest"] = "RARE"
    spec = fit_spec(train, config)
    assert "RARE" not in spec.categorical["dest"]
    assert spec.categorical["dest"][-1] == OTHER
    assert apply_spec(train, spec, config, "train")["dest"].iloc[0] == OTHER


def test_missing_category_stays_missing(splits, config):
    train = splits["train"].copy()
    train.loc[train.index[:2], "carrier"] = None
    spec = fit_spec(train, config)
    features = apply_spec(train, spec, config, "train")
    assert features["carrier"].isna().sum() == 2


def test_day_of_week_is_the_local_departure_day(config):
    frame = pd.DataFrame({"year": [2013, 2013], "month": [1, 1], "day": [1, 6]})  # a Tuesday and a Sunday
    spec_frame = frame.assign(
        **{column: 1.0 for column in config.numeric},
        **{column: "A" for column in config.categorical},
        late=[0, 1],
        time_hour=pd.Timestamp("2013-01-01", tz="UTC"),
    )
    features = apply_spec(spec_frame, fit_spec(spec_frame, config), config, "frame")
    assert features["day_of_week"].tolist() == [1.0, 6.0]


def test_unknown_feature_column_is_named(splits, config):
    bad = dataclasses.replace(config, numeric=(*config.numeric, "seat_pitch"))
    with pytest.raises(UserError, match="data/prepared/train.parquet: no column 'seat_pitch'"):
        fit_spec(splits["train"], bad)


def test_text_column_listed_as_numeric_is_refused(splits, config):
    bad = dataclasses.replace(config, numeric=(*config.numeric, "carrier"), categorical=("origin",))
    with pytest.raises(UserError, match="column 'carrier' is str, not numeric; move it to featurize.categorical"):
        fit_spec(splits["train"], bad)


def test_column_in_both_lists_is_refused(params):
    params["featurize"]["categorical"] = [*params["featurize"]["categorical"], "distance"]
    with pytest.raises(UserError, match="column 'distance' is listed as both"):
        FeaturizeConfig.from_params(params)
