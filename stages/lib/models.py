"""Estimators from the `conf/model/` group (classes named by `_target_`) and safe, byte-stable model files (skops.io)."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer, make_column_selector

# Private, but it is where HistGradientBoosting keeps the thread count (see _without_thread_count).
from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from stages.lib.catalog import FEATURE_SPEC, FeatureSpec
from stages.lib.config import ModelConfig, TrainConfig
from stages.lib.config.model import SEEDED, estimator_arguments
from stages.lib.errors import fail
from stages.lib.io import Writer


def _impute_scale_onehot(estimator: BaseEstimator, step: str) -> Pipeline:
    """Median imputation with missing indicators and scaling of numbers, one-hot categories, then the estimator."""
    columns = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]),
                make_column_selector(dtype_include="number"),
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="category")),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("columns", columns), (step, estimator)])


def build_model(config: ModelConfig, seed: int) -> BaseEstimator:
    """An unfitted estimator of the class `config` names, with its keyword arguments (checked when params were
    validated), `random_state` from train.seed when the class has one, after the preprocessing `config` names."""
    estimator_type = config.estimator
    arguments = dict(config.hyperparameters)
    if SEEDED in estimator_arguments(estimator_type):
        arguments[SEEDED] = seed
    estimator = estimator_type(**arguments)
    if config.preprocessing == "impute_scale_onehot":
        return _impute_scale_onehot(estimator, "classifier" if config.task == "classification" else "regressor")
    return estimator


def _median_filled(features: Any) -> np.ndarray:
    values = np.asarray(features, dtype=np.float64)
    medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0) if len(values) else 0.0
    return np.where(np.isnan(values), medians, values)


def f_classif_filled(features: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """ANOVA F-test with missing values at the column median (sklearn's refuses NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores: tuple[np.ndarray, np.ndarray] = f_classif(_median_filled(features), target)
    return scores


def f_regression_filled(features: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Univariate linear-regression F-test with missing values at the column median."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores: tuple[np.ndarray, np.ndarray] = f_regression(_median_filled(features), target)
    return scores


def build_pipeline(spec: FeatureSpec, model_config: ModelConfig, train_config: TrainConfig) -> Pipeline:
    """Target encoding (out of fold), optional target-based selection, then the model: all fitted together."""
    steps: list[tuple[str, Any]] = []
    if spec.categorical and spec.target_encoded:
        # TargetEncoder cross-fits inside fit_transform, so each train row is encoded by folds that never saw it.
        classification = spec.task == "classification"
        folds = (StratifiedKFold if classification else KFold)(train_config.encoding_folds, shuffle=True, random_state=train_config.seed)
        encoder = TargetEncoder(target_type="binary" if classification else "continuous", cv=folds)
        steps.append(
            ("encode", ColumnTransformer([("target", encoder, spec.categorical)], remainder="passthrough", verbose_feature_names_out=False))
        )
    if train_config.max_selected is not None:
        if spec.categorical and not spec.target_encoded:
            fail(
                "params.yaml: 'train.max_selected' needs numeric features; set features.categorical.target_encoding: true or max_selected: null"
            )
        score = f_classif_filled if spec.task == "classification" else f_regression_filled
        steps.append(("select", SelectKBest(score, k=min(train_config.max_selected, len(spec.features)))))
    if model_config.task != spec.task:
        fail(
            f"params.yaml: model '{model_config.name}' ({model_config.target}) does not fit the {spec.task} task of {FEATURE_SPEC} (data.task); run `dvc repro`"
        )
    steps.append(("model", build_model(model_config, train_config.seed)))
    return Pipeline(steps).set_output(transform="pandas")


def predict_scores(model: BaseEstimator, features: pd.DataFrame, task: str) -> np.ndarray:
    """Probability of the positive class for classification, the prediction for regression."""
    if task == "classification":
        positive: np.ndarray = model.predict_proba(features)[:, 1]
        return positive
    return np.asarray(model.predict(features), dtype=np.float64)


def _stable_skops_bytes(model: BaseEstimator) -> bytes:
    """skops output with memory-address ids and timestamps replaced, so equal models give equal bytes."""
    original = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    schema = json.loads(original.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            renamed = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    value = ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str):
                    value = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
                else:
                    value = renumber(value)
                renamed[key] = value
            return renamed
        if isinstance(node, list):
            return [renumber(item) for item in node]
        return node

    schema = renumber(schema)
    unreferenced = set(original.namelist()) - set(files) - {"schema.json"}
    if unreferenced:
        raise RuntimeError(f"skops wrote files not named in its schema: {sorted(unreferenced)}")
    stable = io.BytesIO()
    with zipfile.ZipFile(stable, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for old_name, new_name in sorted(files.items(), key=lambda item: int(Path(item[1]).stem)):
            archive.writestr(
                zipfile.ZipInfo(new_name, date_time=(1980, 1, 1, 0, 0, 0)), original.read(old_name), compress_type=zipfile.ZIP_DEFLATED
            )
        archive.writestr(
            zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
            json.dumps(schema, indent=1),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return stable.getvalue()


def _without_thread_count(model: BaseEstimator) -> BaseEstimator:
    """A copy of `model` whose HistGradientBoosting bin mappers forget the thread count they were fitted with.

    The fitted `_BinMapper` keeps `n_threads` (OpenMP's count on the training machine), so the same model
    trained on 2 and on 4 CPUs gave different files and dvc.lock hashes. With None, binning at prediction
    asks OpenMP for the count, as a fresh estimator does; the splits and predictions do not depend on it.
    """
    model = copy.deepcopy(model)
    pending: list[object] = [model]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _BinMapper):
            item.n_threads = None
        if isinstance(item, BaseEstimator):
            pending.extend(vars(item).values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return model


def model_writer(model: BaseEstimator) -> Writer:
    payload = _stable_skops_bytes(_without_thread_count(model))
    return lambda path: path.write_bytes(payload)


# Types our own models and feature transformers contain beyond skops' defaults. Anything else is refused.
TRUSTED_TYPES = frozenset(
    {
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",  # the fitted trees of every estimator of sklearn.tree and most of sklearn.ensemble
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
        "stages.lib.features.CalendarFeatures",
        "stages.lib.features.FrequencyEncoder",
        "stages.lib.features.RareCategories",
        "stages.lib.features.RatioFeatures",
        "stages.lib.features.TextCategories",
        "stages.lib.features.signed_log1p",
        "stages.lib.models.f_classif_filled",
        "stages.lib.models.f_regression_filled",
        "sklearn.utils.validation.check_array",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
        "numpy.dtypes.Float64DType",
        "numpy.dtypes.Int64DType",
        "numpy.dtypes.ObjectDType",
    }
)


def _skops_archive(data: bytes) -> bool:
    """A zip archive, intact (every member's CRC), whose schema.json is a skops schema: checked before skops reads it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "schema.json" not in archive.namelist() or archive.testzip() is not None:
                return False
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        return False
    return isinstance(schema, dict) and "protocol" in schema and "__class__" in schema


def _pickle(data: bytes) -> bool:
    """A pickle of protocol 2 or later (what pickle, joblib and cloudpickle write): the PROTO opcode, then the protocol."""
    return len(data) > 2 and data[0] == 0x80 and 2 <= data[1] <= 5  # pickle's PROTO opcode; this module never imports pickle


def load_model(path: str | Path) -> BaseEstimator:
    """Load a model file, refusing anything but a skops archive of allow-listed types (never unpickles).

    The file is read once: the bytes that are checked are the bytes that are loaded.
    """
    path = Path(path)
    if not path.exists():
        fail(f"{path}: model file not found; run `dvc repro train` (or `dvc pull`) first")
    data = path.read_bytes()
    if _pickle(data):
        fail(
            f"{path}: not a model file this project wrote (not a skops file: a pickle); pickles are never loaded (unpickling "
            "runs whatever code the file holds), so it is refused; rebuild it with `dvc repro` or fetch it with `dvc pull`"
        )
    not_ours = (
        f"{path}: not a model file this project wrote (not an intact skops archive: a pickle, a truncated copy?); refusing to load it"
    )
    if not _skops_archive(data):
        fail(f"{not_ours}; rebuild it with `dvc repro` or fetch it with `dvc pull`")
    try:
        found = set(sio.get_untrusted_types(data=data))
    except (KeyError, TypeError, ValueError) as error:
        fail(f"{not_ours} ({type(error).__name__}: {error})")
    untrusted = sorted(found - TRUSTED_TYPES)
    if untrusted:
        fail(f"{path}: refusing to load untrusted types {', '.join(untrusted)}; only load models this project trained")
    try:
        return sio.loads(data, trusted=sorted(found))
    except (KeyError, TypeError, ValueError, AttributeError, ImportError) as error:
        fail(f"{not_ours} ({type(error).__name__}: {error})")
