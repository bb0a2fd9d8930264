"""The screen before featurize: planted leaks, an integer row number, a copy of the time and a column that only
exists with an outcome are each found (and only they); the out-of-fold scores match an independent computation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import KFold

from stages.featurize import featurize
from stages.lib.catalog import FEATURE_MANIFEST, FEATURES_DIR, PREPARED_DIR, SCHEMA_FILE
from stages.lib.config import parse_params
from stages.lib.contract import IDENTIFIER_MIN_ROWS, infer_type
from stages.lib.errors import UserError
from stages.lib.features.screen import input_scores
from stages.prepare import prepare
from tests.conftest import PROJECT, project_params, run_module

SCREEN = {"on_leak": "warn", "max_auc": 0.95, "max_r2": 0.9, "folds": 5, "bins": 20, "time_proxy": 0.99}
PLANTED = {
    ("settled", "leak"),  # the outcome plus noise
    ("final_balance", "post_outcome"),  # missing exactly where the outcome is
    ("paid_on", "after_time"),  # a date a month after the row's time
    ("row_id", "identifier"),  # 1..N in time order
    ("decimal_year", "time_proxy"),  # the time as a number
}


def loans(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A source table every 6 hours over 2020-2021, every 10th row without an outcome yet."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=rows, freq="6h", tz="UTC")
    honest = rng.normal(0, 1, rows)
    outcome = 0.8 * honest + rng.normal(0, 1, rows)
    unlabelled = np.arange(rows) % 10 == 9
    outcome[unlabelled] = np.nan
    honest[rng.random(rows) < 0.05] = np.nan  # missing values get a bin of their own
    return pd.DataFrame(
        {
            "row_id": np.arange(1, rows + 1),
            "issued": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "decimal_year": times.year + (times.day_of_year - 1 + times.hour / 24) / 366,
            "honest": honest,
            "grade": rng.choice(["A", "B", "C", "D"], rows),
            "term": rng.integers(1, 50, rows),  # integers, not unique
            "joint": rng.integers(0, 2, rows),  # 0/1: boolean
            "opened_on": (times - pd.to_timedelta(rng.integers(100, 900, rows), unit="D")).strftime("%Y-%m-%d"),
            "settled": np.where(unlabelled, rng.normal(0, 1, rows), outcome + rng.normal(0, 0.1, rows)),  # present on every row
            "final_balance": np.where(unlabelled, np.nan, rng.normal(100, 10, rows)),
            "paid_on": (times + pd.Timedelta(days=30)).strftime("%Y-%m-%d"),
            "outcome": outcome,
        }
    )


def loan_params(task: str = "classification", types: dict | None = None, **screen) -> dict:
    """The project's params with a contract for `loans()` and the screen settings above (changed by `screen`)."""
    params = project_params()
    data = params["data"]
    data.update(
        name="loans",
        join=[],
        task=task,
        drop={"identifiers": [], "leaks": [], "other": []},
        types=types or {},
        checks={},
        sample_rows=None,
        splits={
            "train": {"start": "2020-01-01", "end": "2021-01-01"},
            "test": {"start": "2021-01-01", "end": "2021-09-01"},
            "reference": {"start": "2020-01-01", "end": "2020-07-01"},
            "current": {"start": "2021-01-01", "end": "2021-09-01"},
        },
    )
    data["target"].update(name="bad" if task == "classification" else "outcome", column="outcome", known_after="1D")
    data["target"]["greater_than"] = 0 if task == "classification" else None
    data["time"].update(column="issued", format="iso8601", timezone=None)
    params["features"]["screen"] = {**SCREEN, **screen}
    if task == "regression":  # the regressor as conf/model/ declares it (a classifier is refused for regression)
        params["model"] = yaml.safe_load((PROJECT / "conf/model/hgb_regressor.yaml").read_text())
    return params


def featurized(params: dict, table: pd.DataFrame | None = None):
    parsed = parse_params(params)
    prepared = prepare(loans() if table is None else table, [], parsed.data)
    return prepared, featurize(prepared.splits, prepared.schema, parsed.features, parsed.data.splits)


def found(result) -> set[tuple[str, str]]:
    return {(item["column"], item["finding"]) for item in result.manifest["screen"]["findings"]}


