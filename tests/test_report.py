"""The pull-request report's parts: bootstrap intervals, gates and the verdict, plots, group choices, stage logs."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from commands.drift_gate import GateVerdict
from commands.report import figure_specs, group_choices, read_gate_verdict
from commands.report_figures import REFERENCE_COLOUR
from commands.report_text import (
    ReportInputs,
    RevisionFacts,
    bootstrap_change,
    drift_gate_check,
    metric_checks,
    plot_lines,
    render_report,
    stage_runs,
    verdict_checks,
)
from stages.evaluate import evaluate_model
from stages.lib.catalog import DRIFT_FILE, FeatureSpec
from stages.lib.config import EvaluateConfig, ReportGate, TrainConfig
from stages.lib.metrics import TASK_METRICS, weighted_metric
from stages.train import train_model
from tests.conftest import HGB, PROJECT, model_config, tool_env
from tests.e2e_support import SAMPLE_NOTE, SAMPLE_ROWS
from tests.vega import texts, walk


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


PASSING_DRIFT = (GateVerdict(True, (), frozenset()), GateVerdict(True, (), frozenset()))


def checks_by_name(checks) -> dict[str, tuple[bool, str]]:
    return {check.name: (check.passed, check.detail) for check in checks}


def test_gates_pass_and_fail_on_measured_metrics():
    gate = ReportGate(drop_by="point", minimum={"roc_auc": 0.7}, maximum={"brier": 0.2}, max_drop={"roc_auc": 0.01, "log_loss": 0.02})
    head = {"roc_auc": 0.705, "log_loss": 0.50, "brier": 0.21}
    base = {"roc_auc": 0.72, "log_loss": 0.47, "brier": 0.19}
    results = checks_by_name(verdict_checks(head, base, gate, "classification", PASSING_DRIFT))
    assert results["roc_auc >= 0.7"] == (True, "roc_auc = 0.7050")
    assert results["brier <= 0.2"] == (False, "brier = 0.2100")
    assert results["roc_auc worsens by at most 0.01"] == (False, "worse by 0.0150")
    assert results["log_loss worsens by at most 0.02"] == (False, "worse by 0.0300")  # lower is better: a rise is worse
    assert results["drift gate (new failures only)"] == (True, "passed")


@pytest.mark.parametrize(
    ("gate", "head", "base", "missing_from"),
    [
        (ReportGate(drop_by="point", minimum={"roc_auc": 0.5}, maximum={}, max_drop={}), {"auc": 0.9}, {"roc_auc": 0.9}, "this change's"),
        (ReportGate(drop_by="point", minimum={}, maximum={"brier": 0.3}, max_drop={}), {"roc_auc": 0.9}, {"brier": 0.1}, "this change's"),
        (ReportGate(drop_by="point", minimum={}, maximum={}, max_drop={"roc_auc": 0.01}), {"roc_auc": 0.9}, {"auc": 0.9}, "the base's"),
        (
            ReportGate(drop_by="point", minimum={}, maximum={}, max_drop={"log_loss": 0.01}),
            {"log_loss": None},
            {"log_loss": 0.4},
            "this change's",
        ),
    ],
)
def test_a_gate_on_a_metric_the_task_produces_but_the_file_lacks_fails_with_its_name(gate, head, base, missing_from):
    """A renamed key or an evaluate bug must not pass the verdict."""
    ((passed, detail),) = checks_by_name(metric_checks(head, base, gate, "classification")).values()
    assert passed is False
    name = next(iter(gate.minimum or gate.maximum or gate.max_drop))
    assert f"`{name}` is missing from {missing_from} reports/metrics.json" in detail


def test_only_gates_on_metrics_the_task_cannot_produce_are_skipped():
    gate = ReportGate(drop_by="point", minimum={"roc_auc": 0.65, "roc-auc": 0.65}, maximum={"rmse": 3.0}, max_drop={"r2": 0.1})
    classification = checks_by_name(metric_checks({"roc_auc": 0.7}, {"roc_auc": 0.7}, gate, "classification"))
    assert classification["rmse <= 3.0"] == (True, "not a classification metric (regression only): skipped")
    assert classification["r2 worsens by at most 0.1"][0] is True
    assert classification["roc_auc >= 0.65"] == (True, "roc_auc = 0.7000")
    passed, detail = classification["roc-auc >= 0.65"]  # a typo: no task produces it
    assert passed is False and "no task produces `roc-auc`" in detail
    regression = checks_by_name(metric_checks({"rmse": 2.0, "r2": 0.5}, {"rmse": 2.5, "r2": 0.55}, gate, "regression"))
    assert regression["roc_auc >= 0.65"] == (True, "not a regression metric (classification only): skipped")
    assert regression["rmse <= 3.0"] == (True, "rmse = 2.0000")
    assert regression["r2 worsens by at most 0.1"] == (True, "worse by 0.0500")
    assert all(not passed for passed, _ in checks_by_name(metric_checks({}, {}, gate, "ranking")).values())  # unknown task


def test_the_task_metric_table_is_what_evaluate_writes():
    """The gates' skip rule reads TASK_METRICS: it must list exactly what evaluate_model produces per task."""
    rng = np.random.default_rng(0)
    rows = 400
    x = rng.normal(size=rows)
    frame = pd.DataFrame({"x": x, "late": (x + rng.normal(size=rows) > 0.5).astype(np.int8), "y": 3 * x + rng.normal(size=rows)})
    config = EvaluateConfig(
        threshold=0.35,
        calibration_bins=5,
        importance_repeats=1,
        importance_rows=100,
        seed=0,
        gate=ReportGate(drop_by="point", minimum={}, maximum={}, max_drop={}),
    )
    train = TrainConfig(seed=0, cv_folds=0, encoding_folds=2, max_selected=None, sample_rows=None)
    for task, target in (("classification", "late"), ("regression", "y")):
        spec = FeatureSpec.plain(["x"], [], target=target, task=task)
        estimator = HGB if task == "classification" else "sklearn.ensemble.HistGradientBoostingRegressor"
        model = train_model(frame, spec, model_config(estimator, max_iter=5), train).model
        assert set(evaluate_model(model, frame, spec, config).metrics) == set(TASK_METRICS[task]), task


