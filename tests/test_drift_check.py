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
from stages.lib.drift_html import PageContext, WindowFacts, render_report
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
    write_outputs(drift_outputs(report, sample_context(config)))
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


WIDE_COLUMNS = {  # the default data's input names and types: the report's widest tables come from these
    **dict.fromkeys(["sched_dep_time", "sched_arr_time", "minute", "hour", "distance", "temp", "dewp", "humid"], "numeric"),
    **dict.fromkeys(["wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"], "numeric"),
    **dict.fromkeys(["carrier", "origin", "dest"], "categorical"),
}


def wide_window(rows: int, seed: int, later: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(40 + 25 * later, 10, rows) for name, kind in WIDE_COLUMNS.items() if kind == "numeric"})
    frame["precip"] = np.where(rng.random(rows) < 0.9, 0.0, rng.exponential(0.0001, rows))
    frame.loc[rng.random(rows) < (0.83 if later else 0.67), "wind_gust"] = np.nan  # a missing-share finding
    airports = ["ATL", "ORD", "SEA", "BOS", "LAX", *(["ACK", "ILM", "MVY", "SBN", "BZN", "EGE", "JAC"] if later else [])]
    frame["dest"] = rng.choice(airports, rows)  # unseen categories: a long note
    frame["carrier"] = rng.choice(["UA", "AA", "B6", "DL", "EV", "MQ"], rows)
    frame["origin"] = rng.choice(["EWR", "JFK", "LGA"], rows)
    frame["late"] = (rng.random(rows) < (0.2 if later else 0.25)).astype(np.int8)
    return frame


def sample_context(config: DriftConfig) -> PageContext:
    windows = (
        WindowFacts("reference", "2013-01-01", "2013-05-01", "2013-01-01 10:00 UTC", "2013-04-30 23:00 UTC"),
        WindowFacts("current", "2013-09-01", "2013-11-01", "2013-09-01 00:00 UTC", "2013-10-31 23:00 UTC"),
    )
    return PageContext("nycflights13", "time_hour", windows, "models/model.skops", "9bc23a0715c0" + "0" * 52, config)


def wide_page(config: DriftConfig, prediction_gate: bool = False) -> str:
    """The report of a drift result shaped like the default data's (17 inputs, long notes, tiny p-values), built with
    no model: the prediction is a score column of its own."""
    from stages.drift_check import Findings, drift_report
    from stages.lib.drift.detect import detect_drift

    numeric = [name for name, kind in WIDE_COLUMNS.items() if kind == "numeric"]
    spec = FeatureSpec.plain(numeric, ["carrier", "origin", "dest"])
    reference, current = wide_window(1500, 1, False), wide_window(1500, 2, True)
    thresholds = config.thresholds
    result = detect_drift(reference, current, WIDE_COLUMNS, thresholds)
    rng = np.random.default_rng(3)
    scores = pd.DataFrame({"prediction": rng.beta(2, 6, 1500)}), pd.DataFrame({"prediction": rng.beta(2, 4, 1500)})
    prediction = detect_drift(*scores, {"prediction": "numeric"}, thresholds).columns[0]
    target = detect_drift(reference, current, {"late": "boolean"}, thresholds).columns[0]
    metrics = {"roc_auc": 0.6882, "average_precision": 0.3, "brier": 0.15, "late_share": 0.2}
    shifts = [{"feature": "history_carrier_7d_late_mean", "train_mean": 0.258, "current_mean": 0.155, "shift_in_train_std": 1.053}]
    findings = Findings(result, prediction, target, True, metrics, (105_396, 55_601), shifts)
    gate = GateConfig(fail_on_dataset_drift=True, fail_on_prediction_drift=prediction_gate, max_roc_auc_drop=0.05)
    config = replace(config, gate=gate)
    importance = {name: 0.01 * (index + 1) for index, name in enumerate(WIDE_COLUMNS)}
    report = drift_report(findings, spec, config, importance, {"roc_auc": 0.6881})
    return render_report(report.summary, report.ranked, report.prediction, report.target, sample_context(config))


