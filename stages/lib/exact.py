"""Exact metrics from mergeable summaries: each part of a table (a Dask partition) is summarized on its own,
the summaries are merged by summing, and the metrics come from the merged summary, equal to what
stages/lib/metrics.py computes on the whole table in one process (up to the order of float additions).

- `ScoreTable`: per distinct score, the rows holding it and the sum of their outcomes (for a 0/1 target: the
  positives). Every classification metric (ROC AUC with ties counting half, average precision, log loss, Brier,
  and the counts at a threshold), the ROC and precision-recall curves, the calibration bins and exact quantiles
  of the scores come from it. It holds one row per distinct score: at most as many as the table has rows, but
  three numbers each instead of every feature column.
- `ErrorSums`: a regressor's counts, sums and centred second moment (merged by Chan's rule): RMSE, MAE, R2.

Pure NumPy; no Dask here, so the pandas engine can import the module freely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from stages.lib.metrics import roc_auc_from_masses


@dataclass(frozen=True)
class ScoreTable:
    scores: np.ndarray  # distinct scores, ascending (float64)
    rows: np.ndarray  # rows holding each score (int64)
    outcome: np.ndarray  # sum of the outcomes of those rows (float64): the positives for a 0/1 target

    @property
    def total(self) -> int:
        return int(self.rows.sum())

    @property
    def negatives(self) -> np.ndarray:
        negatives: np.ndarray = self.rows - self.outcome
        return negatives


def score_table(actual: np.ndarray, scores: np.ndarray) -> ScoreTable:
    """The score table of one part: per distinct score, its rows and their summed outcome.

    Args:
        actual: the true classes (0/1) or values.
        scores: the scores or predictions, the same length (no NaN).

    Returns:
        The part's ScoreTable.
    """
    distinct, inverse = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    rows = np.bincount(inverse, minlength=len(distinct)).astype(np.int64)
    outcome = np.bincount(inverse, weights=np.asarray(actual, dtype=np.float64), minlength=len(distinct))
    return ScoreTable(distinct, rows, outcome)


def merge_score_tables(tables: Iterable[ScoreTable]) -> ScoreTable:
    """Several parts' score tables as one: rows and outcomes summed per distinct score."""
    tables = list(tables)
    if not tables:
        return ScoreTable(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))
    distinct, inverse = np.unique(np.concatenate([table.scores for table in tables]), return_inverse=True)
    rows = np.bincount(inverse, weights=np.concatenate([table.rows for table in tables]), minlength=len(distinct))
    outcome = np.bincount(inverse, weights=np.concatenate([table.outcome for table in tables]), minlength=len(distinct))
    # Counts summed as float64 are exact below 2**53 rows.
    return ScoreTable(distinct, rows.astype(np.int64), outcome)


def roc_auc(table: ScoreTable) -> float:
    """ROC AUC of a 0/1 outcome (ties count half, as sklearn's roc_auc_score); NaN with one class."""
    groups = np.arange(len(table.scores))
    return float(roc_auc_from_masses(table.outcome, table.negatives.astype(np.float64), None, groups))


def average_precision(table: ScoreTable) -> float:
    """Average precision as sklearn's average_precision_score: sum over thresholds (descending) of the
    recall step times the precision there."""
    positives = table.outcome[::-1]
    true_positives = np.cumsum(positives)
    predicted = np.cumsum(table.rows[::-1])
    precision = true_positives / predicted
    return float(np.sum(positives / true_positives[-1] * precision))


def threshold_counts(table: ScoreTable, threshold: float) -> dict[str, int]:
    """The confusion counts of predicting 1 at scores >= threshold: tp, fp, tn, fn."""
    above = table.scores >= threshold
    tp, fp = int(table.outcome[above].sum()), int(table.negatives[above].sum())
    fn, tn = int(table.outcome[~above].sum()), int(table.negatives[~above].sum())
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _ratio(numerator: float, denominator: float) -> float:
    # sklearn's zero_division=0.
    return numerator / denominator if denominator else 0.0


