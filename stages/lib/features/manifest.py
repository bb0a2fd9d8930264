"""What the feature manifest records of each feature beyond its plan: a rounded train summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def train_statistics(values: pd.Series) -> dict[str, Any]:
    """Train summary of one feature, rounded so the manifest's git diff shows real changes only.

    Args:
        values: the feature's train values.

    Returns:
        For a numeric feature its missing share and, when it has values, mean, std, min and max (6 decimals);
        for any other, its number of levels and the most common one.
    """
    if not pd.api.types.is_numeric_dtype(values):
        counts = values.astype("object").value_counts(dropna=False)
        return {"levels": len(counts), "top": str(counts.index[0]) if len(counts) else None}
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    present = numbers[~np.isnan(numbers)]
    stats: dict[str, Any] = {"missing_share": round(float(np.isnan(numbers).mean()), 6) if len(numbers) else 0.0}
    if len(present):
        stats |= {
            "mean": float(np.round(present.mean(), 6)),
            "std": float(np.round(present.std(), 6)),
            "min": float(np.round(present.min(), 6)),
            "max": float(np.round(present.max(), 6)),
        }
    return stats
