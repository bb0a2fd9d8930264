"""Say what was dropped (issue 14, item 9): prepare's console line counts the source rows without a target, and a
share above data.target.max_missing_share is a warning on stderr and in reports/prepare.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from stages.lib.catalog import PREPARE_SUMMARY
from stages.lib.config import parse_params
from stages.prepare import prepare
from tests.conftest import run_module
from tests.test_target import loans, loans_params


def project(folder: Path, missing_share: float, max_missing_share: float | None) -> tuple[Path, int, int]:
    """A folder with loans.csv (about `missing_share` of its statuses empty) and params.yaml reading it;
    with the number of rows and of rows without a status, counted by pandas on the file as written."""
    table = loans(rows=400, seed=3)
    empty = np.random.default_rng(4).random(len(table)) < missing_share
    table.loc[empty, "status"] = None
    source = folder / "loans.csv"
    table.to_csv(source, index=False)  # a missing status is written as an empty cell
    (folder / "params.yaml").write_text(yaml.safe_dump(loans_params(source, max_missing_share=max_missing_share)))
    written = pd.read_csv(source)  # pandas' own reading: an empty cell is NaN
    return folder, len(written), int(written["status"].isna().sum())


def dropped(missing: int, rows: int) -> str:
    return f"{missing:,} of {rows:,} source rows ({missing / rows:.1%}) had no 'status' and were dropped"


def test_rows_without_a_target_below_the_share_are_counted_on_the_console_line_without_a_warning(tmp_path):
    folder, rows, missing = project(tmp_path, missing_share=0.1, max_missing_share=0.2)
    assert 0 < missing < 0.2 * rows
    result = run_module("stages.prepare", folder)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("prepare: loans: train ") and line.endswith(f" rows -> data/prepared/; {dropped(missing, rows)}")
    assert "warning" not in result.stderr
    summary = json.loads((folder / PREPARE_SUMMARY).read_text())
    assert summary["warnings"] == []
    assert summary["rows"]["without_target"] == missing and summary["rows"]["used"] == rows - missing


def test_rows_without_a_target_above_the_share_are_a_warning_on_stderr_and_in_the_report(tmp_path):
    folder, rows, missing = project(tmp_path, missing_share=0.35, max_missing_share=0.2)
    assert missing > 0.2 * rows
    result = run_module("stages.prepare", folder)
    assert result.returncode == 0, result.stderr
    warning = (
        f"data.target: {dropped(missing, rows)}, more than data.target.max_missing_share (0.2) allows; check the source and "
        "data.missing_values (a token read as missing hides outcomes), or raise the share in conf/data/"
    )
    assert result.stderr == f"warning: {warning}\n"
    assert result.stdout.rstrip("\n").endswith(f"; {dropped(missing, rows)}")
    summary = json.loads((folder / PREPARE_SUMMARY).read_text())
    assert summary["warnings"] == [warning]
    assert summary["rows"]["without_target"] == missing


def test_a_null_share_never_warns_and_a_complete_target_says_nothing(tmp_path):
    table = loans(rows=400, seed=3)
    table.loc[table.index[::2], "status"] = None  # half the rows
    never = prepare(table, [], parse_params(loans_params(tmp_path / "loans.csv", max_missing_share=None)).data)
    assert never.warnings == [] and never.summary["warnings"] == []
    assert never.dropped == dropped(200, 400)
    strict = prepare(table, [], parse_params(loans_params(tmp_path / "loans.csv", max_missing_share=0.0)).data)
    assert len(strict.warnings) == 1 and strict.warnings[0].startswith(f"data.target: {dropped(200, 400)}, more than")
    complete = prepare(loans(rows=400, seed=3), [], parse_params(loans_params(tmp_path / "loans.csv", max_missing_share=0.0)).data)
    assert complete.dropped is None and complete.warnings == []
