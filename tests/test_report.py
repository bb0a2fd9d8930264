"""The pull-request report's parts: bootstrap intervals, gates, group choices, stage logs, base materialization."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stages.lib.config import ReportGate
from stages.report import bootstrap_change, group_choices, stage_runs, verdict_checks, weighted_metric
from tests.conftest import PROJECT


def scored(rows: int, seed: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    actual = (rng.random(rows) < 0.3).astype(np.float64)
    scores = np.round(signal * actual + rng.normal(size=rows), 2)  # rounded: many ties
    return actual, scores


def grouped(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores, kind="stable")
    return order, np.flatnonzero(np.concatenate([[True], np.diff(scores[order]) != 0]))


def test_weighted_auc_equals_sklearn_with_ties_and_with_repeated_rows():
    actual, scores = scored(3000, 0, 1.0)
    order, starts = grouped(scores)
    assert weighted_metric("roc_auc", actual, scores, np.ones(3000), order, starts) == pytest.approx(
        roc_auc_score(actual, scores), abs=1e-12
    )
    weights = np.random.default_rng(1).integers(0, 3, 3000).astype(np.float64)
    repeated = np.repeat(np.arange(3000), weights.astype(int))
    expected = roc_auc_score(actual[repeated], scores[repeated])
    assert weighted_metric("roc_auc", actual, scores, weights, order, starts) == pytest.approx(expected, abs=1e-12)


def test_the_same_model_twice_is_no_change_and_a_better_one_is_beyond_noise():
    actual, scores = scored(4000, 2, 1.0)
    assert bootstrap_change("roc_auc", (actual, scores), (actual, scores), paired=True) == (0.0, 0.0, 0.0)
    rng = np.random.default_rng(3)
    better = scores + 0.8 * actual + rng.normal(0, 0.1, len(actual))
    change, low, high = bootstrap_change("roc_auc", (actual, scores), (actual, better), paired=True)
    assert 0 < low < change < high
    noisy = scores + rng.normal(0, 0.05, len(actual))  # a reshuffle of ties, not an improvement
    _, low, high = bootstrap_change("roc_auc", (actual, scores), (actual, noisy), paired=True)
    assert low < 0 < high


def test_paired_intervals_are_narrower_than_independent_ones():
    actual, scores = scored(4000, 4, 1.0)
    head = scores + 0.1 * actual
    _, paired_low, paired_high = bootstrap_change("roc_auc", (actual, scores), (actual, head), paired=True)
    _, low, high = bootstrap_change("roc_auc", (actual, scores), (actual, head), paired=False)
    assert paired_high - paired_low < (high - low) / 2


def test_rmse_change_for_regression():
    rng = np.random.default_rng(5)
    actual = rng.normal(size=2000)
    change, _, high = bootstrap_change(
        "rmse", (actual, actual + rng.normal(0, 1.0, 2000)), (actual, actual + rng.normal(0, 0.5, 2000)), True
    )
    assert high < 0 and change == pytest.approx(-0.5, abs=0.1)  # lower error: a negative change


def test_gates_pass_fail_and_skip_metrics_the_task_lacks():
    gate = ReportGate(minimum={"roc_auc": 0.7}, maximum={"rmse": 3.0}, max_drop={"roc_auc": 0.01, "log_loss": 0.02})
    checks = verdict_checks(
        {"roc_auc": 0.705, "log_loss": 0.50},
        {"roc_auc": 0.72, "log_loss": 0.47},
        gate,
        {"gate": {"passed": False, "reasons": ["dataset drift"]}},
    )
    results = {check.name: (check.passed, check.detail) for check in checks}
    assert results["roc_auc >= 0.7"][0] is True
    assert results["rmse <= 3.0"] == (True, "not measured: skipped")
    assert results["roc_auc worsens by at most 0.01"] == (False, "worse by 0.0150")
    assert results["log_loss worsens by at most 0.02"] == (False, "worse by 0.0300")  # lower is better: a rise is worse
    assert results["drift gate"] == (False, "dataset drift")


def test_group_choices_name_the_option_or_say_custom(params):
    choices = group_choices(PROJECT, params)
    assert choices["model"] == "hgb" and choices["features"] == "default" and choices["data"] == "nycflights13"
    params["model"] = {**params["model"], "max_iter": 7}
    assert group_choices(PROJECT, params)["model"] == "custom"


def test_stage_runs_from_a_dvc_repro_log():
    log = "\n".join(
        [
            "Stage 'prepare' didn't change, skipping",
            "Stage 'featurize' is cached - skipping run, checking out outputs",
            "Running stage 'train':",
            "Running stage 'evaluate':",
        ]
    )
    assert stage_runs(log) == {"ran": ["evaluate", "train"], "restored from the run cache": ["featurize"], "unchanged": ["prepare"]}
