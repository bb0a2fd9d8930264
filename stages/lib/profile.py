"""The stored reference profile: each numeric column sorted on its own.

featurize writes it, drift-check reads it. It lives apart from the drift statistics so that
featurize (and everything downstream of it) does not depend on, nor rerun for, the drift code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def is_numeric(series: pd.Series) -> bool:
    """Compared as numbers (booleans are categories): decides which columns the profile keeps."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def sorted_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Each numeric column sorted on its own, missing values last: the stored reference profile."""
    return pd.DataFrame(
        {name: np.sort(frame[name].to_numpy(dtype=np.float64, na_value=np.nan)) for name in columns if is_numeric(frame[name])}
    )


def read_sorted_columns(profile: pd.DataFrame) -> dict[str, np.ndarray]:
    """The stored profile as sorted arrays without their missing values."""
    arrays = {}
    for name in profile.columns:
        values = profile[name].to_numpy(dtype=np.float64)
        arrays[name] = values[: len(values) - int(np.isnan(values).sum())]
    return arrays
