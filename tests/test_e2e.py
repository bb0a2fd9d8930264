"""End to end: real `dvc repro` / `dvc exp run` / `dvc push` in a temporary git repo, on a sample of the real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from commands.compose import compose
from commands.drift_gate import read_drift
from stages.lib.catalog import (
    DRIFT_DETAILS,
    DRIFT_REPORT,
    FEATURE_MANIFEST,
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_FILE,
    PREPARE_SUMMARY,
    SCHEMA_FILE,
)
from tests.e2e_support import ENV, SAMPLE_ROWS, expected_outputs, new_project, out_hashes, run, stages_run, up_to_date

pytestmark = pytest.mark.slow


def test_first_repro_runs_every_stage_and_writes_every_output(pipeline):
    repo, output, _ = pipeline
    assert stages_run(output) == {"prepare", "featurize", "train", "evaluate", "drift-check", "production-store", "monitor"}
    missing = [name for name in expected_outputs(repo) if not (repo / name).is_file()]
    assert not missing
    summary = json.loads((repo / PREPARE_SUMMARY).read_text())
    assert summary["rows"]["used"] == SAMPLE_ROWS
    assert summary["sources"]["flights.csv.zip"]["sha256"] == "b6b5560eeae070d89916f5d6b7019179c07d97cef3a61db0887ca9cf78a7ad5d"
    assert summary["sources"]["weather.csv"]["sha256"] == "5d1ea2548a3941eac0b4a9ca70805daa9fa49bbb711a0c7557b2bba0bd7c3f64"
    assert summary["splits"]["test"]["first"] > summary["splits"]["train"]["last"]


def test_metrics_are_in_sane_ranges(pipeline):
    repo, _, _ = pipeline
    metrics = json.loads((repo / METRICS_FILE).read_text())
    assert 0.6 < metrics["roc_auc"] < 0.9
    assert metrics["average_precision"] > metrics["late_share"]  # better than a constant guess
    assert 0 < metrics["brier"] < 0.2 and 0 < metrics["log_loss"] < 0.6
    assert 0.1 < metrics["late_share"] < 0.35
    schema = yaml.safe_load((repo / SCHEMA_FILE).read_text())
    assert schema["columns"]["dest"]["type"] == "categorical" and schema["columns"]["late"]["role"] == "target"
    plotted = run(repo, "dvc", "plots", "show", "--json")
    for title in ("ROC", "Precision-recall", "Confusion matrix", "Calibration", "Permutation importance (score lost when shuffled)"):
        assert title in plotted


def test_drift_check_tells_the_seasonal_story(pipeline):
    repo, _, _ = pipeline
    drift = read_drift(repo)
    # Reference is early 2013, current late 2013: the weather moves with the seasons.
    assert {"temp", "dewp"} <= set(drift["drifted"])
    assert drift["columns"]["dest"]["statistics"]["p_value_adjusted"] < 0.05  # the destination mix changes too
    assert "temp" in (repo / DRIFT_REPORT).read_text()


def test_drift_gate_exit_codes_in_both_constructed_situations(pipeline):
    """The drift gate's exit code with `drift.drift_share` set just below and just above the share of
    columns the check found drifted (counted here from its per-column findings): 1, then 0."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    findings = json.loads((repo / DRIFT_DETAILS).read_text())["columns"].values()
    drifted = sum(bool(column["drifted"] or column["missing_drifted"]) for column in findings)
    assert 0 < drifted < len(findings)  # so both situations exist
    venv = Path(sys.executable).parent.parent
    only_dataset_drift = [
        "drift.gate.fail_on_dataset_drift=true",
        "drift.gate.fail_on_prediction_drift=false",
        "drift.gate.max_roc_auc_drop=null",
    ]
    try:
        for share, expected, make_expected in (((drifted - 0.5) / len(findings), 1, 2), ((drifted + 0.5) / len(findings), 0, 0)):
            run(repo, sys.executable, "-m", "commands.compose", f"drift.drift_share={share}", *only_dataset_drift)
            run(repo, "dvc", "repro", "drift-check")
            gate = subprocess.run([sys.executable, "-m", "commands.drift_gate"], cwd=repo, env=ENV, capture_output=True, text=True)
            assert gate.returncode == expected, gate.stderr
            assert ("drift gate: FAILED: dataset drift" in gate.stderr) == (expected == 1)
            # make reports any failed command as its own exit 2.
            made = subprocess.run(
                ["make", "-o", f"{venv}/.installed", "drift-gate", f"VENV={venv}"], cwd=repo, env=ENV, capture_output=True, text=True
            )
            assert made.returncode == make_expected, made.stderr
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes


