"""Every drift statistic of one column: numeric (KS, Wasserstein, quantile PSI) or categorical (chi-squared,
Cramér's V, Jensen-Shannon, PSI). Numeric samples arrive sorted, so one merge walk and a few binary
searches give them all."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from stages.lib.drift.counts import ValueCounts
from stages.lib.drift.kernel import merge_walk, weighted_merge_walk
from stages.lib.profile import moments

EPSILON_SHARE = 1e-4  # floor for empty bins in PSI and JS, as the widely used tools do
MIN_STD = 1e-3  # floor for the Wasserstein normalisation of a constant reference


def numeric_statistics(
    reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int, reference_moments: tuple[float, float] | None = None
) -> dict[str, float | int]:
    """Exact KS statistic, Wasserstein-1 distance (raw and over the reference std) and quantile-bin PSI.

    Args:
        reference_sorted: the reference values, sorted, without NaN (not empty).
        current_sorted: the current values, sorted, without NaN (not empty).
        bins: how many reference-quantile bins PSI cuts (fewer when quantiles tie).
        reference_moments: the reference's `profile.moments`, when the stored profile holds them (saves two passes).

    Returns:
        ks, wasserstein, wasserstein_norm, psi, psi_bins (the bins used), reference_mean, current_mean, reference_std.
    """
    n, m = len(reference_sorted), len(current_sorted)
    largest, area = merge_walk(reference_sorted, current_sorted)
    wasserstein = area / (n * m)
    mean, std = reference_moments or moments(reference_sorted)
    psi, used_bins = _quantile_psi(reference_sorted, current_sorted, bins)
    return {
        "ks": largest / (n * m),
        "wasserstein": wasserstein,
        "wasserstein_norm": wasserstein / max(std, MIN_STD),
        "psi": psi,
        "psi_bins": used_bins,
        "reference_mean": mean,
        "current_mean": float(np.mean(current_sorted)),
        "reference_std": std,
    }


def numeric_statistics_of_counts(reference: ValueCounts, current: ValueCounts, bins: int) -> dict[str, float | int]:
    """`numeric_statistics` of two samples given as tables of distinct values and counts (the dask engine's merged
    partitions): the same KS statistic, Wasserstein distance and PSI bit for bit (the same integer counts and the same
    float terms in the same order); the means and the standard deviation agree to rounding (weighted sums).

    Args:
        reference: the reference's table (not empty).
        current: the current sample's table (not empty).
        bins: how many reference-quantile bins PSI cuts.

    Returns:
        The keys of `numeric_statistics`.
    """
    n, m = reference.total, current.total
    largest, area = weighted_merge_walk(reference.values, reference.counts, current.values, current.counts)
    wasserstein = area / (n * m)
    std = reference.std()
    cuts = np.unique(reference.order_statistics((np.arange(1, bins) * n) // bins))
    cuts = cuts[cuts < reference.values[-1]]
    edges = np.concatenate([cuts, [np.inf]])
    reference_counts = np.diff(reference.at_most(edges), prepend=0)
    current_counts = np.diff(current.at_most(edges), prepend=0)
    return {
        "ks": largest / (n * m),
        "wasserstein": wasserstein,
        "wasserstein_norm": wasserstein / max(std, MIN_STD),
        "psi": _psi(reference_counts, current_counts),
        "psi_bins": len(edges),
        "reference_mean": reference.mean(),
        "current_mean": current.mean(),
        "reference_std": std,
    }


def _quantile_psi(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int) -> tuple[float, int]:
    """PSI over bins cut at reference quantiles, right-closed, so a heavily tied value gets a bin of its own."""
    n = len(reference_sorted)
    cuts = np.unique(reference_sorted[(np.arange(1, bins) * n) // bins])
    cuts = cuts[cuts < reference_sorted[-1]]
    edges = np.concatenate([cuts, [np.inf]])
    reference_counts = np.diff(np.searchsorted(reference_sorted, edges, side="right"), prepend=0)
    current_counts = np.diff(np.searchsorted(current_sorted, edges, side="right"), prepend=0)
    return _psi(reference_counts, current_counts), len(edges)


def _shares(counts: np.ndarray) -> np.ndarray:
    shares: np.ndarray = np.maximum(counts / max(counts.sum(), 1), EPSILON_SHARE)  # numpy types .sum() as Any
    return shares


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    reference, current = _shares(reference_counts), _shares(current_counts)
    return float(np.sum((current - reference) * np.log(current / reference)))


def categorical_statistics(reference_counts: np.ndarray, current_counts: np.ndarray) -> dict[str, float | int]:
    """Chi-squared (2 x K contingency, no continuity correction), Cramér's V, Jensen-Shannon distance, PSI.

    Args:
        reference_counts: how often each category occurs in the reference (one entry per category).
        current_counts: the same for the current sample, over the same categories.

    Returns:
        chi2, chi2_dof, cramers_v, jensen_shannon, psi, categories (those seen in either sample).
    """
    seen = (reference_counts + current_counts) > 0
    table = np.vstack([reference_counts[seen], current_counts[seen]]).astype(np.float64)
    total = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    categories = table.shape[1]
    chi2 = float(np.sum((table - expected) ** 2 / expected)) if categories > 1 else 0.0
    reference_share, current_share = table[0] / table[0].sum(), table[1] / table[1].sum()
    middle = (reference_share + current_share) / 2
    divergence = 0.5 * (special.rel_entr(reference_share, middle).sum() + special.rel_entr(current_share, middle).sum())
    return {
        "chi2": chi2,
        "chi2_dof": max(categories - 1, 0),
        "cramers_v": math.sqrt(chi2 / total) if categories > 1 else 0.0,
        "jensen_shannon": math.sqrt(max(float(divergence), 0.0)),
        "psi": _psi(table[0], table[1]),
        "categories": categories,
    }