FAILED_DRIFT = GateVerdict(False, ("dataset drift: 3 of 4 feature columns drifted",), frozenset({"dataset_drift"}))
AUC_DROP = GateVerdict(
    False, ("dataset drift: 3 of 4", "ROC AUC on the current window is 0.080 below"), frozenset({"dataset_drift", "roc_auc_drop"})
)
PASSED_DRIFT = GateVerdict(True, (), frozenset())


@pytest.mark.parametrize(
    ("head", "base", "passed", "detail"),
    [
        (PASSED_DRIFT, PASSED_DRIFT, True, "passed"),
        (PASSED_DRIFT, FAILED_DRIFT, True, "passed (it failed on the base)"),
        (FAILED_DRIFT, PASSED_DRIFT, False, "newly fails (passed on the base): dataset drift: 3 of 4 feature columns drifted"),
        (
            FAILED_DRIFT,
            FAILED_DRIFT,
            True,
            "failed on base and head, not caused by this change: dataset drift: 3 of 4 feature columns drifted",
        ),
        (AUC_DROP, FAILED_DRIFT, False, "newly fails on roc_auc_drop (the base failed on dataset_drift)"),
        # A base whose drift.json predates the list of failed conditions: compared by the verdict alone.
        (FAILED_DRIFT, GateVerdict(False, ("old",), None), True, "failed on base and head, not caused by this change"),
        ("this change has no reports/drift.json; run `dvc repro`", PASSED_DRIFT, False, "this change has no reports/drift.json"),
        (FAILED_DRIFT, "the base has no reports/drift.json", False, "fails, and the base has no verdict to compare with"),
        (PASSED_DRIFT, "the base has no reports/drift.json", True, "passed"),
    ],
)
def test_the_pr_verdict_fails_on_drift_only_when_this_change_newly_fails_the_gate(head, base, passed, detail):
    check = drift_gate_check(head, base)
    assert check.passed is passed
    assert check.detail.startswith(detail)


def test_drift_verdicts_are_read_fail_closed(tmp_path):
    assert read_gate_verdict(tmp_path, "the base") == "the base has no reports/drift.json; run `dvc repro`"
    (tmp_path / DRIFT_FILE).parent.mkdir()
    drift = tmp_path / DRIFT_FILE
    for payload in ('{"dataset_drift": true}', '{"gate": {"passed": "no"}}', "[1, 2]", "{not json"):
        drift.write_text(payload)
        verdict = read_gate_verdict(tmp_path, "the base")
        assert (
            isinstance(verdict, str) and verdict.startswith("the base: reports/drift.json: ") and "rerun `dvc repro drift-check`" in verdict
        )
        assert drift_gate_check(verdict, PASSED_DRIFT).passed is False
    drift.write_text(json.dumps({"gate": {"passed": False, "failed": ["dataset_drift"], "reasons": ["dataset drift"]}}))
    assert read_gate_verdict(tmp_path, "the base") == GateVerdict(False, ("dataset drift",), frozenset({"dataset_drift"}))


