"""train: cross-validate and fit target encoding, selection and the model of `conf/model/` together.

Everything fitted on the target lives in one scikit-learn pipeline, so cross-validation refits it
inside every fold and no fold's score sees encodings fitted on its own rows.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib.metadata import version
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from stages.lib.catalog import (
    FEATURE_SPEC,
    FEATURES_DIR,
    FEATURES_HINT,
    MODEL_CARD,
    MODEL_FILE,
    TRAIN_SUMMARY,
    FeatureSpec,
    load_spec,
)
from stages.lib.config import ModelConfig, TrainConfig, check_hyperparameters, load_params
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, read_parquet, sha256_file, write_outputs
from stages.lib.metrics import main_metric
from stages.lib.models import build_pipeline, model_writer, predict_scores
from stages.lib.runtime import limit_threads
from stages.lib.train_sample import Sample, sample_frame, sample_partitioned

LIBRARIES = ("scikit-learn", "pandas", "numpy", "scipy", "pyarrow", "skops")
DIGITS = 6


@dataclass(frozen=True)
class Trained:
    model: Pipeline
    summary: dict[str, Any]  # cross-validation scores and the selected features (reports/train.json)


def time_folds(times: pd.Series, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Positions (fit, score) of `folds` time-ordered folds: TimeSeriesSplit's blocks over the rows sorted by
    time, each cut moved back to the first row of its timestamp, so rows sharing a timestamp (many flights
    per hour) never straddle a boundary: every fold fits only on rows strictly earlier than those it scores."""
    order = np.argsort(pd.DatetimeIndex(times).as_unit("ns").asi8, kind="stable")
    ordered = pd.DatetimeIndex(times).as_unit("ns").asi8[order]
    starts = [score[0] for _, score in TimeSeriesSplit(n_splits=folds).split(ordered)]
    cuts = [*np.searchsorted(ordered, ordered[starts], side="left").tolist(), len(ordered)]
    if cuts[0] == 0 or any(end <= start for start, end in pairwise(cuts)):
        fail(
            f"{FEATURES_DIR}/train.parquet: {len(np.unique(ordered))} distinct times in '{times.name}' are too few "
            f"for train.cv_folds = {folds} time-ordered folds; lower it or set 0"
        )
    return [(order[:start], order[start:end]) for start, end in pairwise(cuts)]


def cross_validate(train: pd.DataFrame, spec: FeatureSpec, pipeline: Pipeline, folds: int) -> dict[str, Any]:
    """Time-ordered folds: each fold trains on the rows before a time and scores the next block."""
    scores, name = [], ""
    for index, (fit_rows, score_rows) in enumerate(time_folds(train[spec.time], folds), start=1):
        fold_train, fold_score = train.iloc[fit_rows], train.iloc[score_rows]
        fold_model = clone(pipeline).fit(fold_train[spec.features], fold_train[spec.target])
        name, value = main_metric(
            spec.task, fold_score[spec.target].to_numpy(), predict_scores(fold_model, fold_score[spec.features], spec.task)
        )
        scores.append(round(value, DIGITS))
        # A fold of the full data takes seconds to minutes: say each one as it finishes (stdout, not an output).
        print(f"train: fold {index} of {folds} scored, {name} {value:.4f} ({len(fit_rows):,} rows fitted)", flush=True)
    return {
        "metric": name,
        "folds": scores,
        "mean": round(float(np.nanmean(scores)), DIGITS),
        "std": round(float(np.nanstd(scores)), DIGITS),
    }


