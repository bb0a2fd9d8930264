"""train: fit the model chosen by `conf/model/` on the train features; save it with skops and a model card."""

from __future__ import annotations

import platform
from importlib.metadata import version
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator

from stages.lib.catalog import FEATURE_SPEC, FEATURES_DIR, MODEL_CARD, MODEL_FILE, FeatureSpec, load_features
from stages.lib.config import ModelConfig, TrainConfig, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, sha256_file, write_outputs
from stages.lib.models import build_model, model_writer

LIBRARIES = ("scikit-learn", "pandas", "numpy", "scipy", "pyarrow", "skops")


def train_model(train: pd.DataFrame, spec: FeatureSpec, model_config: ModelConfig, train_config: TrainConfig) -> BaseEstimator:
    """Fit an estimator on the train split's features and target."""
    if train.empty:
        fail(f"{FEATURES_DIR}/train.parquet: no rows to train on; widen data.splits.train in conf/data/")
    classes = sorted(train[spec.target].unique().tolist())
    if len(classes) < 2:
        fail(f"{FEATURES_DIR}/train.parquet: target '{spec.target}' has one class only ({classes[0]}); a classifier needs both")
    model = build_model(model_config, spec.numeric, list(spec.categorical), train_config.seed)
    model.fit(train[spec.features], train[spec.target])
    return model


def model_card(spec: FeatureSpec, params: dict[str, Any], inputs: dict[str, str], rows: int) -> dict[str, Any]:
    return {
        "model": params["model"],
        "train": params["train"],
        "features": spec.features,
        "categorical": sorted(spec.categorical),
        "target": spec.target,
        "train_rows": rows,
        "inputs_sha256": inputs,
        "libraries": {name: version(name) for name in LIBRARIES},
        "python": ".".join(platform.python_version_tuple()[:2]),
    }


def main() -> None:
    params = load_params()
    model_config, train_config = ModelConfig.from_params(params), TrainConfig.from_params(params)
    spec, train = load_features("train")
    model = train_model(train, spec, model_config, train_config)
    inputs = {str(path): sha256_file(path) for path in (FEATURES_DIR / "train.parquet", FEATURE_SPEC)}
    card = model_card(spec, {"model": params["model"], "train": params["train"]}, inputs, len(train))
    write_outputs({MODEL_FILE: model_writer(model), MODEL_CARD: json_writer(card)})
    print(f"train: {model_config.name} on {len(train):,} rows, {len(spec.features)} features -> {MODEL_FILE}")


if __name__ == "__main__":
    run_stage(main)
