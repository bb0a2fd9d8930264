"""The reference and current shares the drift plots and the HTML report draw, per column."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stages.lib.drift.counts import ValueCounts

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
    return _equal_width(
        (
            reference_sorted[0],
            reference_sorted[-1],
            len(reference_sorted),
            lambda edges: np.searchsorted(reference_sorted, edges, side="left"),
        ),
        (current_sorted[0], current_sorted[-1], len(current_sorted), lambda edges: np.searchsorted(current_sorted, edges, side="left")),
    )


def numeric_histogram_of_counts(reference: ValueCounts, current: ValueCounts) -> dict[str, list]:
    """`numeric_histogram` of two samples given as tables of distinct values and counts (not empty): the same shares."""
    return _equal_width(
        (reference.values[0], reference.values[-1], reference.total, reference.below),
        (current.values[0], current.values[-1], current.total, current.below),
    )


# A sample as the histogram needs it: its smallest and largest value, its size, and how many values lie below each edge.
_Sample = tuple[float, float, int, Callable[[np.ndarray], np.ndarray]]


def _equal_width(reference: _Sample, current: _Sample) -> dict[str, list]:
    low, high = min(reference[0], current[0]), max(reference[1], current[1])
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, low])
    inner = edges[1:-1]

    def shares(sample: _Sample) -> list[float]:
        counts = np.diff(sample[3](inner), prepend=0, append=sample[2])
        rounded: list[float] = (counts / sample[2]).round(6).tolist()
        return rounded

    centres = ((edges[:-1] + edges[1:]) / 2).round(6).tolist() if high > low else [float(low)]
    return {"value": centres, "reference": shares(reference), "current": shares(current)}


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