def test_the_screen_flags_exactly_the_planted_columns_and_leaves_out_the_identifier_and_the_time_copy():
    prepared, result = featurized(loan_params())
    assert found(result) == PLANTED
    columns = prepared.schema["columns"]
    assert columns["row_id"]["type"] == "identifier"
    assert columns["row_id"]["identifier"] == f"unique per row over {len(prepared.splits['train']):,} rows, increases with time"
    assert columns["decimal_year"]["type"] == "numeric" and columns["decimal_year"]["time_spearman"] > 0.999
    assert columns["final_balance"]["post_outcome"] == {
        "missing_without_target": 1.0,
        "present_with_target": 1.0,
        "rows_without_target": 300,
    }
    assert not {"row_id", "decimal_year"} & set(result.spec.inputs)
    assert {"settled", "final_balance", "paid_on", "honest", "grade"} <= set(result.spec.inputs)  # warn keeps the leaks
    skipped = result.manifest["not_built"]
    assert skipped["row_id"] == "type identifier (unique per row over 1,318 rows, increases with time)"
    assert skipped["decimal_year"].startswith("time proxy: |Spearman| 1.0000 with the time column 'issued'")
    assert sorted(result.manifest["screen"]["scores"]) == list(result.manifest["screen"]["scores"])  # sorted by column
    leak = next(line for line in result.warnings if line.startswith("column 'settled'"))
    assert leak.startswith("column 'settled' predicts the target alone with out-of-fold ROC AUC 0.9")
    assert leak.endswith("on train (features.screen.max_auc 0.95): a leak? declare it in data.drop.leaks in conf/data/loans.yaml")


def test_declared_types_are_kept_but_still_reported():
    _, result = featurized(loan_params(types={"row_id": "numeric", "decimal_year": "numeric"}))
    assert found(result) == PLANTED | {("row_id", "time_proxy")}  # numeric now, a row number in time order follows the time
    assert {"row_id", "decimal_year"} <= set(result.spec.inputs)
    assert any(
        line.startswith("column 'row_id' looks like an identifier on train (unique per row") and "kept as declared" in line
        for line in result.warnings
    )
    assert any(line.startswith("column 'decimal_year' follows the time") and "kept as declared" in line for line in result.warnings)


def test_drop_leaves_the_suspected_leaks_out_with_the_reason():
    _, result = featurized(loan_params(on_leak="drop"))
    assert not {"settled", "final_balance", "paid_on"} & set(result.spec.inputs)
    assert {"honest", "grade", "term", "joint", "opened_on"} <= set(result.spec.inputs)
    assert result.manifest["not_built"]["settled"].startswith("suspected leak: out-of-fold ROC AUC 0.9")
    assert result.manifest["not_built"]["final_balance"].startswith("suspected leak: missing on 100.0% of the 300 source rows")
    assert result.manifest["not_built"]["paid_on"].startswith("suspected leak: holds dates after the row's time ('issued')")


def test_error_stops_with_one_line_per_suspected_leak():
    only_one = loans().drop(columns=["final_balance", "paid_on"])
    with pytest.raises(UserError) as stopped:
        featurized(loan_params(on_leak="error"), only_one)
    assert re.fullmatch(
        r"column 'settled' predicts the target alone with out-of-fold ROC AUC 0\.9[5-9]\d on train \(features\.screen\.max_auc 0\.95\): "
        r"a leak\? declare it in data\.drop\.leaks in conf/data/loans\.yaml, or set features\.screen\.on_leak to warn or drop",
        str(stopped.value),
    )
    with pytest.raises(UserError) as stopped:
        featurized(loan_params(on_leak="error"))
    lines = str(stopped.value).split("\nerror: ")
    assert [line.split("'")[1] for line in lines] == ["final_balance", "paid_on", "settled"]


