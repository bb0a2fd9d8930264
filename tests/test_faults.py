"""Faults that used to end in a traceback or pass silently (issue 16): each is one line naming the file or key, a
non-zero exit, and nothing half-written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from commands.compose import compose, validate
from stages.lib.config import check_hyperparameters, parse_params
from stages.lib.errors import USER_ERROR_EXIT, UserError
from stages.lib.io import json_writer, read_table, write_outputs
from stages.lib.prepare_steps import _chunks
from stages.sources import fingerprint
from tests.conftest import PROJECT, choice_overrides, project_params, run_module


@pytest.mark.parametrize(
    ("model", "key", "value", "expected"),
    [
        ("hgb", "max_iter", -5, "an int in the range [1, inf)"),
        ("hgb", "learning_rate", "0.1", "a float in the range (0.0, inf)"),
        ("hgb", "categorical_features", "fromdtype", "an array-like, a str among {'from_dtype'} or None"),
        ("logreg", "C", 0, "a float in the range (0.0, inf]"),
    ],
)
def test_a_hyperparameter_is_checked_against_scikit_learns_own_constraint(model, key, value, expected):
    params = project_params()
    if model == "logreg":
        params["model"] = {"name": "logreg", "_target_": "sklearn.linear_model.LogisticRegression", "preprocessing": "impute_scale_onehot"}
    params["model"][key] = value
    config = parse_params(params).model  # the type is not the params models' concern: they pass it
    with pytest.raises(UserError) as raised:
        check_hyperparameters(config)
    assert str(raised.value).startswith(f"params.yaml: 'model.{key}' = {value!r} is not a valid value for ")
    assert f"it must be {expected} (scikit-learn's own constraint); fix conf/model/{model}.yaml or the -S override" in str(raised.value)
    del params["model"][key]
    check_hyperparameters(parse_params(params).model)  # the file's own value passes


def test_train_refuses_a_wrong_hyperparameter_at_start_naming_key_value_and_constraint(tmp_path):
    """`dvc exp run -S model.max_iter=ten` composes without `make params`: train checks before reading any data."""
    params = project_params()
    params["model"]["max_iter"] = "ten"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_module("stages.train", tmp_path)
    assert result.returncode == USER_ERROR_EXIT
    assert result.stderr.startswith(
        "error: params.yaml: 'model.max_iter' = 'ten' is not a valid value for HistGradientBoostingClassifier: "
        "it must be an int in the range [1, inf)"
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]


def test_a_disk_filling_up_mid_write_is_one_line_and_leaves_the_previous_outputs(tmp_path):
    """The kernel's own ENOSPC: the writer's first bytes reach its temporary file, the rest go to /dev/full (a device
    that is always full), as when the disk fills up in the middle of an output."""
    previous = {tmp_path / "reports/summary.json": '{"old": 1}\n', tmp_path / "data/table.bin": "old table"}
    for path, text in previous.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def fills_the_disk(path: Path) -> None:
        path.write_bytes(b"the first block")
        with open("/dev/full", "wb") as device:
            device.write(b"\0" * 65536)

    with pytest.raises(UserError) as raised:
        write_outputs({tmp_path / "reports/summary.json": json_writer({"new": 2}), tmp_path / "data/table.bin": fills_the_disk})
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'data/table.bin'}: cannot write it (No space left on device); the disk holding ")
    assert "\n" not in message and "previous outputs are as they were" in message
    assert {path: path.read_text() for path in previous} == previous  # neither output replaced, not even the one written
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == ["summary.json", "table.bin"]  # no temporary


WRITE_OVER_A_SIZE_LIMIT = """
import resource, signal
import numpy as np, pandas as pd
from stages.lib.errors import run_stage
from stages.lib.io import parquet_writer, write_outputs
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=100_000)})  # about 800 KB of Parquet
run_stage(lambda: write_outputs({"data/table.parquet": parquet_writer(frame)}))
"""


def test_a_real_parquet_write_cut_short_by_a_file_size_limit_exits_2_with_one_line(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/table.parquet").write_bytes(b"the previous table")
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run(
        [sys.executable, "-c", WRITE_OVER_A_SIZE_LIMIT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == USER_ERROR_EXIT, result.stderr
    assert result.stderr.startswith("error: data/table.parquet: cannot write it (") and "File too large" in result.stderr
    assert "ulimit -f" in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "data/table.parquet").read_bytes() == b"the previous table"
    assert [path.name for path in (tmp_path / "data").iterdir()] == ["table.parquet"]


def dated(rows: int = 1461) -> pd.DataFrame:
    """Daily rows as in seattle-weather (2012-2015): the dates dictionary-encoded by Parquet, 11-bit indices."""
    return pd.DataFrame({"date": pd.date_range("2012-01-01", periods=rows, freq="D"), "temp": np.arange(rows) / 10})


def zero_bytes_in_the_date_pages(path: Path, count: int = 200) -> None:
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(path).metadata.row_group(0).column(0).data_page_offset + 100
    data[start : start + count] = bytes(count)
    path.write_bytes(bytes(data))


def test_zeroed_bytes_in_a_parquet_source_with_checksums_are_refused_naming_file_and_column(tmp_path):
    path = tmp_path / "weather.parquet"
    dated().to_parquet(path, index=False, write_page_checksum=True)
    assert read_table(path, "", ())["date"].equals(dated()["date"])  # intact: read as written
    zero_bytes_in_the_date_pages(path)
    with pytest.raises(UserError) as raised:
        read_table(path, "", ())
    assert str(raised.value).startswith(f"{path}: row group 0, column 'date': cannot be read intact (")
    assert "CRC" in str(raised.value) and "\n" not in str(raised.value)


def test_prepare_reads_a_parquet_source_through_the_same_checks(tmp_path):
    """prepare's own reader (a source's needed columns), not only read_table: the damaged pages are refused there too."""
    path = tmp_path / "weather.parquet"
    dated().to_parquet(path, index=False, write_page_checksum=True)
    (intact,) = _chunks(path, (), ["date"], "weather.parquet")
    pd.testing.assert_frame_equal(intact, pd.read_parquet(path, columns=["date"]))
    zero_bytes_in_the_date_pages(path)
    with pytest.raises(UserError, match=rf"^{path}: row group 0, column 'date': cannot be read intact \(.*CRC"):
        _chunks(path, (), ["date"], "weather.parquet")


def test_a_parquet_source_without_checksums_is_refused_as_unverifiable(tmp_path):
    path = tmp_path / "weather.parquet"
    dated().to_parquet(path, index=False)  # pandas' default: no page checksums
    zero_bytes_in_the_date_pages(path)
    silently = read_table(path, "", ())["date"]  # what reading it gives: dates turned into the first one, no error
    assert (silently != dated()["date"]).sum() > 100 and set(silently[silently != dated()["date"]]) == {pd.Timestamp("2012-01-01")}
    params = project_params()
    params["data"].update(source={"package": None, "path": str(path)}, join=[])
    with pytest.raises(UserError, match=rf"^{path} \(data.source\): a Parquet file without page checksums, .*write_page_checksum=True"):
        fingerprint(parse_params(params).data)  # the sources stage, before prepare reads anything


def test_values_that_disagree_with_the_footers_statistics_are_refused(tmp_path):
    """Pages that pass their checksums under a footer written for other values (same layout, so the bytes line up)."""
    options = {"index": False, "compression": None, "write_page_checksum": True, "column_encoding": "PLAIN", "use_dictionary": False}
    pages, footer = tmp_path / "pages.parquet", tmp_path / "footer.parquet"
    pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0]}).to_parquet(pages, **options)
    head = pages.read_bytes()
    for high in (9.0, 8.0, 7.0, 6.0, 5.0):  # the page's CRC is a varint: find a table whose page header is as long
        pd.DataFrame({"x": [1.0, 2.0, np.nan, high]}).to_parquet(footer, **options)
        tail = footer.read_bytes()
        if len(tail) == len(head):
            break
    length = int.from_bytes(tail[-8:-4], "little") + 8
    assert len(head) == len(tail) and head[-length:] != tail[-length:]
    spliced = tmp_path / "spliced.parquet"
    spliced.write_bytes(head[:-length] + tail[-length:])
    assert pd.read_parquet(spliced)["x"].max() == 3.0  # pyarrow alone reads it without a word
    with pytest.raises(
        UserError, match=rf"^{spliced}: row group 0, column 'x': values from 1.0 to 3.0 where the footer records 1.0 to {high}"
    ):
        read_table(spliced, "", ())
    assert read_table(pages, "", ())["x"].max() == 3.0  # NaN and missing cells agree with the statistics


def test_a_reference_window_after_the_current_window_is_refused_at_compose_and_at_stage_start():
    swapped = {"reference": {"start": "2013-09-01", "end": "2013-11-01"}, "current": {"start": "2013-01-01", "end": "2013-05-01"}}
    overrides = [f"data.splits.{name}.{end}={day}" for name, window in swapped.items() for end, day in window.items()]
    expected = (
        "'data.splits.reference' (2013-09-01 to 2013-11-01) must end by the time 'data.splits.current' starts (2013-01-01): "
        "the drift reference comes before the current window; fix data.splits in conf/data/"
    )
    text = compose(PROJECT / "conf", [*choice_overrides(), *overrides])
    with pytest.raises(UserError, match=f"^params.yaml composed from {PROJECT / 'conf'}/: {re.escape(expected)}$"):
        validate(text, PROJECT / "conf")
    params = project_params()
    params["data"]["splits"].update(swapped)
    with pytest.raises(UserError, match=f"^params.yaml: {re.escape(expected)}$"):
        parse_params(params)  # what load_params does at every stage's start (dvc exp run -S composes without make params)
    params["data"]["splits"]["reference"] = {"start": "2013-05-01", "end": "2013-09-01"}  # overlaps the current window's end
    params["data"]["splits"]["current"] = {"start": "2013-08-01", "end": "2013-11-01"}
    with pytest.raises(UserError, match="must end by the time 'data.splits.current' starts \\(2013-08-01\\)"):
        parse_params(params)
    params["data"]["splits"]["current"] = {"start": "2013-09-01", "end": "2013-11-01"}  # right after it: allowed
    parse_params(params)