def test_artifact_url_links_to_the_plots_instead_of_embedding_them():
    rendered = {"ROC": "roc.png", "Calibration": "calibration.png"}
    url = "https://github.com/owner/repo/actions/runs/42"
    linked = plot_lines(rendered, url)
    assert linked == [f"ROC, Calibration: PNG images in the `pr-report` artifact of [this run]({url})."]
    assert plot_lines(rendered, None) == ["![ROC](images/roc.png)", "![Calibration](images/calibration.png)"]
    assert plot_lines({}, url) == ["No plot data."]


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


def facts(metrics: dict, cv_mean: float, drift, scores: np.ndarray, drift_summary: dict | None = None, model: str = "hgb") -> RevisionFacts:
    actual = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    return RevisionFacts(
        choices={"data": "nycflights13", "model": model},
        metrics=metrics,
        train_summary={"cv": {"metric": "roc_auc", "mean": cv_mean, "std": 0.01}},
        drift=drift,
        drift_summary=drift_summary,
        actual=actual,
        scores=scores,
        times=np.arange(len(actual)),
    )


HEAD_DRIFT = {
    "dataset_drift": True,
    "drifted_columns": 3,
    "columns_checked": 4,
    "drifted": ["dest", "dewp", "temp"],
    "prediction_drift": {"drifted": True, "method": "wasserstein_norm", "score": 0.25, "threshold": 0.1},
}


def test_the_report_is_built_from_gathered_inputs_alone(tmp_path, monkeypatch):
    """No repository, no git, no dvc: hand-written inputs give the whole report."""
    monkeypatch.chdir(tmp_path)  # nothing to read here
    scores = np.array([0.2, 0.9, 0.1, 0.7, 0.8, 0.3])
    inputs = ReportInputs(
        task="classification",
        head=facts({"roc_auc": 0.71, "rows": 6}, 0.69, FAILED_DRIFT, scores, HEAD_DRIFT, model="logreg"),
        base=facts({"roc_auc": 0.70, "rows": 6}, 0.68, PASSED_DRIFT, scores),
        base_label="main",
        base_sha="b" * 40,
        head_sha="a" * 40,
        dirty=True,
        gate=ReportGate(drop_by="point", minimum={"roc_auc": 0.65}, maximum={}, max_drop={"roc_auc": 0.02}),
        params_diff={"model.name": {"old": "hgb", "new": "logreg"}},
        data_diff={"modified": [{"path": "models/model.skops"}, {"path": "data/features/"}]},
        plots={"ROC": "roc.png"},
        artifact_url=None,
        repro_log="Running stage 'train':\nStage 'prepare' didn't change, skipping",
        notes=["base restored with dvc checkout"],
    )
    text, passed = render_report(inputs)
    assert passed is False  # the drift gate newly fails
    lines = text.splitlines()
    assert lines[1] == f"## Pipeline report: `main` ({'b' * 8}) → this change ({'a' * 8}, with uncommitted changes)"
    assert "**Verdict: FAILED** (2 of 3 gates pass; gates in `params.yaml`: `evaluate.gate`, `drift.gate`)" in lines
    assert "| roc_auc >= 0.65 | pass | roc_auc = 0.7100 |" in lines
    assert (
        "| roc_auc worsens by at most 0.02 | pass | better by 0.0100 (95% interval of the change +0.0000 to +0.0000; "
        "at its bad end unchanged); decided on the change (drop_by: point) |"
    ) in lines
    assert any(line.startswith("| drift gate (new failures only) | **FAIL** | newly fails (passed on the base)") for line in lines)
    assert "Config groups: `model`: hgb → **logreg**" in lines
    assert "| `model.name` | `hgb` | `logreg` |" in lines
    assert "| roc_auc | 0.7000 | 0.7100 | +0.0100 | better |" in lines
    assert "Cross-validated roc_auc within train: 0.6800 → 0.6900 ± 0.0100." in lines
    assert any(line.startswith("**roc_auc change +0.0000**") and ", paired)" in line and "within noise" in line for line in lines)
    assert "![ROC](images/roc.png)" in lines
    assert "- modified: `models/model.skops`" in lines and "data/features/" not in text  # folders are listed by their files
    drift_line = next(line for line in lines if line.startswith("**Dataset drift**"))
    assert "3 of 4 input columns drifted (dest, dewp, temp)" in drift_line
    assert (
        "prediction drift: yes (wasserstein_norm 0.2500 against 0.1: Wasserstein distance divided by the reference standard" in drift_line
    )
    assert "- ran: `train`" in lines and "- unchanged: `prepare`" in lines and "- base restored with dvc checkout" in lines
    assert f"git checkout {'b' * 40} && dvc pull && dvc repro    # the base" in lines
    assert render_report(inputs) == (text, passed)  # deterministic: the bootstrap is seeded
    assert list(tmp_path.iterdir()) == []  # and it wrote nothing


