"""What the monitor stage needs from performance estimation, intervals and segment drift, behind one small interface.

The estimation library (stages/lib/monitor/estimation.py: CBPE and DLE; intervals.py: bootstrap intervals;
segments.py: segment drift with false-discovery-rate control) is built alongside this stage. Until it is
merged, the functions marked STAND-IN below do the same jobs simply; at merge they are replaced by calls
to the real ones, and nothing else in the monitor changes. Every function returns plain JSON-ready values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from stages.lib.config import DriftThresholds
from stages.lib.drift.detect import detect_drift
from stages.lib.drift.p_values import benjamini_hochberg

CLASSIFICATION_METRIC = "roc_auc"
REGRESSION_METRIC = "mae"


def main_metric(task: str) -> str:
    """The metric the timeline draws and `alerts.min_roc_auc` / `alerts.max_mae` bound."""
    return CLASSIFICATION_METRIC if task == "classification" else REGRESSION_METRIC


@dataclass(frozen=True)
class Bootstrap:
    level: float
    resamples: int
    seed: int


# ---------------------------------------------------------------------------------------------------------------
# Realized performance: the metric on the labelled rows, with a bootstrap interval.


def bootstrap_interval(metric: str, actual: np.ndarray, scores: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """STAND-IN for stages.lib.monitor.intervals.bootstrap_interval (same signature): percentile bootstrap."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(actual), len(actual))
        if metric == "roc_auc":
            if len(np.unique(actual[drawn])) < 2:
                continue
            values.append(float(roc_auc_score(actual[drawn], scores[drawn])))
        else:
            values.append(float(np.mean(np.abs(actual[drawn] - scores[drawn]))))
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def realized(task: str, actual: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: Bootstrap) -> dict[str, Any]:
    """The main metric of labelled rows with its interval, plus accuracy and F1 at `threshold` (classification).

    Returns:
        {"metric", "value", "lower", "upper"} and, for classification, "accuracy" and "f1"; value None (and a "note")
        when the metric is undefined (no rows, or one class only for ROC AUC).
    """
    metric = main_metric(task)
    result: dict[str, Any] = {"metric": metric, "value": None, "lower": None, "upper": None}
    if not len(actual):
        return result | {"note": "no outcomes yet"}
    if task == "classification":
        predicted = scores >= threshold
        positives, hits = int(actual.sum()), int(((predicted == 1) & (actual == 1)).sum())
        result |= {
            "accuracy": float(np.mean(predicted == actual)),
            "f1": 2 * hits / (positives + int(predicted.sum())) if positives else 0.0,
        }
        if len(np.unique(actual)) < 2:
            return result | {"note": "the outcomes hold one class only: ROC AUC is undefined"}
        value = float(roc_auc_score(actual, scores))
    else:
        value = float(np.mean(np.abs(actual - scores)))
    lower, upper = bootstrap_interval(metric, actual, scores, bootstrap.level, bootstrap.resamples, bootstrap.seed)
    return result | {"value": value, "lower": lower, "upper": upper}


# ---------------------------------------------------------------------------------------------------------------
# Estimated performance without outcomes: CBPE (classification), DLE (regression), fitted on the reference.


@dataclass(frozen=True)
class Estimator:
    """What the reference taught: a calibration of the scores (classification) or a model of the absolute error (regression)."""

    task: str
    fitted: Any


def fit_estimator(task: str, scores: np.ndarray, actual: np.ndarray) -> Estimator:
    """STAND-IN for estimation.fit_calibrator (classification) / fit_loss_model (regression), fitted on the reference."""
    if task == "classification":
        return Estimator(task, IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, actual))
    # Mean absolute error per decile of the prediction: the loss model in its simplest form.
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, 11)))
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, max(len(edges) - 2, 0))
    errors = np.abs(actual - scores)
    means = np.array([errors[bins == index].mean() if (bins == index).any() else errors.mean() for index in range(max(len(edges) - 1, 1))])
    return Estimator(task, (edges, means))


