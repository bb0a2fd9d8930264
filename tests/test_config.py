"""Typed config: every key of params.yaml is checked with its full path in the message."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.lib.config import load_params, parse_params
from stages.lib.errors import UserError
from tests.conftest import PROJECT, choice_overrides


def test_the_composed_params_load_into_every_stage_config(params):
    config = parse_params(params)
    data = config.data
    assert [window.name for window in data.splits] == ["train", "test", "reference", "current"]
    assert data.split("train").end <= data.split("test").start
    assert data.split("train").start == pd.Timestamp("2013-01-01", tz="UTC")
    assert config.model.name == "hgb"
    assert config.drift.thresholds.drift_share == 0.5


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("data", "colour"), "blue", "unknown key 'data.colour'"),
        (("data", "target", "greater_than"), "15", "'data.target.greater_than' must be int or float or null, got '15'"),
        (("data", "task"), "ranking", "'data.task' must be one of classification, regression, got 'ranking'"),
        (("data", "types"), {"dest": "text"}, "'data.types.dest' must be one of numeric, categorical, boolean, datetime, identifier"),
        (("data", "on_violation"), "ignore", "'data.on_violation' must be error or warn"),
        (("data", "checks"), {"arr_delay": {"min": 0}}, "'data.checks.arr_delay' checks a column that prepare drops"),
        (("drift", "drift_share"), 1.5, "'drift.drift_share' must be in (0, 1]"),
        (("data", "sample_rows"), True, "'data.sample_rows' must be int or null, got True"),
        (("data", "sample_rows"), 0, "'data.sample_rows' must be a positive number of rows or null"),
        (("data", "splits", "test", "start"), "Sept 2013", "'data.splits.test.start' = 'Sept 2013' is not a date"),
        (("data", "splits", "train", "end"), "2012-12-01", "split 'data.splits.train' starts at 2013-01-01 but ends at 2012-12-01"),
        (("data", "splits", "holdout"), {"start": "2013-01-01", "end": "2013-02-01"}, "unknown key 'data.splits.holdout'"),
        (("train", "seed"), 1.5, "'train.seed' must be int, got 1.5"),
        (("evaluate", "threshold"), 1.5, "'evaluate.threshold' must be between 0 and 1"),
        (("evaluate", "importance_rows"), 0, "'evaluate.importance_rows' must be at least 1"),
        (("features", "exclude"), "temp", "'features.exclude' must be list, got 'temp'"),
        (("features", "datetime", "parts"), ["hour", "week"], "'features.datetime.parts' has 'week'; choose from hour, day_of_week"),
        (("features", "numeric", "impute"), "zero", "'features.numeric.impute' must be one of median, mean, none, got 'zero'"),
        (
            ("features", "numeric", "ratios"),
            [["a"]],
            "'features.numeric.ratios' must be a list of \\[numerator, denominator\\] column pairs",
        ),
        (("features", "history", "windows"), ["7 days", "soon"], "'features.history.windows\\[1\\]' = 'soon' is not a duration"),
        (("features", "history", "windows"), ["1D", "24h"], "'features.history.windows' lists one duration twice"),
        (("features", "history", "keys"), "carrier", "'features.history.keys' must be auto or a list of column lists"),
        (("features", "selection", "max_correlation"), 1.5, "'features.selection.max_correlation' must be in \\(0, 1\\] or null"),
        (("features", "max_features"), 0, "'features.max_features' must be at least 1"),
        (("features", "fit_sample_rows"), 0, "'features.fit_sample_rows' must be at least 1 or null"),
        (("features", "fit_sample_rows"), -5, "'features.fit_sample_rows' must be at least 1 or null"),
        (("data", "target", "known_after"), "-1h", "'data.target.known_after' must be positive"),
        (("train", "cv_folds"), 1, "'train.cv_folds' must be 0 \\(off\\) or at least 2"),
        (("evaluate", "gate", "max_drop"), {"roc_auc": -0.01}, "'evaluate.gate.max_drop.roc_auc' must be 0 or more, got -0.01"),
        (("evaluate", "gate", "minimum"), {"roc_auc": "high"}, "'evaluate.gate.minimum.roc_auc' must be a number, got 'high'"),
    ],
)
def test_bad_param_is_named_with_its_path(params, path, value, message):
    params = copy.deepcopy(params)
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    pattern = message if "\\" in message else message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(UserError, match=f"^params.yaml: {pattern}"):
        parse_params(params)


def test_missing_key_says_where_to_add_it(params):
    del params["train"]["seed"]
    with pytest.raises(UserError, match="^params.yaml: missing key 'train.seed'; add it under conf/train/$"):
        parse_params(params)


def test_missing_params_file_says_how_to_make_it(tmp_path):
    with pytest.raises(UserError, match="not found; run `make params`"):
        load_params(tmp_path / "params.yaml")


def test_an_unknown_key_is_named_with_its_group_and_the_known_keys(params):
    params["features"]["history"]["windwos"] = ["1D"]
    with pytest.raises(UserError) as raised:
        parse_params(params)
    assert str(raised.value) == (
        "params.yaml: unknown key 'features.history.windwos' (from conf/features/ or a -S override); "
        "known keys: enabled, keys, max_key_levels, smoothing, windows"
    )


@pytest.mark.parametrize(
    "path",
    [
        ("data", "join"),
        ("data", "missing_values"),
        ("data", "on_violation"),
        ("data", "sample_rows"),
        ("data", "sample_seed"),
        ("data", "types"),
        ("data", "checks"),
        ("data", "drop", "other"),
        ("data", "source", "package"),
        ("data", "time", "format"),
        ("data", "time", "timezone"),
        ("data", "target", "known_after"),
        ("data", "target", "greater_than"),
        ("data", "target", "positive"),
        ("data", "target", "max_missing_share"),
        ("data", "join", 0, "columns"),
        ("data", "join", 0, "deduplicate"),
        ("drift", "p_value"),
        ("runtime", "threads"),
    ],
)
def test_every_key_is_required_defaults_live_in_conf_only(params, path):
    node = params
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    where = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)[1:]
    with pytest.raises(UserError, match=f"^params.yaml: missing key '{re.escape(where)}'; add it under conf/{path[0]}/$"):
        parse_params(params)


def test_a_missing_section_says_how_to_compose_it(params):
    del params["runtime"]
    with pytest.raises(UserError, match=r"^params.yaml: missing section 'runtime'; run `make params`"):
        parse_params(params)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("drift", "psi_bins"), True, "'drift.psi_bins' must be int, got True"),
        (("evaluate", "threshold"), True, "'evaluate.threshold' must be int or float, got True"),
        (("features", "history", "smoothing"), -1, "'features.history.smoothing' must be 0 or more, got -1"),
        (("features", "categorical", "max_onehot"), -1, "'features.categorical.max_onehot' must be at least 0, got -1"),
        (("data", "time", "format"), "dd/mm/yyyy", "'data.time.format' must be one of iso8601, year, epoch_s, epoch_ms or a strptime"),
        (("data", "checks", "distance", "mn"), 0, "unknown key 'data.checks.distance.mn' \\(from conf/data/ or a -S override\\)"),
        (("data", "task"), "regression", "'data.target.greater_than' makes a binary target; set it to null for regression"),
        (("runtime", "threads"), "many", "'runtime.threads' must be auto or a whole number of at least 1, got 'many'"),
    ],
)
def test_more_rules_name_the_key(params, path, value, message):
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(UserError, match=f"^params.yaml: {message}"):
        parse_params(params)


def test_durations_and_dates_are_parsed_once_and_keep_their_text(params):
    assert parse_params(params).features.history.windows is None  # auto: planned by featurize from the data's step
    params["features"]["history"]["windows"] = ["1D", "7D"]
    config = parse_params(params)
    assert config.data.known_after == pd.Timedelta(hours=13) and config.data.known_after.text == "13h"
    assert config.features.history.windows == (pd.Timedelta(days=1), pd.Timedelta(days=7))
    assert all(isinstance(window, pd.Timedelta) for window in config.features.history.windows)
    assert config.data.split("test").start == pd.Timestamp("2013-09-01", tz="UTC")


@pytest.mark.parametrize(
    "choices",
    [[], ["data=seattle_weather", "model=hgb_regressor"], ["model=logreg", "features=baseline"], ["engine=dask"]],
)
def test_the_typed_params_serialize_back_to_what_conf_composed(choices):
    """The model card and the report write the typed objects: they must read exactly as conf/ wrote them."""
    composed = yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), *choices]))
    dumped = parse_params(composed).model_dump(mode="json")
    assert dumped == composed
    assert dumped["data"]["target"]["known_after"] == composed["data"]["target"]["known_after"]  # the text, not 13:00:00


def test_the_estimator_table_is_what_the_installed_scikit_learn_gives():
    """stages/lib/config/estimators.py (read when checking params, instead of importing scikit-learn) must match the
    classes themselves: regenerate it with `python -m commands.estimators` after changing the scikit-learn pin."""
    from commands.estimators import TABLE_FILE, table_text

    assert TABLE_FILE.read_text(encoding="utf-8") == table_text(), "run `python -m commands.estimators`"


def test_checking_params_does_not_import_scikit_learn_and_another_version_falls_back_to_the_class(monkeypatch):
    code = (
        "import sys; from stages.lib.config import parse_params; from tests.conftest import project_params;"
        "config = parse_params(project_params()); print(config.model.task, 'sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["classification", "False"], result.stderr
    from stages.lib.config import model

    target = "sklearn.ensemble.HistGradientBoostingClassifier"
    from sklearn.ensemble import HistGradientBoostingClassifier

    expected = ("classification", tuple(sorted(HistGradientBoostingClassifier._get_param_names())))  # from the class itself
    assert model.estimator_facts(target) == expected
    monkeypatch.setattr(model, "SKLEARN_VERSION", "0.0")  # a table from another version is never read
    monkeypatch.setattr(model, "ESTIMATORS", {target: ("regression", ("nothing",))})
    assert model.estimator_facts(target) == expected
