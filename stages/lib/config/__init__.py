"""Typed configuration: the only readers of params.yaml, and the whole file validated at once.

`load_params()` turns params.yaml into a frozen `Params`; every stage and command calls it first, so
a typo or a wrong value anywhere in the file (say from `dvc exp run -S model.max_itr=5`) stops the
first stage before it writes anything, and `make params` stops before writing params.yaml. Each
problem is one line with the key's full path and what was expected. Defaults live in conf/ only: a
model field has no default for a key conf/ sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, ValidationInfo, model_validator

from stages.lib.config.base import PARAMS_FILE, ConfigError, Duration, Strict, first_problem
from stages.lib.config.data import SPLIT_NAMES, TASKS, TIME_FORMATS, TYPES, Check, DataContract, Join, Source, Window
from stages.lib.config.engine import ENGINES, EngineConfig
from stages.lib.config.features import (
    DATETIME_PARTS,
    CategoricalFeatures,
    DatetimeFeatures,
    FeaturesConfig,
    HistoryFeatures,
    NumericFeatures,
    SelectionConfig,
)
from stages.lib.config.model import ESTIMATOR_MODULES, ModelConfig, check_hyperparameters, estimator_class, models_for
from stages.lib.config.monitor import MonitorConfig
from stages.lib.config.sections import DriftConfig, DriftThresholds, EvaluateConfig, GateConfig, ReportGate, RuntimeConfig, TrainConfig
from stages.lib.errors import fail

__all__ = [
    "DATETIME_PARTS",
    "ENGINES",
    "ESTIMATOR_MODULES",
    "PARAMS_FILE",
    "SPLIT_NAMES",
    "TASKS",
    "TIME_FORMATS",
    "TYPES",
    "CategoricalFeatures",
    "Check",
    "DataContract",
    "DatetimeFeatures",
    "DriftConfig",
    "DriftThresholds",
    "Duration",
    "EngineConfig",
    "EvaluateConfig",
    "FeaturesConfig",
    "GateConfig",
    "HistoryFeatures",
    "Join",
    "ModelConfig",
    "MonitorConfig",
    "NumericFeatures",
    "Params",
    "ReportGate",
    "RuntimeConfig",
    "SelectionConfig",
    "Source",
    "TrainConfig",
    "Window",
    "check_hyperparameters",
    "estimator_class",
    "load_params",
    "parse_params",
    "read_params",
]


class Params(Strict):
    """params.yaml: one section per group of conf/config.yaml."""

    data: DataContract
    features: FeaturesConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    drift: DriftConfig
    runtime: RuntimeConfig
    monitor: MonitorConfig
    engine: EngineConfig

    @model_validator(mode="after")
    def _model_fits_the_task(self, info: ValidationInfo) -> Params:
        if self.model.task != self.data.task:
            kind = "classifier" if self.model.task == "classification" else "regressor"
            model_dir = Path((info.context or {}).get("conf", "conf")) / "model"
            fitting = models_for(self.data.task, model_dir)
            choose = ", ".join(f"model={name} ({model_dir / name}.yaml)" for name in fitting) or f"a model file in {model_dir}/ for it"
            raise ConfigError(
                f"'{{key}}' {self.model.target} (conf/model/{self.model.name}.yaml) is a {kind}, but data.task is {self.data.task}; "
                f"choose {choose}",
                at=("model", "_target_"),
            )
        return self


def read_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as a plain mapping (what an older revision wrote, too); a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.exists():
        fail(f"{path}: not found; run `make params` to compose it from conf/")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        fail(f"{path}: not valid YAML ({str(error).splitlines()[0]})")
    if not isinstance(params, dict):
        fail(f"{path}: expected a mapping of sections (data, model, ...)")
    return params


def parse_params(params: Any, source: str = PARAMS_FILE, conf: str | Path = "conf") -> Params:
    """Validate a whole params mapping; the first problem as one UserError line naming `source` and the key."""
    try:
        return Params.model_validate(params, context={"conf": str(conf)})
    except ValidationError as error:
        fail(first_problem(error, (), source))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """The one loader every stage and command starts with: params.yaml, validated whole."""
    return parse_params(read_params(path), str(path))