def train_model(train: pd.DataFrame, spec: FeatureSpec, model_config: ModelConfig, train_config: TrainConfig) -> Trained:
    """Cross-validate on the train split, then fit the whole pipeline on all of it."""
    if train.empty:
        fail(f"{FEATURES_DIR}/train.parquet: no rows to train on; widen data.splits.train in conf/data/")
    if spec.task == "classification":
        classes = sorted(train[spec.target].unique().tolist())
        if len(classes) < 2:
            fail(f"{FEATURES_DIR}/train.parquet: target '{spec.target}' has one class only ({classes[0]}); a classifier needs both")
    pipeline = build_pipeline(spec, model_config, train_config)
    summary: dict[str, Any] = {"rows": len(train), "features_in": len(spec.features)}
    if train_config.cv_folds:
        if len(train) < 2 * (train_config.cv_folds + 1):
            fail(
                f"{FEATURES_DIR}/train.parquet: {len(train)} rows are too few for train.cv_folds = {train_config.cv_folds}; lower it or set 0"
            )
        summary["cv"] = cross_validate(train, spec, pipeline, train_config.cv_folds)
    print(f"train: fitting {model_config.name} on all {len(train):,} rows", flush=True)
    model = pipeline.fit(train[spec.features], train[spec.target])
    if "select" in model.named_steps:
        summary["selected"] = [str(name) for name in model[:-1].get_feature_names_out()]
    return Trained(model=model, summary=summary)


def model_card(
    spec: FeatureSpec,
    model_config: ModelConfig,
    train_config: TrainConfig,
    inputs: dict[str, str],
    summary: dict[str, Any],
    sample: dict[str, int],
) -> dict[str, Any]:
    return {
        "model": model_config.model_dump(mode="json"),
        "train": train_config.model_dump(mode="json"),
        "task": spec.task,
        "features": spec.features,
        "target_encoded": spec.categorical if spec.target_encoded else [],
        "selected": summary.get("selected", spec.features),
        "target": spec.target,
        "train_rows": summary["rows"],
        "sample": sample,  # rows fitted on (train.sample_rows) of the rows in the train split
        "cv": summary.get("cv"),
        "inputs_sha256": inputs,
        "libraries": {name: version(name) for name in LIBRARIES},
        "python": ".".join(platform.python_version_tuple()[:2]),
    }


def load_train(train_config: TrainConfig, distributed: bool) -> tuple[FeatureSpec, Sample]:
    """The feature spec and the rows to fit on: the whole train split, or its `train.sample_rows` sample. On the dask
    engine the split's parts are sampled on the workers and only the sampled rows come to this process."""
    spec = load_spec()
    path = FEATURES_DIR / "train.parquet"
    size, seed = train_config.sample_rows, train_config.seed
    if distributed:
        return spec, sample_partitioned(path, spec.time, size, seed, FEATURES_HINT)
    return spec, sample_frame(read_parquet(path, FEATURES_HINT), spec.time, size, seed, str(path))


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    model_config, train_config = params.model, params.train
    check_hyperparameters(model_config)  # before the data is read: `dvc exp run -S model.max_iter=ten` composes without make params
    # The cluster only reads and samples: it is stopped (its memory freed) before the fit.
    with engine_session(params.engine) as client:
        spec, sample = load_train(train_config, client is not None)
    train = sample.rows
    trained = train_model(train, spec, model_config, train_config)
    inputs = {str(path): sha256_file(path) for path in (FEATURES_DIR / "train.parquet", FEATURE_SPEC)}
    card = model_card(spec, model_config, train_config, inputs, trained.summary, sample.card)
    write_outputs({MODEL_FILE: model_writer(trained.model), MODEL_CARD: json_writer(card), TRAIN_SUMMARY: json_writer(trained.summary)})
    cv = trained.summary.get("cv")
    cv_text = f", cross-validated {cv['metric']} {cv['mean']:.4f} ± {cv['std']:.4f}" if cv else ""
    rows = f"{len(train):,} rows" + (f" (a sample of {sample.available:,})" if len(train) < sample.available else "")
    print(f"train: {model_config.name} on {rows}, {len(spec.features)} features{cv_text} -> {MODEL_FILE}")


if __name__ == "__main__":
    # Worker processes of the dask engine re-import the main module (hence the guard); run main from stages.train,
    # so nothing the workers are sent refers to __main__.
    from stages.train import main as stage_main

    run_stage(stage_main)
