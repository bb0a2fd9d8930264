"""The model's inputs for new rows, exactly as featurize built them: the fitted transformer, then history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from stages.lib.features.history import HistoryLookup, history_features


def apply_features(rows: pd.DataFrame, transformer: ColumnTransformer, events: pd.DataFrame, spec: Any) -> pd.DataFrame:
    """Model inputs for new rows, exactly as featurize built them: the fitted transformer, then history.

    Args:
        rows: new rows with the prepared input columns and the time.
        transformer: the fitted transformer featurize saved.
        events: the labelled past featurize looked back on (data/features/history.parquet).
        spec: the FeatureSpec featurize wrote.

    Returns:
        The selected features in the spec's order (`model_columns`), indexed like `rows`.
    """
    built = transformer.transform(rows)
    if spec.history:
        past = history_features(rows, events, HistoryLookup.from_json(spec.history), spec.time, spec.target)
        built = pd.concat([built, past.set_axis(built.index)], axis=1)
    return model_columns(built, spec.features, spec.categorical)


def model_columns(built: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The selected features in order: categories as they are, everything else as float64.

    Args:
        built: every built feature (transformer outputs and history).
        features: the selected features, in model order.
        categorical: the features the model reads as categories.

    Returns:
        The model's input frame, indexed like `built`.
    """
    return pd.DataFrame(
        {name: built[name] if name in categorical else built[name].astype(np.float64) for name in features}, index=built.index
    )
