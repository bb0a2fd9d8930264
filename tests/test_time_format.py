"""data.time.format: the time column parsed exactly as declared, by the one function prepare and predict share."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR, SCHEMA_FILE, FeatureSpec
from stages.lib.config import parse_params
from stages.lib.contract import parse_time
from stages.lib.errors import UserError
from stages.lib.io import read_table
from stages.lib.scoring import validate_rows
from stages.prepare import _parse_time as prepare_time
from tests.conftest import PROJECT, choice_overrides, own_contract, project_params, run_module

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Moments written out by hand below, in each format, without pandas.
MOMENTS = [datetime(2018, 3, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC), datetime(2024, 2, 29, 6, 30, tzinfo=UTC)]


def expected(moments: list[datetime]) -> list[pd.Timestamp]:
    return [pd.Timestamp(moment) for moment in moments]


def seconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(seconds=1)


CASES = {
    "iso8601": (["2018-03-01T00:00:00Z", "1999-12-31 23:59:58", "2024-02-29T07:30:00+01:00"], MOMENTS),
    "month-year": ([f"{MONTHS[m.month - 1]}-{m.year}" for m in MOMENTS], [datetime(m.year, m.month, 1, tzinfo=UTC) for m in MOMENTS]),
    "day-first": (
        [f"{m.day:02d}/{m.month:02d}/{m.year}" for m in MOMENTS],
        [datetime(m.year, m.month, m.day, tzinfo=UTC) for m in MOMENTS],
    ),
    "year-int": ([m.year for m in MOMENTS], [datetime(m.year, 1, 1, tzinfo=UTC) for m in MOMENTS]),
    "year-text": ([str(m.year) for m in MOMENTS], [datetime(m.year, 1, 1, tzinfo=UTC) for m in MOMENTS]),
    "epoch_s": ([seconds(m) for m in MOMENTS], MOMENTS),
    "epoch_s-text": ([str(seconds(m)) for m in MOMENTS], MOMENTS),
    "epoch_ms": ([seconds(m) * 1000 + 250 for m in MOMENTS], [m + timedelta(milliseconds=250) for m in MOMENTS]),
    "compact-int": (
        [m.year * 10000 + m.month * 100 + m.day for m in MOMENTS],
        [datetime(m.year, m.month, m.day, tzinfo=UTC) for m in MOMENTS],
    ),
}
FORMATS = {
    "iso8601": "iso8601",
    "month-year": "%b-%Y",
    "day-first": "%d/%m/%Y",
    "year-int": "year",
    "year-text": "year",
    "epoch_s": "epoch_s",
    "epoch_s-text": "epoch_s",
    "epoch_ms": "epoch_ms",
    "compact-int": "%Y%m%d",
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_format_gives_the_moments_written(case):
    written, moments = CASES[case]
    parsed = parse_time(pd.Series(written), FORMATS[case], "rows.csv", "when", "fix it")
    assert str(parsed.dtype).endswith(", UTC]")
    assert parsed.tolist() == expected(moments)


def test_stored_timestamps_are_used_as_they_are():
    naive = pd.Series(pd.to_datetime(["2018-03-01 05:00"]))
    assert parse_time(naive, "%b-%Y", "t.parquet", "when", "fix it").tolist() == [pd.Timestamp("2018-03-01 05:00", tz="UTC")]


@pytest.mark.parametrize(
    ("values", "time_format", "message"),
    [
        (
            ["2018-03-01", "yesterday", "later"],
            "iso8601",
            "must hold ISO-8601 timestamps (data.time.format: iso8601), got 'yesterday' in 2 row(s)",
        ),
        # An integer year under the ISO default is refused, not read as nanoseconds since 1970.
        ([2013, 2014], "iso8601", "must hold ISO-8601 timestamps (data.time.format: iso8601), got 2013 in 2 row(s)"),
        (["Mar-2018", "March-2018"], "%b-%Y", "must hold times written as '%b-%Y' (data.time.format: %b-%Y), got 'March-2018' in 1 row(s)"),
        (["01/03/2018", "2018-03-01", "31/02/2018"], "%d/%m/%Y", "got '2018-03-01' in 2 row(s)"),
        ([2013, 2013.5, 0], "year", "must hold whole years such as 2013 (data.time.format: year), got 2013.5 in 2 row(s)"),
        (["1520000000", "soon"], "epoch_s", "must hold seconds since 1970-01-01 UTC (data.time.format: epoch_s), got 'soon' in 1 row(s)"),
        ([1e30], "epoch_ms", "must hold milliseconds since 1970-01-01 UTC (data.time.format: epoch_ms), got 1e+30 in 1 row(s)"),
        (["2018-03-01", None], "iso8601", "column 'when' has 1 missing timestamps; every row needs one"),
        (["Mar-2018"], "%Q-%Y", "data.time.format '%Q-%Y' is not a usable strptime pattern"),
    ],
    ids=["iso-text", "iso-integers", "month-name", "day-first", "year-fraction", "epoch-text", "epoch-range", "missing", "bad-pattern"],
)
def test_a_value_off_the_format_is_named_with_its_row_count(values, time_format, message):
    with pytest.raises(UserError, match="^rows.csv: .*" + message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        parse_time(pd.Series(values), time_format, "rows.csv", "when", "fix it")


def composed(model: str | None = None, **data) -> dict:
    """params.yaml for the nycflights13 contract, composed from conf/ with the tests' choices (and `model`), with `data` keys replaced."""
    params = project_params() if model is None else yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), f"model={model}"]))
    params["data"].update(data)
    return params


