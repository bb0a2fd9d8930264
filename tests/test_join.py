"""prepare's join of related tables (data.join in conf/data/): duplicate keys are refused unless
`deduplicate: true`, which keeps the first row of each key in file order."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import PREPARE_SUMMARY
from stages.lib.config import DataContract, parse_params
from stages.lib.errors import UserError
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, run_module
from tests.test_prepare import project_folder

KEYS = ["origin", "time_hour"]


def contract_with(params: dict, deduplicate: bool) -> DataContract:
    changed = copy.deepcopy(params)
    changed["data"]["join"][0]["deduplicate"] = deduplicate
    return parse_params(changed).data


@pytest.fixture
def unique_weather(weather: pd.DataFrame) -> pd.DataFrame:
    """One weather row per (origin, time_hour): the fixture's appended duplicate removed."""
    return weather.iloc[:-1].reset_index(drop=True)


def with_conflicting_duplicate(weather: pd.DataFrame, row: int, temp: float, text: str | None = None) -> pd.DataFrame:
    """Weather plus a second row for the key of `row`, holding another temperature (and optionally
    the same instant written differently), appended after the original."""
    duplicate = weather.iloc[[row]].assign(temp=temp)
    if text is not None:
        duplicate = duplicate.assign(time_hour=text)
    return pd.concat([weather, duplicate], ignore_index=True)


def joined_temp(prepared, origin: str, stamp: pd.Timestamp) -> np.ndarray:
    rows = pd.concat(prepared.splits.values())
    return rows.loc[(rows["origin"] == origin) & (rows["time_hour"] == stamp), "temp"].unique()


def test_without_deduplicate_unique_keys_join_one_weather_row_per_flight(flights, unique_weather, params):
    prepared = prepare(flights, [unique_weather], contract_with(params, deduplicate=False))
    assert prepared.summary["unmatched_join_rows"] == {"weather.csv": 0}
    expected = unique_weather.assign(time_hour=pd.to_datetime(unique_weather["time_hour"], utc=True)).set_index(KEYS)["temp"]
    train = prepared.splits["train"]
    np.testing.assert_allclose(train["temp"].to_numpy(), expected.loc[list(zip(train["origin"], train["time_hour"], strict=True))])


@pytest.mark.parametrize("rewritten", [False, True], ids=["same text", "same instant written another way"])
def test_without_deduplicate_a_duplicate_key_is_one_clear_error(flights, unique_weather, params, rewritten):
    stamp = pd.Timestamp(unique_weather.loc[0, "time_hour"])
    other = stamp.strftime("%Y-%m-%d %H:%M:%S+00:00") if rewritten else None  # ISO-8601 too: the same hour once parsed
    weather = with_conflicting_duplicate(unique_weather, 0, temp=-30.0, text=other)
    with pytest.raises(UserError) as raised:
        prepare(flights, [weather], contract_with(params, deduplicate=False))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("weather.csv: ")
    assert "(origin, time_hour)" in message and "deduplicate: true" in message


def test_deduplicate_keeps_the_first_row_of_a_key_in_file_order(flights, unique_weather, params):
    origin, stamp = unique_weather.loc[0, "origin"], pd.Timestamp(unique_weather.loc[0, "time_hour"])
    first_temp = float(unique_weather.loc[0, "temp"])
    weather = with_conflicting_duplicate(unique_weather, 0, temp=-30.0)
    prepared = prepare(flights, [weather], contract_with(params, deduplicate=True))
    assert joined_temp(prepared, origin, stamp).tolist() == [first_temp]
    # The conflicting row first in the file: its value is kept instead.
    reordered = pd.concat([weather.iloc[[-1]], weather.iloc[:-1]], ignore_index=True)
    prepared = prepare(flights, [reordered], contract_with(params, deduplicate=True))
    assert joined_temp(prepared, origin, stamp).tolist() == [-30.0]
    # Either way, deduplicating changes no flight count.
    assert sum(len(rows) for rows in prepared.splits.values()) == sum(
        len(rows) for rows in prepare(flights, [unique_weather], contract_with(params, deduplicate=True)).splits.values()
    )


def test_prepare_command_refuses_duplicate_keys_in_one_line_and_writes_nothing(tmp_path: Path):
    flights = make_flights()
    project_folder(tmp_path, flights, make_weather(flights))  # the weather's last row repeats the first one's key
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"]["join"][0]["deduplicate"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    result = run_module("stages.prepare", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: weather.csv: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()

    params["data"]["join"][0]["deduplicate"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_module("stages.prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / PREPARE_SUMMARY).read_text())
    assert summary["unmatched_join_rows"] == {"weather.csv": 0}