def text_of(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    import html

    text = " ".join(html.unescape(re.sub(r"<wbr>", "", re.sub(r"<(?!wbr)[^>]+>", " ", page))).split())
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([),;.:])", r"\1", text))


def test_report_is_self_contained_and_deterministic(config):
    page = wide_page(config)
    assert "<script" not in page.lower()
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert not external and "@import" not in page and "url(" not in page
    assert page == wide_page(config)


def test_report_names_dataset_windows_data_times_and_model_version(config):
    text = text_of(wide_page(config))
    assert "dataset nycflights13" in text
    assert "reference window 2013-01-01 to 2013-05-01 (end excluded, data.splits.reference)" in text
    assert "data from 2013-09-01 00:00 UTC to 2013-10-31 23:00 UTC (time_hour); 55,601 rows" in text
    assert "model models/model.skops, sha256 9bc23a0715c0" in text


def test_glossary_gives_each_methods_direction(config):
    """A distance drifts at or above its threshold, a p-value below it: the glossary and the table say which."""
    text = text_of(wide_page(config))
    expected = {"ks_p_value": "< 0.050", "chi2_p_value": "< 0.050", "wasserstein_norm": "≥ 0.100", "jensen_shannon": "≥ 0.100"}
    glossary = text.split("Glossary", 1)[1]
    assert "method judges score drifted when the score is" in glossary
    for method, rule in expected.items():
        found = re.search(rf"{method} (numeric|categorical) columns [^<≥]*([<≥] [\d.]+)", glossary)
        assert found and found.group(2) == rule, (method, found)
    features = text.split("Features, by drift", 1)[1].split("Missing values", 1)[0]
    assert "temp wasserstein_norm" in features and re.search(r"temp wasserstein_norm [\d.]+ ≥ 0\.100 values", features)
    assert "score the value of the column's verdict method: a distance (larger is more drift) or a p-value" in glossary


@pytest.mark.parametrize("prediction_gate", [False, True])
def test_gate_section_says_which_conditions_are_on_and_why_the_verdict_follows(config, prediction_gate):
    text = text_of(wide_page(config, prediction_gate))
    gate = text.split("Gate", 1)[1].split("Features, by drift", 1)[0]
    assert "data set drift on (drift.gate.fail_on_dataset_drift: true) yes: 14 of 17 columns drifted" in gate
    assert "ROC AUC drop from the test split on (drift.gate.max_roc_auc_drop: 0.05) 0.000 (allowed 0.05) passes" in gate
    if prediction_gate:
        assert "The gate failed on data set drift, prediction drift." in gate
        assert "prediction drift on (drift.gate.fail_on_prediction_drift: true) yes: wasserstein_norm" in gate
        assert "Found but off" not in gate
    else:
        assert "The gate failed on data set drift. Found but off, so not counted: prediction drift." in gate
        assert "prediction drift off (drift.gate.fail_on_prediction_drift: false) yes:" in gate
        assert "off not part of the verdict, whatever was found" in gate
    model = text.split("Model", 1)[1].split("Distributions", 1)[0]
    assert "model prediction wasserstein_norm" in model and f"yes prediction drift: {'on' if prediction_gate else 'off'}" in model


