"""data.time.holidays: the contract names whose public holidays are flagged; featurize builds them, the stored transformer keeps them."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.featurize import featurize
from stages.lib.config import parse_params
from stages.lib.contract import infer_schema
from stages.lib.errors import UserError
from stages.lib.features import CalendarFeatures
from stages.lib.models import load_model, model_writer
from tests.conftest import PROJECT, choice_overrides, own_contract, replace

SPLITS = {
    "train": {"start": "2012-01-01", "end": "2014-01-01"},
    "test": {"start": "2014-01-01", "end": "2015-01-01"},
    "reference": {"start": "2012-01-01", "end": "2013-01-01"},
    "current": {"start": "2014-01-01", "end": "2015-01-01"},
}


@functools.cache
def regression_params() -> str:
    return compose(PROJECT / "conf", [*choice_overrides(), "model=hgb_regressor"])


def daily_params(holidays: dict | None) -> dict:
    """params.yaml for a daily regression table (2012-2014, dates without a time of day) with the given calendar."""
    return own_contract(
        yaml.safe_load(regression_params()),
        name="daily",
        path="daily.csv",
        task="regression",
        target={"name": "sales", "column": "sales"},
        time={"column": "date", "format": "iso8601", "holidays": holidays},
        types={"shop": "categorical"},
        splits=SPLITS,
    )


def daily_splits(contract) -> dict[str, pd.DataFrame]:
    days = pd.date_range("2012-01-01", "2014-12-31", freq="D", tz="UTC")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"date": days, "shop": rng.choice(["north", "south"], len(days)), "rain": rng.random(len(days))})
    table["sales"] = 100.0 + 10 * table["rain"]
    return {
        window.name: table[(table["date"] >= window.start) & (table["date"] < window.end)].reset_index(drop=True)
        for window in contract.splits
    }


def built(holidays: dict | None, switch: bool = True):
    params = daily_params(holidays)
    config = parse_params(params)
    contract, features = config.data, config.features
    features = replace(features, datetime=replace(features.datetime, holidays=switch))
    splits = daily_splits(contract)
    schema = infer_schema(splits["train"], contract)
    return featurize(splits, schema, features, contract.splits), splits


def flags_on(frame: pd.DataFrame, times: pd.Series, days: list[str]) -> list[float]:
    stamps = times.dt.strftime("%Y-%m-%d")
    return [float(frame.loc[(stamps == day).to_numpy(), "calendar_holiday"].iloc[0]) for day in days]


def test_a_german_table_flags_german_holidays_not_american_ones(tmp_path):
    result, splits = built({"country": "DE", "subdivision": None})
    train = result.frames["train"]
    # German Unity Day (3 October) and the second day of Christmas are German holidays; 4 July and Thanksgiving are not.
    assert flags_on(train, train["date"], ["2013-10-03", "2013-12-26", "2013-07-04", "2013-11-28"]) == [1.0, 1.0, 0.0, 0.0]
    # The stored transformer carries the calendar: loaded back (as scoring does) it flags the same days.
    model_writer(result.transformer)(tmp_path / "transformer.skops")
    loaded = load_model(tmp_path / "transformer.skops")
    calendar = loaded.named_transformers_["calendar"]
    assert (calendar.holidays_country, calendar.holidays_subdivision) == ("DE", None)
    rows = splits["test"]
    again = loaded.transform(rows)
    assert flags_on(again, rows["date"], ["2014-10-03", "2014-07-04"]) == [1.0, 0.0]


def test_a_subdivision_adds_its_own_holidays_and_is_stored(tmp_path):
    # Epiphany (6 January) is a holiday in Bavaria (BY), not nationwide in Germany.
    stamps = pd.DataFrame({"date": pd.to_datetime(["2013-01-06", "2013-10-03", "2013-01-07"], utc=True)})
    nationwide = CalendarFeatures(None, (), False, "DE").fit(stamps)
    bavaria = CalendarFeatures(None, (), False, "DE", "BY").fit(stamps)
    assert nationwide.transform(stamps)["calendar_holiday"].tolist() == [0.0, 1.0, 0.0]
    assert bavaria.transform(stamps)["calendar_holiday"].tolist() == [1.0, 1.0, 0.0]
    model_writer(bavaria)(tmp_path / "calendar.skops")
    loaded = load_model(tmp_path / "calendar.skops")
    assert loaded.holidays_subdivision == "BY"
    assert loaded.transform(stamps)["calendar_holiday"].tolist() == [1.0, 1.0, 0.0]


def test_no_calendar_or_the_switch_off_builds_no_holiday_flag_and_says_why():
    without, _ = built(None)
    assert "calendar_holiday" not in without.manifest["columns"]
    assert without.manifest["not_built"]["calendar_holiday"] == "data.time.holidays is null in conf/data/ (no holiday calendar declared)"
    switched_off, _ = built({"country": "DE", "subdivision": None}, switch=False)
    assert "calendar_holiday" not in switched_off.manifest["columns"]
    assert switched_off.manifest["not_built"]["calendar_holiday"] == "features.datetime.holidays is false"


@pytest.mark.parametrize(
    ("holidays", "message"),
    [
        (
            {"country": "XX", "subdivision": None},
            "^params.yaml: 'data.time.holidays.country' = 'XX' is not a country code of the holidays package; "
            "use an ISO 3166 code such as DE, FR, GB, JP, US",
        ),
        (
            {"country": "US", "subdivision": "Seattle"},
            "^params.yaml: 'data.time.holidays.subdivision' = 'Seattle' is not a subdivision of US; use one of AK, AL, AR, AS,",
        ),
        (
            {"country": "US", "subdivision": None, "state": "WA"},
            r"^params.yaml: unknown key 'data.time.holidays.state' \(from conf/data/ or a -S override\); known keys: country, subdivision",
        ),
    ],
    ids=["country", "subdivision", "unknown-key"],
)
def test_an_unknown_calendar_is_refused_at_compose_naming_the_key(holidays, message):
    with pytest.raises(UserError, match=message):
        parse_params(daily_params(holidays))


def test_the_contract_keeps_the_calendar_as_written():
    params = daily_params({"country": "DE", "subdivision": "BY"})
    assert parse_params(params).model_dump(mode="json")["data"]["time"]["holidays"] == {"country": "DE", "subdivision": "BY"}
