"""How column values are read (stored as numbers; as the text of a category), and the stored reference profile:
each column the schema types numeric or boolean, sorted on its own.

featurize writes it, drift-check reads it. It lives apart from the drift statistics so that
featurize (and everything downstream of it) does not depend on, nor rerun for, the drift code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# The schema types whose values the drift check compares, or counts, as numbers (stages/lib/drift/columns.py).
SORTED_TYPES = ("numeric", "boolean")


def holds_numbers(series: pd.Series) -> bool:
    """The values are stored as numbers (True/False flags are not: they are counted by their labels).

    How a column is stored, not what it is: its type comes from data/schema.yaml."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def category_strings(series: pd.Series) -> pd.Series:
    """A column's values as the text of a category (pandas string dtype, missing kept): the one rule featurize, the drift
    check and the monitor share. Codes stored as floats (an integer column with a missing cell) read as their integers,
    3.0 as "3", as the same code reads from a scoring file without missing cells; other values keep their own text."""
    if not pd.api.types.is_float_dtype(series):
        return series.astype("string")
    numbers = series.astype(np.float64)
    text = numbers.astype("string")
    whole = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (numbers.abs() < 2**63)
    text[whole] = numbers[whole].astype(np.int64).astype("string")
    return text


def sorted_columns(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """The stored reference profile: each column typed numeric or boolean (`types`: {column: schema type}) and
    stored as numbers, sorted on its own, missing values last. A categorical column is never in it, whatever its values."""
    return pd.DataFrame(
        {
            name: np.sort(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))
            for name, kind in types.items()
            if kind in SORTED_TYPES and holds_numbers(frame[name])
        }
    )


def read_sorted_columns(profile: pd.DataFrame) -> dict[str, np.ndarray]:
    """The stored profile as sorted arrays without their missing values."""
    arrays = {}
    for name in profile.columns:
        values = profile[name].to_numpy(dtype=np.float64)
        arrays[name] = values[: len(values) - int(np.isnan(values).sum())]
    return arrays
