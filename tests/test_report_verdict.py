"""The PR verdict trusts its own statistics: `max_drop` decides on the bootstrap interval, a test change that
cross-validation contradicts is flagged, each metric's change is marked by its direction, settings stay out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import log_loss, roc_auc_score

from commands.drift_gate import GateVerdict
from commands.report_text import BOOTSTRAP_SAMPLES, ReportInputs, RevisionFacts, metric_checks, render_report, sign_disagreement
from stages.lib.config import ReportGate
from stages.lib.metrics import DESCRIBES_DATA, HIGHER_IS_BETTER, LOWER_IS_BETTER, SETTINGS, TASK_METRICS

PASSED = GateVerdict(True, (), frozenset())


def synthetic(seed: int = 13, rows: int = 800) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A test split, the base's scores and a noisier head's: ROC AUC drops by 0.0084 (under a 0.01 gate), but
    800 rows cannot tell that from a drop twice as large (the issue's max_iter 300 -> 30 case, in small)."""
    rng = np.random.default_rng(seed)
    actual = (rng.random(rows) < 0.3).astype(np.float64)
    base = np.round(actual + rng.normal(size=rows), 3)
    return actual, base, np.round(base + rng.normal(0, 0.35, rows), 3)


def metrics_file(actual: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """What evaluate would write (the metrics the verdict reads), computed here with scikit-learn."""
    clipped = np.clip(1 / (1 + np.exp(-scores)), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": roc_auc_score(actual, scores),
        "log_loss": log_loss(actual, clipped),
        "late_share": actual.mean(),
        "rows": len(actual),
    }


def rank_auc(actual: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic from average ranks: not the report's weighted form."""
    ranks = rankdata(scores)
    positives = int(actual.sum())
    negatives = len(actual) - positives
    return float((ranks[actual == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def paired_interval(actual: np.ndarray, base: np.ndarray, head: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The 95% paired bootstrap interval of the ROC AUC change, by resampling rows: the report's protocol (its seed,
    a draw per revision of which the head's is replaced by the base's when paired), but not its code."""
    rng = np.random.default_rng(seed)
    changes = []
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.integers(0, len(actual), len(actual))
        rng.integers(0, len(actual), len(actual))  # the head's own draw, unused when paired
        changes.append(rank_auc(actual[rows], head[rows]) - rank_auc(actual[rows], base[rows]))
    low, high = np.percentile(changes, [2.5, 97.5])
    return float(low), float(high)


def facts(actual: np.ndarray, scores: np.ndarray, cv_mean: float, task_metrics: dict | None = None) -> RevisionFacts:
    return RevisionFacts(
        choices={"model": "hgb"},
        metrics=task_metrics if task_metrics is not None else metrics_file(actual, scores),
        train_summary={"cv": {"metric": "roc_auc", "mean": cv_mean, "std": 0.01}},
        drift=PASSED,
        drift_summary=None,
        actual=actual,
        scores=scores,
        times=np.arange(len(actual)),
    )


def report(head: RevisionFacts, base: RevisionFacts, gate: ReportGate) -> tuple[list[str], bool]:
    inputs = ReportInputs(
        task="classification",
        head=head,
        base=base,
        base_label="main",
        base_sha="b" * 40,
        head_sha="a" * 40,
        dirty=False,
        gate=gate,
        params_diff={},
        data_diff={},
        plots={},
        artifact_url=None,
        repro_log=None,
        notes=[],
    )
    text, passed = render_report(inputs)
    return text.splitlines(), passed


def gate_row(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("| roc_auc worsens by at most 0.01 |"))


def test_max_drop_decides_on_the_intervals_bad_end_by_default_and_on_the_point_when_told():
    actual, base_scores, head_scores = synthetic()
    base, head = facts(actual, base_scores, 0.70), facts(actual, head_scores, 0.69)
    drop = roc_auc_score(actual, base_scores) - roc_auc_score(actual, head_scores)
    low, high = paired_interval(actual, base_scores, head_scores)
    assert 0 < drop < 0.01 < -low  # the point passes the gate, the interval's bad end does not

    lines, passed = report(head, base, ReportGate(minimum={}, maximum={}, max_drop={"roc_auc": 0.01}, drop_by="bound"))
    assert passed is False
    row = gate_row(lines)
    assert row.startswith(
        f"| roc_auc worsens by at most 0.01 | **FAIL** | worse by {drop:.4f} (95% interval of the change {low:+.4f} to {high:+.4f}"
    )
    assert row.endswith(f"at its bad end worse by {-low:.4f}); decided on the interval's bad end (drop_by: bound) |")

    lines, passed = report(head, base, ReportGate(minimum={}, maximum={}, max_drop={"roc_auc": 0.01}, drop_by="point"))
    assert passed is True and "| pass |" in gate_row(lines) and gate_row(lines).endswith("decided on the change (drop_by: point) |")


def test_a_small_drop_with_a_narrow_interval_passes_the_bound():
    actual, base_scores, _ = synthetic()
    head_scores = base_scores + np.random.default_rng(1).normal(0, 0.01, len(actual))  # a reshuffle of near-ties
    low, _ = paired_interval(actual, base_scores, head_scores)
    assert low > -0.01
    _, passed = report(
        facts(actual, head_scores, 0.70),
        facts(actual, base_scores, 0.70),
        ReportGate(minimum={}, maximum={}, max_drop={"roc_auc": 0.01}, drop_by="bound"),
    )
    assert passed is True


def test_a_bound_gate_without_an_interval_and_a_gate_on_a_setting_fail_closed():
    gate = ReportGate(minimum={}, maximum={}, max_drop={"f1": 0.02, "rows": 10}, drop_by="bound")
    checks = {check.name: check for check in metric_checks({"f1": 0.5, "rows": 100}, {"f1": 0.5, "rows": 100}, gate, "classification", {})}
    assert not checks["f1 worsens by at most 0.02"].passed
    assert (
        "no bootstrap interval of `f1`" in checks["f1 worsens by at most 0.02"].detail
        and "drop_by: point" in checks["f1 worsens by at most 0.02"].detail
    )
    assert not checks["rows worsens by at most 10.0"].passed and "no measure of the model" in checks["rows worsens by at most 10.0"].detail
    point = metric_checks(
        {"f1": 0.49}, {"f1": 0.5}, ReportGate(minimum={}, maximum={}, max_drop={"f1": 0.02}, drop_by="point"), "classification"
    )
    assert [(check.passed, check.detail) for check in point] == [(True, "worse by 0.0100")]


@pytest.mark.parametrize(
    ("task", "test_change", "cv_means", "expected"),
    [
        (
            "classification",
            -0.0086,
            (0.723, 0.720),
            "roc_auc is worse on the test split (-0.0086) but better cross-validated within train (+0.0030)",
        ),
        ("classification", -0.0086, (0.715, 0.720), None),
        ("classification", 0.004, (0.720, 0.720), None),  # cross-validation unchanged: nothing to disagree with
        ("regression", -0.1, (2.05, 2.0), "rmse is better on the test split (-0.1000) but worse cross-validated within train (+0.0500)"),
    ],
)
def test_a_test_change_whose_sign_cross_validation_contradicts_is_flagged(task, test_change, cv_means, expected):
    metric = {"classification": "roc_auc", "regression": "rmse"}[task]
    head, base = ({"cv": {"metric": metric, "mean": mean, "std": 0.01}} for mean in cv_means)
    flag = sign_disagreement(task, test_change, head, base)
    assert (flag is None) if expected is None else (flag is not None and expected in flag)


def test_the_report_shows_the_flag_and_marks_each_change_by_direction_without_settings():
    actual, base_scores, head_scores = synthetic()
    lines, _ = report(
        facts(actual, head_scores, 0.73), facts(actual, base_scores, 0.70), ReportGate(minimum={}, maximum={}, max_drop={}, drop_by="bound")
    )
    flag = next(line for line in lines if line.startswith("> **The test split and cross-validation disagree**"))
    assert "roc_auc is worse on the test split" in flag and "better cross-validated within train (+0.0300)" in flag
    table = {line.split(" | ")[0].removeprefix("| "): line for line in lines if line.startswith("| ") and line.count("|") == 6}
    assert table["roc_auc"].endswith("| **worse** |")  # higher is better: it fell
    assert table["log_loss"].endswith("| **worse** |")  # lower is better: it rose
    assert table["late_share"].endswith("| — (describes the test data) |")
    assert "rows" not in table and "threshold" not in table
    lines, _ = report(
        facts(actual, base_scores, 0.73), facts(actual, head_scores, 0.70), ReportGate(minimum={}, maximum={}, max_drop={}, drop_by="bound")
    )
    assert not any(line.startswith("> **The test split") for line in lines)  # both say better now
    table = {line.split(" | ")[0].removeprefix("| "): line for line in lines if line.startswith("| ") and line.count("|") == 6}
    assert table["roc_auc"].endswith("| better |") and table["log_loss"].endswith("| better |")


def test_every_metric_a_task_writes_has_one_direction_or_is_a_setting_or_describes_the_data():
    kinds = [HIGHER_IS_BETTER, LOWER_IS_BETTER, SETTINGS, DESCRIBES_DATA]
    written = {name for names in TASK_METRICS.values() for name in names}
    assert set().union(*kinds) == written
    assert sum(len(kind) for kind in kinds) == len(written)  # no name in two sets
