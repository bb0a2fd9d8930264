"""Reading sources, continued (issue 16 items 1 and 5): infinite numbers in an undeclared column stop prepare with
the column named (not featurize, blaming conf/features/), and in scoring input; the dask engine checks a CSV's shape
and data.max_source_bytes as the pandas engine does; prepare's peak memory stays near the prepared rows."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages import prepare as stage
from stages.lib.config import Join
from stages.lib.errors import UserError
from stages.lib.prepare_partitioned import prepare_partitioned
from stages.lib.prepare_steps import _merge
from stages.lib.scoring import _typed_column
from tests.conftest import make_flights, make_weather, replace, run_module
from tests.test_prepare import project_folder
from tests.test_prepare_dask import contract_for, pandas_engine


def test_infinite_numbers_in_an_undeclared_column_stop_prepare_naming_it(tmp_path):
    """inf, -inf and Infinity (pandas reads all three as infinite floats) in a column the contract never mentions."""
    flights = make_flights()
    fuel = pd.Series(np.arange(len(flights)) % 13 + 0.5).astype(str)
    fuel[[3, 40, 77]] = ["inf", "-inf", "Infinity"]
    folder = project_folder(tmp_path, flights.assign(fuel=fuel), make_weather(flights))
    result = run_module("stages.prepare", folder)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: flights.csv: column 'fuel' holds infinite values (inf) in 3 row(s); ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (folder / "data").exists()


def test_infinite_numbers_in_a_numeric_scoring_column_are_refused():
    rows = pd.DataFrame({"temp": ["1.5", "-Infinity", "inf"]})
    entry = {"type": "numeric", "declared": False, "null_share": 0.0}
    with pytest.raises(UserError, match=r"^in.csv: column 'temp' holds infinite values \(-inf\) in 2 row\(s\); fix those rows"):
        _typed_column(rows, "temp", entry, "in.csv", "''")


def refusal(run, *args) -> str:
    with pytest.raises(UserError) as raised:
        run(*args)
    return str(raised.value)


def test_the_dask_engine_checks_a_csv_shape_as_the_pandas_engine(tmp_path):
    """Before: the dask engine read a row with too few fields, with missing cells, from its pieces."""
    contract = contract_for(tmp_path, "csv")
    with open(contract.source.path, "a") as stream:
        stream.write("2013,1,1,517\n")
    expected = "flights.csv: 1 row(s) do not have the header's 19 fields (line 302 has 4); fix those rows"
    assert refusal(pandas_engine, contract).startswith(expected)
    assert refusal(prepare_partitioned, contract, tmp_path / "staging").startswith(expected)


def test_the_dask_engine_refuses_a_source_above_max_source_bytes(tmp_path):
    contract = replace(contract_for(tmp_path, "csv"), max_source_bytes=100)
    size = Path(contract.source.path).stat().st_size
    assert refusal(prepare_partitioned, contract, tmp_path / "staging").endswith(
        f"flights.csv: {size:,} bytes, above data.max_source_bytes (100); raise it in conf/data/ to read a larger source on the dask engine"
    )


def test_prepare_frees_the_source_table_before_splitting_and_splits_are_slices(flights, weather, contract, monkeypatch):
    """Peak memory (issue 16 item 5): the source table handed to prepare is gone once its labelled rows are taken,
    and each split shares the prepared rows' memory instead of copying them (splits are time windows of sorted rows)."""
    table = flights.copy()
    source = weakref.ref(table)
    seen: dict[str, object] = {}
    split = stage._split

    def recording(prepared, contract):
        seen["source alive"], seen["rows"] = source() is not None, prepared
        return split(prepared, contract)

    monkeypatch.setattr(stage, "_split", recording)
    holder = [table]
    del table
    splits = stage.prepare(holder.pop(), [weather], contract).splits
    assert seen["source alive"] is False
    for name, rows in splits.items():
        assert np.shares_memory(rows["distance"].to_numpy(), seen["rows"]["distance"].to_numpy()), name


def test_a_join_of_the_keys_alone_equals_the_whole_merge():
    """`_merge` merges only the keys and puts the new columns beside the table: the frame pandas' whole merge gives
    (unmatched rows, integers made floats by a missing match, the table's index kept)."""
    table = pd.DataFrame({"k": ["a", "b", "c", "a"], "h": [1, 1, 2, 1], "x": [1, 2, 3, 4]}, index=[13, 10, 12, 11])
    table.attrs["unread_columns"] = ["year"]  # pandas' merge keeps attrs only when both tables hold the same
    related = pd.DataFrame({"k": ["a", "b", "c"], "h": [1, 1, 1], "n": [5, 6, 7], "s": ["p", "q", "r"], "b": [True, False, True]})
    join = Join.model_validate({"source": {"package": None, "path": "r.csv"}, "keys": ["k", "h"], "columns": None, "deduplicate": False})
    joined, unmatched = _merge(table, related, join)
    whole = table.merge(related, on=["k", "h"], how="left").set_axis(table.index)
    pd.testing.assert_frame_equal(joined, whole)
    assert unmatched == 1 and joined["n"].dtype == np.float64 and joined.attrs == whole.attrs == {}
    matched, _ = _merge(table.iloc[[0, 1]], related, join)  # every row matched: integers stay integers
    assert matched["n"].dtype == table.iloc[[0, 1]].merge(related, on=["k", "h"], how="left")["n"].dtype == np.int64
