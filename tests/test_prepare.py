"""prepare: cleaning, the weather join, the target, time splits, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR
from stages.lib.config import Window, parse_params
from stages.lib.contract import infer_type
from stages.lib.errors import UserError
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, project_params, replace, run_module


def with_window(config, name: str, start: str, end: str):
    window = Window(name=name, start=pd.Timestamp(start, tz="UTC"), end=pd.Timestamp(end, tz="UTC"))
    return replace(config, windows=replace(config.windows, **{name: window}))


def test_drops_cancelled_leaks_and_identifiers(flights, weather, contract):
    prepared = prepare(flights, [weather], contract)
    train = prepared.splits["train"]
    assert not set(contract.leaks) & set(train.columns)
    assert not set(contract.identifiers) & set(train.columns)
    assert {"dep_delay", "arr_delay", "tailnum"} <= {*contract.leaks, *contract.identifiers}
    cancelled = int(flights["arr_delay"].isna().sum())
    assert cancelled > 0
    assert prepared.summary["rows"]["without_target"] == cancelled
    # train and test cover January to October: November and December are the production replay, in no split.
    flown = flights[flights["arr_delay"].notna()]
    before_november = int((pd.to_datetime(flown["time_hour"], utc=True) < pd.Timestamp("2013-11-01", tz="UTC")).sum())
    assert sum(len(prepared.splits[name]) for name in ("train", "test")) == before_november < len(flights) - cancelled


def test_target_is_arrival_delay_over_threshold(flights, weather, contract):
    prepared = prepare(flights, [weather], contract)
    flown = flights.dropna(subset=["arr_delay"])
    assert prepared.summary["positive_share"] == round(float((flown["arr_delay"] > 15).mean()), 6)
    stricter = prepare(flights, [weather], replace(contract, target_spec=replace(contract.target_spec, greater_than=60.0)))
    assert stricter.summary["positive_share"] < prepared.summary["positive_share"]


def test_weather_joined_on_origin_and_hour_without_duplicating_rows(flights, weather, contract):
    assert weather.duplicated(subset=["origin", "time_hour"]).any()  # like the real file
    prepared = prepare(flights, [weather], contract)
    train = prepared.splits["train"]
    expected = weather.drop_duplicates(subset=["origin", "time_hour"]).assign(time_hour=lambda w: pd.to_datetime(w["time_hour"], utc=True))
    merged = train.merge(expected, on=["origin", "time_hour"], suffixes=("", "_weather"))
    assert len(merged) == len(train)
    assert (merged["temp"] == merged["temp_weather"]).all()


def test_flights_without_weather_are_kept_and_counted(flights, weather, contract):
    missing_hour = flights.dropna(subset=["arr_delay"])["time_hour"].iloc[0]
    prepared = prepare(flights, [weather[weather["time_hour"] != missing_hour]], contract)
    assert prepared.summary["unmatched_join_rows"]["weather.csv"] >= 1
    assert prepared.splits["train"]["temp"].isna().sum() >= 1


def test_splits_are_time_windows_in_order(flights, weather, contract):
    prepared = prepare(flights, [weather], contract)
    for window in contract.splits:
        times = prepared.splits[window.name]["time_hour"]
        assert times.is_monotonic_increasing
        assert times.min() >= window.start and times.max() < window.end
    assert prepared.splits["test"]["time_hour"].min() > prepared.splits["train"]["time_hour"].max()


def test_sample_is_seeded_and_sized(flights, weather, contract):
    sampled = replace(contract, sample_rows=60, sample_seed=3)
    first, again = prepare(flights, [weather], sampled), prepare(flights, [weather], sampled)
    assert first.summary["rows"]["used"] == 60
    pd.testing.assert_frame_equal(first.splits["train"], again.splits["train"])
    other = prepare(flights, [weather], replace(sampled, sample_seed=4))
    assert not first.splits["train"].equals(other.splits["train"])


def test_output_does_not_depend_on_input_row_order(flights, weather, contract):
    # Ties in time_hour keep file order, so only a full reshuffle may change row order; values must not.
    prepared = prepare(flights, [weather], contract)
    shuffled = prepare(flights.sample(frac=1, random_state=5), [weather.sample(frac=1, random_state=6)], contract)
    key = ["time_hour", "origin", "carrier", "dest", "sched_dep_time", "distance"]
    for name in prepared.splits:
        left = prepared.splits[name].sort_values(key, ignore_index=True)
        right = shuffled.splits[name].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(left, right)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, w: (f.drop(columns="arr_delay"), w), "flights.csv.zip: missing column 'arr_delay'"),
        (lambda f, w: (f.rename(columns={"dest": "destination"}), w), "flights.csv.zip: missing column 'dest' (declared in data.types"),
        (lambda f, w: (f, w.drop(columns="temp")), "weather.csv: missing column 'temp' (listed in data.join columns)"),
        (lambda f, w: (f.assign(distance=f["distance"].astype(str).where(f.index > 0, "far")), w), "column 'distance' must be numeric"),
        (lambda f, w: (f.assign(time_hour="yesterday"), w), "column 'time_hour' must hold ISO-8601 timestamps"),
        (lambda f, w: (f.iloc[:0], w), "flights.csv.zip: no rows"),
        (lambda f, w: (f.assign(arr_delay=float("nan")), w), "every row lacks 'arr_delay'"),
        (lambda f, w: (f.assign(arr_delay=0.0), w), "target 'late' has one class only"),
    ],
    ids=[
        "missing-column",
        "renamed-column",
        "missing-weather-column",
        "wrong-dtype",
        "bad-timestamps",
        "empty",
        "all-cancelled",
        "one-class",
    ],
)
def test_bad_input_names_the_problem(flights, weather, contract, change, message):
    bad_flights, bad_weather = change(flights, weather)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare(bad_flights, [bad_weather], contract)


def test_split_outside_the_data_is_refused(flights, weather, contract):
    with pytest.raises(UserError, match=r"split 'test' \[2015-01-01, 2015-06-01\) is outside the data \(2013-01-01 to 2013-12-"):
        prepare(flights, [weather], with_window(contract, "test", "2015-01-01", "2015-06-01"))


def test_test_window_must_follow_train(flights, weather, contract):
    with pytest.raises(UserError, match="the test window must come strictly after training"):
        prepare(flights, [weather], with_window(contract, "test", "2013-06-01", "2014-01-01"))


def test_empty_window_is_refused(flights, weather, contract):
    narrow = with_window(contract, "reference", "2013-02-01T00:00", "2013-02-01T00:30")
    with pytest.raises(UserError, match="split 'reference' .* holds no rows"):
        prepare(flights, [weather], narrow)


# The command line, as `dvc repro` runs it: one line on stderr, exit 2, no outputs left behind.


def project_folder(tmp_path: Path, flights: pd.DataFrame, weather: pd.DataFrame, **data_overrides) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    flights.to_csv(source / "flights.csv", index=False)
    weather.to_csv(source / "weather.csv", index=False)
    params = project_params()
    params["data"]["source"] = {"path": str(source / "flights.csv"), "package": None}
    params["data"]["join"][0]["source"] = {"path": str(source / "weather.csv"), "package": None}
    params["data"].update(data_overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_main_writes_splits_and_summary(tmp_path):
    flights = make_flights()
    folder = project_folder(tmp_path, flights, make_weather(flights))
    result = run_module("stages.prepare", folder)
    assert result.returncode == 0, result.stderr
    summary = json.loads((folder / PREPARE_SUMMARY).read_text())
    assert summary["sources"]["flights.csv"]["rows"] == len(flights)
    assert len(summary["sources"]["flights.csv"]["sha256"]) == 64
    for name in ("train", "test", "reference", "current"):
        assert len(pd.read_parquet(folder / PREPARED_DIR / f"{name}.parquet")) == summary["splits"][name]["rows"]
    assert not list(folder.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("flights_change", "data_overrides", "message"),
    [
        (lambda f: f.drop(columns="carrier"), {}, "error: flights.csv: missing column 'carrier'"),
        (
            lambda f: f,
            {"splits": {**project_params()["data"]["splits"], "train": {"start": "2030-01-01", "end": "2030-06-01"}}},
            "error: conf/data/: split 'train'",
        ),
        (lambda f: f, {"colour": "blue"}, "error: params.yaml: unknown key 'data.colour'"),
        (lambda f: f, {"sample_rows": "many"}, "error: params.yaml: 'data.sample_rows' must be int or null, got 'many'"),
    ],
    ids=["missing-column", "boundary-outside", "unknown-key", "wrong-param-type"],
)
def test_main_fails_with_one_line_and_no_outputs(tmp_path, flights_change, data_overrides, message):
    flights = make_flights()
    folder = project_folder(tmp_path, flights_change(flights), make_weather(flights), **data_overrides)
    result = run_module("stages.prepare", folder)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (folder / "data").exists() and not (folder / "reports").exists()


def test_main_reports_a_missing_source_file(tmp_path):
    flights = make_flights()
    folder = project_folder(tmp_path, flights, make_weather(flights))
    (folder / "source/weather.csv").unlink()
    result = run_module("stages.prepare", folder)
    assert result.returncode == 2
    assert result.stderr.endswith("/source/weather.csv: file not found; fix data.join[0].source in conf/data/\n")


def test_checks_report_every_violation_at_once(flights, weather, contract):
    hot = weather.assign(temp=weather["temp"].where(weather.index > 2, 500.0))
    strays = flights.assign(origin=flights["origin"].where(flights.index > 1, "XXX"))
    with pytest.raises(UserError) as error:
        prepare(strays, [hot], contract)
    message = str(error.value)
    assert "breaks 2 rule(s) of data.checks" in message
    assert "origin: isin(['EWR', 'JFK', 'LGA']): 1 failing rows (e.g. 'XXX')" in message
    assert "temp: in_range(-40, 130): 3 failing rows (e.g. 500.0)" in message


def test_warn_mode_reports_violations_and_goes_on(flights, weather, contract):
    hot = weather.assign(temp=500.0)
    prepared = prepare(flights, [hot], replace(contract, on_violation="warn"))
    assert any(line.startswith("temp: in_range(-40, 130)") for line in prepared.violations)
    assert len(prepared.splits["train"]) > 0


def test_schema_records_declared_and_inferred_types(flights, weather, contract):
    schema = prepare(flights, [weather], contract).schema
    columns = schema["columns"]
    assert columns["dest"] == {"type": "categorical", "declared": True, "null_share": 0.0, "categories": 4}
    assert columns["temp"]["type"] == "numeric" and not columns["temp"]["declared"]
    assert columns["late"]["role"] == "target" and columns["time_hour"]["role"] == "time"
    assert list(columns) == sorted(columns)  # stable order for readable diffs
    assert (schema["task"], schema["target"], schema["timezone"]) == ("classification", "late", "America/New_York")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([1.5, 2.0, None]), "numeric"),
        (pd.Series([0, 1, 1, 0]), "boolean"),
        (pd.Series([True, False]), "boolean"),
        (pd.Series(["a", "b", "a"]), "categorical"),
        (pd.Series([f"N{number}" for number in range(5000)]), "identifier"),
        (pd.Series(pd.to_datetime(["2013-01-01", "2013-01-02"])), "datetime"),
    ],
)
def test_types_are_inferred_from_values(values, expected):
    assert infer_type(values) == expected


# Missing-value tokens, stray text among numbers and infinite numbers (the contract, composed here by Hydra).


def composed_params(**data) -> dict:
    """params.yaml for the nycflights13 contract as Hydra composes conf/ with the tests' choices, `data` keys replaced."""
    params = project_params()
    params["data"].update(data)
    return params


