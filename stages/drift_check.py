"""drift-check: compare the current window with the training reference; report, plot and gate.

Columns are the model's inputs (the prepared columns featurize builds features from), plus the
model's predictions (from the features) and the target. The verdicts and a few headline numbers go to a DVC metrics file
(`HEADLINE`), every column's findings to a details file that is no metric, the most drifted features to DVC
plots, everything to a self-contained HTML report; `make drift-gate` turns the gate into an
exit code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from stages.lib import exact
from stages.lib.catalog import (
    DRIFT_DETAILS,
    DRIFT_FILE,
    DRIFT_PLOTS,
    DRIFT_REPORT,
    FEATURE_MANIFEST,
    FEATURE_SPEC,
    FEATURES_DIR,
    IMPORTANCE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PREPARED_DIR,
    REFERENCE_PROFILE,
    FeatureSpec,
)
from stages.lib.config import DriftConfig, DriftThresholds, GateConfig, load_params
from stages.lib.config.data import DataContract
from stages.lib.drift.columns import SCORE_TYPE, LevelCounts, Scratch, SortedSample
from stages.lib.drift.detect import detect_drift
from stages.lib.drift.partitioned import ScoredPart, findings_on_dask
from stages.lib.drift.result import ColumnDrift, DriftResult, json_ready
from stages.lib.drift.summaries import detect_drift_of_summaries
from stages.lib.drift.tables import read_columns, read_level_counts, read_profile, read_sorted, sorted_readable
from stages.lib.drift_html import PageContext, WindowFacts, render_report
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.io import Writer, json_writer, parquet_files, parquet_schema, read_json, read_yaml, write_outputs
from stages.lib.metrics import TASK_METRICS, window_metrics
from stages.lib.models import load_model, predict_scores
from stages.lib.runtime import limit_threads

PREDICTION = "prediction"
# How the drift check compares the target, which is no model input: prepare writes it as the task's outcome
# (0/1 for classification, numbers for regression), whatever type the source column had.
OUTCOME_TYPES = {"classification": "boolean", "regression": "numeric"}


@dataclass(frozen=True)
class DriftInputs:
    """What drift-check compares: the two windows and the model, and what the earlier stages wrote about them."""

    reference: pd.DataFrame  # the reference window's input columns and target (data/prepared/reference.parquet)
    current: pd.DataFrame  # the same for the current window
    spec: FeatureSpec
    model: BaseEstimator
    importance: dict[str, float] | None = None  # permutation importance per feature (evaluate); none: equal weights
    test_metrics: dict[str, Any] | None = None  # reports/metrics.json, for the ROC AUC drop
    reference_sorted: Mapping[str, np.ndarray | SortedSample] | None = None  # featurize's sorted reference profile
    # Current inputs read as sorted numbers inside the drift check's tasks (`tables.read_sorted`), not in `current`
    current_sorted: Mapping[str, Callable[[Scratch], SortedSample]] | None = None
    # Categorical inputs counted from both windows' files inside the drift check's tasks (`tables.read_level_counts`),
    # in neither frame
    counted: Mapping[str, tuple[Callable[[], LevelCounts], Callable[[], LevelCounts]]] | None = None
    schemas: tuple[dict[str, str], dict[str, str]] | None = None  # {column: type} of both windows' files
    features: tuple[pd.DataFrame, pd.DataFrame] | None = None  # the model's features of both windows (default: the windows)
    train_statistics: dict[str, dict[str, Any]] | None = None  # the feature manifest's train statistics


@dataclass(frozen=True)
class DaskInputs:
    """What drift-check reads besides the windows on the dask engine (the workers read the windows themselves)."""

    spec: FeatureSpec
    model: BaseEstimator
    importance: dict[str, float] | None = None
    test_metrics: dict[str, Any] | None = None
    schemas: tuple[dict[str, str], dict[str, str]] | None = None
    train_statistics: dict[str, dict[str, Any]] | None = None


# The keys of the summary that go to DRIFT_FILE, the DVC metrics file (`dvc metrics diff`, `dvc exp show`): the verdicts and
# the numbers a person compares across experiments. `drifted` and the gate's lists are lists, which DVC does not show.
HEADLINE = ("dataset_drift", "drift_share", "drifted_columns", "columns_checked", "drifted", "prediction_drifted", "roc_auc_drop", "gate")


@dataclass
class DriftReport:
    summary: dict[str, Any]  # every finding: HEADLINE to the DVC metrics file, the rest to the details file
    ranked: list[ColumnDrift]  # feature columns, most important drift first
    prediction: ColumnDrift
    target: ColumnDrift | None
    plots: list[dict[str, Any]]  # DRIFT_PLOTS: one row per feature and bin, every feature, ranked as in `ranked`


def schema_changes(reference: dict[str, str], current: dict[str, str]) -> list[dict[str, str]]:
    """Columns added, removed or retyped between two {column: type} schemas, in column-name order."""
    changes = []
    for name in sorted(set(reference) | set(current)):
        if name not in current:
            changes.append({"column": name, "change": "removed", "reference": reference[name], "current": ""})
        elif name not in reference:
            changes.append({"column": name, "change": "added", "reference": "", "current": current[name]})
        elif reference[name] != current[name]:
            changes.append({"column": name, "change": "type", "reference": reference[name], "current": current[name]})
    return changes


def _importance_weights(columns: list[str], importance: dict[str, float], sources: dict[str, list[str]]) -> dict[str, float]:
    """Non-negative importance shares per input column (summed over the features built from it);
    equal weights when the model shows no importance at all."""
    raw = dict.fromkeys(columns, 0.0)
    for feature, value in importance.items():
        for source in sources.get(feature, [feature]):
            if source in raw:
                raw[source] += max(float(value), 0.0)
    total = sum(raw.values())
    return {name: (value / total if total > 0 else 1.0 / len(columns)) for name, value in raw.items()}


def roc_auc_drop(
    task: str, test_metrics: dict[str, Any], current_metrics: dict[str, float], labelled: bool
) -> tuple[float | None, str | None]:
    """The test split's ROC AUC minus the current window's, or why it cannot be measured.

    (None, None) for a task that produces no ROC AUC (a regression): the only case the gate may skip."""
    if "roc_auc" not in TASK_METRICS[task]:
        return None, None
    test_auc = test_metrics.get("roc_auc")
    if isinstance(test_auc, bool) or not isinstance(test_auc, int | float):
        return None, f"{METRICS_FILE} has no roc_auc to compare with"
    if not labelled:
        return None, "the current window has no complete target column"
    if "roc_auc" not in current_metrics:
        return None, "the current window's target has one class only"
    return test_auc - current_metrics["roc_auc"], None


def _gate(result: DriftResult, prediction: ColumnDrift, drop: tuple[float | None, str | None], gate: GateConfig) -> dict[str, Any]:
    """The verdict, each failed condition by name (so a report can tell a new failure from an old one) and why."""
    failed = {}
    if gate.fail_on_dataset_drift and result.dataset_drift:
        failed["dataset_drift"] = (
            f"dataset drift: {len(result.drifted)} of {len(result.columns)} feature columns drifted (share {result.drift_share:.2f} >= {result.thresholds.drift_share})"
        )
    if gate.fail_on_prediction_drift and prediction.drifted:
        failed["prediction_drift"] = f"prediction drift: {prediction.method} {prediction.score:.3g} past {prediction.threshold}"
    roc_auc_drop, unmeasured = drop
    if gate.max_roc_auc_drop is not None and unmeasured is not None:
        # A gate that cannot decide fails; it is off only when the config says so.
        failed["roc_auc_drop"] = (
            f"ROC AUC drop not measured: {unmeasured} (set drift.gate.max_roc_auc_drop: null to turn the condition off)"
        )
    elif gate.max_roc_auc_drop is not None and roc_auc_drop is not None and roc_auc_drop > gate.max_roc_auc_drop:
        failed["roc_auc_drop"] = (
            f"ROC AUC on the current window is {roc_auc_drop:.3f} below the test split's (allowed drop {gate.max_roc_auc_drop})"
        )
    return {"passed": not failed, "failed": list(failed), "reasons": list(failed.values())}


FEATURE_SHIFTS_REPORTED = 10


def feature_shifts(current: pd.DataFrame, train_statistics: dict[str, dict[str, Any]], features: list[str]) -> list[dict[str, Any]]:
    """Engineered features whose current mean moved furthest from train, in train standard deviations.

    Reuses the train statistics of the feature manifest, so the drift check also sees the features
    the model reads (history shares, encodings), not only the inputs they are built from. `features` are the
    spec's numeric features (`FeatureSpec.numeric`): a categorical feature has no mean, whatever its values.
    """
    means = {}
    for name in features:
        stats = train_statistics.get(name, {})
        if "mean" not in stats or not stats.get("std"):
            continue
        values = current[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(values).all():
            continue
        means[name] = float(np.nanmean(values))
    return shifts_of_means(means, train_statistics)


def shifts_of_means(means: dict[str, float], train_statistics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """`feature_shifts` from the current means of the features ({feature: mean}; a feature without values left out)."""
    shifts = []
    for name, current_mean in means.items():
        stats = train_statistics.get(name, {})
        if "mean" not in stats or not stats.get("std"):
            continue
        shifts.append(
            {
                "feature": name,
                "train_mean": stats["mean"],
                "current_mean": round(current_mean, 6),
                "shift_in_train_std": round(abs(current_mean - stats["mean"]) / stats["std"], 6),
            }
        )
    shifts.sort(key=lambda shift: (-shift["shift_in_train_std"], shift["feature"]))
    return shifts[:FEATURE_SHIFTS_REPORTED]


@dataclass(frozen=True)
class Findings:
    """What drift-check measured, whatever the engine: the report follows from these and the config."""

    result: DriftResult  # the input columns
    prediction: ColumnDrift
    target: ColumnDrift | None  # None when the current window is not labelled
    labelled: bool  # the current window's target is complete
    current_metrics: dict[str, float]  # `window_metrics` of the current window (empty when unlabelled or one class)
    rows: tuple[int, int]  # the reference's and the current window's
    shifts: list[dict[str, Any]]  # `feature_shifts`


def drift_check(inputs: DriftInputs, config: DriftConfig, threads: int = 1) -> DriftReport:
    """Every drift finding for the current window; pure apart from its inputs.

    Args:
        inputs: the windows, the model and what the earlier stages wrote (`DriftInputs`).
        config: the `drift` section (thresholds, gate, how many plots).
        threads: columns compared at once.

    Returns:
        The metrics summary, the ranked columns, prediction and target drift, and the plot rows.

    Raises:
        UserError: an empty window, or a model input missing from the current window.
    """
    reference, current, spec = inputs.reference, inputs.current, inputs.spec
    for name, frame in (("reference", reference), ("current", current)):
        if not len(frame):  # rows, not cells: a window may hold no columns here when the drift check reads them all as sorted numbers
            fail(f"data/prepared/{name}.parquet: the {name} window has no rows; widen data.splits.{name} in conf/data/")
    # Each input as data/schema.yaml types it (featurize copied the types into the spec), never as its dtype suggests.
    columns = {name: spec.inputs[name] for name in sorted(spec.inputs)}
    read_in_tasks = {*(inputs.current_sorted or {}), *(inputs.counted or {})}
    missing = [column for column in columns if column not in current.columns and column not in read_in_tasks]
    if missing:
        fail(f"current window: input column '{missing[0]}' is missing; the current data must have every model input")
    thresholds: DriftThresholds = config.thresholds
    result = detect_drift(reference, current, columns, thresholds, inputs.reference_sorted, threads, inputs.current_sorted, inputs.counted)

    reference_features, current_features = inputs.features or (reference, current)
    reference_scores = predict_scores(inputs.model, reference_features[spec.features], spec.task)
    current_scores = predict_scores(inputs.model, current_features[spec.features], spec.task)
    prediction = detect_drift(
        pd.DataFrame({PREDICTION: reference_scores}), pd.DataFrame({PREDICTION: current_scores}), {PREDICTION: SCORE_TYPE}, thresholds
    ).columns[0]

    labelled = spec.target in current.columns and bool(current[spec.target].notna().all())
    target_types = {spec.target: OUTCOME_TYPES[spec.task]}
    target = detect_drift(reference, current, target_types, thresholds).columns[0] if labelled else None
    current_metrics = window_metrics(current[spec.target].to_numpy(), current_scores, spec.task) if labelled else {}
    shifts = feature_shifts(current_features, inputs.train_statistics, spec.numeric) if inputs.train_statistics else []
    findings = Findings(result, prediction, target, labelled, current_metrics, (len(reference), len(current)), shifts)
    return drift_report(findings, spec, config, inputs.importance, inputs.test_metrics, inputs.schemas)


def drift_report(
    findings: Findings,
    spec: FeatureSpec,
    config: DriftConfig,
    importance: dict[str, float] | None = None,
    test_metrics: dict[str, Any] | None = None,
    schemas: tuple[dict[str, str], dict[str, str]] | None = None,
) -> DriftReport:
    """The metrics summary, the ranked columns and the plot rows of the findings (the same code for both engines).

    Args:
        findings: what was measured.
        spec: the feature spec (task, inputs and where each feature comes from).
        config: the `drift` section.
        importance: permutation importance per feature (evaluate); None: equal weights.
        test_metrics: reports/metrics.json, for the ROC AUC drop.
        schemas: {column: type} of both windows' files, for the schema changes.
    """
    result, prediction, target = findings.result, findings.prediction, findings.target
    drop = roc_auc_drop(spec.task, test_metrics or {}, findings.current_metrics, findings.labelled)
    weights = _importance_weights([column.column for column in result.columns], importance or {}, spec.sources)
    ranked = sorted(result.columns, key=lambda column: (-column.severity * weights[column.column], -column.severity, column.column))
    gate = _gate(result, prediction, drop, config.gate)
    changes = schema_changes(*schemas) if schemas else []

    summary = {
        "feature_shifts": findings.shifts,
        "dataset_drift": result.dataset_drift,
        "drift_share": result.drift_share,
        "drifted_columns": len(result.drifted),
        "columns_checked": len(result.columns),
        "drifted": sorted(result.drifted),
        "missing_share_changes": sorted(column.column for column in result.columns if column.missing_drifted),
        "schema_changes": changes,
        "gate": gate,
        "prediction_drifted": prediction.drifted,
        "prediction_drift": prediction.to_json(),
        "target_drift": target.to_json() if target else None,
        "current_metrics": findings.current_metrics,
        "roc_auc_drop": drop[0],
        "rows": {"reference": findings.rows[0], "current": findings.rows[1]},
        "columns": {
            column.column: column.to_json()
            | {"importance_weight": weights[column.column], "weighted_drift": column.severity * weights[column.column]}
            for column in ranked
        },
    }
    # Every feature's shares, `shown` on the `drift.plots` most drifted: the top-level plot draws a feature shown in any
    # revision it compares for all of them, so `dvc plots diff` overlays one feature's revisions, not two ranks' features.
    # `value` is the x axis (a numeric bin's centre, or a category); `bin` orders the categories.
    plots = [
        {
            "feature": column.column,
            "rank": rank,
            "shown": rank <= config.plots,
            "bin": index,
            "value": value,
            "reference": reference_share,
            "current": current_share,
        }
        for rank, column in enumerate(ranked, start=1)
        for index, (value, reference_share, current_share) in enumerate(
            zip(column.histogram.get("value", []), column.histogram.get("reference", []), column.histogram.get("current", []), strict=True)
        )
    ]
    return DriftReport(summary=json_ready(summary), ranked=ranked, prediction=prediction, target=target, plots=plots)


def _current_metrics(scored: ScoredPart, task: str, target: str) -> dict[str, float]:
    """`window_metrics` of the current window from its merged score table (classification) or error sums (regression)."""
    if task == "classification" and scored.table is not None:
        table = scored.table
        positives = int(table.outcome.sum())
        if positives in (0, table.total):
            return {}  # one class only, as window_metrics
        metrics = exact.classification_metrics(table, threshold=0.5)
        return {name: metrics[name] for name in ("roc_auc", "average_precision", "brier", "late_share")}
    if task == "regression" and scored.errors is not None:
        metrics = exact.regression_metrics(scored.errors)
        return {name: metrics[name] for name in ("rmse", "mae", "target_mean")}
    fail(f"{FEATURES_DIR}/current.parquet: no target column '{target}' to measure the current window by; rerun `dvc repro featurize`")


def drift_check_on_dask(inputs: DaskInputs, config: DriftConfig, cap: int, root: Path = Path()) -> DriftReport:
    """`drift_check` on the cluster: both windows read row group by row group on the workers, the model applied there,
    exact mergeable summaries merged (stages/lib/drift/partitioned.py); the same findings as the pandas engine.

    Args:
        inputs: the spec, the model and what the earlier stages wrote (`DaskInputs`).
        config: the `drift` section.
        cap: engine.max_distinct_values.
        root: the project folder (the workers get absolute paths).

    Raises:
        UserError: an empty window, a model input missing from the current window, a column past the cap.
    """
    spec = inputs.spec
    columns = {name: spec.inputs[name] for name in sorted(spec.inputs)}
    current_schema = parquet_schema(root / PREPARED_DIR / "current.parquet", "run `dvc repro prepare` first")
    missing = [column for column in columns if column not in current_schema]
    if missing:
        fail(f"current window: input column '{missing[0]}' is missing; the current data must have every model input")
    prepared = tuple((root / PREPARED_DIR / f"{name}.parquet").resolve() for name in ("reference", "current"))
    features = tuple((root / FEATURES_DIR / f"{name}.parquet").resolve() for name in ("reference", "current"))
    numeric = list(spec.numeric) if inputs.train_statistics else []
    summarized = columns | {spec.target: OUTCOME_TYPES[spec.task]}
    windows = findings_on_dask((prepared[0], prepared[1]), (features[0], features[1]), summarized, spec, inputs.model, numeric, cap)
    rows = []
    for name, window in (("reference", windows.reference), ("current", windows.current)):
        count = window[next(iter(columns))].rows if columns and next(iter(columns)) in window else 0
        if not count:
            fail(f"data/prepared/{name}.parquet: the {name} window has no rows; widen data.splits.{name} in conf/data/")
        rows.append(count)
    absent = [column for column in columns if column not in windows.reference]
    if absent:
        fail(f"reference window: input column '{absent[0]}' is missing; rerun `dvc repro prepare`")
    thresholds: DriftThresholds = config.thresholds
    result = detect_drift_of_summaries(windows.reference, windows.current, columns, thresholds)
    if windows.reference_scores is None or windows.current_scores is None:
        fail(f"{FEATURES_DIR}: a window's features have no rows; rerun `dvc repro featurize`")
    scores = {PREDICTION: SCORE_TYPE}
    prediction = detect_drift_of_summaries(
        {PREDICTION: windows.reference_scores.prediction}, {PREDICTION: windows.current_scores.prediction}, scores, thresholds
    ).columns[0]
    outcome = windows.current.get(spec.target)
    labelled = outcome is not None and outcome.missing == 0
    target = None
    if labelled:
        if spec.target not in windows.reference:
            fail(f"data/prepared/reference.parquet: no target column '{spec.target}'; rerun `dvc repro prepare`")
        target_types = {spec.target: OUTCOME_TYPES[spec.task]}
        target = detect_drift_of_summaries(windows.reference, windows.current, target_types, thresholds).columns[0]
    current_metrics = _current_metrics(windows.current_scores, spec.task, spec.target) if labelled else {}
    sums = windows.current_scores.sums
    means = {name: sums[name].mean() for name in numeric if name in sums and sums[name].count}
    shifts = shifts_of_means(means, inputs.train_statistics) if inputs.train_statistics else []
    findings = Findings(result, prediction, target, labelled, current_metrics, (rows[0], rows[1]), shifts)
    return drift_report(findings, spec, config, inputs.importance, inputs.test_metrics, inputs.schemas)


def read_windows(
    spec: FeatureSpec,
    root: Path = Path(),
    profiled: Collection[str] = (),
    sorted_current: Collection[str] = (),
    counted: Collection[str] = (),
) -> tuple[tuple[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    """The prepared reference and current windows and their features, each with only the columns drift-check reads:
    the model's inputs and the target (prepared), the model's features (featurized). Other columns are never decoded.

    Args:
        spec: the feature spec (which inputs, features and target).
        root: the project folder.
        profiled: inputs the stored reference profile holds: not read from the prepared reference (the profile gives
            their sorted values and row count).
        sorted_current: inputs not read from the prepared current window (the drift check reads them as sorted numbers).
        counted: inputs read from neither prepared window (the drift check counts their categories from the files).

    Returns:
        ((reference, current) prepared, (reference, current) features).
    """
    prepared_columns, hint = [*spec.inputs, spec.target], "run `dvc repro prepare` first"
    reference_columns = [name for name in prepared_columns if name not in profiled and name not in counted]
    current_columns = [name for name in prepared_columns if name not in sorted_current and name not in counted]
    reference = read_columns(root / PREPARED_DIR / "reference.parquet", reference_columns, hint)
    current = read_columns(root / PREPARED_DIR / "current.parquet", current_columns, hint)
    prepared = (reference, current)
    hint = "run `dvc repro featurize` first"
    features = tuple(read_columns(root / FEATURES_DIR / f"{name}.parquet", spec.features, hint) for name in ("reference", "current"))
    return (prepared[0], prepared[1]), (features[0], features[1])


def split_summary(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary's HEADLINE keys (the DVC metrics file) and the rest (the details file); together, the whole summary."""
    headline = {key: summary[key] for key in HEADLINE}
    return headline, {key: value for key, value in summary.items() if key not in headline}


