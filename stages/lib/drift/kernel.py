"""The one compiled loop of the drift check: a merge walk through two sorted samples (NumPy has no merge)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def merge_walk(reference: np.ndarray, current: np.ndarray) -> tuple[int, float]:
    """One linear walk through two sorted samples in merged order.

    At each distinct value both empirical CDFs are known exactly (ties in both samples are
    consumed together), so the largest gap is the exact KS statistic and the gap times the
    distance to the next value sums to the exact Wasserstein-1 distance. Gaps are scaled by
    n*m and kept as integers.

    Args:
        reference: the reference sample, sorted, without NaN.
        current: the current sample, sorted, without NaN.

    Returns:
        (largest CDF gap * n * m, area between the CDFs * n * m).
    """
    n, m = reference.shape[0], current.shape[0]
    i = j = 0
    largest, area = 0, 0.0
    while i < n or j < m:
        value = reference[i] if j >= m or (i < n and reference[i] <= current[j]) else current[j]
        while i < n and reference[i] == value:
            i += 1
        while j < m and current[j] == value:
            j += 1
        gap = abs(i * m - j * n)
        largest = max(largest, gap)
        if i < n and j < m:
            following = min(reference[i], current[j])
        elif i < n:
            following = reference[i]
        elif j < m:
            following = current[j]
        else:
            break
        area += gap * (following - value)
    return largest, area