def _band(values: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _estimate_classification(calibrated: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: Bootstrap) -> dict[str, Any]:
    """STAND-IN for estimation.estimate_classification: expected confusion matrix and metrics under the calibrated
    probabilities; bands from outcomes drawn from them."""
    predicted = scores >= threshold
    tp, fp = float(calibrated[predicted].sum()), float((1 - calibrated[predicted]).sum())
    fn, tn = float(calibrated[~predicted].sum()), float((1 - calibrated[~predicted]).sum())
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    rng = np.random.default_rng(bootstrap.seed)
    drawn = rng.random((bootstrap.resamples, len(scores))) < calibrated
    positives = drawn.sum(axis=1).astype(np.float64)
    negatives = len(scores) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = (drawn @ ranks - positives * (positives + 1) / 2) / (positives * negatives)
        hits = (drawn & predicted).sum(axis=1)
        accuracies = (hits + (~drawn & ~predicted).sum(axis=1)) / len(scores)
        f1s = 2 * hits / (positives + predicted.sum())
    expected_positives = calibrated.sum()
    order = np.argsort(-scores, kind="mergesort")
    true_positive = np.concatenate([[0.0], np.cumsum(calibrated[order])]) / max(expected_positives, 1e-12)
    false_positive = np.concatenate([[0.0], np.cumsum(1 - calibrated[order])]) / max(len(scores) - expected_positives, 1e-12)
    auc = float(np.trapezoid(true_positive, false_positive))
    metrics = {"roc_auc": (auc, aucs), "accuracy": ((tp + tn) / len(scores), accuracies), "f1": (2 * tp / (2 * tp + fp + fn), f1s)}
    result: dict[str, Any] = {"confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}
    for name, (value, draws) in metrics.items():
        finite = draws[np.isfinite(draws)]
        lower, upper = _band(finite, bootstrap.level) if len(finite) else (float("nan"), float("nan"))
        result[name] = {"value": value, "lower": lower, "upper": upper}
    return result


def _estimate_regression(loss_model: Any, predictions: np.ndarray, bootstrap: Bootstrap) -> dict[str, Any]:
    """STAND-IN for estimation.estimate_regression (DLE): the mean of the expected absolute errors, with a normal band."""
    edges, means = loss_model
    bins = np.clip(np.searchsorted(edges, predictions, side="right") - 1, 0, len(means) - 1)
    expected = means[bins]
    value = float(expected.mean())
    spread = 1.959964 * float(expected.std()) / np.sqrt(len(expected)) if bootstrap.level else 0.0
    return {"mae": {"value": value, "lower": value - spread, "upper": value + spread}}


def estimate(estimator: Estimator, scores: np.ndarray, threshold: float, bootstrap: Bootstrap) -> dict[str, Any]:
    """Estimated performance of scored rows without their outcomes.

    Returns:
        {"metric", "value", "lower", "upper"} for the main metric; for classification also the expected confusion
        matrix ("confusion": tp, fp, fn, tn) and "accuracy" and "f1", each {"value", "lower", "upper"}.
    """
    if estimator.task == "classification":
        calibrated = np.asarray(estimator.fitted.predict(scores), dtype=np.float64)
        found = _estimate_classification(calibrated, scores, threshold, bootstrap)
        main = found.pop(CLASSIFICATION_METRIC)
        return {"metric": CLASSIFICATION_METRIC, **main, **found}
    main = _estimate_regression(estimator.fitted, scores, bootstrap)[REGRESSION_METRIC]
    return {"metric": REGRESSION_METRIC, **main}


# ---------------------------------------------------------------------------------------------------------------
# Drift within segments (each value of the segment columns), with false-discovery-rate control.


@dataclass(frozen=True)
class SegmentSettings:
    columns: tuple[str, ...]  # segment columns (origin, carrier)
    min_rows: int  # a segment with fewer rows in the chunk (or the reference) is not tested
    fdr: float  # Benjamini-Hochberg rate over all tests of a chunk


def segment_drift(
    reference: pd.DataFrame, current: pd.DataFrame, inputs: Sequence[str], settings: SegmentSettings, thresholds: DriftThresholds
) -> list[dict[str, Any]]:
    """STAND-IN for stages.lib.monitor.segments: each segment's drifted input columns.

    A column drifts within a segment when the drift rule says so and its p-value, adjusted over every test
    of the chunk (Benjamini-Hochberg), is below `settings.fdr`.

    Returns:
        One entry per segment value in the chunk, by column then value: {"column", "value", "rows", "tested",
        "drifted" (bool), "drifted_columns"}; segments under `min_rows` are listed with tested False.
    """
    found: list[dict[str, Any]] = []
    tests: list[tuple[int, str, float, bool]] = []  # (segment position, column, p-value, rule verdict)
    for column in settings.columns:
        for value, rows in sorted(current.groupby(column, observed=True, dropna=True), key=lambda item: str(item[0])):
            base = reference[reference[column].astype("string") == str(value)]
            entry = {"column": column, "value": str(value), "rows": len(rows), "tested": False, "drifted": False, "drifted_columns": []}
            if len(rows) >= settings.min_rows and len(base) >= settings.min_rows:
                entry["tested"] = True
                compared = [name for name in inputs if name != column]
                result = detect_drift(base, rows, compared, thresholds)
                for drift in result.columns:
                    tests.append((len(found), drift.column, float(drift.statistics.get("p_value", np.nan)), drift.drifted))
            found.append(entry)
    adjusted = benjamini_hochberg(np.array([test[2] for test in tests], dtype=np.float64))
    for (position, column, _, verdict), p_value in zip(tests, adjusted, strict=True):
        if verdict and p_value < settings.fdr:
            found[position]["drifted_columns"].append(column)
            found[position]["drifted"] = True
    return found
