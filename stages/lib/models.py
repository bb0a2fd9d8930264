"""Model catalogue (the `conf/model/` group) and safe, byte-stable model files (skops.io)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from stages.lib.config import ModelConfig
from stages.lib.errors import fail


def _hgb(numeric: Sequence[str], categorical: Sequence[str], seed: int) -> BaseEstimator:
    # Categorical columns arrive as pandas categories; HGB splits on them natively.
    return HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)


def _logreg(numeric: Sequence[str], categorical: Sequence[str], seed: int) -> BaseEstimator:
    columns = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]),
                list(numeric),
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("columns", columns), ("classifier", LogisticRegression(random_state=seed))])


# name -> (builder, step whose hyperparameters `conf/model/<name>.yaml` sets)
MODELS: dict[str, tuple[Callable[[Sequence[str], Sequence[str], int], BaseEstimator], str | None]] = {
    "hgb": (_hgb, None),
    "logreg": (_logreg, "classifier"),
}


def build_model(config: ModelConfig, numeric: Sequence[str], categorical: Sequence[str], seed: int) -> BaseEstimator:
    """An unfitted estimator for `config`, with its hyperparameters checked by name."""
    if config.name not in MODELS:
        fail(f"params.yaml: unknown model '{config.name}'; choose one of {', '.join(sorted(MODELS))} (conf/model/<name>.yaml)")
    builder, step = MODELS[config.name]
    model = builder(numeric, categorical, seed)
    target = model if step is None else model.named_steps[step]
    valid = target.get_params(deep=False)
    for key in config.hyperparameters:
        if key not in valid or key == "random_state":
            fail(
                f"params.yaml: 'model.{key}' (from conf/model/{config.name}.yaml or a -S override) is not a hyperparameter of {type(target).__name__}; "
                f"valid: {', '.join(sorted(k for k in valid if k != 'random_state'))}"
            )
    target.set_params(**config.hyperparameters)
    return model


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


def model_writer(model: BaseEstimator) -> Callable[[Path], None]:
    payload = _stable_skops_bytes(model)
    return lambda path: path.write_bytes(payload)


# Types our own models contain beyond skops' defaults. Anything else in a model file is refused.
TRUSTED_TYPES = frozenset(
    {
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
        "numpy.dtypes.Float64DType",
        "numpy.dtypes.Int64DType",
        "numpy.dtypes.ObjectDType",
    }
)


def load_model(path: str | Path) -> BaseEstimator:
    """Load a model file, refusing any type outside our allow-list (never unpickles)."""
    path = Path(path)
    if not path.exists():
        fail(f"{path}: model file not found; run `dvc repro train` (or `dvc pull`) first")
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - TRUSTED_TYPES)
    if untrusted:
        fail(f"{path}: refusing to load untrusted types {', '.join(untrusted)}; only load models this project trained")
    return sio.load(path, trusted=sorted(set(sio.get_untrusted_types(file=path))))
