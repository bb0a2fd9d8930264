"""featurize: model-ready tables from the schema and conf/features/, fitted on train only, with a manifest
(the feature plan and the transformer as featurize uses them; the transformers, history and selection have modules of their own)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from stages.featurize import FAMILIES, featurize, history_events
from stages.lib.config import FeaturesConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.features import OTHER
from stages.lib.features.plan import plan_features
from stages.lib.models import model_writer
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, project_params, replace


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
    base = parse_params(params).features
    return replace(base, categorical=replace(base.categorical, min_count=2, max_onehot=3))


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
    spec = featurize(splits, schema, replace(config, exclude=("temp", "dest")), windows).spec
    assert not {"temp", "dest"} & set(spec.inputs)
    assert not any(source in ("temp", "dest") for sources in spec.sources.values() for source in sources)


def test_excluding_an_unknown_column_is_named(splits, schema, config, windows):
    with pytest.raises(UserError, match="'features.exclude' names 'seat_pitch', which is not a prepared column"):
        featurize(splits, schema, replace(config, exclude=("seat_pitch",)), windows)


def test_history_events_hold_each_row_once_although_windows_overlap(splits, windows):
    events = history_events(splits, windows, ["time_hour", "late"], "time_hour")
    everything = pd.concat([splits["train"], splits["test"]])  # reference lies inside train, current equals test
    assert len(events) == len(everything)
    assert events["time_hour"].is_monotonic_increasing
    assert events["late"].sum() == everything["late"].sum()


def test_too_many_features_fail_before_anything_is_built(splits, schema, config, windows):
    with pytest.raises(UserError, match=r"the feature plan has \d+ features .* more than features.max_features = 5"):
        featurize(splits, schema, replace(config, max_features=5), windows)


def test_manifest_records_family_sources_statistics_and_reasons(splits, schema, config, windows):
    manifest = featurize(splits, schema, config, windows).manifest
    temp = manifest["columns"]["temp"]
    assert temp["family"] == "numeric" and temp["sources"] == ["temp"] and temp["selected"] is True
    assert temp["train"]["mean"] == pytest.approx(splits["train"]["temp"].mean(), rel=1e-6)
    dropped = {name: entry["reason"] for name, entry in manifest["columns"].items() if not entry["selected"]}
    assert dropped["hour"].endswith("calendar_hour")  # the departure hour is (nearly) the local hour of time_hour
    assert set(manifest["libraries"]) == {"scikit-learn", "pandas", "numpy", "holidays"}
    assert list(manifest["columns"]) == sorted(manifest["columns"])  # stable order for git diffs


def test_schema_type_that_disagrees_with_the_data_is_named(splits, schema, config, windows):
    wrong = copy.deepcopy(schema)
    wrong["columns"]["carrier"]["type"] = "numeric"
    with pytest.raises(UserError, match="column 'carrier' is typed numeric but holds str"):
        featurize(splits, wrong, config, windows)


def test_log_and_ratio_transforms(splits, schema, config, windows):
    numeric = replace(config.numeric, transform="log", ratios=(("distance", "wind_speed"),))
    result = featurize(splits, schema, replace(config, numeric=numeric), windows)
    test = result.frames["test"]
    assert np.allclose(test["distance"], np.log1p(splits["test"]["distance"]))
    raw = splits["test"]["distance"] / splits["test"]["wind_speed"].where(splits["test"]["wind_speed"] != 0)
    assert result.manifest["columns"]["distance_per_wind_speed"]["sources"] == ["distance", "wind_speed"]
    assert np.allclose(test["distance_per_wind_speed"], raw, equal_nan=True)  # NaN where there is no wind


# ---------------------------------------------------------------- options of conf/features/ set as a user sets them


def features_config(params: dict, **sections: dict) -> FeaturesConfig:
    """The features section with some keys changed in params (as conf/ or `-S` would), read by the real parser."""
    changed = copy.deepcopy(params)
    block = changed["features"]
    block["categorical"] |= {"min_count": 2, "max_onehot": 3}  # tiny data: keep the levels
    for section, values in sections.items():
        block[section] |= values
    return parse_params(changed).features


def test_quantile_transform_maps_train_ranks_to_normal_scores_fitted_on_train_only(splits, schema, params, windows):
    from scipy.stats import norm

    config = features_config(params, numeric={"transform": "quantile"})
    result = featurize(splits, schema, config, windows)
    train_dewp = splits["train"]["dewp"].to_numpy()
    assert not np.isnan(train_dewp).any() and len(np.unique(train_dewp)) == len(train_dewp)  # no ties: ranks are exact
    # Expected by hand: the k-th smallest of n train values sits at quantile k/(n-1); other values are
    # interpolated between train values, and quantiles are kept inside [1e-7, 1 - 1e-7] before the normal's inverse.
    reference = np.sort(train_dewp)
    levels = np.linspace(0, 1, len(reference))

    def expected(values: np.ndarray) -> np.ndarray:
        return norm.ppf(np.clip(np.interp(values, reference, levels), 1e-7, 1 - 1e-7))

    np.testing.assert_allclose(result.frames["train"]["dewp"], expected(train_dewp), atol=1e-9)
    test_dewp = splits["test"]["dewp"].to_numpy()
    np.testing.assert_allclose(result.frames["test"]["dewp"], expected(test_dewp), atol=1e-9)
    # Test values outside train's range land on the ends: the map is train's, not refitted on test.
    outside = (test_dewp < reference[0]) | (test_dewp > reference[-1])
    shifted = featurize({**splits, "test": splits["test"].assign(dewp=splits["test"]["dewp"] + 1000)}, schema, config, windows)
    assert np.allclose(shifted.frames["test"]["dewp"], norm.ppf(1 - 1e-7))
    pd.testing.assert_frame_equal(shifted.frames["train"], result.frames["train"])
    assert outside.sum() < len(test_dewp)  # most test values are inside train's range: the comparison above has teeth
    assert result.manifest["columns"]["dewp"]["transform"] == "SimpleImputer -> QuantileTransformer"


HISTORY_KEYS = [["carrier"], ["origin", "dest"], []]


def test_explicit_history_keys_build_exactly_those_keys(splits, schema, params, windows):
    config = features_config(params, history={"keys": HISTORY_KEYS, "windows": ["30D"]})
    result = featurize(splits, schema, config, windows)
    built = sorted(name for name in result.manifest["columns"] if name.startswith("history_"))
    assert built == sorted(f"history_{key}_30d_late_{what}" for key in ("carrier", "origin_dest", "all") for what in ("mean", "rows"))
    assert result.spec.history["keys"] == HISTORY_KEYS
    # The (origin, dest) counts, recounted directly from the labelled rows: known data.target.known_after after their time, within 30 days.
    labelled = pd.concat([splits["train"], splits["test"]])  # reference lies inside train, current equals test
    lag, window = pd.Timedelta(params["data"]["target"]["known_after"]), pd.Timedelta("30D")
    test = splits["test"]
    counts = [
        int(
            (
                (labelled["origin"] == row.origin)
                & (labelled["dest"] == row.dest)
                & (labelled["time_hour"] <= row.time_hour - lag)
                & (labelled["time_hour"] > row.time_hour - lag - window)
            ).sum()
        )
        for row in test.itertuples()
    ]
    assert result.frames["test"]["history_origin_dest_30d_late_rows"].tolist() == counts
    assert sum(counts) > 0


@pytest.mark.parametrize("unknown", ["gate", "tailnum"])  # never in the data; in the source but dropped as an identifier
def test_a_history_key_naming_no_prepared_column_is_one_clear_error(splits, schema, params, windows, unknown):
    config = features_config(params, history={"keys": [["carrier"], ["origin", unknown]]})
    with pytest.raises(UserError) as raised:
        featurize(splits, schema, config, windows)
    message = str(raised.value)
    assert message.startswith(f"params.yaml: 'features.history.keys' names '{unknown}', which is not a prepared column; columns are: ")
    assert "\n" not in message and "carrier" in message.split("columns are: ")[1]


def test_max_key_levels_skips_wider_automatic_keys_with_a_reason(splits, schema, params, windows):
    train = splits["train"]
    levels = {column: int(train[column].nunique(dropna=False)) for column in ("carrier", "dest", "origin")}
    assert levels == {"carrier": 4, "dest": 4, "origin": 3}
    config = features_config(params, history={"keys": "auto", "max_key_levels": 3, "windows": ["1D"]})
    result = featurize(splits, schema, config, windows)
    assert result.spec.history["keys"] == [["origin"], []]  # at the cap is kept; all rows is never skipped
    assert result.manifest["not_built"]["history by carrier"] == "4 levels, more than features.history.max_key_levels"
    assert result.manifest["not_built"]["history by dest"] == "4 levels, more than features.history.max_key_levels"
    assert not any(name.startswith(("history_carrier", "history_dest")) for name in result.manifest["columns"])
    # One level more and they are built again.
    wider = featurize(splits, schema, features_config(params, history={"keys": "auto", "max_key_levels": 4, "windows": ["1D"]}), windows)
    assert wider.spec.history["keys"] == [["carrier"], ["dest"], ["origin"], []]
    assert not any(name.startswith("history by") for name in wider.manifest["not_built"])


def test_max_key_levels_leaves_explicit_keys_alone(splits, schema, params, windows):
    config = features_config(params, history={"keys": [["carrier"]], "max_key_levels": 1, "windows": ["1D"]})
    result = featurize(splits, schema, config, windows)
    assert result.spec.history["keys"] == [["carrier"]]
    assert "history_carrier_1d_late_mean" in result.manifest["columns"]


@pytest.mark.parametrize(("column", "role"), [("late", "target"), ("time_hour", "time")])
def test_a_history_key_naming_the_target_or_the_time_is_refused(splits, schema, params, windows, column, role):
    # Keyed by the target, each row's history mean is its own outcome (ROC AUC 1 on test): a leak.
    config = features_config(params, history={"keys": [["origin"], [column]]})
    with pytest.raises(UserError) as raised:
        featurize(splits, schema, config, windows)
    assert str(raised.value) == (
        f"params.yaml: 'features.history.keys' names '{column}', the {role} column; "
        "a history key must be an input column, e.g. one of carrier, dest, origin"
    )


# ---------------------------------------------------------------- the plan and the transformer, fitted on train only


@pytest.fixture(scope="module")
def prepared_flights():
    params = parse_params(project_params())
    contract = params.data
    flights = make_flights()
    prepared = prepare(flights, [make_weather(flights)], contract)
    base = params.features
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
    assert again.spec == featurized.spec
    assert again.manifest == featurized.manifest  # train statistics, selection and reasons
    pd.testing.assert_frame_equal(again.frames["train"], featurized.frames["train"])
    # The perturbation reached the other splits: unseen carriers are grouped like any rare level, numbers changed.
    assert set(again.frames["test"]["carrier"]) == {OTHER}
    assert (again.frames["test"]["carrier_frequency"] == 0.0).all()
    assert list(again.frames["test"]["carrier"].cat.categories) == list(featurized.frames["train"]["carrier"].cat.categories)
    assert not again.frames["test"]["distance"].equals(featurized.frames["test"]["distance"])


def test_seasonal_calendar_parts_need_a_year_of_train(prepared_flights, featurized):
    not_built = featurized.manifest["not_built"]
    for part in ("calendar_month", "calendar_day_of_year"):
        assert "less than a year" in not_built[part]
        assert part not in featurized.frames["train"] and part not in featurized.manifest["columns"]
    assert "calendar_hour" in featurized.manifest["columns"]

    _, schema, config, _ = prepared_flights
    # New York midnight on 1 January 2012 and noon on 31 December 2013: every grain varies.
    two_years = pd.DataFrame({"time_hour": pd.to_datetime(["2012-01-01 05:00", "2013-12-31 17:00"], utc=True), "late": [0, 1]})
    plan = plan_features(two_years, schema, config)
    assert plan.calendar_parts == ["hour", "day_of_week", "month", "day_of_year"]
    assert not any(name.startswith("calendar_") for name in plan.skipped)


@pytest.mark.parametrize("undeclared", ["absent", "null"])
def test_history_is_skipped_with_a_reason_without_known_after(prepared_flights, featurized, undeclared):
    splits, schema, config, windows = prepared_flights
    assert any(name.startswith("history_") for name in featurized.manifest["columns"])
    without = {key: value for key, value in copy.deepcopy(schema).items() if key != "known_after"}
    if undeclared == "null":
        without["known_after"] = None
    result = featurize(splits, without, config, windows)
    assert result.counts["by_family"]["history"] == 0
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
    assert again.spec == featurized.spec
    assert again.manifest["columns"] == featurized.manifest["columns"]
    for name, frame in featurized.frames.items():
        pd.testing.assert_frame_equal(again.frames[name], frame)


def test_a_fit_sample_limit_at_or_above_the_train_rows_is_the_fit_on_every_row(splits, schema, config, windows, tmp_path):
    """features.fit_sample_rows >= train's rows (the default data's case) fits on every row, as null does: the same
    transformer, features and manifest, with no `fit_sample` entry; below it, the manifest records the sample."""

    def outputs(limit: int | None) -> tuple:
        result = featurize(splits, schema, replace(config, fit_sample_rows=limit), windows)
        model_writer(result.transformer)(tmp_path / "transformer.skops")
        return result.manifest, result.frames, (tmp_path / "transformer.skops").read_bytes()

    rows = len(splits["train"])
    every_manifest, every_frames, every_transformer = outputs(None)
    assert "fit_sample" not in every_manifest
    for limit in (rows, rows + 1):
        manifest, frames, transformer = outputs(limit)
        assert manifest == every_manifest and transformer == every_transformer
        for name, frame in frames.items():
            pd.testing.assert_frame_equal(frame, every_frames[name], check_exact=True)
    sampled, _, transformer = outputs(rows - 10)
    assert sampled["fit_sample"] == {"rows": rows - 10, "of": rows, "seed": config.seed}
    assert sampled["train_rows"] == rows and transformer != every_transformer
