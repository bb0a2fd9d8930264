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


DATETIME_PARTS = ("hour", "day_of_week", "month", "day_of_year")
NUMERIC_IMPUTE = ("median", "mean", "none")
NUMERIC_TRANSFORMS = ("none", "log", "quantile")


def parse_duration(section: Section, key: str) -> pd.Timedelta:
    raw = section.get(key, str)
    try:
        duration = pd.Timedelta(raw)
    except ValueError:
        fail(f"{PARAMS_FILE}: '{section.where}.{key}' = {raw!r} is not a duration (e.g. 6h, 1D, 28D)")
    if duration <= pd.Timedelta(0):
        fail(f"{PARAMS_FILE}: '{section.where}.{key}' must be positive, got {raw!r}")
    return duration


def _choice(section: Section, key: str, choices: tuple[str, ...]) -> str:
    value = section.get(key, str)
    if value not in choices:
        fail(f"{PARAMS_FILE}: '{section.where}.{key}' must be one of {', '.join(choices)}, got {value!r}")
    return value


def _share(section: Section, key: str) -> float | None:
    value = section.get(key, (int, float, type(None)))
    if value is not None and not 0.0 < value <= 1.0:
        fail(f"{PARAMS_FILE}: '{section.where}.{key}' must be in (0, 1] or null, got {value!r}")
    return None if value is None else float(value)


@dataclass(frozen=True)
class DriftThresholds:
    """The verdict rule and its thresholds (conf/drift/)."""

    small_reference_rows: int = 1000  # at or below: p-value tests; above: effect sizes
    p_value: float = 0.05
    wasserstein: float = 0.1  # Wasserstein distance / reference standard deviation
    jensen_shannon: float = 0.1
    few_values: int = 5  # numeric columns with at most this many distinct values count as categorical
    psi_bins: int = 10
    missing_share: float = 0.05  # absolute change in the share of missing values
    drift_share: float = 0.5  # the dataset drifts when this share of columns drifts


@dataclass(frozen=True)
class RuntimeConfig:
    """How the stages use this machine (conf/runtime/). No stage tracks it as a param: results do not depend on it."""

    threads: int | None  # threads of OpenMP, BLAS and the drift columns; None: auto (stages/lib/runtime.py)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RuntimeConfig:
        if "runtime" not in params:
            fail(f"{PARAMS_FILE}: missing section 'runtime'; run `make params` to compose it from conf/")
        section = Section(params["runtime"], "runtime")
        threads = section.get("threads", (int, str))
        section.done()
        if threads == "auto":
            return cls(threads=None)
        if isinstance(threads, str) or threads < 1:
            fail(f"{PARAMS_FILE}: 'runtime.threads' must be auto or a whole number of at least 1, got {threads!r}")
        return cls(threads=threads)


@dataclass(frozen=True)
class DatetimeFeatures:
    enabled: bool
    parts: tuple[str, ...]
    cyclical: bool
    holidays: str | None  # a country code of the `holidays` package


@dataclass(frozen=True)
class NumericFeatures:
    enabled: bool
    impute: str
    missing_indicators: bool
    transform: str
    ratios: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CategoricalFeatures:
    enabled: bool
    min_count: int
    max_onehot: int
    frequency: bool
    target_encoding: bool


@dataclass(frozen=True)
class HistoryFeatures:
    enabled: bool
    keys: tuple[tuple[str, ...], ...] | None  # None: automatic (every categorical input, and all rows)
    windows: tuple[pd.Timedelta, ...]
    smoothing: float
    max_key_levels: int


@dataclass(frozen=True)
class SelectionConfig:
    near_constant: float | None
    duplicates: bool
    max_correlation: float | None


