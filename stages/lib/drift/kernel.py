"""The one compiled loop of the drift check: a merge walk through two sorted samples (NumPy has no merge)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def merge_walk(reference: np.ndarray, current: np.ndarray) -> tuple[int, float]:
    """One linear walk through two sorted samples in merged order.

    At each distinct value both empirical CDFs are known exactly (the last of a run of tied values, in either
    sample, closes it), so the largest gap is the exact KS statistic and the gap times the distance to the next
    value sums to the exact Wasserstein-1 distance. Gaps are scaled by n*m and kept as integers.

    The walk takes one value per step and advances one index by the comparison's result, without a branch on
    which sample the value came from: on continuous data that branch is a coin flip the CPU mispredicts half
    the time, which made the walk cost more than the two sorts before it. The only branch left in the loop
    (is the next value equal to this one?) is predictable: almost never on continuous data, almost always on
    heavily tied data. The terms are added in the same order as before, so the sums are bit-identical.

    Args:
        reference: the reference sample, sorted, without NaN.
        current: the current sample, sorted, without NaN.

    Returns:
        (largest CDF gap * n * m, area between the CDFs * n * m).
    """
    n, m = reference.shape[0], current.shape[0]
    i = j = 0
    largest, area = 0, 0.0
    while i < n and j < m:
        x, y = reference[i], current[j]
        take = x <= y  # ties across the samples: the reference's value first, the current's next step
        value = min(x, y)
        i += take
        j += 1 - take
        if i < n and j < m:
            following = min(reference[i], current[j])
        elif i < n:
            following = reference[i]
        elif j < m:
            following = current[j]
        else:
            break  # both consumed: the CDFs meet at 1, no gap and no area left
        if following != value:  # the run of `value` is closed: both CDFs are exact here
            gap = abs(i * m - j * n)
            largest = max(largest, gap)
            area += gap * (following - value)
    # One sample is consumed (its CDF is 1): the rest of the other closes the last runs.
    while i < n - 1:
        value = reference[i]
        i += 1
        if reference[i] != value:
            gap = abs(i * m - j * n)
            largest = max(largest, gap)
            area += gap * (reference[i] - value)
    while j < m - 1:
        value = current[j]
        j += 1
        if current[j] != value:
            gap = abs(i * m - j * n)
            largest = max(largest, gap)
            area += gap * (current[j] - value)
    return largest, area


@numba.njit(cache=True, nogil=True)
def weighted_merge_walk(
    reference_values: np.ndarray, reference_counts: np.ndarray, current_values: np.ndarray, current_counts: np.ndarray
) -> tuple[int, float]:
    """`merge_walk` over two samples given as tables of distinct values and their counts (`stages.lib.drift.counts`).

    The walk over raw samples adds one term per distinct value of the merged samples but the last, in ascending
    order: the CDF gap just after the value (counts at or below it, scaled by n*m) times the distance to the next
    value. Here each step takes one distinct value whole, so the same terms come in the same order: the same KS
    statistic and the same Wasserstein area, bit for bit, whatever the sample sizes.

    Args:
        reference_values: the reference's distinct values, ascending, without NaN.
        reference_counts: how often each occurs (positive).
        current_values: the same for the current sample.
        current_counts: the same for the current sample.

    Returns:
        (largest CDF gap * n * m, area between the CDFs * n * m), as `merge_walk` on the expanded samples.
    """
    n, m = reference_counts.sum(), current_counts.sum()
    r, c = reference_values.shape[0], current_values.shape[0]
    i = j = 0
    below_reference = below_current = 0
    largest, area = 0, 0.0
    while i < r or j < c:
        take_reference = j >= c or (i < r and reference_values[i] <= current_values[j])
        value = reference_values[i] if take_reference else current_values[j]
        if i < r and reference_values[i] == value:
            below_reference += reference_counts[i]
            i += 1
        if j < c and current_values[j] == value:
            below_current += current_counts[j]
            j += 1
        if i < r and j < c:
            following = min(reference_values[i], current_values[j])
        elif i < r:
            following = reference_values[i]
        elif j < c:
            following = current_values[j]
        else:
            break  # the last distinct value: both CDFs are 1 past it
        gap = abs(below_reference * m - below_current * n)
        largest = max(largest, gap)
        area += gap * (following - value)
    return largest, area


@numba.njit(cache=True, nogil=True)
def code_counts(codes: np.ndarray, levels: int) -> np.ndarray:
    """How often each code 0 .. levels - 1 occurs (negative codes are missing values and not counted): what
    `np.bincount(codes[codes >= 0], minlength=levels)` gives, in one pass, without the mask, the copy and the cast
    of the codes to 64-bit integers (0.1 s for a 10M-row column of 8-bit codes, and holding the GIL)."""
    counts = np.zeros(levels, dtype=np.int64)
    for code in codes:
        if code >= 0:
            counts[code] += 1
    return counts