def _time_text(value: Any) -> str:
    """A time as the report shows it: to the minute, in UTC when the data's times carry a zone."""
    stamp = pd.Timestamp(value)
    return f"{stamp:%Y-%m-%d %H:%M}" if stamp.tzinfo is None else f"{stamp.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def time_span(path: Path, column: str, hint: str) -> tuple[str | None, str | None]:
    """The first and last time in a table's `column` (a Parquet file or a folder of parts): from the footers' statistics,
    or from the column itself where a footer has none; (None, None) when the table has no such column or no values."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lows, highs = [], []
    for part in parquet_files(path, hint):
        handle = pq.ParquetFile(part)
        if column not in handle.schema_arrow.names:
            return None, None
        index = handle.schema_arrow.get_field_index(column)
        groups = [handle.metadata.row_group(group).column(index).statistics for group in range(handle.metadata.num_row_groups)]
        if all(stats is not None and stats.has_min_max for stats in groups):
            lows += [stats.min for stats in groups if stats.null_count < stats.num_values]
            highs += [stats.max for stats in groups if stats.null_count < stats.num_values]
            continue
        found = pc.min_max(handle.read(columns=[column]).column(0))
        if found["min"].is_valid:
            lows.append(found["min"].as_py())
            highs.append(found["max"].as_py())
    if not lows:
        return None, None
    return _time_text(min(lows)), _time_text(max(highs))


def page_context(data: DataContract, config: DriftConfig, root: Path = Path()) -> PageContext:
    """What the HTML report says about its inputs: the dataset, both windows (configured, and the first and last time
    of their prepared data), and the model file's sha256. All from files and config: no clock time, so the page stays
    byte-identical for the same inputs."""
    configured = data.windows.model_dump(mode="json")  # the windows as the config writes them
    windows = []
    for name in ("reference", "current"):
        first, last = time_span(root / PREPARED_DIR / f"{name}.parquet", data.time, "run `dvc repro prepare` first")
        windows.append(WindowFacts(name, configured[name]["start"], configured[name]["end"], first, last))
    model = root / MODEL_FILE
    if not model.is_file():
        fail(f"{MODEL_FILE}: file not found; run `dvc repro train` first")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    return PageContext(data.name, data.time, tuple(windows), str(MODEL_FILE), digest, config)


def drift_outputs(report: DriftReport, context: PageContext) -> dict[Path, Writer]:
    """Every file drift-check writes: the same set whatever the number of features (dvc.yaml declares them)."""
    html = render_report(report.summary, report.ranked, report.prediction, report.target, context)
    headline, details = split_summary(report.summary)
    return {
        DRIFT_FILE: json_writer(headline),
        DRIFT_DETAILS: json_writer(details),
        DRIFT_REPORT: lambda path: path.write_text(html, encoding="utf-8"),
        DRIFT_PLOTS: json_writer(report.plots),
    }


def main() -> None:
    params = load_params()
    threads = limit_threads(params.runtime)
    config = params.drift
    spec = FeatureSpec.from_json(read_json(FEATURE_SPEC, "run `dvc repro featurize` first"))
    model = load_model(MODEL_FILE)
    importance = {row["feature"]: row["importance"] for row in read_json(IMPORTANCE_FILE, "run `dvc repro evaluate` first")}
    test_metrics = read_json(METRICS_FILE, "run `dvc repro evaluate` first")
    hint = "run `dvc repro prepare` first"
    schemas = (parquet_schema(PREPARED_DIR / "reference.parquet", hint), parquet_schema(PREPARED_DIR / "current.parquet", hint))
    manifest = read_yaml(FEATURE_MANIFEST, "run `dvc repro featurize` first")
    train_statistics = {name: entry.get("train", {}) for name, entry in manifest["columns"].items()}
    with engine_session(params.engine) as client:
        if client is None:
            profile = read_profile(REFERENCE_PROFILE, spec.inputs, "run `dvc repro featurize` first")
            # The profiled inputs stored as numbers in the current window: each read, sorted and compared in one task.
            current_path = PREPARED_DIR / "current.parquet"
            sorted_current = sorted_readable(current_path, [name for name in spec.inputs if name in profile], hint)
            # The categorical inputs both windows hold: each side's categories counted from its file in the column's task.
            counted = [name for name, kind in spec.inputs.items() if kind == "categorical" and all(name in schema for schema in schemas)]
            windows = read_windows(spec, Path(), profile, sorted_current, counted)
            (reference, current), (reference_features, current_features) = windows
            reference_path = PREPARED_DIR / "reference.parquet"
            inputs = DriftInputs(
                reference=reference,
                current=current,
                spec=spec,
                model=model,
                importance=importance,
                test_metrics=test_metrics,
                reference_sorted=profile,
                current_sorted={name: partial(read_sorted, current_path, name) for name in sorted_current},
                counted={
                    name: (partial(read_level_counts, reference_path, name, hint), partial(read_level_counts, current_path, name, hint))
                    for name in counted
                },
                schemas=schemas,
                features=(reference_features, current_features),
                train_statistics=train_statistics,
            )
            report = drift_check(inputs, config, threads)
        else:
            dask_inputs = DaskInputs(spec, model, importance, test_metrics, schemas, train_statistics)
            report = drift_check_on_dask(dask_inputs, config, params.engine.max_distinct_values)
    write_outputs(drift_outputs(report, page_context(params.data, config)))
    verdict = "DRIFT" if report.summary["dataset_drift"] else "no dataset drift"
    print(
        f"drift-check: {verdict}: {report.summary['drifted_columns']} of {report.summary['columns_checked']} columns drifted "
        f"({', '.join(report.summary['drifted']) or 'none'}); gate {'passed' if report.summary['gate']['passed'] else 'FAILED'} -> {DRIFT_REPORT}"
    )


if __name__ == "__main__":
    run_stage(main)
