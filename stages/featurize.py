"""featurize: turn prepared splits into typed model inputs, with every statistic fitted on train.

This is the seam where the automated feature engine plugs in: it fits a `FeatureSpec` on the
train split and applies the same spec to every split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from stages.lib.catalog import FEATURE_SPEC, FEATURES_DIR, PREPARED_DIR, REFERENCE_PROFILE, SCHEMA_FILE, FeatureSpec, load_prepared
from stages.lib.config import SPLIT_NAMES, FeaturizeConfig, load_params
from stages.lib.drift import sorted_columns
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, parquet_writer, read_yaml, write_outputs

OTHER = "__other__"
NUMERIC_TYPES = ("numeric", "boolean")


def _derived(frame: pd.DataFrame, schema: dict[str, Any], config: FeaturizeConfig) -> pd.DataFrame:
    if not config.day_of_week:
        return frame
    # The calendar of the place the data comes from, not UTC's.
    times = frame[schema["time"]]
    local = times.dt.tz_convert(schema["timezone"]) if schema.get("timezone") else times
    return frame.assign(day_of_week=local.dt.day_of_week.astype("float64"))


def fit_spec(train: pd.DataFrame, schema: dict[str, Any], config: FeaturizeConfig) -> FeatureSpec:
    """Fit the feature spec on the train split only, so no later data leaks into it."""
    columns = schema["columns"]
    unknown = [column for column in config.exclude if column not in columns]
    if unknown:
        fail(
            f"params.yaml: 'featurize.exclude' names '{unknown[0]}', which is not a prepared column; columns are: {', '.join(sorted(columns))}"
        )
    candidates = [
        column for column in train.columns if column in columns and "role" not in columns[column] and column not in config.exclude
    ]
    numeric = [column for column in candidates if columns[column]["type"] in NUMERIC_TYPES]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(train[column]):
            fail(
                f"{SCHEMA_FILE}: column '{column}' is typed {columns[column]['type']} but holds {train[column].dtype}; fix data.types in conf/data/"
            )
    categorical = {}
    for column in (column for column in candidates if columns[column]["type"] == "categorical"):
        counts = train[column].dropna().astype(str).value_counts()
        categorical[column] = [*sorted(counts.index[counts >= config.min_category_count]), OTHER]
    if config.day_of_week:
        numeric.append("day_of_week")
    if not numeric and not categorical:
        fail(f"{SCHEMA_FILE}: no numeric or categorical column is left to learn from; check data.drop and featurize.exclude")
    return FeatureSpec(numeric=numeric, categorical=categorical, target=schema["target"], time=schema["time"], task=schema["task"])


def apply_spec(frame: pd.DataFrame, spec: FeatureSpec, schema: dict[str, Any], config: FeaturizeConfig, where: str) -> pd.DataFrame:
    """Model inputs for one split: features in spec order, then target and time."""
    frame = _derived(frame, schema, config)
    missing = [column for column in [*spec.features, spec.target, spec.time] if column not in frame.columns]
    if missing:
        fail(f"{where}: no column '{missing[0]}', which the feature spec needs")
    features = {column: frame[column].astype("float64") for column in spec.numeric}
    for column, levels in spec.categorical.items():
        text = frame[column].astype("string")
        # Categories unseen or rare in train share one level, so the model handles them alike.
        grouped = text.where(text.isin(levels[:-1]) | text.isna(), OTHER)
        features[column] = pd.Categorical(grouped, categories=levels)
    features[spec.target] = frame[spec.target].astype(np.int8 if spec.task == "classification" else np.float64)
    features[spec.time] = frame[spec.time]
    return pd.DataFrame(features)


def featurize(
    splits: dict[str, pd.DataFrame], schema: dict[str, Any], config: FeaturizeConfig
) -> tuple[FeatureSpec, dict[str, pd.DataFrame]]:
    spec = fit_spec(splits["train"], schema, config)
    return spec, {name: apply_spec(frame, spec, schema, config, f"{PREPARED_DIR}/{name}.parquet") for name, frame in splits.items()}


def main() -> None:
    config = FeaturizeConfig.from_params(load_params())
    schema = read_yaml(SCHEMA_FILE, "run `dvc repro prepare` first")
    splits = {name: load_prepared(name) for name in SPLIT_NAMES}
    spec, features = featurize(splits, schema, config)
    outputs = {FEATURES_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in features.items()}
    outputs[FEATURE_SPEC] = json_writer(spec.to_json())
    # Sorted once here, so the drift check only has to sort the current window.
    outputs[REFERENCE_PROFILE] = parquet_writer(sorted_columns(features["reference"], spec.numeric))
    write_outputs(outputs)
    print(f"featurize: {len(spec.numeric)} numeric + {len(spec.categorical)} categorical features -> {FEATURES_DIR}/")


if __name__ == "__main__":
    run_stage(main)