@dataclass(frozen=True)
class FeaturesConfig:
    """The `conf/features/` group: which feature families featurize builds, and how."""

    exclude: tuple[str, ...]
    max_features: int
    seed: int  # the quantile transform's row sample
    datetime: DatetimeFeatures
    numeric: NumericFeatures
    categorical: CategoricalFeatures
    history: HistoryFeatures
    selection: SelectionConfig

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FeaturesConfig:
        section = Section(params.get("features"), "features")

        block = section.section("datetime")
        parts = block.names("parts")
        unknown = [part for part in parts if part not in DATETIME_PARTS]
        if unknown:
            fail(f"{PARAMS_FILE}: 'features.datetime.parts' has '{unknown[0]}'; choose from {', '.join(DATETIME_PARTS)}")
        datetime_features = DatetimeFeatures(
            enabled=block.get("enabled", bool),
            parts=tuple(sorted(set(parts), key=DATETIME_PARTS.index)),
            cyclical=block.get("cyclical", bool),
            holidays=block.get("holidays", (str, type(None))),
        )
        block.done()

        block = section.section("numeric")
        ratios = block.get("ratios", list)
        if not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(name, str) for name in pair) for pair in ratios):
            fail(f"{PARAMS_FILE}: 'features.numeric.ratios' must be a list of [numerator, denominator] column pairs, got {ratios!r}")
        numeric = NumericFeatures(
            enabled=block.get("enabled", bool),
            impute=_choice(block, "impute", NUMERIC_IMPUTE),
            missing_indicators=block.get("missing_indicators", bool),
            transform=_choice(block, "transform", NUMERIC_TRANSFORMS),
            ratios=tuple((pair[0], pair[1]) for pair in ratios),
        )
        block.done()

        block = section.section("categorical")
        categorical = CategoricalFeatures(
            enabled=block.get("enabled", bool),
            min_count=block.get("min_count", int),
            max_onehot=block.get("max_onehot", int),
            frequency=block.get("frequency", bool),
            target_encoding=block.get("target_encoding", bool),
        )
        block.done()

        block = section.section("history")
        keys = block.get("keys", (str, list))
        if keys == "auto":
            key_sets = None
        elif isinstance(keys, list) and all(isinstance(key, list) and all(isinstance(name, str) for name in key) for key in keys):
            key_sets = tuple(tuple(key) for key in keys)
        else:
            fail(f"{PARAMS_FILE}: 'features.history.keys' must be auto or a list of column lists ([] means all rows), got {keys!r}")
        windows = block.get("windows", list)
        if not windows or not all(isinstance(window, str) for window in windows):
            fail(f"{PARAMS_FILE}: 'features.history.windows' must be a non-empty list of durations (e.g. [1D, 7D]), got {windows!r}")
        parsed_windows = tuple(
            parse_duration(Section({f"windows[{index}]": window}, block.where), f"windows[{index}]") for index, window in enumerate(windows)
        )
        if len(set(parsed_windows)) < len(parsed_windows):
            fail(f"{PARAMS_FILE}: 'features.history.windows' lists one duration twice: {windows!r}")
        history = HistoryFeatures(
            enabled=block.get("enabled", bool),
            keys=key_sets,
            windows=tuple(
                parse_duration(Section({f"windows[{index}]": window}, block.where), f"windows[{index}]")
                for index, window in enumerate(windows)
            ),
            smoothing=float(block.get("smoothing", (int, float))),
            max_key_levels=block.get("max_key_levels", int),
        )
        block.done()

        block = section.section("selection")
        selection = SelectionConfig(
            near_constant=_share(block, "near_constant"),
            duplicates=block.get("duplicates", bool),
            max_correlation=_share(block, "max_correlation"),
        )
        block.done()

        config = cls(
            exclude=section.names("exclude"),
            max_features=section.get("max_features", int),
            seed=section.get("seed", int),
            datetime=datetime_features,
            numeric=numeric,
            categorical=categorical,
            history=history,
            selection=selection,
        )
        section.done()
        for key, value in (
            ("max_features", config.max_features),
            ("categorical.min_count", categorical.min_count),
            ("history.max_key_levels", history.max_key_levels),
        ):
            if value < 1:
                fail(f"{PARAMS_FILE}: 'features.{key}' must be at least 1, got {value}")
        if categorical.max_onehot < 0 or history.smoothing < 0:
            fail(f"{PARAMS_FILE}: 'features.categorical.max_onehot' and 'features.history.smoothing' must not be negative")
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
    cv_folds: int  # time-ordered folds inside the train split; 0 skips cross-validation
    encoding_folds: int  # folds of out-of-fold target encoding
    max_selected: int | None  # keep the best-scoring features (F-test, fitted inside each fold); None keeps all

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        section = Section(params.get("train"), "train")
        config = cls(
            seed=section.get("seed", int),
            cv_folds=section.get("cv_folds", int),
            encoding_folds=section.get("encoding_folds", int),
            max_selected=section.get("max_selected", (int, type(None))),
        )
        section.done()
        if config.cv_folds == 1 or config.cv_folds < 0:
            fail(f"{PARAMS_FILE}: 'train.cv_folds' must be 0 (off) or at least 2, got {config.cv_folds}")
        if config.encoding_folds < 2:
            fail(f"{PARAMS_FILE}: 'train.encoding_folds' must be at least 2, got {config.encoding_folds}")
        if config.max_selected is not None and config.max_selected < 1:
            fail(f"{PARAMS_FILE}: 'train.max_selected' must be at least 1 or null, got {config.max_selected}")
        return config


