"""Faults that used to end in a traceback or pass silently (issue 16): each is one line naming the file or key, a
non-zero exit, and nothing half-written."""

from __future__ import annotations

import pytest
import yaml

from stages.lib.config import check_hyperparameters, parse_params
from stages.lib.errors import USER_ERROR_EXIT, UserError
from tests.conftest import project_params, run_module


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