@pytest.mark.parametrize("time_format", ["yearly", "dd/mm/yyyy"])
def test_an_unknown_format_name_is_refused_in_the_contract(time_format):
    params = composed()
    params["data"]["time"]["format"] = time_format
    with pytest.raises(
        UserError, match=f"'data.time.format' must be one of iso8601, year, epoch_s, epoch_ms or a strptime pattern .*got '{time_format}'"
    ):
        parse_params(params)


def test_prepare_reads_a_month_name_table_declared_in_the_contract(tmp_path):
    """A monthly CSV with "Mar-2018" dates runs through the prepare command with no code change."""
    months = pd.period_range("2015-01", "2019-12", freq="M")
    table = pd.DataFrame(
        {
            "month": [f"{MONTHS[period.month - 1]}-{period.year}" for period in months],
            "rain": [float(index % 7) for index in range(len(months))],
            "sales": [100.0 + (index % 12) * 3 for index in range(len(months))],
        }
    )
    table.to_csv(tmp_path / "monthly.csv", index=False)
    params = own_contract(
        composed(model="hgb_regressor"),
        name="monthly",
        path=tmp_path / "monthly.csv",
        task="regression",
        target={"name": "sales", "column": "sales", "max_missing_share": 0.2},
        time={"column": "month", "format": "%b-%Y"},
        splits={
            "train": {"start": "2015-01-01", "end": "2018-01-01"},
            "test": {"start": "2018-01-01", "end": "2020-01-01"},
            "reference": {"start": "2015-01-01", "end": "2016-01-01"},
            "current": {"start": "2018-01-01", "end": "2020-01-01"},
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_module("stages.prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    train = pd.read_parquet(tmp_path / PREPARED_DIR / "train.parquet")
    assert train["month"].tolist() == [pd.Timestamp(year, month, 1, tz="UTC") for year in (2015, 2016, 2017) for month in range(1, 13)]
    summary = json.loads((tmp_path / PREPARE_SUMMARY).read_text())
    assert summary["splits"]["test"] == {
        "rows": 24,
        "target_mean": round(float(table["sales"].iloc[36:].mean()), 6),
        "first": "2018-01-01T00:00:00+00:00",
        "last": "2019-12-01T00:00:00+00:00",
    }
    schema = yaml.safe_load((tmp_path / SCHEMA_FILE).read_text())
    assert schema["time_format"] == "%b-%Y"  # scoring reads the version's format from here

    table.assign(month=table["month"].where(table.index != 5, "June 2015")).to_csv(tmp_path / "monthly.csv", index=False)
    result = run_module("stages.prepare", tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: monthly.csv: column 'month' must hold times written as '%b-%Y' (data.time.format: %b-%Y), got 'June 2015' in 1 row(s); fix the values"
    ), result.stderr


@pytest.mark.parametrize("case", ["day-first", "month-year", "compact-int"])
def test_scoring_reads_the_time_column_as_prepare_did(case, tmp_path):
    """The same written values, read from a CSV as predict reads its input, parse to the same moments in
    prepare (the contract's format) and in scoring (the format recorded in the version's data/schema.yaml)."""
    written, moments = CASES[case]
    pd.DataFrame({"when": written, "distance": [100, 200, 300]}).to_csv(tmp_path / "rows.csv", index=False)
    rows = read_table(tmp_path / "rows.csv", "check --input", ["", "NA"])
    params = composed()
    params["data"]["time"] = {**params["data"]["time"], "column": "when", "format": FORMATS[case]}
    prepared = prepare_time(rows, "rows.csv", parse_params(params).data)["when"]
    schema = {"time_format": FORMATS[case], "missing_values": ["", "NA"], "columns": {"distance": {"type": "numeric"}}}
    spec = FeatureSpec.plain(["distance"], [], time="when")
    scored = validate_rows(rows, schema, spec, "rows.csv")["when"]
    assert prepared.tolist() == scored.tolist() == expected(moments)
