"""P-values for many columns at once (no scipy call per column), and their false-discovery-rate adjustment."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special, stats


def ks_p_values(statistics: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Two-sided KS p-values: exact-n distribution for small effective n, asymptotic Kolmogorov beyond.

    Args:
        statistics: KS statistics, one per column.
        n: reference sample sizes.
        m: current sample sizes.

    Returns:
        The p-values, in [0, 1].
    """
    effective = n * m / (n + m)
    small = effective <= 10_000  # scipy's kstwo gets slow (and no more exact in practice) above this
    p: npt.NDArray[np.float64] = special.kolmogorov(np.sqrt(effective) * statistics)
    if small.any():
        p[small] = stats.kstwo.sf(statistics[small], np.round(effective[small]))
    return np.clip(p, 0.0, 1.0)


def chi2_p_values(chi2: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Chi-squared test p-values; 1 for a column with one category (no degree of freedom).

    Args:
        chi2: chi-squared statistics, one per column.
        dof: their degrees of freedom.

    Returns:
        The p-values.
    """
    return np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """False-discovery-rate adjusted p-values (missing p-values stay missing).

    Args:
        p_values: raw p-values, NaN where there is none.

    Returns:
        Benjamini-Hochberg adjusted p-values, in the same order.
    """
    adjusted = np.full(len(p_values), np.nan)
    valid = ~np.isnan(p_values)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p_values[valid], method="bh")
    return adjusted