def write_evaluation_plots(repo: Path, features: int, lift: float) -> None:
    """What evaluate writes to reports/plots/ (the fields dvc.yaml plots), small and made up."""
    plots = repo / "reports/plots"
    plots.mkdir(parents=True, exist_ok=True)
    steps = [step / 10 for step in range(11)]
    files = {
        "roc": [{"fpr": x, "tpr": min(1.0, x**0.5 + lift), "threshold": 1 - x} for x in steps],
        "precision_recall": [{"recall": x, "precision": 1 - x / 2} for x in steps],
        "calibration": [{"mean_predicted": 0.05 + x / 2, "mean_observed": 0.04 + x / 2.5 + lift, "rows": 100} for x in steps],
        "importance": [
            {"feature": f"feature_{index:02d}", "importance": 0.05 / (index + 1) + lift, "std": 0.001} for index in range(features)
        ],
    }
    for name, rows in files.items():
        (plots / f"{name}.json").write_text(json.dumps(rows))


def test_report_figures_name_series_as_the_report_does_with_reference_lines_and_readable_importance(tmp_path):
    """The report's figures from a real `dvc plots diff` of the project's plot definitions: 50 features' importance, a base
    commit and a changed workspace."""
    import vl_convert

    repo = tmp_path / "repo"
    shutil.copytree(PROJECT / ".dvc/plots", repo / ".dvc/plots")  # a `.dvc` folder is a DVC project (`dvc init` costs 1 s)
    (repo / ".dvc/config").write_text("")
    shutil.copy(PROJECT / "dvc.yaml", repo / "dvc.yaml")
    write_evaluation_plots(repo, 50, 0.0)
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(command, cwd=repo, env=tool_env(), check=True, capture_output=True, timeout=60)
    write_evaluation_plots(repo, 50, 0.01)

    figures = figure_specs(repo, "main")
    assert set(figures) == {"roc", "precision_recall", "calibration", "importance"}
    drawn = {name: vl_convert.vegalite_to_scenegraph(figure)["scenegraph"] for name, (_, figure) in figures.items()}
    for name, (_, figure) in figures.items():
        scenegraph = drawn[name]
        legend = texts(scenegraph, "legend-label")
        assert legend == ["this change", "base (main)"], name  # as the report says, not "workspace"
        dashed = [
            item
            for mark in walk(scenegraph, "line")
            for item in mark["items"]
            if item.get("stroke") == REFERENCE_COLOUR and item.get("strokeDash")
        ]
        if name not in ("roc", "calibration"):
            assert dashed == [], name
            continue
        assert len(dashed) == 2 and any("y = x" in text for text in texts(scenegraph)), name  # drawn, and labelled
        (reference,) = [layer for layer in figure["layer"] if layer.get("mark", {}).get("strokeDash")]
        x, y = (reference["encoding"][channel]["field"] for channel in ("x", "y"))
        ends = [(point[x], point[y]) for point in reference["data"]["values"]]
        assert all(a == b for a, b in ends), ends  # y = x
        data = [row for row in figure["data"]["values"]]
        assert ends[0][0] <= min(min(row[x], row[y]) for row in data) and ends[1][0] >= max(max(row[x], row[y]) for row in data)
    # ROC: from (0, 0) to (1, 1), the plot's corners.
    assert [(point["fpr"], point["tpr"]) for layer in figures["roc"][1]["layer"][1:2] for point in layer["data"]["values"]] == [
        (0, 0),
        (1, 1),
    ]
    caption, importance = figures["importance"]
    assert caption == "Permutation importance (top 20 of 50 features)"
    assert importance["title"]["subtitle"] == "the 20 most important of 50 features (in either revision)"
    labels = sorted(
        item["y"]
        for mark in walk(drawn["importance"], "text", "axis-label")
        for item in mark["items"]
        if item["text"].startswith("feature_")
    )
    assert len(labels) == 20 and min(b - a for a, b in itertools.pairwise(labels)) >= 20  # a readable height per label


def test_the_sample_report_says_it_comes_from_the_end_to_end_data_sample():
    lines = (PROJECT / "docs/pr-report-sample/report.md").read_text(encoding="utf-8").splitlines()
    assert lines[1] == SAMPLE_NOTE and f"{SAMPLE_ROWS:,}-row sample" in SAMPLE_NOTE
