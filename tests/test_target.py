"""Targets beyond "a number over a threshold" (issue 14, item 4): a true/false, 0/1 or text column with a positive
label, multi-class refused with the column's classes; one rule for prepare, add-labels and scoring's outcomes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from commands.add_labels import outcomes_of
from commands.compose import compose, validate
from stages.lib.catalog import FeatureSpec
from stages.lib.config import DataContract, Params, parse_params
from stages.lib.config.data import Target
from stages.lib.errors import UserError
from stages.lib.io import read_table
from stages.lib.scoring import Artifacts, outcome_events
from stages.lib.target import target_values
from stages.prepare import prepare
from tests.conftest import PROJECT, choice_overrides, own_contract, project_params

STATUSES = ("Fully Paid", "Charged Off", "Current")


def rule(greater_than=None, positive=None) -> Target:
    return Target.model_validate(
        {"name": "y", "column": "status", "greater_than": greater_than, "positive": positive, "known_after": None, "max_missing_share": 0.2}
    )


def csv_column(tmp_path, text: str) -> pd.Series:
    """One column read as prepare reads the source (exactly "" and "NA" are missing), without its missing cells."""
    (tmp_path / "table.csv").write_text("status\n" + text)
    return read_table(tmp_path / "table.csv", "", ["", "NA"])["status"].dropna()


# -- the rule, on columns as a CSV or Parquet file gives them


@pytest.mark.parametrize(
    ("text", "positive", "expected"),
    [
        ("True\nFalse\nTrue\n", True, [1, 0, 1]),  # a boolean column (pandas reads it as bool)
        ("True\nNA\nFalse\nTrue\n", True, [1, 0, 1]),  # ... with a missing cell: object, Python bools
        ("True\nNA\nFalse\n", 1, [1, 0]),  # true == 1
        ("1\n0\n0\n1\n", 1, [1, 0, 0, 1]),  # 0/1 integers
        ("1\nNA\n0\n1\n", 1, [1, 0, 1]),  # ... read as floats (1.0) because of a missing cell
        ("1\nNA\n0\n1\n", True, [1, 0, 1]),  # 1.0 == true
        ("1\n0\n0\n", 0, [0, 1, 1]),  # the positive class may be written 0
        ("yes\nno\nyes\n", "yes", [1, 0, 1]),
        ("Fully Paid\nCharged Off\nCurrent\nCharged Off\n", "Charged Off", [0, 1, 0, 1]),  # one class against the rest
    ],
)
def test_a_positive_label_compares_by_value_or_exactly_as_text(tmp_path, text, positive, expected):
    values = csv_column(tmp_path, text)
    target = target_values(values, rule(positive=positive), "table.csv", whole_column=True)
    assert target.dtype == np.int8
    assert target.tolist() == expected


def test_the_threshold_and_regression_rules_are_as_before():
    delays = pd.Series([-5.0, 15.0, 15.5, 120.0])
    assert target_values(delays, rule(greater_than=15), "f.csv").tolist() == [0, 0, 1, 1]
    regression = target_values(delays, rule(), "f.csv")
    assert regression.dtype == np.float64 and regression.tolist() == [-5.0, 15.0, 15.5, 120.0]


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        (
            "yes\nno\nyes\n",
            rule(positive="Yes"),
            "table.csv: column 'status' never holds 'Yes' (data.target.positive); its values: 'yes', 'no'; "
            "set positive to one of them exactly as written (case and spaces count)",
        ),
        (
            "0\n1\n2\n1\n",
            rule(positive=1),
            "table.csv: column 'status' holds 3 distinct values (1, 0, 2), but a true/false or number data.target.positive "
            "needs a column of two values; for a threshold use data.target.greater_than instead (in conf/data/)",
        ),
        (
            "yes\nno\nno\n",
            rule(positive=True),  # `positive: yes` unquoted: YAML 1.1 (OmegaConf) reads it as true
            "table.csv: data.target.positive is true (a boolean: YAML reads an unquoted yes or on as true) but column 'status' "
            "holds text ('no', 'yes'); write the label as the column does, quoted: positive: 'yes'",
        ),
        (
            "1\n0\n0\n",
            rule(positive="1"),
            "table.csv: data.target.positive is '1' (a text) but column 'status' holds numbers (0, 1); write the label unquoted, "
            "e.g. positive: 1",
        ),
        (
            "a\nb\nc\nd\na\n",
            rule(),
            "table.csv: column 'status' has 4 classes ('a', 'b', 'c', 'd'): multi-class targets are not supported; declare "
            "data.target.positive to predict one class against the rest (with task: classification, in conf/data/)",
        ),
        (
            "a\nb\nc\nd\na\n",
            rule(greater_than=1),
            "table.csv: column 'status' has 4 classes ('a', 'b', 'c', 'd'): multi-class targets are not supported; declare "
            "data.target.positive to predict one class against the rest (instead of data.target.greater_than, in conf/data/)",
        ),
        (
            "True\nFalse\n",
            rule(greater_than=0),
            "table.csv: column 'status' holds true/false values: declare data.target.positive: true "
            "(instead of data.target.greater_than, in conf/data/)",
        ),
    ],
    ids=[
        "case-differs",
        "three-values",
        "yes-read-as-true",
        "quoted-number",
        "multi-class",
        "classes-with-threshold",
        "bools-with-threshold",
    ],
)
def test_a_target_the_rule_cannot_make_stops_with_one_line(tmp_path, text, target, message):
    with pytest.raises(UserError) as error:
        target_values(csv_column(tmp_path, text), target, "table.csv", whole_column=True)
    assert str(error.value) == message


def test_a_batch_of_outcomes_may_hold_no_positive_but_a_whole_table_must():
    """In prepare a label that never occurs is a typo; a batch of later outcomes can be all negatives."""
    negatives = pd.Series(["no", "no"])
    assert target_values(negatives, rule(positive="yes"), "outcomes.csv").tolist() == [0, 0]
    with pytest.raises(UserError, match="never holds 'yes'"):
        target_values(negatives, rule(positive="yes"), "table.csv", whole_column=True)


# -- the contract: one line at compose naming the key


def composed_error(*overrides: str) -> str:
    with pytest.raises(UserError) as error:
        validate(compose(PROJECT / "conf", [*choice_overrides(), *overrides]), PROJECT / "conf")
    return str(error.value)


def test_classification_needs_exactly_one_rule_and_regression_none():
    where = f"params.yaml composed from {PROJECT / 'conf'}/: "
    assert composed_error("data.target.greater_than=null") == (
        where + "'data.target.greater_than' (target = column > value) or 'data.target.positive' (target = column == label, "
        'e.g. true, 1 or "yes") is needed for classification; set one of them'
    )
    assert composed_error("data.target.positive=1") == (
        where + "'data.target.greater_than' and 'data.target.positive' are both set; keep one: greater_than for a threshold on a "
        "number, positive for a label"
    )
    assert composed_error("data=seattle_weather", "model=hgb_regressor", "data.target.positive=true") == (
        where + "'data.target.positive' makes a binary target; set it to null for regression"
    )
    assert composed_error("data.target.greater_than=null", "data.target.positive=''").startswith(
        where + "'data.target.positive' must be a label as the column writes it, got an empty text"
    )
    assert composed_error("data.target.max_missing_share=1.5") == (
        where + "'data.target.max_missing_share' must be a share from 0 to 1, or null, got 1.5"
    )


# -- prepare, add-labels and scoring use the one rule


def loans(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Daily loans over 2016-2017 with a text status (three classes), a shop and an amount."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "day": pd.date_range("2016-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "shop": rng.choice(["north", "south", "east"], rows),
            "amount": rng.uniform(100, 5000, rows).round(2),
            "status": rng.choice(STATUSES, rows, p=[0.6, 0.25, 0.15]),
        }
    )


def loans_params(path, **target) -> dict:
    """params.yaml for a loans table at `path`: classification, target 'charged_off' from 'status' unless `target` says."""
    return own_contract(
        project_params(),
        name="loans",
        path=path,
        task="classification",
        target={
            "name": "charged_off",
            "column": "status",
            "positive": "Charged Off",
            "known_after": "30D",
            "max_missing_share": 0.2,
            **target,
        },
        time={"column": "day", "format": "iso8601"},
        missing_values=["", "NA"],
        splits={
            "train": {"start": "2016-01-01", "end": "2016-10-01"},
            "test": {"start": "2016-10-01", "end": "2017-02-05"},
            "reference": {"start": "2016-01-01", "end": "2016-04-01"},
            "current": {"start": "2016-10-01", "end": "2017-02-05"},
        },
    )


def loans_contract(path, **target) -> DataContract:
    return parse_params(loans_params(path, **target)).data


def test_prepare_labels_one_class_against_the_rest_and_records_the_rule(tmp_path):
    table = loans()
    prepared = prepare(table, [], loans_contract(tmp_path / "loans.csv"))
    rows = pd.concat([prepared.splits["train"], prepared.splits["test"]], ignore_index=True)
    assert len(rows) == len(table)  # one row a day, every day inside train or test
    assert rows["charged_off"].dtype == np.int8
    assert rows["charged_off"].tolist() == [int(status == "Charged Off") for status in table["status"]]
    assert "status" not in rows.columns  # the source column is the outcome itself
    assert prepared.schema["target_rule"] == "charged_off = 1 where status == 'Charged Off', else 0 (one class against the rest)"
    assert prepared.summary["positive_share"] == round(float((table["status"] == "Charged Off").mean()), 6)


def test_prepare_refuses_a_text_target_without_a_positive_label(tmp_path):
    params = loans_params(tmp_path / "loans.csv", positive=None)
    params["data"]["task"] = "regression"
    params["model"] = yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), "model=hgb_regressor"]))["model"]
    with pytest.raises(UserError) as error:
        prepare(loans(), [], parse_params(params).data)
    assert str(error.value) == (
        "loans.csv: column 'status' has 3 classes ('Fully Paid', 'Charged Off', 'Current'): multi-class targets are not "
        "supported; declare data.target.positive to predict one class against the rest (with task: classification, in conf/data/)"
    )


def test_add_labels_turns_the_source_column_into_the_target_with_the_same_rule(tmp_path):
    params: Params = parse_params(loans_params(tmp_path / "loans.csv"))
    given = pd.DataFrame({params.monitor.id_column: ["a", "b", "c"], "status": ["Current", "Charged Off", "Fully Paid"]})
    outcomes = outcomes_of(given, params, "outcomes.csv")
    assert outcomes["charged_off"].tolist() == [0, 1, 0] and outcomes["charged_off"].dtype == np.int8
    # A contract whose rule is a threshold: the same text outcomes are classes, refused by the same rule as in prepare.
    threshold = parse_params(loans_params(tmp_path / "loans.csv", positive=None, greater_than=0))
    with pytest.raises(UserError, match=re.escape("outcomes.csv: column 'status' has 3 classes ('Charged Off', 'Current', 'Fully Paid')")):
        outcomes_of(given, threshold, "outcomes.csv")


def test_scoring_outcomes_use_the_scored_versions_rule():
    """--outcomes given as the source column: the version's own positive label makes the target, text compared exactly."""
    spec = FeatureSpec.plain(["amount"], ["shop"], target="charged_off", time="day", history={"keys": [["shop"]]})
    schema = {"columns": {"shop": {"type": "categorical"}}, "time_format": "iso8601", "missing_values": ["", "NA"]}
    target = rule(positive="Charged Off").model_copy(update={"name": "charged_off"})
    artifacts = Artifacts(schema=schema, spec=spec, transformer=None, model=None, events=pd.DataFrame(), target=target)
    given = pd.DataFrame(
        {"day": ["2017-03-01", "2017-03-02", "2017-03-03"], "shop": ["north", "east", "north"], "status": ["Charged Off", None, "Current"]}
    )
    events = outcome_events(given, artifacts, "outcomes.csv")
    assert events["charged_off"].tolist() == [1, 0] and events["charged_off"].dtype == np.int8  # the row without one is left out
    assert events["day"].tolist() == [pd.Timestamp("2017-03-01", tz="UTC"), pd.Timestamp("2017-03-03", tz="UTC")]
