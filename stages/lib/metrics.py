"""Every model metric, computed here and nowhere else: evaluate's test metrics, train's cross-validation
score, drift-check's metrics on the current window and the PR report's bootstrap all call these functions.

Also what each task's evaluation produces, and which way each metric is better: one table that evaluate
writes by, the PR verdict's gates read (a gate on a metric the task produces but a file lacks fails),
and drift-check's ROC AUC condition consults (skipped only where the task has no ROC AUC)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "roc_auc", "average_precision", "log_loss", "brier", "accuracy", "f1", "precision", "recall", "late_share", "threshold", "rows",
    ),
    "regression": ("rmse", "mae", "r2", "rmse_constant", "target_mean", "rows"),
}  # fmt: skip
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier"})
# The one metric a task is judged by: train's cross-validation score and the PR report's bootstrap.
MAIN_METRIC = {"classification": "roc_auc", "regression": "rmse"}


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mean_squared_error(actual, predicted)))


def classification_metrics(actual: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """The test metrics of a classifier, in TASK_METRICS order (without `threshold` and `rows`).

    Args:
        actual: the true classes, 0 or 1 (both present).
        scores: the predicted probabilities of class 1.
        threshold: the probability at or above which a row is predicted 1 (accuracy, F1, precision, recall).

    Returns:
        roc_auc, average_precision, log_loss, brier, accuracy, f1, precision, recall and late_share (the share of 1s).
    """
    predicted = (scores >= threshold).astype(np.int64)
    return {
        "roc_auc": float(roc_auc_score(actual, scores)),
        "average_precision": float(average_precision_score(actual, scores)),
        "log_loss": float(log_loss(actual, scores, labels=[0, 1])),
        "brier": float(brier_score_loss(actual, scores)),
        "accuracy": float(accuracy_score(actual, predicted)),
        "f1": float(f1_score(actual, predicted, zero_division=0)),
        "precision": float(precision_score(actual, predicted, zero_division=0)),
        "recall": float(recall_score(actual, predicted, zero_division=0)),
        "late_share": float(actual.mean()),
    }


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The test metrics of a regressor, in TASK_METRICS order (without `rows`).

    Args:
        actual: the true values.
        predicted: the predictions.

    Returns:
        rmse, mae, r2, rmse_constant (the RMSE of always predicting the mean: a model should beat it) and target_mean.
    """
    return {
        "rmse": rmse(actual, predicted),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
        "rmse_constant": float(np.std(actual)),
        "target_mean": float(actual.mean()),
    }


def main_metric(task: str, actual: np.ndarray, predicted: np.ndarray) -> tuple[str, float]:
    """The task's main metric (MAIN_METRIC): ROC AUC for classification (NaN with one class), RMSE for regression.

    Args:
        task: "classification" or "regression".
        actual: the true classes or values.
        predicted: the scores or predictions.

    Returns:
        (its name, its value).
    """
    if task == "classification":
        return MAIN_METRIC[task], float(roc_auc_score(actual, predicted)) if len(np.unique(actual)) == 2 else float("nan")
    return MAIN_METRIC[task], rmse(actual, predicted)


def window_metrics(actual: np.ndarray, scores: np.ndarray, task: str) -> dict[str, float]:
    """The threshold-free metrics of a labelled window (drift-check's current window).

    Args:
        actual: the true classes or values.
        scores: the predicted probabilities or values.
        task: "classification" or "regression".

    Returns:
        roc_auc, average_precision, brier and late_share for classification (empty with one class only);
        rmse, mae and target_mean for regression.
    """
    if task == "regression":
        return {"rmse": rmse(actual, scores), "mae": float(mean_absolute_error(actual, scores)), "target_mean": float(actual.mean())}
    if len(np.unique(actual)) < 2:
        return {}
    return {
        "roc_auc": float(roc_auc_score(actual, scores)),
        "average_precision": float(average_precision_score(actual, scores)),
        "brier": float(brier_score_loss(actual, scores)),
        "late_share": float(actual.mean()),
    }


def weighted_metric(
    metric: str, actual: np.ndarray, scores: np.ndarray, weights: np.ndarray, order: np.ndarray, starts: np.ndarray
) -> float:
    """ROC AUC or RMSE with row weights (bootstrap counts), without resampling the rows.

    Args:
        metric: "roc_auc" or "rmse".
        actual: the true classes (0/1) or values.
        scores: the scores or predictions.
        weights: each row's weight (how often a resample drew it).
        order: the rows in ascending score order (stable).
        starts: where each run of tied scores starts in `order`.

    Returns:
        The weighted metric (ties count half, as in sklearn's ROC AUC); NaN for a ROC AUC with one class.
    """
    if metric == "rmse":
        return float(np.sqrt(np.sum(weights * (actual - scores) ** 2) / np.sum(weights)))
    positive = np.add.reduceat((weights * actual)[order], starts)
    negative = np.add.reduceat((weights * (1 - actual))[order], starts)
    below = np.concatenate([[0.0], np.cumsum(negative)[:-1]])
    total = positive.sum() * negative.sum()
    return float(np.sum(positive * (below + 0.5 * negative)) / total) if total > 0 else float("nan")
