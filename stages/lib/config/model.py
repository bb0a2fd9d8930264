"""The `conf/model/` group (the `model` section): the estimator by `_target_`, its inputs, its keyword arguments.

A new scikit-learn estimator needs a YAML file, not Python: `_target_` names its class, `preprocessing`
says what the features go through first, and every other key is a keyword argument of the class,
checked against the class's own list. Only classes of the modules in ESTIMATOR_MODULES can be named,
so a params file cannot make a stage import arbitrary code.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationInfo, model_serializer, model_validator

from stages.lib.config.base import PARAMS_FILE, ConfigError, Strict, Text, choice
from stages.lib.config.estimators import ESTIMATORS, SKLEARN_VERSION
from stages.lib.errors import fail

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


def _allowed(target: str) -> tuple[str, str]:
    """The module and class name `target` names, when its module is allowed (checked before importing anything)."""
    module, _, name = target.rpartition(".")
    if module not in ESTIMATOR_MODULES or not name or name.startswith("_"):
        raise ConfigError(f"must name an estimator class of {', '.join(ESTIMATOR_MODULES)}, got {target!r}")
    return module, name


def estimator_class(target: str) -> type:
    """The estimator class `target` names, if it is one of an allowed module."""
    module, name = _allowed(target)
    from sklearn.base import ClassifierMixin, RegressorMixin

    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type) or not issubclass(found, ClassifierMixin | RegressorMixin):
        raise ConfigError(f"{target!r} is not a classifier or regressor of {module}; see its documentation for the class names")
    return found


def estimator_arguments(estimator: type) -> list[str]:
    """The keyword arguments of an estimator class, as its get_params lists them (no instance: some need arguments)."""
    names: list[str] = sorted(estimator._get_param_names())  # type: ignore[attr-defined]  # sklearn's own classmethod
    return names


def _task(estimator: type) -> str:
    from sklearn.base import ClassifierMixin

    return "classification" if issubclass(estimator, ClassifierMixin) else "regression"


def estimator_facts(target: str) -> tuple[str, tuple[str, ...]]:
    """The task and keyword arguments of the estimator `target` names.

    Read from the table stages/lib/config/estimators.py when it was generated from the installed scikit-learn,
    so that checking params.yaml does not import scikit-learn (1.5 s of every stage's and command's start-up);
    otherwise from the class itself. The table is never trusted for another version."""
    _allowed(target)
    if target in ESTIMATORS and importlib.metadata.version("scikit-learn") == SKLEARN_VERSION:
        return ESTIMATORS[target]
    estimator = estimator_class(target)
    return _task(estimator), tuple(estimator_arguments(estimator))


def estimator_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every classifier and regressor of ESTIMATOR_MODULES with its task and arguments, from the installed scikit-learn:
    what `python -m commands.estimators` writes to stages/lib/config/estimators.py."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    table = {}
    for module in ESTIMATOR_MODULES:
        imported = importlib.import_module(module)
        for name in sorted(getattr(imported, "__all__", dir(imported))):  # the public names only
            found = getattr(imported, name)
            estimator = isinstance(found, type) and issubclass(found, BaseEstimator)
            if not name.startswith("_") and estimator and issubclass(found, ClassifierMixin | RegressorMixin):
                table[f"{module}.{name}"] = (_task(found), tuple(estimator_arguments(found)))
    return table


def task_of(target: str) -> str:
    return estimator_facts(target)[0]


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


def _expected(message: str) -> str:
    """What scikit-learn's InvalidParameterError says a value must be ("an int in the range [1, inf)")."""
    found = re.search(r" must be (.*)\. Got .* instead\.$", message, re.DOTALL)
    return found[1] if found else message


def check_hyperparameters(config: ModelConfig, source: str | Path = PARAMS_FILE) -> None:
    """Every hyperparameter's type and value against the estimator's own constraints (scikit-learn's
    `_parameter_constraints`, which fit would check only after the data is loaded): one line naming the key, the
    value and what is expected. Not part of the params models: it imports scikit-learn (1.5 s), so `make params` and
    the stages that build the estimator (train) call it, not every stage."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    estimator = config.estimator
    constraints = getattr(estimator, "_parameter_constraints", {})
    for key, value in config.hyperparameters.items():
        if key not in constraints:
            continue
        try:
            validate_parameter_constraints({key: constraints[key]}, {key: value}, caller_name=estimator.__name__)
        except InvalidParameterError as error:
            fail(
                f"{source}: 'model.{key}' = {value!r} is not a valid value for {estimator.__name__}: it must be "
                f"{_expected(str(error))} (scikit-learn's own constraint); fix conf/model/{config.name}.yaml or the -S override"
            )


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
            _, arguments = estimator_facts(self.target)
        except ConfigError as error:
            raise ConfigError(error.message, at=("_target_",)) from None
        valid = [key for key in arguments if key != SEEDED]
        for key in self.hyperparameters:
            if key not in valid:
                raise ConfigError(
                    f"'{{key}}' (from conf/model/{self.name}.yaml or a -S override) is not a keyword argument of "
                    f"{self.target.rpartition('.')[2]}{' (it comes from train.seed)' if key == SEEDED else ''}; valid: {', '.join(valid)}",
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
