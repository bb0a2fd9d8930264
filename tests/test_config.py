"""Typed config: every key of params.yaml is checked with its full path in the message."""

from __future__ import annotations

import copy

import pytest

from stages.lib.config import DriftConfig, EvaluateConfig, FeaturesConfig, ModelConfig, TrainConfig, load_params
from stages.lib.contract import DataContract
from stages.lib.errors import UserError


def test_the_composed_params_load_into_every_stage_config(params):
    data = DataContract.from_params(params)
    assert [window.name for window in data.splits] == ["train", "test", "reference", "current"]
    assert data.split("train").end <= data.split("test").start
    FeaturesConfig.from_params(params)
    assert ModelConfig.from_params(params).name == "hgb"
    TrainConfig.from_params(params)
    EvaluateConfig.from_params(params)
    assert DriftConfig.from_params(params).thresholds.drift_share == 0.5


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
    with pytest.raises(UserError, match=pattern):
        for config in (DataContract, FeaturesConfig, TrainConfig, EvaluateConfig, DriftConfig):
            config.from_params(params)


def test_missing_key_says_where_to_add_it(params):
    del params["train"]["seed"]
    with pytest.raises(UserError, match="missing key 'train.seed'; add it under conf/"):
        TrainConfig.from_params(params)


def test_missing_params_file_says_how_to_make_it(tmp_path):
    with pytest.raises(UserError, match="not found; run `make params`"):
        load_params(tmp_path / "params.yaml")
