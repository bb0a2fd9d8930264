"""The grain of time: calendar durations, the data's time step, history windows planned from it, and calendar parts
built only where train varies at their grain."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.featurize import featurize
from stages.lib.config import parse_params
from stages.lib.errors import UserError
from stages.lib.features.history import HistoryLookup, history_features, history_name, look_back
from stages.lib.features.plan import auto_windows, history_windows, plan_features
from stages.lib.scoring import coverage
from stages.lib.timespan import CalendarSpan, parse_span, schema_step, span_text
from stages.prepare import prepare
from tests.conftest import PROJECT, choice_overrides, own_contract, project_params


def utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True, format="ISO8601"))


def nanoseconds(*stamps: str) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True, format="ISO8601")).as_unit("ns").asi8


def stamps_of(values: np.ndarray) -> list[str]:
    return [f"{stamp:%Y-%m-%d %H:%M}" for stamp in pd.to_datetime(values, utc=True)]


# ---------------------------------------------------------------- durations


@functools.cache
def regression_params() -> str:
    return compose(PROJECT / "conf", [*choice_overrides(), "model=hgb_regressor"])


def test_calendar_durations_are_accepted_in_the_contract_and_features_and_kept_as_written():
    params = project_params()
    params["data"]["target"]["known_after"] = "1 year"
    params["data"]["time"]["step"] = "1 month"
    params["features"]["history"]["windows"] = ["1 month", "12 months", "5 years", "4 weeks", "7D"]
    config = parse_params(params)
    assert config.data.known_after == CalendarSpan(12)
    assert config.data.time_step == CalendarSpan(1)
    assert config.features.history.windows == (
        CalendarSpan(1),
        CalendarSpan(12),
        CalendarSpan(60),
        pd.Timedelta(days=28),
        pd.Timedelta(days=7),
    )
    dumped = config.model_dump(mode="json")
    assert dumped["features"]["history"]["windows"] == ["1 month", "12 months", "5 years", "4 weeks", "7D"]
    assert (dumped["data"]["target"]["known_after"], dumped["data"]["time"]["step"]) == ("1 year", "1 month")


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        (["12 months", "1 year"], "'features.history.windows' lists one duration twice: \\['12 months', '1 year'\\]"),
        (["1M"], "'features.history.windows\\[0\\]' = '1M' is not a duration \\(e.g. 13h, 1D, 7D, 4 weeks, 1 month, 12 months, 1 year\\)"),
        (["0 years"], "'features.history.windows\\[0\\]' must be positive, got '0 years'"),
    ],
    ids=["same-span-twice", "ambiguous-unit", "zero"],
)
def test_a_wrong_calendar_duration_is_one_line_naming_the_key(windows, message):
    params = project_params()
    params["features"]["history"]["windows"] = windows
    with pytest.raises(UserError, match=f"^params.yaml: {message}"):
        parse_params(params)


def test_todays_durations_keep_their_values_and_feature_names():
    for text, value in [
        ("13h", pd.Timedelta(hours=13)),
        ("1D", pd.Timedelta(days=1)),
        ("7D", pd.Timedelta(days=7)),
        ("30min", pd.Timedelta(minutes=30)),
    ]:
        span = parse_span(text)
        assert span == value and span_text(span) == text
    assert history_name((), parse_span("7D"), "late", "rows") == "history_all_7d_late_rows"
    assert history_name(("origin",), parse_span("1D"), "late", "mean") == "history_origin_1d_late_mean"
    assert history_name((), parse_span("5 years"), "late", "rows") == "history_all_5y_late_rows"
    assert history_name((), parse_span("12 months"), "late", "rows") == "history_all_1y_late_rows"
    assert history_name((), parse_span("18 months"), "late", "rows") == "history_all_18mo_late_rows"


def test_calendar_spans_move_by_whole_months_exactly():
    start, end = look_back(nanoseconds("2013-01-01", "2013-03-31", "2016-02-29 06:00"), parse_span("1 year"), parse_span("1 month"))
    assert stamps_of(end) == ["2012-01-01 00:00", "2012-03-31 00:00", "2015-02-28 06:00"]
    assert stamps_of(start) == ["2011-12-01 00:00", "2012-02-29 00:00", "2015-01-28 06:00"]
    # Fixed spans are plain subtraction, as before.
    start, end = look_back(nanoseconds("2013-01-08 13:00"), parse_span("13h"), parse_span("7D"))
    assert stamps_of(end) == ["2013-01-08 00:00"] and stamps_of(start) == ["2013-01-01 00:00"]


def test_yearly_history_counts_whole_years():
    """Outcomes stamped 1 January 2005-2012, known a year later; a row on 1 January 2013 sees 2012 in the last
    year and 2008-2012 in the last five (365 days would miss 2012's outcome: 2012 is a leap year)."""
    events = pd.DataFrame({"year": pd.to_datetime([f"{year}-01-01" for year in range(2005, 2013)], utc=True), "y": np.arange(8.0)})
    rows = pd.DataFrame({"year": pd.to_datetime(["2013-01-01", "2014-01-01"], utc=True)})
    lookup = HistoryLookup(((),), (parse_span("1 year"), parse_span("5 years")), 0.0, 0.0, parse_span("1 year"))
    features = history_features(rows, events, lookup, "year", "y")
    assert features["history_all_1y_y_rows"].tolist() == [1.0, 0.0]
    assert features["history_all_5y_y_rows"].tolist() == [5.0, 4.0]
    assert features["history_all_1y_y_mean"].tolist()[0] == 7.0  # 2012's outcome
    assert features["history_all_5y_y_mean"].tolist() == [5.0, 5.5]  # (3+4+5+6+7)/5, (4+5+6+7)/4


def test_coverage_uses_the_same_calendar_arithmetic():
    """Outcomes known up to 1 January 2012; known_after and the window are 1 year."""
    events = pd.DataFrame({"year": pd.to_datetime(["2011-01-01", "2012-01-01"], utc=True)})
    lookup = HistoryLookup(((),), (parse_span("1 year"),), 0.0, 0.0, parse_span("1 year"))
    times = utc("2013-01-01", "2013-06-01", "2014-01-01")
    cover = coverage(times, events, lookup, "year")
    assert cover.complete.tolist() == [True, False, False]  # 2013-01-01 minus a year is exactly the last outcome
    assert cover.beyond.tolist() == [False, False, True]  # its window starts on 2012-01-01: nothing known after


# ---------------------------------------------------------------- the time step and the windows it plans


@pytest.mark.parametrize(
    ("stamps", "timezone", "step", "how"),
    [
        (["2001-01-01", "2002-01-01", "2004-01-01"], None, "1 year", "every train time is 1 January at midnight"),
        (["2018-01-01", "2018-02-01", "2018-03-01"], None, "1 month", "every train time is the 1st of a month at midnight"),
        (["2013-03-04", "2013-03-11", "2013-04-01"], None, "7D", "every train time is a Monday at midnight"),
        (["2013-03-04", "2013-03-05", "2013-03-09"], None, "1D", "every train time is at midnight"),
        # Local midnights in New York, stored in UTC: still daily data.
        (["2013-03-04 05:00", "2013-03-05 05:00", "2013-07-09 04:00"], "America/New_York", "1D", "every train time is at midnight"),
        (
            ["2013-01-01 05:00", "2013-01-01 07:00", "2013-01-01 06:00", "2013-01-01 06:00"],
            None,
            "1h",
            "the smallest gap between distinct train times",
        ),
    ],
    ids=["yearly", "monthly", "weekly", "daily", "daily-local", "hourly"],
)
def test_the_step_is_inferred_from_train(stamps, timezone, step, how):
    assert schema_step(utc(*stamps), timezone, None, "t") == {"time_step": step, "time_step_source": f"inferred from train: {how}"}


def test_a_declared_step_wins_and_one_distinct_time_cannot_be_inferred():
    assert schema_step(utc("2013-01-01"), None, parse_span("1 month"), "t") == {
        "time_step": "1 month",
        "time_step_source": "declared in data.time.step",
    }
    with pytest.raises(
        UserError, match="^conf/data/: data.time.step is auto, but the train split has 1 distinct time\\(s\\) in column 't'"
    ):
        schema_step(utc("2013-01-01", "2013-01-01"), None, None, "t")


@pytest.mark.parametrize(
    ("step", "windows"),
    [
        ("1h", ["1D", "7D"]),
        ("1D", ["1D", "7D"]),
        ("7D", ["4 weeks", "52 weeks"]),
        ("1 month", ["1 month", "12 months"]),
        ("1 year", ["1 year", "5 years"]),
    ],
)
def test_auto_windows_follow_the_step(step, windows):
    assert [span_text(window) for window in auto_windows(parse_span(step))] == windows


def yearly_schema(source: str = "inferred from train: every train time is 1 January at midnight") -> dict:
    return {"time_step": "1 year", "time_step_source": source}


@pytest.mark.parametrize("declared", [["1D", "7D"], ["365D"], ["1 year", "11 months"]])
def test_a_window_shorter_than_the_step_is_refused_with_one_line(declared):
    shortest = next(text for text in declared if text in ("1D", "365D", "11 months"))
    with pytest.raises(UserError) as caught:
        history_windows(yearly_schema(), tuple(parse_span(text) for text in declared))
    assert str(caught.value) == (
        f"params.yaml: 'features.history.windows' has {shortest}, shorter than the data's time step 1 year "
        "(inferred from train: every train time is 1 January at midnight; data/schema.yaml): such a window can hold no earlier row; "
        "write windows of at least 1 year, e.g. [1 year, 5 years], or auto"
    )


def test_windows_at_least_one_step_long_are_kept():
    windows, source = history_windows(yearly_schema(), (parse_span("12 months"), parse_span("366D")))
    assert [span_text(window) for window in windows] == ["12 months", "366D"] and source == "as declared in features.history.windows"
    windows, source = history_windows({"time_step": "1h", "time_step_source": "inferred from train: x"}, None)
    assert [span_text(window) for window in windows] == ["1D", "7D"]
    assert source == "auto, from the time step 1h (inferred from train: x)"


# ---------------------------------------------------------------- calendar parts only where train varies


def plan_for(stamps: pd.Series, timezone: str | None = None):
    config = parse_params(project_params()).features
    train = pd.DataFrame({"t": stamps, "y": np.arange(len(stamps), dtype=float), "x": np.arange(len(stamps), dtype=float)})
    schema = {
        "time": "t",
        "timezone": timezone,
        "target": "y",
        "known_after": None,
        "holidays": {"country": "US", "subdivision": None},
        "columns": {"t": {"type": "datetime", "role": "time"}, "y": {"type": "numeric", "role": "target"}, "x": {"type": "numeric"}},
    }
    return plan_features(train, schema, config)


def test_yearly_data_gets_no_disguised_year_code():
    plan = plan_for(utc(*[f"{year}-01-01" for year in range(1990, 2010)]))
    assert plan.calendar_parts == [] and plan.holidays is None
    assert plan.skipped["calendar_day_of_week"] == "every train row falls on day 1 of its month: the weekday would only encode the year"
    assert plan.skipped["calendar_hour"] == "the local hour is always 0 in train"
    assert plan.skipped["calendar_month"] == "the month is always 1 in train"
    assert (
        plan.skipped["calendar_day_of_year"]
        == "every train row falls on day 1 of its month: the day of the year would only encode the month"
    )
    assert plan.skipped["calendar_holiday"] == "every train row falls on day 1 of its month: the holiday flag would only encode the month"


def test_monthly_data_keeps_the_month_only():
    plan = plan_for(pd.Series(pd.date_range("2015-01-01", "2018-12-01", freq="MS", tz="UTC")))
    assert plan.calendar_parts == ["month"]
    assert plan.skipped["calendar_day_of_week"] == (
        "every train row falls on day 1 of its month: the weekday would only encode the month and year"
    )
    assert "calendar_day_of_year" in plan.skipped and "calendar_hour" in plan.skipped


def test_hourly_data_over_two_years_keeps_every_part():
    plan = plan_for(pd.Series(pd.date_range("2012-01-01 05:00", "2013-12-31 05:00", freq="7h", tz="UTC")), "America/New_York")
    assert plan.calendar_parts == ["hour", "day_of_week", "month", "day_of_year"]
    assert plan.holidays == {"country": "US", "subdivision": None}
    assert not [name for name in plan.skipped if name.startswith("calendar_")]


# ---------------------------------------------------------------- prepare and featurize, on a yearly table


def test_a_yearly_table_gets_its_step_yearly_windows_and_no_day_of_week():
    """The survey case: one row per region and year, stamped as a bare year. Daily windows would count nothing."""
    years = np.repeat(np.arange(1990, 2020), 2)
    table = pd.DataFrame({"year": years, "region": np.tile(["east", "west"], 30), "rate": (years - 1990) * 1.5 + np.tile([0.0, 3.0], 30)})
    params = own_contract(
        yaml.safe_load(regression_params()),
        name="survey",
        path="survey.csv",
        task="regression",
        target={"name": "rate", "column": "rate", "known_after": "1 year"},
        time={"column": "year", "format": "year", "holidays": {"country": "US", "subdivision": None}},
        types={"region": "categorical"},
        splits={
            "train": {"start": "1990-01-01", "end": "2012-01-01"},
            "test": {"start": "2012-01-01", "end": "2020-01-01"},
            "reference": {"start": "1990-01-01", "end": "2000-01-01"},
            "current": {"start": "2012-01-01", "end": "2020-01-01"},
        },
    )
    config = parse_params(params)
    prepared = prepare(table, [], config.data)
    schema = prepared.schema
    assert (schema["time_step"], schema["time_step_source"]) == ("1 year", "inferred from train: every train time is 1 January at midnight")
    result = featurize(prepared.splits, schema, config.features, config.data.splits)
    manifest = result.manifest
    assert manifest["history_windows"]["windows"] == ["1 year", "5 years"]
    assert (
        manifest["not_built"]["calendar_day_of_week"]
        == "every train row falls on day 1 of its month: the weekday would only encode the year"
    )
    assert not [name for name in manifest["columns"] if name.startswith("calendar_")]
    assert result.spec.history is not None
    assert (result.spec.history["windows"], result.spec.history["known_after"]) == (["1 year", "5 years"], "1 year")
    # All rows of the last year and of the last five whose outcomes are known (a year after each row): two regions a year.
    test = result.frames["test"]
    first = test[test["year"] == pd.Timestamp("2012-01-01", tz="UTC")]
    assert first["history_all_1y_rate_rows"].tolist() == [2.0, 2.0]
    assert first["history_all_5y_rate_rows"].tolist() == [10.0, 10.0]
