"""Reading sources (issue 16 items 1, 5): every column typed and enforced, a CSV's shape checked before pandas
guesses around it, only the needed columns read in chunks, a size limit; and numbers refused in a scoring input's
categorical column whose training levels were text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.lib import prepare_steps
from stages.lib.contract import numeric_levels
from stages.lib.csv_shape import check_csv
from stages.lib.errors import UserError
from stages.lib.prepare_steps import _read_source, needed_columns, read_needed
from stages.lib.scoring import _typed_column
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, replace, run_module
from tests.test_prepare import project_folder, with_text


def csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_missing_token_in_a_numeric_column_stops_even_on_many_rows(flights, weather, contract):
    """Before: '?' on 40% of the rows was below the 90% share of numbers, and the column turned categorical."""
    rows = list(range(0, len(weather), 5)) + list(range(1, len(weather), 5))
    with pytest.raises(UserError, match=rf"weather.csv: column 'pressure' holds numbers, but {len(rows)} row\(s\) hold text such as '\?'"):
        prepare(flights, [with_text(weather, "pressure", rows, "?")], contract)


def test_numbers_among_text_categories_stop_until_declared(flights, weather, contract):
    gates = flights.assign(gate=[f"G{index % 7}" for index in range(len(flights))])
    gates = with_text(gates, "gate", [1, 2], "12")
    with pytest.raises(
        UserError, match=r"column 'gate' holds text, but 2 of .* row\(s\) hold numbers such as '12'; declare data.types.gate"
    ):
        prepare(gates, [weather], contract)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,temp,temp\n1,2,3\n", r"t.csv: column 'temp' appears 2 times in the header \(columns 2, 3\)"),
        ("a,b,c\n1,2,3\n4,5\n6,7,8\n", r"t.csv: 1 row\(s\) do not have the header's 3 fields \(line 3 has 2\)"),
        ("a,b,c\n1,2,3,9\n4,5,6,7\n", r"t.csv: 2 row\(s\) do not have the header's 3 fields \(line 2 has 4\)"),
        ('a,b,c\n"x,y",2,3\n4,"5"\n', r"t.csv: 1 row\(s\) do not have the header's 3 fields \(line 3 has 2\)"),
        ("date;temp_max;temp_min\n2012-01-01;12,8;5\n", r"t.csv: the header is one column holding 3 names separated by ';'"),
    ],
    ids=["duplicate-header", "short-row", "long-rows", "quoted", "semicolons"],
)
def test_a_csv_of_the_wrong_shape_is_named(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        check_csv(csv(tmp_path, text), "t.csv")


def test_a_csv_of_the_right_shape_passes_with_blank_lines_and_quotes(tmp_path):
    assert check_csv(csv(tmp_path, 'a,b,c\n1,2,3\n\n"x,\ny",5,6\n7,8,9'), "t.csv") == ["a", "b", "c"]


def test_a_short_row_stops_prepare_with_one_line_and_nothing_written(tmp_path):
    flights = make_flights()
    folder = project_folder(tmp_path, flights, make_weather(flights))
    with open(folder / "source/flights.csv", "a") as stream:
        stream.write("2013,1,1,517\n")
    result = run_module("stages.prepare", folder)
    assert result.returncode == 2
    assert result.stderr.startswith("error: flights.csv: 1 row(s) do not have the header's 19 fields (line 146 has 4)")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (folder / "data").exists() and not (folder / "reports").exists()


def test_the_source_is_read_in_chunks_with_only_needed_columns_and_whole_file_types(tmp_path, contract, monkeypatch):
    flights = make_flights(rows_per_month=3)
    flights.loc[30, "hour"] = np.nan  # an int column with one missing cell in a late chunk: float64 over the file
    path = tmp_path / "flights.csv"
    flights.to_csv(path, index=False)
    monkeypatch.setattr(prepare_steps, "CHUNK_ROWS", 4)
    [read] = read_needed([path], ["", "NA"], contract, "flights.csv", table=True)
    whole = pd.read_csv(path, keep_default_na=False, na_values=["", "NA"], low_memory=False)
    expected = whole.loc[:, needed_columns(list(whole.columns), contract)]
    assert not {"tailnum", "dep_delay", "year"} & set(read.columns) and "arr_delay" in read.columns
    pd.testing.assert_frame_equal(read, expected)
    assert read["hour"].dtype == np.float64


def test_a_source_above_max_source_bytes_is_refused(tmp_path, contract):
    path = csv(tmp_path, "a,b\n1,2\n")
    with pytest.raises(UserError, match=r"t.csv: 8 bytes, above data.max_source_bytes \(4\); raise it in conf/data/"):
        _read_source(path, "data.source", replace(contract, max_source_bytes=4))


def test_numbers_in_a_text_categorical_scoring_column_are_refused():
    rows = pd.DataFrame({"carrier": [1, 2, 1]})
    entry = {"type": "categorical", "declared": True, "null_share": 0.0, "categories": 16}
    with pytest.raises(
        UserError, match=r"in.csv: column 'carrier' must be categorical as in training .*text\), got int64 values such as 1 in 3"
    ):
        _typed_column(rows, "carrier", entry, "in.csv", "''")
    # Numbers as levels in training (numeric_levels in data/schema.yaml): read as their text, as training did.
    assert numeric_levels(pd.Series([3, 5, 3])) == "all" and numeric_levels(pd.Series(["UA", "AA"])) is None
    typed = _typed_column(rows, "carrier", {**entry, "numeric_levels": "all"}, "in.csv", "''")
    assert typed.tolist() == ["1", "2", "1"]
