"""The `conf/model/` group (the `model` section): the estimator by `_target_`, its inputs, its keyword arguments.

A new scikit-learn estimator needs a YAML file, not Python: `_target_` names its class, `preprocessing`
says what the features go through first, and every other key is a keyword argument of the class,
checked against the class's own list. Only classes of the modules in ESTIMATOR_MODULES can be named,
so a params file cannot make a stage import arbitrary code.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationInfo, model_serializer, model_validator

from stages.lib.config.base import ConfigError, Strict, Text, choice

# The one allow-list of `_target_`: estimator classes of these modules.
ESTIMATOR_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.naive_bayes",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.tree",
)
# none: the features as featurize wrote them (missing values and pandas categories left for the model);
# impute_scale_onehot: median imputation with missing indicators and scaling of numbers, one-hot categories.
PREPROCESSING = ("none", "impute_scale_onehot")
RESERVED = ("name", "_target_", "preprocessing")  # the project's keys; the rest are the estimator's
SEEDED = "random_state"  # set from train.seed, never in a model file
MODEL_DIR = Path("conf/model")


def estimator_class(target: str) -> type:
    """The estimator class `target` names, if it is one of an allowed module (checked before importing anything)."""
    module, _, name = target.rpartition(".")
    if module not in ESTIMATOR_MODULES or not name or name.startswith("_"):
        raise ConfigError(f"must name an estimator class of {', '.join(ESTIMATOR_MODULES)}, got {target!r}")
    from sklearn.base import ClassifierMixin, RegressorMixin

    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type) or not issubclass(found, ClassifierMixin | RegressorMixin):
        raise ConfigError(f"{target!r} is not a classifier or regressor of {module}; see its documentation for the class names")
    return found


def estimator_arguments(estimator: type) -> list[str]:
    """The keyword arguments of an estimator class, as its get_params lists them (no instance: some need arguments)."""
    names: list[str] = sorted(estimator._get_param_names())  # type: ignore[attr-defined]  # sklearn's own classmethod
    return names


def task_of(target: str) -> str:
    from sklearn.base import ClassifierMixin

    return "classification" if issubclass(estimator_class(target), ClassifierMixin) else "regression"


def models_for(task: str, model_dir: Path = MODEL_DIR) -> list[str]:
    """The `conf/model/` options whose estimator fits `task` (for the error that asks to choose one)."""
    names = []
    for path in sorted(model_dir.glob("*.yaml")):
        try:
            if task_of(str(yaml.safe_load(path.read_text(encoding="utf-8")).get("_target_"))) == task:
                names.append(path.stem)
        except (ConfigError, OSError, yaml.YAMLError, AttributeError):
            continue
    return names


class ModelConfig(Strict):
    """The chosen `conf/model/<name>.yaml`, flat as written: name, _target_, preprocessing and keyword arguments."""

    name: Text
    target: Text = Field(alias="_target_")
    preprocessing: Annotated[str, choice(PREPROCESSING)]
    hyperparameters: dict[str, Any]  # every other key of the file, in name order

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        """Overrides the base check: any key but the project's is a keyword argument, checked against the estimator."""
        if isinstance(data, ModelConfig):
            return data
        if not isinstance(data, dict):
            raise ConfigError(f"must be a mapping, got {data!r}")
        ours = {key: value for key, value in data.items() if key in RESERVED}
        return {
            **ours,
            "hyperparameters": {key: value for key, value in sorted(data.items(), key=lambda item: str(item[0])) if key not in RESERVED},
        }

    @model_validator(mode="after")
    def _known_arguments(self, info: ValidationInfo) -> ModelConfig:
        try:
            estimator = estimator_class(self.target)
        except ConfigError as error:
            raise ConfigError(error.message, at=("_target_",)) from None
        valid = [key for key in estimator_arguments(estimator) if key != SEEDED]
        for key in self.hyperparameters:
            if key not in valid:
                raise ConfigError(
                    f"'{{key}}' (from conf/model/{self.name}.yaml or a -S override) is not a keyword argument of "
                    f"{estimator.__name__}{' (it comes from train.seed)' if key == SEEDED else ''}; valid: {', '.join(valid)}",
                    at=(key,),
                )
        return self

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        return {"name": self.name, "_target_": self.target, "preprocessing": self.preprocessing, **self.hyperparameters}

    @property
    def estimator(self) -> type:
        return estimator_class(self.target)

    @property
    def task(self) -> str:
        return task_of(self.target)