def test_histogram_has_round_ticks_and_titled_axes():
    from stages.lib.drift_html import bar_chart, nice_ticks

    assert nice_ticks(-3.7, 101.3) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.0, 0.23, 4) == [0, 0.05, 0.1, 0.15, 0.2]
    assert nice_ticks(1012.5, 1031.0) == [1015, 1020, 1025, 1030]
    centres = list(np.linspace(-3.7, 101.3, 20, endpoint=False) + 105 / 40)  # 20 equal bins over [-3.7, 101.3]
    shares = [0.05] * 20
    chart = bar_chart({"value": centres, "reference": shares, "current": shares}, "temp", "temp")
    x_ticks = re.findall(r'<text class="tick x"[^>]*>([^<]+)</text>', chart)
    y_ticks = re.findall(r'<text class="tick y"[^>]*>([^<]+)</text>', chart)
    assert x_ticks == ["0", "20", "40", "60", "80", "100"]
    assert y_ticks == ["0%", "1%", "2%", "3%", "4%", "5%"]
    assert re.search(r'<text class="axis-title x"[^>]*>temp</text>', chart)
    assert re.search(r'<text class="axis-title y"[^>]*>share of rows with a value</text>', chart)
    # The 0 tick sits where 0 lies on the axis: 3.7 of the 105 units from the left end of the plot.
    positions = [float(x) for x in re.findall(r'<text class="tick x" x="([\d.]+)"', chart)]
    assert positions[-1] - positions[0] == pytest.approx(450 * 100 / 105, abs=0.1)
    categories = bar_chart({"value": ["ATL", "ORD"], "reference": [0.4, 0.6], "current": [0.5, 0.5]}, "dest", "dest")
    assert re.findall(r'<text class="tick x"[^>]*>([^<]+)</text>', categories) == ["ATL", "ORD"]


# Run in the rendered page (a copy with this script; the report itself has none): every table cell's right edge against
# the viewport, scrolled containers, and in each table the right edge of a numeric column's header text against its numbers'.
LAYOUT_SCRIPT = """<script>
const width = document.documentElement.clientWidth;
const found = {width: window.innerWidth, page: document.documentElement.scrollWidth, beyond: [], scrolled: [], misaligned: []};
const textRight = (cell) => { const range = document.createRange(); range.selectNodeContents(cell);
  return Math.max(...Array.from(range.getClientRects(), (rect) => rect.right)); };
for (const cell of document.querySelectorAll("th, td")) {
  if (cell.getBoundingClientRect().right > width + 0.5) found.beyond.push(cell.textContent.slice(0, 40));
}
for (const box of document.querySelectorAll(".wide")) { if (box.scrollWidth > box.clientWidth + 1) found.scrolled.push(box.scrollWidth); }
for (const table of document.querySelectorAll("table")) {
  const header = table.rows[0];
  if (!header || header.cells[0].tagName !== "TH" || header.cells.length < 2 || header.cells[1].tagName !== "TH") continue;
  for (let index = 0; index < header.cells.length; index++) {
    for (const row of Array.from(table.rows).slice(1)) {
      const cell = row.cells[index];
      if (!cell || !cell.classList.contains("num") || !cell.textContent.trim()) continue;
      const offset = textRight(cell) - textRight(header.cells[index]);
      if (Math.abs(offset) > 1.5) found.misaligned.push(header.cells[index].textContent + ": " + offset.toFixed(1));
    }
  }
}
document.body.insertAdjacentHTML("beforeend", "<pre id='layout'>" + JSON.stringify(found) + "</pre>");
</script>"""


@pytest.mark.needs_tool("chromium")
def test_report_fits_1024_and_1400_px_with_headers_over_their_numbers(config, tmp_path, tools):
    """Rendered in headless Chromium at both widths: no cell beyond the viewport (the notes column was at 1400 px, the
    p-values at 1024 px), nothing scrolled sideways, numeric headers right-aligned over their numbers; the page shows
    the verdicts and draws every chart."""
    report = wide_page(config)
    page = tmp_path / "drift_report.html"
    page.write_text(report.replace("</body>", f"{LAYOUT_SCRIPT}</body>"), encoding="utf-8")
    for width in (1024, 1400):
        dom, shot = render_page(tools["chromium"], page, f"{width},900")
        layout = json.loads(re.search(r"<pre id=\"layout\">(.*?)</pre>", dom).group(1))
        assert layout["width"] == width
        assert layout["beyond"] == [] and layout["scrolled"] == [] and layout["page"] <= width, layout
        assert layout["misaligned"] == [], layout
        assert shot.startswith(b"\x89PNG") and len(shot) > 20_000  # a rendered page, not a blank one
    drifted_rows = {re.sub(r"<[^>]+>", "", name) for name in re.findall(r'<tr class="drifted"><td>(.*?)</td>', dom)}
    assert "wind_gust" in drifted_rows and "origin" not in drifted_rows and "dataset drift" in dom and "gate failed" in dom
    assert dom.count("<svg") == len(WIDE_COLUMNS) + 2  # a chart per feature, plus predictions and target


