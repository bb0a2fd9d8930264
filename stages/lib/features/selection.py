"""Target-free feature selection: near-constant, duplicate and highly correlated features, in sorted name order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.lib.config import SelectionConfig


def select_features(train: pd.DataFrame, config: SelectionConfig) -> dict[str, str]:
    """Features the filters drop, with the reason; visited in sorted name order so column order does not matter.

    Args:
        train: the built train features (non-numeric columns are left alone).
        config: the `features.selection` section (a filter set to null or false is off).

    Returns:
        {dropped feature: reason}, sorted by name; of a duplicate or correlated pair, the name first in
        sorted order is kept.
    """
    names = sorted(column for column in train.columns if pd.api.types.is_numeric_dtype(train[column]))
    dropped: dict[str, str] = {}
    matrix = {name: train[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in names}
    if config.near_constant is not None:
        for name in names:
            values, counts = np.unique(matrix[name], return_counts=True, equal_nan=True)
            share = counts.max() / len(train) if len(train) else 1.0
            if share >= config.near_constant:
                dropped[name] = f"near-constant: {values[counts.argmax()]:g} in {share:.2%} of train rows"
    if config.duplicates:
        seen: dict[bytes, str] = {}
        for name in names:
            if name in dropped:
                continue
            # One bit pattern for every NaN, and -0.0 equal to 0.0, so equal values give equal bytes.
            digest = np.where(np.isnan(matrix[name]), np.nan, matrix[name] + 0.0).tobytes()
            if digest in seen:
                dropped[name] = f"duplicate of {seen[digest]}"
            else:
                seen[digest] = name
    if config.max_correlation is not None:
        kept = [name for name in names if name not in dropped]
        if kept:
            values = np.column_stack([matrix[name] for name in kept])
            means = np.nanmean(values, axis=0)
            # Missing values at the column mean: exact for complete columns, close for the rest.
            centred = np.where(np.isnan(values), 0.0, values - means)
            norms = np.sqrt((centred**2).sum(axis=0))
            norms[norms == 0] = np.inf
            correlation = np.abs((centred.T @ centred) / np.outer(norms, norms))
            chosen: list[int] = []
            for index, name in enumerate(kept):
                partner = next((other for other in chosen if correlation[index, other] >= config.max_correlation), None)
                if partner is None:
                    chosen.append(index)
                else:
                    dropped[name] = f"correlated {correlation[index, partner]:.3f} with {kept[partner]}"
    return dict(sorted(dropped.items()))
