"""Typed configuration at each stage's edge: `params.yaml` sections become frozen dataclasses.

Every key is checked on the way in, so a typo or a wrong type stops the stage with the
key's full path and what was expected, instead of surfacing later as a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stages.lib.drift import DriftThresholds
from stages.lib.errors import fail

PARAMS_FILE = "params.yaml"
SPLIT_NAMES = ("train", "test", "reference", "current")
_MISSING = object()


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
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


class Section:
    """Strict reader of one mapping in params.yaml; `where` names it in error messages."""

    def __init__(self, mapping: Any, where: str) -> None:
        if not isinstance(mapping, Mapping):
            fail(f"{PARAMS_FILE}: '{where}' must be a mapping, got {type(mapping).__name__}")
        self.mapping = mapping
        self.where = where
        self.used: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key not in self.mapping:
            if default is _MISSING:
                fail(f"{PARAMS_FILE}: missing key '{self.where}.{key}'; add it under conf/")
            return default
        value = self.mapping[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a YAML `true` must not pass where a number is expected.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            fail(f"{PARAMS_FILE}: '{self.where}.{key}' must be {expected}, got {value!r}")
        return value

    def section(self, key: str) -> Section:
        return Section(self.get(key, Mapping), f"{self.where}.{key}")

    def names(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list)
        if not all(isinstance(value, str) for value in values):
            fail(f"{PARAMS_FILE}: '{self.where}.{key}' must be a list of column names, got {values!r}")
        return tuple(values)

    def done(self) -> None:
        unknown = sorted(set(self.mapping) - self.used)
        if unknown:
            fail(f"{PARAMS_FILE}: unknown key '{self.where}.{unknown[0]}'; known keys: {', '.join(sorted(self.used))}")


def parse_timestamp(section: Section, key: str) -> pd.Timestamp:
    raw = section.get(key, str)
    try:
        # ISO 8601 only: a lenient parser would read "9/1/2013" differently per locale.
        stamp = pd.Timestamp(datetime.fromisoformat(raw))
    except ValueError:
        fail(f"{PARAMS_FILE}: '{section.where}.{key}' = {raw!r} is not a date (use YYYY-MM-DD)")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end) in UTC."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass(frozen=True)
class FeaturizeConfig:
    day_of_week: bool
    min_category_count: int
    exclude: tuple[str, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FeaturizeConfig:
        section = Section(params.get("featurize"), "featurize")
        config = cls(
            day_of_week=section.get("day_of_week", bool),
            min_category_count=section.get("min_category_count", int),
            exclude=section.names("exclude"),
        )
        section.done()
        return config


@dataclass(frozen=True)
class ModelConfig:
    """The chosen `conf/model/<name>.yaml`: its name and the estimator's hyperparameters."""

    name: str
    hyperparameters: dict[str, Any]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelConfig:
        section = Section(params.get("model"), "model")
        name = section.get("name", str)
        hyperparameters = {key: value for key, value in section.mapping.items() if key != "name"}
        return cls(name=name, hyperparameters=dict(sorted(hyperparameters.items())))


@dataclass(frozen=True)
class TrainConfig:
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        section = Section(params.get("train"), "train")
        config = cls(seed=section.get("seed", int))
        section.done()
        return config


@dataclass(frozen=True)
class EvaluateConfig:
    threshold: float
    calibration_bins: int
    importance_repeats: int
    importance_rows: int
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EvaluateConfig:
        section = Section(params.get("evaluate"), "evaluate")
        config = cls(
            threshold=float(section.get("threshold", (int, float))),
            calibration_bins=section.get("calibration_bins", int),
            importance_repeats=section.get("importance_repeats", int),
            importance_rows=section.get("importance_rows", int),
            seed=section.get("seed", int),
        )
        section.done()
        if not 0.0 < config.threshold < 1.0:
            fail(f"{PARAMS_FILE}: 'evaluate.threshold' must be between 0 and 1, got {config.threshold}")
        for key in ("calibration_bins", "importance_repeats", "importance_rows"):
            if getattr(config, key) < 1:
                fail(f"{PARAMS_FILE}: 'evaluate.{key}' must be at least 1, got {getattr(config, key)}")
        return config


@dataclass(frozen=True)
class GateConfig:
    """When `make drift-gate` fails: thresholds on the drift check's findings."""

    fail_on_dataset_drift: bool
    fail_on_prediction_drift: bool
    max_roc_auc_drop: float | None  # current-window ROC AUC below the test ROC AUC by more than this


@dataclass(frozen=True)
class DriftConfig:
    thresholds: DriftThresholds
    plots: int
    threads: int
    gate: GateConfig

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DriftConfig:
        section = Section(params.get("drift"), "drift")
        thresholds = DriftThresholds(
            small_reference_rows=section.get("small_reference_rows", int),
            p_value=float(section.get("p_value", (int, float))),
            wasserstein=float(section.get("wasserstein", (int, float))),
            jensen_shannon=float(section.get("jensen_shannon", (int, float))),
            few_values=section.get("few_values", int),
            psi_bins=section.get("psi_bins", int),
            missing_share=float(section.get("missing_share", (int, float))),
            drift_share=float(section.get("drift_share", (int, float))),
        )
        gate_section = section.section("gate")
        drop = gate_section.get("max_roc_auc_drop", (int, float, type(None)))
        gate = GateConfig(
            fail_on_dataset_drift=gate_section.get("fail_on_dataset_drift", bool),
            fail_on_prediction_drift=gate_section.get("fail_on_prediction_drift", bool),
            max_roc_auc_drop=None if drop is None else float(drop),
        )
        gate_section.done()
        config = cls(thresholds=thresholds, plots=section.get("plots", int), threads=section.get("threads", int), gate=gate)
        section.done()
        for key in ("p_value", "drift_share"):
            if not 0.0 < getattr(thresholds, key) <= 1.0:
                fail(f"{PARAMS_FILE}: 'drift.{key}' must be in (0, 1], got {getattr(thresholds, key)}")
        if thresholds.psi_bins < 2:
            fail(f"{PARAMS_FILE}: 'drift.psi_bins' must be at least 2, got {thresholds.psi_bins}")
        if config.threads < 1:
            fail(f"{PARAMS_FILE}: 'drift.threads' must be at least 1, got {config.threads}")
        return config