def test_page_context_dates_windows_by_their_data_and_versions_the_model_by_its_hash(params, tmp_path):
    """The report's dates come from the data (the first and last time of each prepared window, a file or a folder of
    parts) and the config, its model version from the model file's bytes: no clock, so reruns give the same page."""
    import hashlib

    from stages.drift_check import page_context
    from stages.lib.catalog import MODEL_FILE, PREPARED_DIR

    parsed = parse_params(params)
    times = pd.to_datetime(["2013-01-03 05:00", "2013-01-01 10:00", "2013-04-30 23:00"]).tz_localize("UTC")
    (tmp_path / PREPARED_DIR).mkdir(parents=True)
    pd.DataFrame({parsed.data.time: times, "temp": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / PREPARED_DIR / "reference.parquet")
    parts = tmp_path / PREPARED_DIR / "current.parquet"
    parts.mkdir()
    for index, day in enumerate(["2013-09-01 00:00", "2013-10-31 23:00"]):
        pd.DataFrame({parsed.data.time: pd.to_datetime([day]).tz_localize("UTC")}).to_parquet(parts / f"part-0000{index}.parquet")
    (tmp_path / MODEL_FILE).parent.mkdir()
    (tmp_path / MODEL_FILE).write_bytes(b"model bytes")
    context = page_context(parsed.data, parsed.drift, tmp_path)
    assert context.dataset == parsed.data.name and context.time_column == parsed.data.time
    assert context.model_sha256 == hashlib.sha256(b"model bytes").hexdigest()
    reference, current = context.windows
    assert (reference.name, reference.first, reference.last) == ("reference", "2013-01-01 10:00 UTC", "2013-04-30 23:00 UTC")
    assert (current.name, current.first, current.last) == ("current", "2013-09-01 00:00 UTC", "2013-10-31 23:00 UTC")
    assert (reference.start, reference.end) == (
        params["data"]["splits"]["reference"]["start"],
        params["data"]["splits"]["reference"]["end"],
    )
    assert page_context(parsed.data, parsed.drift, tmp_path) == context


def test_feature_shifts_compare_the_current_features_with_the_manifests_train_statistics(model, config):
    reference, current = window(3000, 1, False), window(3000, 2, True)
    train_statistics = {name: {"mean": float(reference[name].mean()), "std": float(reference[name].std())} for name in SPEC.numeric}
    report = drift_check(DriftInputs(reference, current, SPEC, model, train_statistics=train_statistics), config)
    shifts = report.summary["feature_shifts"]
    assert [shift["feature"] for shift in shifts][:2] == ["temp", "dewp"]  # summer is ~35 degrees warmer: ~4 train sd
    assert shifts[0]["shift_in_train_std"] > 3 > shifts[-1]["shift_in_train_std"]
    assert shifts[-1]["feature"] == "distance"
    assert drift_check(DriftInputs(reference, current, SPEC, model), config).summary["feature_shifts"] == []


def test_the_dvc_metrics_file_holds_the_headline_and_the_details_file_the_rest(seasonal, config, tmp_path, monkeypatch):
    """`dvc metrics diff` reads reports/drift.json: it must show a few verdicts, not every column's statistics
    (it showed 480 rows); the details file holds the rest, and the two merged give back every finding."""
    from dvc.utils.diff import diff

    from commands.drift_gate import read_drift
    from stages.lib.catalog import DRIFT_DETAILS

    monkeypatch.chdir(tmp_path)
    write_outputs(drift_outputs(seasonal, sample_context(config)))
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
