"""evaluate: score the model on the later-in-time test split; write DVC metrics and plot data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from stages.lib.catalog import CONFUSION_FILE, METRICS_FILE, MODEL_FILE, PLOTS_DIR, FeatureSpec, load_features
from stages.lib.config import EvaluateConfig, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, write_outputs
from stages.lib.models import load_model

MAX_CURVE_POINTS = 400
DIGITS = 6


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    plots: dict[str, list[dict[str, Any]]]
    confusion: pd.DataFrame


def _thin(points: pd.DataFrame) -> list[dict[str, Any]]:
    """At most MAX_CURVE_POINTS evenly spaced points, keeping both ends, rounded for small diffs."""
    if len(points) > MAX_CURVE_POINTS:
        points = points.iloc[np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).round().astype(int))]
    return points.round(DIGITS).to_dict(orient="records")


def _calibration(actual: np.ndarray, scores: np.ndarray, bins: int) -> list[dict[str, Any]]:
    index = np.minimum((scores * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    mean_score = np.bincount(index, weights=scores, minlength=bins)
    late = np.bincount(index, weights=actual, minlength=bins)
    filled = counts > 0
    table = pd.DataFrame(
        {
            "mean_predicted": mean_score[filled] / counts[filled],
            "fraction_late": late[filled] / counts[filled],
            "rows": counts[filled],
        }
    )
    return table.round(DIGITS).to_dict(orient="records")


def evaluate_model(model: BaseEstimator, test: pd.DataFrame, spec: FeatureSpec, config: EvaluateConfig) -> Evaluation:
    if test.empty:
        fail("data/features/test.parquet: no rows; widen data.splits.test in conf/data/")
    actual = test[spec.target].to_numpy(dtype=np.int64)
    if len(np.unique(actual)) < 2:
        fail(f"data/features/test.parquet: target '{spec.target}' has one class only; ROC AUC needs both, widen the test window")
    scores = model.predict_proba(test[spec.features])[:, 1]
    predicted = (scores >= config.threshold).astype(np.int64)
    metrics = {
        "roc_auc": roc_auc_score(actual, scores),
        "average_precision": average_precision_score(actual, scores),
        "log_loss": log_loss(actual, scores, labels=[0, 1]),
        "brier": brier_score_loss(actual, scores),
        "accuracy": accuracy_score(actual, predicted),
        "f1": f1_score(actual, predicted, zero_division=0),
        "precision": precision_score(actual, predicted, zero_division=0),
        "recall": recall_score(actual, predicted, zero_division=0),
        "late_share": float(actual.mean()),
    }
    metrics = {name: round(float(value), DIGITS) for name, value in metrics.items()}
    metrics |= {"threshold": config.threshold, "rows": len(test)}

    fpr, tpr, roc_thresholds = roc_curve(actual, scores)
    precision, recall, pr_thresholds = precision_recall_curve(actual, scores)
    pr = pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_thresholds})[::-1]
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thresholds, 1.0)})

    rows = min(config.importance_rows, len(test))
    sample = test.sample(n=rows, random_state=config.seed) if rows < len(test) else test
    importance = permutation_importance(
        model,
        sample[spec.features],
        sample[spec.target],
        scoring="roc_auc",
        n_repeats=config.importance_repeats,
        random_state=config.seed,
        n_jobs=1,
    )
    ranked = pd.DataFrame({"feature": spec.features, "importance": importance.importances_mean, "std": importance.importances_std})
    ranked = ranked.round(DIGITS).sort_values(["importance", "feature"], ascending=[False, True], kind="stable")

    labels = np.array(["on_time", "late"])
    return Evaluation(
        metrics=metrics,
        plots={
            "roc": _thin(roc),
            "precision_recall": _thin(pr),
            "calibration": _calibration(actual, scores, config.calibration_bins),
            "importance": ranked.to_dict(orient="records"),
        },
        confusion=pd.DataFrame({"actual": labels[actual], "predicted": labels[predicted]}),
    )


def main() -> None:
    config = EvaluateConfig.from_params(load_params())
    spec, test = load_features("test")
    model = load_model(MODEL_FILE)
    evaluation = evaluate_model(model, test, spec, config)
    outputs = {METRICS_FILE: json_writer(evaluation.metrics)}
    outputs |= {PLOTS_DIR / f"{name}.json": json_writer(points) for name, points in evaluation.plots.items()}
    outputs[CONFUSION_FILE] = lambda path: evaluation.confusion.to_csv(path, index=False, lineterminator="\n")
    write_outputs(outputs)
    print(
        f"evaluate: ROC AUC {evaluation.metrics['roc_auc']:.4f}, average precision {evaluation.metrics['average_precision']:.4f} on {len(test):,} test rows"
    )


if __name__ == "__main__":
    run_stage(main)
