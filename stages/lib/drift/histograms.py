"""The reference and current shares the drift plots and the HTML report draw, per column."""

from __future__ import annotations

import numpy as np

HISTOGRAM_BINS = 20
HISTOGRAM_CATEGORIES = 12


def numeric_histogram(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> dict[str, list]:
    """Shares of both samples in equal-width bins over their joint range.

    Args:
        reference_sorted: the reference values, sorted, without NaN (not empty).
        current_sorted: the current values, sorted, without NaN (not empty).

    Returns:
        {"value": bin centres, "reference": shares, "current": shares}, rounded to 6 decimals.
    """
    low, high = min(reference_sorted[0], current_sorted[0]), max(reference_sorted[-1], current_sorted[-1])
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, low])
    inner = edges[1:-1]

    def shares(values: np.ndarray) -> list[float]:
        counts = np.diff(np.searchsorted(values, inner, side="left"), prepend=0, append=len(values))
        rounded: list[float] = (counts / len(values)).round(6).tolist()
        return rounded

    centres = ((edges[:-1] + edges[1:]) / 2).round(6).tolist() if high > low else [float(low)]
    return {"value": centres, "reference": shares(reference_sorted), "current": shares(current_sorted)}


def categorical_histogram(categories: np.ndarray, reference_counts: np.ndarray, current_counts: np.ndarray) -> dict[str, list]:
    """Shares of the most common categories of either sample, the rest summed into one bar.

    Args:
        categories: the category labels.
        reference_counts: how often each occurs in the reference.
        current_counts: how often each occurs in the current sample.

    Returns:
        {"value": labels, "reference": shares, "current": shares}, at most HISTOGRAM_CATEGORIES + 1 bars.
    """
    reference_share = reference_counts / max(reference_counts.sum(), 1)
    current_share = current_counts / max(current_counts.sum(), 1)
    order = np.lexsort((np.arange(len(categories)), -np.maximum(reference_share, current_share)))
    top, rest = order[:HISTOGRAM_CATEGORIES], order[HISTOGRAM_CATEGORIES:]
    labels = [str(category) for category in categories[top]]
    reference_values, current_values = reference_share[top].tolist(), current_share[top].tolist()
    if len(rest):
        labels.append(f"({len(rest)} others)")
        reference_values.append(float(reference_share[rest].sum()))
        current_values.append(float(current_share[rest].sum()))
    return {"value": labels, "reference": np.round(reference_values, 6).tolist(), "current": np.round(current_values, 6).tolist()}
