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
        _drop_near_constant(matrix, len(train), config.near_constant, dropped)
    if config.duplicates:
        _drop_duplicates(matrix, dropped)
    if config.max_correlation is not None:
        _drop_correlated(matrix, config.max_correlation, dropped)
    return dict(sorted(dropped.items()))


def _drop_near_constant(matrix: dict[str, np.ndarray], rows: int, share_limit: float, dropped: dict[str, str]) -> None:
    """Drop each feature whose most common value (NaN counts as one) fills at least `share_limit` of the rows.

    Args:
        matrix: each numeric feature's values as float64, in sorted name order.
        rows: the number of train rows.
        share_limit: `features.selection.near_constant`.
        dropped: {dropped feature: reason}; updated in place.
    """
    for name, column in matrix.items():
        values, counts = np.unique(column, return_counts=True, equal_nan=True)
        share = counts.max() / rows if rows else 1.0
        if share >= share_limit:
            dropped[name] = f"near-constant: {values[counts.argmax()]:g} in {share:.2%} of train rows"


def _drop_duplicates(matrix: dict[str, np.ndarray], dropped: dict[str, str]) -> None:
    """Drop each feature equal, value for value, to one earlier in sorted order that is kept.

    Args:
        matrix: each numeric feature's values as float64, in sorted name order.
        dropped: {dropped feature: reason}; read (dropped features are skipped) and updated in place.
    """
    seen: dict[bytes, str] = {}
    for name, column in matrix.items():
        if name in dropped:
            continue
        # One bit pattern for every NaN, and -0.0 equal to 0.0, so equal values give equal bytes.
        digest = np.where(np.isnan(column), np.nan, column + 0.0).tobytes()
        if digest in seen:
            dropped[name] = f"duplicate of {seen[digest]}"
        else:
            seen[digest] = name


def _drop_correlated(matrix: dict[str, np.ndarray], max_correlation: float, dropped: dict[str, str]) -> None:
    """Drop each feature whose absolute Pearson correlation with a kept feature earlier in sorted order reaches the limit.

    Args:
        matrix: each numeric feature's values as float64, in sorted name order.
        max_correlation: `features.selection.max_correlation`.
        dropped: {dropped feature: reason}; read (dropped features are skipped) and updated in place.
    """
    kept = [name for name in matrix if name not in dropped]
    if not kept:
        return
    values = np.column_stack([matrix[name] for name in kept])
    means = np.nanmean(values, axis=0)
    # Missing values at the column mean: exact for complete columns, close for the rest.
    centred = np.where(np.isnan(values), 0.0, values - means)
    norms = np.sqrt((centred**2).sum(axis=0))
    norms[norms == 0] = np.inf
    correlation = np.abs((centred.T @ centred) / np.outer(norms, norms))
    chosen: list[int] = []
    for index, name in enumerate(kept):
        partner = next((other for other in chosen if correlation[index, other] >= max_correlation), None)
        if partner is None:
            chosen.append(index)
        else:
            dropped[name] = f"correlated {correlation[index, partner]:.3f} with {kept[partner]}"
