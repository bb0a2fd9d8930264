"""End to end, tables this project has never seen, by data contract alone: a month-stamped loan book (German calendar,
boolean target, undeclared leaks, a row number, a decimal-year copy of the time) and a yearly survey (a yes/no answer
that 40% did not give, an occupation code declared categorical). Real `dvc repro` in a project copy; every expected
value is counted here from the generated tables, not read from the pipeline's own code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.lib.catalog import DRIFT_DETAILS, FEATURE_MANIFEST, FEATURES_DIR, METRICS_FILE, PREPARED_DIR, SCHEMA_FILE
from tests import own_tables
from tests.e2e_support import ENV, new_project, run, stages_run

pytestmark = pytest.mark.slow

ALL_STAGES = {"prepare", "featurize", "train", "evaluate", "drift-check", "production-store", "monitor"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    repo = new_project(tmp_path_factory.mktemp("own") / "project")
    own_tables.write(repo)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "two tables of our own, with their contracts")
    return repo


def repro(repo: Path, data: str) -> subprocess.CompletedProcess:
    """`data=<name>` composed exactly as `dvc exp run -S` would, then `dvc repro`: no other change."""
    run(repo, sys.executable, "-m", "commands.compose", f"data={data}")
    result = subprocess.run(["dvc", "repro"], cwd=repo, env=ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def test_a_month_stamped_loan_book_runs_by_contract_alone_and_its_leaks_are_reported(project):
    result = repro(project, "loans")
    assert stages_run(result.stdout) <= ALL_STAGES and {"prepare", "featurize", "train", "evaluate", "drift-check"} <= stages_run(
        result.stdout
    )
    table = own_tables.loans()
    issued = pd.to_datetime(table["issue_d"], format="%b-%Y", utc=True)

    # Rows without an outcome yet (2018) are dropped, and prepare says how many on its console line.
    unlabelled = int(table["defaulted"].isna().sum())
    assert f"{unlabelled:,} of {len(table):,} source rows ({unlabelled / len(table):.1%}) had no 'defaulted'" in result.stdout

    # The boolean target, one class against the rest: the train share equals the table's own.
    train = pd.read_parquet(project / PREPARED_DIR / "train.parquet")
    in_train = (issued >= "2014-01-01") & (issued < "2017-01-01")
    assert len(train) == int(in_train.sum())
    assert train["defaulted"].mean() == pytest.approx(table.loc[in_train, "defaulted"].astype(float).mean(), abs=1e-12)

    # What the pipeline caught by itself, on stderr and in the manifest.
    manifest = yaml.safe_load((project / FEATURE_MANIFEST).read_text())
    findings = {(finding["column"], finding["finding"]) for finding in manifest["screen"]["findings"]}
    assert {("recoveries", "leak"), ("recoveries", "post_outcome"), ("total_pymnt", "post_outcome")} <= findings
    assert {("loan_id", "identifier"), ("issue_year", "time_proxy")} <= findings
    assert not {column for column, _ in findings} & {"grade", "dti", "annual_inc", "loan_amnt", "purpose"}  # honest inputs
    for column in ("recoveries", "total_pymnt", "loan_id", "issue_year"):
        assert f"warning: column '{column}'" in result.stderr
    assert "loan_id" not in manifest["columns"] and "issue_year" not in manifest["columns"]

    # Monthly rows: the step is a month, windows are months, and no calendar part encodes the year.
    schema = yaml.safe_load((project / SCHEMA_FILE).read_text())
    assert schema["time_step"] == "1 month" and schema["holidays"] == {"country": "DE", "subdivision": None}
    assert manifest["history_windows"]["windows"] == ["1 month", "12 months"]
    assert not any(name.startswith(("calendar_day_of_week", "calendar_hour", "calendar_holiday")) for name in manifest["columns"])
    assert "day 1 of its month" in manifest["not_built"]["calendar_day_of_week"]

    # History by calendar months: a test row of month m sees the outcomes of month m - 12 (known 12 months later) in
    # its one-month window, and of months m - 23 .. m - 12 in its twelve-month window; counted here from the table.
    features = pd.read_parquet(project / FEATURES_DIR / "test.parquet")
    test = pd.read_parquet(project / PREPARED_DIR / "test.parquet")
    labelled = issued[table["defaulted"].notna()]
    for moment in sorted(test["issue_d"].unique())[:3]:
        rows = features[(test["issue_d"] == moment).to_numpy()]
        seen = labelled[(labelled <= moment - pd.DateOffset(months=12)) & (labelled > moment - pd.DateOffset(months=13))]
        assert (rows["history_all_1mo_defaulted_rows"] == len(seen)).all() and len(seen) > 0
        year = labelled[(labelled <= moment - pd.DateOffset(months=12)) & (labelled > moment - pd.DateOffset(months=24))]
        assert (rows["history_all_1y_defaulted_rows"] == len(year)).all()


def test_a_yearly_survey_with_missing_answers_runs_by_contract_alone(project):
    result = repro(project, "survey")
    assert {"prepare", "featurize", "train", "evaluate", "drift-check"} <= stages_run(result.stdout)
    table = own_tables.survey()
    unanswered = int(table["happy"].isna().sum())
    share = unanswered / len(table)
    assert share > 0.3
    assert f"{unanswered:,} of {len(table):,} source rows ({share:.1%}) had no 'happy'" in result.stdout
    assert "warning: data.target:" in result.stderr and "0.3" in result.stderr  # above the contract's max_missing_share

    schema = yaml.safe_load((project / SCHEMA_FILE).read_text())
    assert schema["time_step"] == "1 year" and schema["columns"]["occupation"]["type"] == "categorical"
    manifest = yaml.safe_load((project / FEATURE_MANIFEST).read_text())
    assert manifest["history_windows"]["windows"] == ["1 year", "5 years"]
    assert not any(name.startswith("calendar_") for name in manifest["columns"])  # all on 1 January: no calendar part
    assert manifest["screen"]["findings"] == []

    # Yearly history is not all zero on test: a 2006 row sees the answers given in 2005 (known a year later).
    features = pd.read_parquet(project / FEATURES_DIR / "test.parquet")
    test = pd.read_parquet(project / PREPARED_DIR / "test.parquet")
    first = test["year"].min()
    answered = table[table["happy"].notna()]
    expected = int((answered["year"] == first.year - 1).sum())
    assert expected > 0 and (features[(test["year"] == first).to_numpy()]["history_all_1y_happy_rows"] == expected).all()

    # The occupation code is compared as categories by the drift check, as declared.
    drift = json.loads((project / DRIFT_DETAILS).read_text())
    assert drift["columns"]["occupation"]["kind"] == "categorical"
    metrics = json.loads((project / METRICS_FILE).read_text())
    assert metrics["roc_auc"] > 0.6  # the planted signal (region, occupation, income) is found