def classification_metrics(table: ScoreTable, threshold: float) -> dict[str, float]:
    """What stages.lib.metrics.classification_metrics gives on the rows the table summarizes, in the same order.

    Args:
        table: the merged score table of 0/1 outcomes and probabilities of class 1 (both classes present).
        threshold: the probability at or above which a row is predicted 1.

    Returns:
        roc_auc, average_precision, log_loss, brier, accuracy, f1, precision, recall and late_share.
    """
    rows, positives, negatives = table.rows.astype(np.float64), table.outcome, table.negatives.astype(np.float64)
    total = rows.sum()
    # sklearn's log_loss clips probabilities to [eps, 1 - eps] of their float type.
    eps = np.finfo(np.float64).eps
    clipped = np.clip(table.scores, eps, 1 - eps)
    log_loss = float(np.sum(-positives * np.log(clipped) - negatives * np.log(np.clip(1 - table.scores, eps, 1 - eps))) / total)
    brier = float(np.sum(positives * (1 - table.scores) ** 2 + negatives * table.scores**2) / total)
    counts = threshold_counts(table, threshold)
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    return {
        "roc_auc": roc_auc(table),
        "average_precision": average_precision(table),
        "log_loss": log_loss,
        "brier": brier,
        "accuracy": (tp + tn) / total,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "late_share": float(positives.sum() / total),
    }


def quantiles(table: ScoreTable, levels: np.ndarray) -> np.ndarray:
    """np.quantile(scores, levels) (method "linear") from the score table, without expanding it: the two order
    statistics around each level's position, interpolated with NumPy's own arithmetic (same bits).

    Args:
        table: the merged score table (at least one row).
        levels: quantile levels in [0, 1].

    Returns:
        One value per level, equal to np.quantile on the summarized scores.
    """
    levels = np.asarray(levels, dtype=np.float64)
    count = table.total
    ends = np.cumsum(table.rows)  # the sorted position after each distinct score's last row

    def at(position: np.ndarray) -> np.ndarray:
        return table.scores[np.searchsorted(ends, position, side="right")]

    virtual = (count - 1) * levels  # NumPy's "linear" virtual index
    previous = np.floor(virtual)
    above = virtual >= count - 1
    below = virtual < 0
    lower = np.where(above, count - 1, np.where(below, 0, previous)).astype(np.int64)
    upper = np.where(above, count - 1, np.where(below, 0, previous + 1)).astype(np.int64)
    gamma = virtual - previous
    a, b = at(lower), at(upper)
    # numpy's _lerp: a + (b - a) t, or b - (b - a)(1 - t) for t >= 0.5.
    difference = b - a
    values: np.ndarray = np.where(gamma >= 0.5, b - difference * (1 - gamma), a + difference * gamma)
    return values


@dataclass(frozen=True)
class ErrorSums:
    rows: int
    mean: float  # mean of the actual values
    m2: float  # sum of squared deviations of the actual values from their mean
    squared: float  # sum of squared errors
    absolute: float  # sum of absolute errors


def error_sums(actual: np.ndarray, predicted: np.ndarray) -> ErrorSums:
    """One part's regression summary."""
    actual, predicted = np.asarray(actual, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if len(actual) == 0:
        return ErrorSums(0, 0.0, 0.0, 0.0, 0.0)
    mean = float(actual.mean())
    error = actual - predicted
    return ErrorSums(len(actual), mean, float(np.sum((actual - mean) ** 2)), float(np.sum(error**2)), float(np.sum(np.abs(error))))


def merge_error_sums(parts: Iterable[ErrorSums]) -> ErrorSums:
    """Several parts' regression summaries as one (Chan, Golub and LeVeque's pairwise update for the moment)."""
    merged = ErrorSums(0, 0.0, 0.0, 0.0, 0.0)
    for part in parts:
        if part.rows == 0:
            continue
        rows = merged.rows + part.rows
        delta = part.mean - merged.mean
        merged = ErrorSums(
            rows,
            merged.mean + delta * part.rows / rows,
            merged.m2 + part.m2 + delta**2 * merged.rows * part.rows / rows,
            merged.squared + part.squared,
            merged.absolute + part.absolute,
        )
    return merged


def regression_metrics(sums: ErrorSums) -> dict[str, float]:
    """What stages.lib.metrics.regression_metrics gives on the rows summarized, in the same order:
    rmse, mae, r2, rmse_constant and target_mean."""
    r2 = 1 - sums.squared / sums.m2 if sums.m2 > 0 else (1.0 if sums.squared == 0 else 0.0)  # sklearn's constant-target rule
    return {
        "rmse": float(np.sqrt(sums.squared / sums.rows)),
        "mae": sums.absolute / sums.rows,
        "r2": float(r2),
        "rmse_constant": float(np.sqrt(sums.m2 / sums.rows)),
        "target_mean": sums.mean,
    }


__all__ = [
    "ErrorSums",
    "ScoreTable",
    "average_precision",
    "classification_metrics",
    "error_sums",
    "merge_error_sums",
    "merge_score_tables",
    "quantiles",
    "regression_metrics",
    "roc_auc",
    "score_table",
    "threshold_counts",
]
