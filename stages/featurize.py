"""featurize: turn prepared splits into typed model inputs, with every statistic fitted on train.

This is the seam where the automated feature engine plugs in: it fits a `FeatureSpec` on the
train split and applies the same spec to every split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.lib.catalog import FEATURE_SPEC, FEATURES_DIR, PREPARED_DIR, REFERENCE_PROFILE, TARGET, TIME, FeatureSpec, load_prepared
from stages.lib.config import SPLIT_NAMES, FeaturizeConfig, load_params
from stages.lib.drift import sorted_columns
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, parquet_writer, write_outputs

OTHER = "__other__"


def _derived(frame: pd.DataFrame, config: FeaturizeConfig) -> pd.DataFrame:
    if not config.day_of_week:
        return frame
    missing = [column for column in ("year", "month", "day") if column not in frame.columns]
    if missing:
        fail(f"{PREPARED_DIR}: column '{missing[0]}' is needed for featurize.day_of_week; set it to false or keep the column in prepare")
    local_date = pd.to_datetime(frame[["year", "month", "day"]], errors="coerce")
    return frame.assign(day_of_week=local_date.dt.day_of_week.astype("float64"))


def fit_spec(train: pd.DataFrame, config: FeaturizeConfig) -> FeatureSpec:
    """Fit the feature spec on the train split only, so no later data leaks into it."""
    train = _derived(train, config)
    numeric = [*config.numeric, *(["day_of_week"] if config.day_of_week else [])]
    for column in [*numeric, *config.categorical, TARGET]:
        if column not in train.columns:
            fail(
                f"{PREPARED_DIR}/train.parquet: no column '{column}' (listed in featurize); columns are: {', '.join(sorted(train.columns))}"
            )
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(train[column]):
            fail(f"{PREPARED_DIR}/train.parquet: column '{column}' is {train[column].dtype}, not numeric; move it to featurize.categorical")
    categorical = {}
    for column in config.categorical:
        counts = train[column].dropna().astype(str).value_counts()
        categorical[column] = [*sorted(counts.index[counts >= config.min_category_count]), OTHER]
    return FeatureSpec(numeric=numeric, categorical=categorical)


def apply_spec(frame: pd.DataFrame, spec: FeatureSpec, config: FeaturizeConfig, where: str) -> pd.DataFrame:
    """Model inputs for one split: features in spec order, then target and time."""
    frame = _derived(frame, config)
    missing = [column for column in [*spec.features, TARGET, TIME] if column not in frame.columns]
    if missing:
        fail(f"{where}: no column '{missing[0]}', which the feature spec needs")
    features = {column: frame[column].astype("float64") for column in spec.numeric}
    for column, levels in spec.categorical.items():
        text = frame[column].astype("string")
        # Categories unseen or rare in train share one level, so the model handles them alike.
        grouped = text.where(text.isin(levels[:-1]) | text.isna(), OTHER)
        features[column] = pd.Categorical(grouped, categories=levels)
    features[TARGET] = frame[TARGET].astype(np.int8)
    features[TIME] = frame[TIME]
    return pd.DataFrame(features)


def featurize(splits: dict[str, pd.DataFrame], config: FeaturizeConfig) -> tuple[FeatureSpec, dict[str, pd.DataFrame]]:
    spec = fit_spec(splits["train"], config)
    return spec, {name: apply_spec(frame, spec, config, f"{PREPARED_DIR}/{name}.parquet") for name, frame in splits.items()}


def main() -> None:
    config = FeaturizeConfig.from_params(load_params())
    splits = {name: load_prepared(name) for name in SPLIT_NAMES}
    spec, features = featurize(splits, config)
    outputs = {FEATURES_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in features.items()}
    outputs[FEATURE_SPEC] = json_writer(spec.to_json())
    # Sorted once here, so the drift check only has to sort the current window.
    outputs[REFERENCE_PROFILE] = parquet_writer(sorted_columns(features["reference"], spec.numeric))
    write_outputs(outputs)
    print(f"featurize: {len(spec.numeric)} numeric + {len(spec.categorical)} categorical features -> {FEATURES_DIR}/")


if __name__ == "__main__":
    run_stage(main)