def csv_project(tmp_path: Path, flights: pd.DataFrame, weather: pd.DataFrame, **data) -> Path:
    (tmp_path / "source").mkdir(exist_ok=True)
    flights.to_csv(tmp_path / "source/flights.csv", index=False)
    weather.to_csv(tmp_path / "source/weather.csv", index=False)
    params = composed_params(**data)
    params["data"]["source"] = {"path": str(tmp_path / "source/flights.csv"), "package": None}
    params["data"]["join"][0]["source"] = {"path": str(tmp_path / "source/weather.csv"), "package": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def with_text(frame: pd.DataFrame, column: str, rows: list[int], text: str) -> pd.DataFrame:
    values = frame[column].astype(object)
    values.iloc[rows] = text
    return frame.assign(**{column: values})


def test_only_the_declared_tokens_are_missing_and_the_report_counts_them(tmp_path):
    flights = make_flights()
    weather = with_text(make_weather(flights), "pressure", [3, 4, 5], "n/a")  # not declared, not checked
    folder = csv_project(tmp_path, flights, weather)
    assert composed_params()["data"]["missing_values"] == ["", "NA"]
    result = run_module("stages.prepare", folder)
    assert result.returncode == 2
    assert result.stderr == (
        "error: weather.csv: column 'pressure' holds numbers, but 3 row(s) hold text such as 'n/a'; if it means missing, "
        "add it to data.missing_values in conf/data/, else declare data.types.pressure: categorical\n"
    )
    assert not (folder / "reports").exists()

    folder = csv_project(tmp_path, flights, weather, missing_values=["", "NA", "n/a"])
    result = run_module("stages.prepare", folder)
    assert result.returncode == 0, result.stderr
    read = json.loads((folder / PREPARE_SUMMARY).read_text())["sources"]
    cancelled = int(flights["arr_delay"].isna().sum())  # written as empty cells by to_csv
    # dep_delay (missing on the same rows) is a data.drop leak: prepare does not read it, so does not count it.
    assert read["flights.csv"]["read_as_missing"] == {"arr_delay": cancelled}
    assert read["weather.csv"]["read_as_missing"] == {"pressure": 3, "wind_gust": int(weather["wind_gust"].isna().sum())}


def test_a_declared_numeric_column_names_the_text_and_its_rows(flights, weather):
    contract = parse_params(composed_params()).data
    with pytest.raises(
        UserError, match=r"column 'distance' must be numeric, got 'n/a' in 4 row\(s\); if that means missing, add it to data"
    ):
        prepare(with_text(flights, "distance", [1, 2, 3, 4], "n/a"), [weather], contract)


def test_a_column_declared_categorical_may_mix_numbers_and_text(flights, weather):
    gates = flights.assign(gate=[str(10 + index % 30) for index in range(len(flights))])
    gates = with_text(gates, "gate", [7], "14A")
    with pytest.raises(UserError, match="column 'gate' holds numbers, but 1 row"):
        prepare(gates, [weather], parse_params(composed_params()).data)
    types = {**composed_params()["data"]["types"], "gate": "categorical"}
    prepared = prepare(gates, [weather], parse_params(composed_params(types=types)).data)
    assert prepared.schema["columns"]["gate"]["type"] == "categorical"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f, w: (f, w.assign(dewp=w["dewp"].where(w.index > 1, float("inf")))),
            "weather.csv: column 'dewp' holds infinite values (inf) in 2 row(s)",
        ),
        (
            lambda f, w: (f.assign(hour=f["hour"].astype(float).where(f.index != 3, -float("inf"))), w),
            "flights.csv.zip: column 'hour' holds infinite values (-inf) in 1 row(s)",
        ),
        (
            lambda f, w: (f.assign(arr_delay=f["arr_delay"].where(f.index != 0, float("inf"))), w),
            "column 'arr_delay' holds infinite values",
        ),
    ],
    ids=["joined-column", "source-column", "target-column"],
)
def test_infinite_numbers_are_refused_with_column_and_rows(flights, weather, change, message):
    bad_flights, bad_weather = change(flights, weather)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)") + ".*data.missing_values to read them as missing"):
        prepare(bad_flights, [bad_weather], parse_params(composed_params()).data)


def test_infinite_tokens_listed_as_missing_are_read_as_missing(tmp_path):
    flights = make_flights()
    weather = with_text(make_weather(flights), "dewp", [1, 2], "inf")
    result = run_module("stages.prepare", csv_project(tmp_path, flights, weather))
    assert result.returncode == 2 and "column 'dewp' holds infinite values (inf) in 2 row(s)" in result.stderr
    result = run_module("stages.prepare", csv_project(tmp_path, flights, weather, missing_values=["", "NA", "inf"]))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / PREPARE_SUMMARY).read_text())["sources"]["weather.csv"]["read_as_missing"]["dewp"] == 2
