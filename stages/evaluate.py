"""evaluate: score the model on the later-in-time test split; write DVC metrics and plot data."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import precision_recall_curve, roc_curve

from stages.lib.catalog import CONFUSION_FILE, METRICS_FILE, MODEL_FILE, PLOT_FILES, FeatureSpec, load_features
from stages.lib.config import EvaluateConfig, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, write_outputs
from stages.lib.metrics import classification_metrics, regression_metrics
from stages.lib.models import load_model, predict_scores
from stages.lib.runtime import limit_threads

MAX_CURVE_POINTS = 400
DIGITS = 6
Points = list[dict[Hashable, Any]]  # a plot file's rows, as `DataFrame.to_dict(orient="records")` gives them


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    plots: dict[str, Points]
    confusion: pd.DataFrame


def _thin(points: pd.DataFrame) -> Points:
    """At most MAX_CURVE_POINTS evenly spaced points, keeping both ends, rounded for small diffs."""
    if len(points) > MAX_CURVE_POINTS:
        points = points.iloc[np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).round().astype(int))]
    return points.round(DIGITS).to_dict(orient="records")


def _calibration(actual: np.ndarray, scores: np.ndarray, bins: int, task: str) -> Points:
    """Mean prediction against mean outcome per bin: probability bins, or prediction quantiles for regression."""
    if task == "classification":
        index = np.minimum((scores * bins).astype(int), bins - 1)
    else:
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))
        index = np.searchsorted(edges, scores, side="right")
    counts = np.bincount(index, minlength=bins)
    mean_score = np.bincount(index, weights=scores, minlength=bins)
    late = np.bincount(index, weights=actual, minlength=bins)
    filled = counts > 0
    table = pd.DataFrame(
        {
            "mean_predicted": mean_score[filled] / counts[filled],
            "mean_observed": late[filled] / counts[filled],
            "rows": counts[filled],
        }
    )
    return table.round(DIGITS).to_dict(orient="records")


def _importance(model: BaseEstimator, test: pd.DataFrame, spec: FeatureSpec, config: EvaluateConfig) -> pd.DataFrame:
    rows = min(config.importance_rows, len(test))
    sample = test.sample(n=rows, random_state=config.seed) if rows < len(test) else test
    importance = permutation_importance(
        model,
        sample[spec.features],
        sample[spec.target],
        scoring="roc_auc" if spec.task == "classification" else "neg_root_mean_squared_error",
        n_repeats=config.importance_repeats,
        random_state=config.seed,
        n_jobs=1,
    )
    ranked = pd.DataFrame({"feature": spec.features, "importance": importance.importances_mean, "std": importance.importances_std})
    return ranked.round(DIGITS).sort_values(["importance", "feature"], ascending=[False, True], kind="stable")


def _classification(
    actual: np.ndarray, scores: np.ndarray, config: EvaluateConfig, target: str
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    actual = actual.astype(np.int64)
    if len(np.unique(actual)) < 2:
        fail("data/features/test.parquet: the target has one class only; ROC AUC needs both, widen the test window")
    predicted = (scores >= config.threshold).astype(np.int64)
    metrics = classification_metrics(actual, scores, config.threshold)
    metrics = {name: round(value, DIGITS) for name, value in metrics.items()} | {"threshold": config.threshold}
    fpr, tpr, roc_thresholds = roc_curve(actual, scores)
    precision, recall, pr_thresholds = precision_recall_curve(actual, scores)
    pr = pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_thresholds})[::-1]
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thresholds, 1.0)})
    labels = np.array([f"not {target}", target])
    confusion = pd.DataFrame({"actual": labels[actual], "predicted": labels[predicted]})
    return metrics, {"roc": _thin(roc), "precision_recall": _thin(pr)}, confusion


def _regression(actual: np.ndarray, predicted: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    metrics = {name: round(value, DIGITS) for name, value in regression_metrics(actual, predicted).items()}
    # ROC and PR curves have no meaning for a numeric target; their plot files stay empty.
    return metrics, {"roc": [], "precision_recall": []}, pd.DataFrame({"actual": [], "predicted": []})


def evaluate_model(model: BaseEstimator, test: pd.DataFrame, spec: FeatureSpec, config: EvaluateConfig) -> Evaluation:
    if test.empty:
        fail("data/features/test.parquet: no rows; widen data.splits.test in conf/data/")
    actual = test[spec.target].to_numpy(dtype=np.float64)
    scores = predict_scores(model, test[spec.features], spec.task)
    if spec.task == "classification":
        metrics, curves, confusion = _classification(actual, scores, config, spec.target)
    else:
        metrics, curves, confusion = _regression(actual, scores)
    metrics["rows"] = len(test)
    plots = curves | {
        "calibration": _calibration(actual, scores, config.calibration_bins, spec.task),
        "importance": _importance(model, test, spec, config).to_dict(orient="records"),
    }
    return Evaluation(metrics=metrics, plots=plots, confusion=confusion)


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    config = params.evaluate
    spec, test = load_features("test")
    model = load_model(MODEL_FILE)
    evaluation = evaluate_model(model, test, spec, config)
    outputs = {METRICS_FILE: json_writer(evaluation.metrics)}
    outputs |= {PLOT_FILES[name]: json_writer(points) for name, points in evaluation.plots.items()}
    outputs[CONFUSION_FILE] = lambda path: evaluation.confusion.to_csv(path, index=False, lineterminator="\n")
    write_outputs(outputs)
    headline = ", ".join(
        f"{name} {evaluation.metrics[name]:.4f}" for name in ("roc_auc", "average_precision", "rmse", "r2") if name in evaluation.metrics
    )
    print(f"evaluate: {headline} on {len(test):,} test rows")


if __name__ == "__main__":
    run_stage(main)