def independent_scores(train: pd.DataFrame, inputs: dict[str, str], target: str, task: str, folds: int, seed: int, bins: int) -> dict:
    """Each input alone, out of fold, computed with pandas groupby and pd.cut (not the screen's code)."""
    y = train[target].astype(float)
    scores = {}
    for column, kind in inputs.items():
        prediction = pd.Series(np.nan, index=train.index)
        for inside, held_out in KFold(n_splits=folds, shuffle=True, random_state=seed).split(train):
            fit, apply = train.iloc[inside], train.iloc[held_out]
            if kind == "categorical":
                fit_keys = fit[column].astype(object).where(fit[column].notna(), "<missing>")
                apply_keys = apply[column].astype(object).where(apply[column].notna(), "<missing>")
            else:
                values = np.sort(fit[column].dropna().to_numpy(dtype=float))
                edges = np.unique([values[(len(values) - 1) * j // bins] for j in range(1, bins)])
                cut = [-np.inf, *edges, np.inf]

                def binned(series, cut=cut):
                    return pd.cut(series.astype(float), cut, right=True, labels=False).astype(float).fillna(-1)  # -1: missing

                fit_keys, apply_keys = binned(fit[column]), binned(apply[column])
            means = y.iloc[inside].groupby(fit_keys.to_numpy()).mean()
            prediction.iloc[held_out] = apply_keys.map(means).fillna(y.iloc[inside].mean()).to_numpy()
        if task == "classification":
            auc = roc_auc_score(y, prediction)
            scores[column] = max(auc, 1 - auc)
        else:
            scores[column] = r2_score(y, prediction)
    return scores


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_reported_scores_equal_an_independent_out_of_fold_computation(task):
    params = loan_params(task, folds=4, bins=7)
    parsed = parse_params(params)
    prepared = prepare(loans(), [], parsed.data)
    train, columns = prepared.splits["train"], prepared.schema["columns"]
    inputs = {name: entry["type"] for name, entry in columns.items() if "role" not in entry and entry["type"] != "identifier"}
    assert {"numeric", "categorical", "boolean"} == set(inputs.values()) and train["honest"].isna().any()
    target = prepared.schema["target"]
    reported = input_scores(train, inputs, target, task, parsed.features)
    expected = independent_scores(train, inputs, target, task, folds=4, seed=parsed.features.seed, bins=7)
    assert reported.keys() == expected.keys()
    for column in expected:
        assert reported[column] == pytest.approx(expected[column], abs=1e-9), column
    if task == "regression":
        assert reported["settled"] > 0.9 > reported["honest"]


def test_the_screen_ignores_column_order_and_regression_flags_by_r2():
    params = loan_params("regression")
    parsed = parse_params(params)
    prepared = prepare(loans(), [], parsed.data)
    reordered = {name: frame[frame.columns[::-1]] for name, frame in prepared.splits.items()}
    first = featurize(prepared.splits, prepared.schema, parsed.features, parsed.data.splits).manifest["screen"]
    again = featurize(reordered, prepared.schema, parsed.features, parsed.data.splits).manifest["screen"]
    assert first == again
    assert {(item["column"], item["finding"]) for item in first["findings"]} == PLANTED
    assert "R^2" in next(item["evidence"] for item in first["findings"] if item["column"] == "settled")


def test_integer_identifiers_need_unique_values_over_enough_rows():
    rows = IDENTIFIER_MIN_ROWS
    assert infer_type(pd.Series(np.arange(rows))) == "identifier"
    assert infer_type(pd.Series(np.arange(rows - 1))) == "numeric"  # too few rows to tell
    assert infer_type(pd.Series([*range(rows - 1), 0])) == "numeric"  # one value twice
    assert infer_type(pd.Series(np.arange(rows) + 0.5)) == "numeric"  # decimals are measurements


def test_a_bad_screen_setting_is_named():
    params = loan_params()
    params["features"]["screen"]["on_leak"] = "ignore"
    with pytest.raises(UserError, match=r"features\.screen\.on_leak' must be one of warn, drop, error, got 'ignore'"):
        parse_params(params)
    params["features"]["screen"] = {**SCREEN, "max_auc": 0.4}
    with pytest.raises(UserError, match=r"features\.screen\.max_auc' must be in \(0\.5, 1\], got 0\.4"):
        parse_params(params)


def loan_project(folder: Path, on_leak: str) -> Path:
    """`folder` with prepared loans, its schema and params.yaml, as featurize finds them after prepare."""
    params = loan_params(on_leak=on_leak)
    prepared = prepare(loans(), [], parse_params(params).data)
    (folder / PREPARED_DIR).mkdir(parents=True)
    for name, frame in prepared.splits.items():
        frame.to_parquet(folder / PREPARED_DIR / f"{name}.parquet")
    (folder / SCHEMA_FILE).write_text(yaml.safe_dump(prepared.schema, sort_keys=False))
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def test_the_stage_stops_on_error_with_one_line_per_leak_and_writes_nothing(tmp_path):
    folder = loan_project(tmp_path, "error")
    stopped = run_module("stages.featurize", folder)
    assert stopped.returncode == 2
    lines = stopped.stderr.splitlines()
    assert [line.split("'")[1] for line in lines] == ["final_balance", "paid_on", "settled"]
    assert all(line.startswith("error: column '") for line in lines)
    assert not (folder / FEATURES_DIR).exists() and not (folder / FEATURE_MANIFEST).exists()


def test_the_stage_warns_on_stderr_and_in_the_manifest(tmp_path):
    folder = loan_project(tmp_path, "warn")
    result = run_module("stages.featurize", folder)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [line.split("'")[1] for line in warnings] == ["decimal_year", "final_balance", "paid_on", "row_id", "settled"]
    manifest = yaml.safe_load((folder / FEATURE_MANIFEST).read_text())
    assert [f"warning: {item['evidence']}" for item in manifest["screen"]["findings"]] == warnings


def test_time_spearman_equals_scipy_with_ties_and_missing_values():
    """The schema's time_spearman (ranks computed once for the time, shared by every column) is Spearman's rho as scipy
    computes it, ties averaged and missing values left out."""
    from scipy.stats import spearmanr

    from stages.lib.contract import time_spearman

    rng = np.random.default_rng(7)
    times = pd.Series(pd.to_datetime("2013-01-01", utc=True) + pd.to_timedelta(rng.integers(0, 500, 3000), unit="h"))
    values = pd.Series(np.round(rng.normal(size=3000) + np.arange(3000) / 3000, 1))  # ties in both
    values[rng.random(3000) < 0.1] = np.nan
    present = values.notna()
    expected = spearmanr(values[present], times[present].astype("int64")).statistic
    assert time_spearman(values, times) == pytest.approx(expected, abs=1e-12)
