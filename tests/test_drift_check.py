"""drift-check: findings on model inputs, predictions and target; ranking, plots, the gate and the HTML report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.drift_check import DriftInputs, drift_check, drift_outputs, roc_auc_drop, schema_changes
from stages.lib.catalog import DRIFT_FILE, DRIFT_PLOTS, FeatureSpec
from stages.lib.config import DriftConfig, GateConfig, TrainConfig, parse_params
from stages.lib.drift_html import render_report
from stages.lib.errors import UserError
from stages.lib.io import write_outputs
from stages.train import train_model
from tests.conftest import PROJECT, model_config, render_page, replace, run_module, tool_env

SPEC = FeatureSpec.plain(["temp", "dewp", "distance"], ["dest"])
DESTINATIONS = ["ATL", "ORD", "SEA", "__other__"]


def window(rows: int, seed: int, summer: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = rng.normal(75 if summer else 40, 8, rows)
    destinations = rng.choice(["ATL", "ORD", "SEA"], rows, p=[0.2, 0.3, 0.5] if summer else [0.5, 0.4, 0.1])
    return pd.DataFrame(
        {
            "temp": temp,
            "dewp": temp - rng.gamma(2, 5, rows),
            "distance": rng.integers(200, 2500, rows).astype(float),
            "dest": pd.Categorical(destinations, categories=DESTINATIONS),
            "late": (rng.random(rows) < 0.15 + 0.004 * (temp - 40)).astype(np.int8),
            "time_hour": pd.Timestamp("2013-01-01", tz="UTC"),
        }
    )


@pytest.fixture(scope="module")
def model():
    return train_model(
        window(4000, 0, False),
        SPEC,
        model_config(max_iter=30),
        TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None),
    ).model


@pytest.fixture
def config(params) -> DriftConfig:
    return parse_params(params).drift


@pytest.fixture
def seasonal(model, config):
    return drift_check(
        DriftInputs(window(3000, 1, False), window(3000, 2, True), SPEC, model, importance={"temp": 0.02, "distance": 0.0}), config
    )


def test_seasonal_shift_is_found_in_weather_destinations_and_predictions(seasonal):
    summary = seasonal.summary
    assert {"temp", "dewp", "dest"} <= set(summary["drifted"])
    assert "distance" not in summary["drifted"]
    assert summary["dataset_drift"] is True and summary["drift_share"] == pytest.approx(0.75)
    assert summary["prediction_drift"]["drifted"] is True
    assert summary["target_drift"]["statistics"]["p_value"] < 0.05
    assert set(summary["current_metrics"]) == {"roc_auc", "average_precision", "brier", "late_share"}


def test_columns_are_ranked_by_importance_weighted_drift(seasonal):
    ranked = [column.column for column in seasonal.ranked]
    assert ranked[0] == "temp"  # the only column with importance
    weights = {name: details["importance_weight"] for name, details in seasonal.summary["columns"].items()}
    assert weights["temp"] == 1.0 and weights["distance"] == 0.0


def test_plots_hold_reference_and_current_shares_of_the_top_columns(model, config):
    two = replace(config, plots=2)
    report = drift_check(
        DriftInputs(window(3000, 1, False), window(3000, 2, True), SPEC, model, importance={"temp": 0.02, "distance": 0.0}), two
    )
    # Every feature's shares, ranked, the two most drifted `shown`: a revision whose top features differ still has these.
    ranks = {row["feature"]: (row["rank"], row["shown"]) for row in report.plots}
    assert ranks == {column.column: (rank, rank <= 2) for rank, column in enumerate(report.ranked, start=1)}
    assert len(report.ranked) > 2
    top = [row for row in report.plots if row["rank"] == 1]
    assert {row["feature"] for row in top} == {"temp"}
    assert sum(row["reference"] for row in top) == pytest.approx(1.0, abs=1e-4)
    assert sum(row["current"] for row in top) == pytest.approx(1.0, abs=1e-4)


def test_written_files_are_what_dvc_yaml_declares_with_fewer_inputs_than_plots(model, config, tmp_path, monkeypatch):
    """Four inputs (like the Seattle data) and room for more plots: every declared and plotted file is written, nothing else."""
    pipeline = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    stage = pipeline["stages"]["drift-check"]
    declared = {
        next(iter(entry)) if isinstance(entry, dict) else entry for key in ("outs", "metrics", "plots") for entry in stage.get(key, [])
    }

    def inside(path: str) -> bool:
        return any(path == out or path.startswith(f"{out}/") for out in declared)

    plotted = {path for plot in pipeline["plots"] for definition in plot.values() for path in definition["y"] if inside(path)}

    roomy = replace(config, plots=len(SPEC.inputs) + 3)
    report = drift_check(DriftInputs(window(3000, 1, False), window(3000, 2, True), SPEC, model), roomy)
    monkeypatch.chdir(tmp_path)
    write_outputs(drift_outputs(report))
    written = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file()}
    assert plotted, "no top-level plot reads drift-check's plot data"
    assert plotted <= written, f"plotted but not written: {sorted(plotted - written)}"
    assert all(inside(path) for path in written), f"written but not declared: {sorted(path for path in written if not inside(path))}"
    assert all(any(path == out or path.startswith(f"{out}/") for path in written) for out in declared)
    rows = json.loads((tmp_path / DRIFT_PLOTS).read_text())
    assert sorted({(row["rank"], row["feature"]) for row in rows}) == [
        (rank, column.column) for rank, column in enumerate(report.ranked, 1)
    ]

    # DVC itself renders the declared top-level plot from these files: one panel per feature.
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=tool_env(), check=True, capture_output=True, timeout=120)
    shutil.copy(PROJECT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copytree(PROJECT / ".dvc/plots", tmp_path / ".dvc/plots")
    shown = subprocess.run(["dvc", "plots", "show", "--json"], cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    specs = [spec for title, renders in json.loads(shown.stdout)["data"].items() if "drift" in title.lower() for spec in renders]
    drift_plots = [plot for plot in pipeline["plots"] if any(inside(path) for definition in plot.values() for path in definition["y"])]
    assert len(specs) == len(drift_plots) == 1
    content = specs[0]["content"]
    assert [part["facet"]["field"] for part in content["vconcat"]] == ["feature", "feature"]  # numeric, categorical
    assert {row["feature"] for row in content["data"]["values"]} == {column.column for column in report.ranked}
    assert {row["field"] for row in content["data"]["values"]} == {"reference", "current"}


AT_CHANCE = {"roc_auc": 0.5}  # a test split ROC AUC no current window falls far below


def test_gate_fails_on_dataset_drift_and_on_a_metric_drop(model, config):
    config = replace(config, gate=GateConfig(fail_on_dataset_drift=True, fail_on_prediction_drift=False, max_roc_auc_drop=0.05))
    reference = window(3000, 1, False)
    quiet = drift_check(DriftInputs(reference, window(3000, 3, False), SPEC, model, test_metrics=AT_CHANCE), config)
    assert quiet.summary["gate"] == {"passed": True, "failed": [], "reasons": []}
    drifted = drift_check(DriftInputs(reference, window(3000, 2, True), SPEC, model, test_metrics=AT_CHANCE), config)
    assert not drifted.summary["gate"]["passed"] and drifted.summary["gate"]["failed"] == ["dataset_drift"]
    assert drifted.summary["gate"]["reasons"][0].startswith("dataset drift: 3 of 4 feature columns drifted")
    optimistic = {"roc_auc": 0.99}
    dropped = drift_check(DriftInputs(reference, window(3000, 3, False), SPEC, model, test_metrics=optimistic), config)
    assert dropped.summary["gate"]["failed"] == ["roc_auc_drop"]
    assert dropped.summary["gate"]["reasons"][0].startswith("ROC AUC on the current window is")
    relaxed = replace(config, gate=replace(config.gate, max_roc_auc_drop=None))
    relaxed_report = drift_check(DriftInputs(reference, window(3000, 3, False), SPEC, model, test_metrics=optimistic), relaxed)
    assert relaxed_report.summary["gate"]["passed"]


@pytest.mark.parametrize(
    ("test_metrics", "current", "why"),
    [
        (None, window(3000, 3, False), "reports/metrics.json has no roc_auc to compare with"),
        ({"auc": 0.7}, window(3000, 3, False), "reports/metrics.json has no roc_auc to compare with"),
        (AT_CHANCE, window(3000, 3, False).drop(columns="late"), "the current window has no complete target column"),
        (AT_CHANCE, window(3000, 3, False).assign(late=np.int8(0)), "the current window's target has one class only"),
    ],
)
def test_roc_auc_gate_fails_closed_when_the_drop_cannot_be_measured(model, config, test_metrics, current, why):
    gate = GateConfig(fail_on_dataset_drift=False, fail_on_prediction_drift=False, max_roc_auc_drop=0.05)
    summary = drift_check(
        DriftInputs(window(3000, 1, False), current, SPEC, model, test_metrics=test_metrics), replace(config, gate=gate)
    ).summary
    assert summary["gate"]["passed"] is False and summary["gate"]["failed"] == ["roc_auc_drop"]
    assert summary["gate"]["reasons"] == [
        f"ROC AUC drop not measured: {why} (set drift.gate.max_roc_auc_drop: null to turn the condition off)"
    ]
    off = replace(config, gate=replace(gate, max_roc_auc_drop=None))
    assert drift_check(DriftInputs(window(3000, 1, False), current, SPEC, model, test_metrics=test_metrics), off).summary["gate"]["passed"]


def test_roc_auc_drop_is_skipped_only_for_a_regression():
    assert roc_auc_drop("regression", {"rmse": 3.0}, {"rmse": 3.5}, labelled=True) == (None, None)
    assert roc_auc_drop("classification", {"rmse": 3.0}, {"roc_auc": 0.7}, labelled=True)[1] is not None
    drop, why = roc_auc_drop("classification", {"roc_auc": 0.75}, {"roc_auc": 0.7}, labelled=True)
    assert drop == pytest.approx(0.05) and why is None


@pytest.mark.parametrize("fail_on_prediction_drift", [True, False])
def test_fail_on_prediction_drift_decides_whether_prediction_drift_fails_the_gate(model, config, fail_on_prediction_drift):
    gate = GateConfig(fail_on_dataset_drift=False, fail_on_prediction_drift=fail_on_prediction_drift, max_roc_auc_drop=None)
    config = replace(config, gate=gate)
    reference = window(3000, 1, False)
    summer = drift_check(DriftInputs(reference, window(3000, 2, True), SPEC, model), config).summary
    assert summer["prediction_drift"]["drifted"] is True and summer["dataset_drift"] is True  # found either way
    assert summer["gate"]["passed"] is not fail_on_prediction_drift
    if fail_on_prediction_drift:
        assert summer["gate"]["failed"] == ["prediction_drift"]
        assert summer["gate"]["reasons"][0].startswith("prediction drift: ")
    winter = drift_check(DriftInputs(reference, window(3000, 3, False), SPEC, model), config).summary
    assert winter["prediction_drift"]["drifted"] is False and winter["gate"]["passed"]  # no prediction drift: nothing to fail on


def test_schema_changes_name_added_removed_and_retyped_columns():
    changes = schema_changes({"a": "int64", "b": "string", "c": "double"}, {"a": "double", "c": "double", "d": "bool"})
    assert changes == [
        {"column": "a", "change": "type", "reference": "int64", "current": "double"},
        {"column": "b", "change": "removed", "reference": "string", "current": ""},
        {"column": "d", "change": "added", "reference": "", "current": "bool"},
    ]


def test_empty_current_window_is_a_clear_error(model, config):
    with pytest.raises(UserError, match="data/prepared/current.parquet: the current window has no rows"):
        drift_check(DriftInputs(window(100, 1, False), window(100, 2, True).iloc[:0], SPEC, model), config)


def test_column_missing_from_current_is_a_clear_error(model, config):
    with pytest.raises(UserError, match="current window: input column 'dewp' is missing"):
        drift_check(DriftInputs(window(100, 1, False), window(100, 2, True).drop(columns="dewp"), SPEC, model), config)


def test_ten_row_current_window_gives_a_report(model, config):
    report = drift_check(DriftInputs(window(3000, 1, False), window(10, 2, True), SPEC, model), config)
    assert report.summary["rows"]["current"] == 10
    assert report.summary["columns_checked"] == 4


def test_gate_command_exit_codes(seasonal, tmp_path):
    (tmp_path / DRIFT_FILE).parent.mkdir()
    (tmp_path / DRIFT_FILE).write_text(json.dumps(seasonal.summary))
    failed = run_module("commands.drift_gate", tmp_path)
    assert failed.returncode == 1
    assert "drift gate: FAILED: dataset drift" in failed.stderr
    passing = {**seasonal.summary, "gate": {"passed": True, "failed": [], "reasons": []}}
    (tmp_path / DRIFT_FILE).write_text(json.dumps(passing))
    assert run_module("commands.drift_gate", tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "error: reports/drift.json: file not found; rerun `dvc repro drift-check`"),
        (
            "{not json",
            "error: reports/drift.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); rerun",
        ),
        ('{"drifted": []}', "error: reports/drift.json: no drift gate verdict (expected 'gate.passed' true or false); rerun"),
        ('{"gate": {"passed": null, "reasons": []}}', "error: reports/drift.json: no drift gate verdict"),
        ('{"gate": {"passed": false, "reasons": "dataset drift"}}', "error: reports/drift.json: 'gate.reasons' must be a list"),
    ],
)
def test_gate_command_without_a_verdict_exits_2_with_one_line(tmp_path, payload, message):
    """A gate that cannot decide must not pass: exit 2 (no verdict), not 0, and no traceback."""
    if payload is not None:
        (tmp_path / DRIFT_FILE).parent.mkdir()
        (tmp_path / DRIFT_FILE).write_text(payload)
    result = run_module("commands.drift_gate", tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_report_is_self_contained_and_deterministic(seasonal):
    page = render_report(seasonal.summary, seasonal.ranked, seasonal.prediction, seasonal.target)
    assert "<script" not in page.lower()
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert not external and "@import" not in page and "url(" not in page
    assert page == render_report(seasonal.summary, seasonal.ranked, seasonal.prediction, seasonal.target)


@pytest.mark.needs_tool("chromium")
def test_report_renders_in_a_headless_browser_and_shows_the_drifted_columns(seasonal, tmp_path, tools):
    chromium = tools["chromium"]
    page = tmp_path / "drift_report.html"
    page.write_text(render_report(seasonal.summary, seasonal.ranked, seasonal.prediction, seasonal.target))
    dom, shot = render_page(chromium, page, "1200,1600")
    drifted_rows = re.findall(r'<tr class="drifted"><td>([^<]+)</td>', dom)
    assert set(drifted_rows) == set(seasonal.summary["drifted"])
    assert "dataset drift" in dom and "gate failed" in dom
    assert dom.count("<svg") >= 4  # a chart per feature, plus predictions and target
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000  # a rendered page, not a blank one


def test_feature_shifts_compare_the_current_features_with_the_manifests_train_statistics(model, config):
    reference, current = window(3000, 1, False), window(3000, 2, True)
    train_statistics = {name: {"mean": float(reference[name].mean()), "std": float(reference[name].std())} for name in SPEC.numeric}
    report = drift_check(DriftInputs(reference, current, SPEC, model, train_statistics=train_statistics), config)
    shifts = report.summary["feature_shifts"]
    assert [shift["feature"] for shift in shifts][:2] == ["temp", "dewp"]  # summer is ~35 degrees warmer: ~4 train sd
    assert shifts[0]["shift_in_train_std"] > 3 > shifts[-1]["shift_in_train_std"]
    assert shifts[-1]["feature"] == "distance"
    assert drift_check(DriftInputs(reference, current, SPEC, model), config).summary["feature_shifts"] == []


def test_the_dvc_metrics_file_holds_the_headline_and_the_details_file_the_rest(seasonal, tmp_path, monkeypatch):
    """`dvc metrics diff` reads reports/drift.json: it must show a few verdicts, not every column's statistics
    (it showed 480 rows); the details file holds the rest, and the two merged give back every finding."""
    from dvc.utils.diff import diff

    from commands.drift_gate import read_drift
    from stages.lib.catalog import DRIFT_DETAILS

    monkeypatch.chdir(tmp_path)
    write_outputs(drift_outputs(seasonal))
    headline = json.loads(DRIFT_FILE.read_text())
    shown = diff({}, {str(DRIFT_FILE): {"data": headline}}, with_unchanged=True)[str(DRIFT_FILE)]  # DVC's own diff
    assert set(shown) == {
        "dataset_drift", "drift_share", "drifted_columns", "columns_checked", "drifted", "prediction_drifted", "roc_auc_drop",
        "gate.passed", "gate.failed", "gate.reasons",
    }  # fmt: skip
    assert shown["drift_share"]["new"] == pytest.approx(0.75) and shown["prediction_drifted"]["new"] is True
    details = json.loads(DRIFT_DETAILS.read_text())
    assert {"columns", "prediction_drift", "target_drift", "current_metrics"} <= set(details) and not set(details) & set(headline)
    assert read_drift(tmp_path) == json.loads(json.dumps(seasonal.summary))
    gate = run_module("commands.drift_gate", tmp_path)  # the gate command needs the metrics file only
    assert gate.returncode == 1 and "3 of 4 columns drifted (dest, dewp, temp)" in gate.stdout
