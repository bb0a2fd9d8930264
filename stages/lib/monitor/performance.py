"""The monitor's use of the estimation library, in the plain JSON-ready shapes its chunks keep.

Realized performance with a bootstrap interval (intervals.py), performance estimated without outcomes
(estimation.py: CBPE for classification, DLE for regression), both fitted on the reference, and drift
within segments (segments.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from stages.lib.config import DriftThresholds
from stages.lib.monitor.estimation import (
    Calibrator,
    LossModel,
    estimate_classification,
    estimate_regression,
    fit_calibrator,
    fit_loss_model,
)
from stages.lib.monitor.intervals import bootstrap_interval
from stages.lib.monitor.segments import SegmentDrift, SegmentRows, SegmentTables
from stages.lib.monitor.segments import segment_drift as segment_tests
from stages.lib.monitor.segments import segment_drift_of_tables as tables_tests
from stages.lib.profile import category_strings

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


def realized(task: str, actual: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: Bootstrap) -> dict[str, Any]:
    """The main metric of labelled rows with its bootstrap interval, plus accuracy and F1 at `threshold` (classification).

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
        positives, hits = int(actual.sum()), int((predicted & (actual == 1)).sum())
        f1 = 2 * hits / (positives + int(predicted.sum())) if positives + int(predicted.sum()) else 0.0
        result |= {"accuracy": float(np.mean(predicted == (actual == 1))), "f1": f1}
        if len(np.unique(actual)) < 2:
            return result | {"note": "the outcomes hold one class only: ROC AUC is undefined"}
        value = float(roc_auc_score(actual, scores))
    else:
        value = float(np.mean(np.abs(actual - scores)))
    lower, upper = bootstrap_interval(metric, actual, scores, bootstrap.level, bootstrap.resamples, bootstrap.seed)
    return result | {"value": value, "lower": lower, "upper": upper}


@dataclass(frozen=True)
class Estimator:
    """What the reference taught: the calibration of the scores (classification) or the loss model (regression)."""

    task: str
    calibrator: Calibrator | None = None
    loss_model: LossModel | None = None
    types: dict[str, str] = field(default_factory=dict)  # the loss model's inputs and their schema types (regression)


def loss_inputs(rows: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """The raw inputs as the loss model reads them: columns typed categorical in data/schema.yaml (`types`) as pandas
    categoricals of their text, whatever their values (integer codes too); numeric and boolean ones as float64 numbers."""
    return pd.DataFrame(
        {
            name: category_strings(rows[name]).astype("category")
            if kind == "categorical"
            else pd.Series(rows[name].to_numpy(dtype=np.float64, na_value=np.nan), index=rows.index)
            for name, kind in types.items()
        }
    )


def fit_estimator(
    task: str, scores: np.ndarray, actual: np.ndarray, inputs: pd.DataFrame, types: Mapping[str, str], seed: int
) -> Estimator:
    """CBPE's calibrator or DLE's loss model, fitted on the reference (its scores, outcomes and raw inputs, typed by `types`:
    {column: its type in data/schema.yaml})."""
    if task == "classification":
        return Estimator(task, calibrator=fit_calibrator(scores, actual.astype(np.int64)))
    typed = {name: types[name] for name in inputs.columns}
    return Estimator(task, loss_model=fit_loss_model(loss_inputs(inputs, typed), scores, actual, seed), types=typed)


def _shaped(found: dict[str, float]) -> dict[str, float]:
    return {"value": found["estimate"], "lower": found["low"], "upper": found["high"]}


def estimate(estimator: Estimator, scores: np.ndarray, inputs: pd.DataFrame, threshold: float, bootstrap: Bootstrap) -> dict[str, Any]:
    """Estimated performance of scored rows without their outcomes.

    Returns:
        {"metric", "value", "lower", "upper"} for the main metric; for classification also the expected confusion
        matrix ("confusion": tp, fp, fn, tn) and "accuracy" and "f1", each {"value", "lower", "upper"}.
    """
    level, resamples, seed = bootstrap.level, bootstrap.resamples, bootstrap.seed
    if estimator.calibrator is not None:
        found = estimate_classification(scores, estimator.calibrator.apply(scores), threshold, level, resamples, seed)
        return {
            "metric": CLASSIFICATION_METRIC,
            **_shaped(found[CLASSIFICATION_METRIC]),
            "confusion": {name: found[name]["estimate"] for name in ("tp", "fp", "fn", "tn")},
            "accuracy": _shaped(found["accuracy"]),
            "f1": _shaped(found["f1"]),
        }
    assert estimator.loss_model is not None
    chunk_inputs = loss_inputs(inputs, estimator.types)
    return {"metric": REGRESSION_METRIC, **_shaped(estimate_regression(estimator.loss_model, chunk_inputs, scores, level, resamples, seed))}


@dataclass(frozen=True)
class SegmentSettings:
    columns: tuple[str, ...]  # segment columns (origin, carrier)
    min_rows: int  # a segment with fewer rows in the chunk (or the reference) is not tested
    fdr: float  # Benjamini-Hochberg rate over all tests of a chunk


def segment_drift(
    reference: pd.DataFrame, current: pd.DataFrame, inputs: Mapping[str, str], settings: SegmentSettings, thresholds: DriftThresholds
) -> list[dict[str, Any]]:
    """Each segment of the chunk and its drifted input columns (segments.py: p-values adjusted over all tests of the chunk);
    `inputs`: {column: its type in data/schema.yaml}.

    Returns:
        One entry per segment value in the chunk, by segment column then value: {"column", "value", "rows", "tested",
        "drifted" (bool), "drifted_columns"}; segments under `min_rows` rows in the chunk or the reference are not tested.
    """
    found = segment_tests(reference, current, settings.columns, inputs, thresholds, settings.fdr, settings.min_rows)
    return segment_entries(found, current, settings)


def segment_drift_of_tables(
    reference: tuple[SegmentTables, SegmentRows],
    current: pd.DataFrame,
    inputs: Mapping[str, str],
    settings: SegmentSettings,
    thresholds: DriftThresholds,
) -> list[dict[str, Any]]:
    """`segment_drift` with the reference's segments as merged summaries and their rows (the dask engine)."""
    tables, rows = reference
    found = tables_tests(tables, rows, current, settings.columns, inputs, thresholds, settings.fdr, settings.min_rows)
    return segment_entries(found, current, settings)


def segment_entries(found: SegmentDrift, current: pd.DataFrame, settings: SegmentSettings) -> list[dict[str, Any]]:
    """One entry per segment value in the chunk (see `segment_drift`)."""
    tested = {(test.segment, test.value) for test in found.tests}
    alarms = {(segment, value): columns for segment, value, columns in found.alarms}
    entries = []
    for column in settings.columns:
        counts = category_strings(current[column]).value_counts()
        for value in sorted(str(value) for value in counts.index):
            drifted = alarms.get((column, value), [])
            entries.append(
                {
                    "column": column,
                    "value": value,
                    "rows": int(counts[value]),
                    "tested": (column, value) in tested,
                    "drifted": bool(drifted),
                    "drifted_columns": list(drifted),
                }
            )
    return entries
