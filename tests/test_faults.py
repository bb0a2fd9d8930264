"""Faults that used to end in a traceback or pass silently (issue 16): each is one line naming the file or key, a
non-zero exit, and nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.config import check_hyperparameters, parse_params
from stages.lib.errors import USER_ERROR_EXIT, UserError
from stages.lib.io import json_writer, write_outputs
from tests.conftest import PROJECT, project_params, run_module


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
