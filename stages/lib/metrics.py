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
# Which way each measure of the model is better. The other names a metrics file holds are no measure of the model:
# SETTINGS say how it was scored (rows scored, the decision threshold), DESCRIBES_DATA the test data itself (its
# late share, its target mean, the error of always predicting that mean); neither is better or worse.
# tests/test_report.py checks that these four sets split TASK_METRICS exactly.
HIGHER_IS_BETTER = frozenset({"roc_auc", "average_precision", "accuracy", "f1", "precision", "recall", "r2"})
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier"})
SETTINGS = frozenset({"rows", "threshold"})
DESCRIBES_DATA = frozenset({"late_share", "target_mean", "rmse_constant"})
# The one metric a task is judged by: train's cross-validation score and the PR report's bootstrap.
MAIN_METRIC = {"classification": "roc_auc", "regression": "rmse"}
# The threshold-free measures `make exps` (commands/exps.py) shows by default: few, so its table fits 80 columns.
SUMMARY_METRICS = {"classification": ("roc_auc", "log_loss", "brier"), "regression": ("rmse", "mae", "r2")}


def direction(name: str) -> int:
    """+1 when a higher value of the metric is better, -1 when lower is, 0 for a name that is no measure of the model."""
    return 1 if name in HIGHER_IS_BETTER else -1 if name in LOWER_IS_BETTER else 0


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


def tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one sort every ranking metric of these scores shares.

    Args:
        scores: the scores (1-D).

    Returns:
        (order, starts): the rows in ascending score order (stable), and where each run of tied scores starts in it.
    """
    order = np.argsort(scores, kind="stable")
    starts = np.flatnonzero(np.concatenate([[True], np.diff(scores[order]) != 0])) if len(scores) else np.zeros(0, dtype=np.int64)
    return order, starts


def roc_auc_from_masses(positive: np.ndarray, negative: np.ndarray, order: np.ndarray | None, starts: np.ndarray) -> np.ndarray:
    """ROC AUC where each row carries a positive and a negative mass: many at once, one sort for all.

    With masses y and 1 - y it is the ROC AUC; with w * y and w * (1 - y) the weighted one (bootstrap counts);
    with p and 1 - p the ROC AUC expected under labels drawn with probabilities p (the ratio of expected
    pair counts). Ties count half, as in sklearn's roc_auc_score.

    Args:
        positive: each row's positive mass, shape (rows,) or (draws, rows).
        negative: each row's negative mass, the same shape.
        order: the rows in ascending score order (`tie_groups`); None when the masses are already in that order.
        starts: where each run of tied scores starts in that order.

    Returns:
        One ROC AUC per draw (shape (draws,), or () for 1-D input); NaN where a draw has no positive or no negative mass.
    """
    if positive.shape[-1] == 0:
        return np.full(positive.shape[:-1], np.nan)
    if order is not None:
        positive, negative = positive[..., order], negative[..., order]
    if len(starts) < positive.shape[-1]:  # ties: one group per distinct score
        positive = np.add.reduceat(positive, starts, axis=-1)
        negative = np.add.reduceat(negative, starts, axis=-1)
    below = np.cumsum(negative, axis=-1) - negative  # negative mass strictly below each distinct score
    pairs = np.sum(positive * (below + 0.5 * negative), axis=-1)
    total = positive.sum(axis=-1) * negative.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc: np.ndarray = np.where(total > 0, pairs / np.where(total > 0, total, 1.0), np.nan)
    return auc


def midranks(scores_sorted: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Ranks (1-based) of ascending scores, ties sharing their mean rank.

    With them the ROC AUC of 0/1 outcomes y (in the same order) is (y @ ranks - P (P + 1) / 2) / (P N), the
    Mann-Whitney form (ties count half): one matrix product for many outcome vectors at once.

    Args:
        scores_sorted: the scores in ascending order.
        starts: where each run of tied scores starts (`tie_groups`).

    Returns:
        float64 ranks, one per score.
    """
    sizes = np.diff(np.append(starts, len(scores_sorted)))
    return np.repeat(starts + (sizes + 1) / 2.0, sizes)


def weighted_metric(
    metric: str, actual: np.ndarray, scores: np.ndarray, weights: np.ndarray, order: np.ndarray, starts: np.ndarray
) -> float:
    """ROC AUC, RMSE or MAE with row weights (bootstrap counts), without resampling the rows.

    Args:
        metric: "roc_auc", "rmse" or "mae".
        actual: the true classes (0/1) or values.
        scores: the scores or predictions.
        weights: each row's weight (how often a resample drew it).
        order: the rows in ascending score order (stable; `tie_groups`).
        starts: where each run of tied scores starts in `order`.

    Returns:
        The weighted metric (ties count half, as in sklearn's ROC AUC); NaN for a ROC AUC with one class.
    """
    return float(weighted_metrics(metric, actual, scores, weights, order, starts))


WEIGHTED_METRICS = ("roc_auc", "rmse", "mae")


def weighted_metrics(
    metric: str, actual: np.ndarray, scores: np.ndarray, weights: np.ndarray, order: np.ndarray | None, starts: np.ndarray
) -> np.ndarray:
    """`weighted_metric` for many weight vectors at once (bootstrap resamples as rows of `weights`).

    Args:
        metric: one of WEIGHTED_METRICS.
        actual: the true classes (0/1) or values, shape (rows,).
        scores: the scores or predictions, shape (rows,).
        weights: shape (rows,) or (resamples, rows).
        order: the rows in ascending score order (`tie_groups`; ROC AUC only); None when they are in that order.
        starts: where each run of tied scores starts in `order`.

    Returns:
        One value per weight vector (NaN where it is undefined).
    """
    if metric == "roc_auc":
        return roc_auc_from_masses(weights * actual, weights * (1 - actual), order, starts)
    total = np.sum(weights, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "rmse":
            values: np.ndarray = np.sqrt(np.sum(weights * (actual - scores) ** 2, axis=-1) / total)
        elif metric == "mae":
            values = np.sum(weights * np.abs(actual - scores), axis=-1) / total
        else:
            raise ValueError(f"no weighted form of metric {metric!r}: expected one of {', '.join(WEIGHTED_METRICS)}")
    return values