def test_make_repro_twice_runs_nothing_and_reports_up_to_date(pipeline):
    repo, _, _ = pipeline
    assert (repo / "stages/lib/__pycache__").is_dir()  # bytecode beside the code deps must not count as a change
    venv = Path(sys.executable).parent.parent
    # -o: the stamp of PROJECT's venv counts as current, so make never rebuilds it from here.
    output = run(repo, "make", "-o", f"{venv}/.installed", "repro", f"VENV={venv}")
    assert stages_run(output) == set() and "Stage 'prepare' didn't change, skipping" in output
    assert up_to_date(repo)
    assert "roc_auc" in output


def test_changing_the_model_group_reruns_only_train_and_what_follows(pipeline):
    repo, _, hashes = pipeline
    run(repo, sys.executable, "-m", "commands.compose", "model=logreg")
    assert stages_run(run(repo, "dvc", "repro")) == {"train", "evaluate", "drift-check", "monitor"}
    assert out_hashes(repo)[str(MODEL_FILE)] != hashes[str(MODEL_FILE)]
    assert out_hashes(repo)[str(FEATURES_DIR)] == hashes[str(FEATURES_DIR)]

    run(repo, sys.executable, "-m", "commands.compose")
    restored = run(repo, "dvc", "repro")
    # Back to the committed params: DVC's run cache restores the results without training again.
    assert stages_run(restored) == set() and "Stage 'train' is cached" in restored
    assert out_hashes(repo) == hashes


def test_two_runs_from_scratch_are_bitwise_identical(pipeline, tmp_path):
    _, _, hashes = pipeline
    again = new_project(tmp_path / "again")
    run(again, "dvc", "repro")
    assert out_hashes(again) == hashes  # timings live in reports/featurize_timing.json, outside DVC


def test_push_then_pull_into_a_fresh_clone(pipeline):
    repo, _, hashes = pipeline
    assert "pushed" in run(repo, "dvc", "push")
    assert (repo.parent / "dvc-remote/files/md5").is_dir()  # the default remote: a folder beside the clone
    clone = repo.parent / "clone"
    run(repo.parent, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "pull")
    assert out_hashes(clone) == hashes
    assert (clone / MODEL_FILE).read_bytes() == (repo / MODEL_FILE).read_bytes()
    assert up_to_date(clone)
    assert "in sync" in run(clone, "dvc", "status", "--cloud")
    assert stages_run(run(clone, "dvc", "repro")) == set()


def test_dvc_exp_run_composes_hydra_overrides(pipeline):
    """A group choice and a key override, composed by DVC. (model=logreg was trained by the model-group test above in
    this module's copy, so DVC's run cache restores train and evaluate: only drift-check runs again.)"""
    repo, _, _ = pipeline
    run(repo, "dvc", "exp", "run", "-S", "model=logreg", "-S", "drift.plots=3", "--name", "logreg-plots3")
    with_overrides = compose(repo / "conf", ["model=logreg", "drift.plots=3"])
    assert (repo / "params.yaml").read_text() == with_overrides  # our compose == DVC's composition
    experiments = json.loads(run(repo, "dvc", "exp", "show", "--json"))
    found = [
        experiment
        for baseline in experiments
        for experiment in baseline.get("experiments") or []
        if experiment.get("name") == "logreg-plots3"
    ]
    assert found, experiments
    assert "logreg-plots3" in run(repo, "dvc", "exp", "show", "--no-pager", "--csv")


def test_second_dataset_runs_by_config_alone(pipeline):
    """Seattle weather (vega_datasets), a regression task, through every stage with no code change."""
    repo, _, hashes = pipeline
    data_conf = repo / "conf/data/seattle_weather.yaml"
    original = data_conf.read_text()
    try:
        run(repo, sys.executable, "-m", "commands.compose", "data=seattle_weather", "model=hgb_regressor")
        output = run(repo, "dvc", "repro")
        assert stages_run(output) == {"prepare", "featurize", "train", "evaluate", "drift-check", "monitor"}
        metrics = json.loads((repo / METRICS_FILE).read_text())
        assert metrics["r2"] > 0.6 and metrics["rmse"] < 0.6 * metrics["rmse_constant"]  # far better than the mean
        manifest = yaml.safe_load((repo / FEATURE_MANIFEST).read_text())
        assert manifest["task"] == "regression" and manifest["features"]["by_family"]["history"] > 0
        assert "calendar_day_of_year_sin" in manifest["columns"]  # train spans three years: seasonal parts are built
        drift = read_drift(repo)
        assert "weather" in drift["drifted"]  # its labels changed over the years (rain, then fog)
        assert set(drift["current_metrics"]) == {"rmse", "mae", "target_mean"}
        run(repo, "dvc", "plots", "show", "--json")  # empty ROC/PR files for regression do not break DVC plots
    finally:
        data_conf.write_text(original)
        run(repo, "git", "reset", "-q", "--hard")  # params.yaml, dvc.lock and the git-tracked outputs
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes
