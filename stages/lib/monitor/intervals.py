"""Percentile bootstrap intervals of realized performance: rows resampled with replacement, seeded.

A resample is a vector of counts (how often each row was drawn when n rows are drawn with replacement), so every resample's metric is a weighted metric of the same rows with one sort
for all (stages/lib/metrics.py `weighted_metrics`), computed in blocks of resamples to bound memory.
"""

from __future__ import annotations

import numpy as np

from stages.lib.metrics import WEIGHTED_METRICS, tie_groups, weighted_metrics

BLOCK_CELLS = 4_000_000  # resamples x rows held at once (32 MB of float64)


def bootstrap_interval(metric: str, actual: np.ndarray, scores: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap interval of a realized metric over rows.

    Args:
        metric: "roc_auc", "rmse" or "mae" (stages/lib/metrics.py WEIGHTED_METRICS).
        actual: the outcomes (0/1 for ROC AUC), one per row.
        scores: the scores or predictions, one per row.
        level: the interval's coverage, e.g. 0.95.
        resamples: how many resamples.
        seed: the random generator's seed (the same inputs and seed give the same interval).

    Returns:
        (low, high): the (1 - level) / 2 and (1 + level) / 2 percentiles of the resampled metric, resamples where
        it is undefined (one class only) left out; (NaN, NaN) when no resample defines it (no rows, one class).

    Raises:
        ValueError: an unknown metric, a level outside (0, 1), fewer than one resample, or inputs of different lengths.
    """
    if metric not in WEIGHTED_METRICS:
        raise ValueError(f"bootstrap_interval: unknown metric {metric!r}, expected one of {', '.join(WEIGHTED_METRICS)}")
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"bootstrap_interval: level must be in (0, 1) and resamples at least 1, got {level} and {resamples}")
    actual, scores = np.asarray(actual, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if actual.shape != scores.shape or actual.ndim != 1:
        raise ValueError(f"bootstrap_interval: actual and scores must be 1-D of one length, got {actual.shape} and {scores.shape}")
    rows = len(actual)
    if rows == 0:
        return float("nan"), float("nan")
    # Resampling rows does not care about their order: put them in score order once, so no resample is reordered.
    order, starts = tie_groups(scores)
    actual, scores = actual[order], scores[order]
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // rows)
    values = []
    for first in range(0, resamples, block):
        counts = resample_counts(rng, rows, min(block, resamples - first))
        values.append(weighted_metrics(metric, actual, scores, counts, None, starts))
    drawn = np.concatenate(values)
    drawn = drawn[~np.isnan(drawn)]
    if not len(drawn):
        return float("nan"), float("nan")
    low, high = np.percentile(drawn, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def resample_counts(rng: np.random.Generator, rows: int, resamples: int) -> np.ndarray:
    """How often each row is drawn in each of `resamples` draws of `rows` rows with replacement.

    Args:
        rng: the random generator.
        rows: the rows to draw from (and how many each resample draws).
        resamples: how many resamples.

    Returns:
        float64 counts, shape (resamples, rows); each row sums to `rows`.
    """
    drawn = rng.integers(0, rows, size=(resamples, rows)) + (np.arange(resamples) * rows)[:, None]
    return np.bincount(drawn.ravel(), minlength=resamples * rows).reshape(resamples, rows).astype(np.float64)