@dataclass(frozen=True)
class ReportGate:
    """The pull-request report's verdict on the test metrics (`make report`)."""

    minimum: dict[str, float]  # fail when a metric is below
    maximum: dict[str, float]  # fail when a metric is above
    max_drop: dict[str, float]  # fail when a metric worsens against the base by more than this

    @classmethod
    def parse(cls, section: Section) -> ReportGate:
        bounds = {}
        for key in ("minimum", "maximum", "max_drop"):
            values = section.get(key, (Mapping, type(None))) or {}
            wrong = [name for name, value in values.items() if isinstance(value, bool) or not isinstance(value, int | float)]
            if wrong:
                fail(f"{PARAMS_FILE}: '{section.where}.{key}.{wrong[0]}' must be a number, got {values[wrong[0]]!r}")
            bounds[key] = {name: float(value) for name, value in sorted(values.items())}
        negative = [name for name, value in bounds["max_drop"].items() if value < 0]
        if negative:
            # A negative allowance would demand an improvement: every unchanged PR would fail.
            fail(f"{PARAMS_FILE}: '{section.where}.max_drop.{negative[0]}' must be 0 or more, got {bounds['max_drop'][negative[0]]:g}")
        section.done()
        return cls(**bounds)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ReportGate:
        return EvaluateConfig.from_params(params).gate


@dataclass(frozen=True)
class EvaluateConfig:
    threshold: float
    calibration_bins: int
    importance_repeats: int
    importance_rows: int
    seed: int
    gate: ReportGate

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EvaluateConfig:
        section = Section(params.get("evaluate"), "evaluate")
        config = cls(
            threshold=float(section.get("threshold", (int, float))),
            calibration_bins=section.get("calibration_bins", int),
            importance_repeats=section.get("importance_repeats", int),
            importance_rows=section.get("importance_rows", int),
            seed=section.get("seed", int),
            gate=ReportGate.parse(section.section("gate")),
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
    plots: int  # features in reports/drift_plots.json, the most drifted first
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
        config = cls(thresholds=thresholds, plots=section.get("plots", int), gate=gate)
        section.done()
        for key in ("p_value", "drift_share"):
            if not 0.0 < getattr(thresholds, key) <= 1.0:
                fail(f"{PARAMS_FILE}: 'drift.{key}' must be in (0, 1], got {getattr(thresholds, key)}")
        if thresholds.psi_bins < 2:
            fail(f"{PARAMS_FILE}: 'drift.psi_bins' must be at least 2, got {thresholds.psi_bins}")
        if config.plots < 1:
            fail(f"{PARAMS_FILE}: 'drift.plots' must be at least 1, got {config.plots}")
        return config
