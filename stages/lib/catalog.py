"""The data catalogue: where every artifact lives, and the feature contract between stages.

Stages import paths from here rather than from each other, so each stage's `dvc.yaml` deps
are its own module plus `stages/lib`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.lib.io import read_json, read_parquet

TARGET = "late"
TIME = "time_hour"

PREPARED_DIR = Path("data/prepared")
PREPARE_SUMMARY = Path("reports/prepare.json")
SCHEMA_FILE = Path("data/schema.yaml")
FEATURES_DIR = Path("data/features")
FEATURE_SPEC = FEATURES_DIR / "spec.json"
REFERENCE_PROFILE = FEATURES_DIR / "reference_sorted.parquet"
MODEL_FILE = Path("models/model.skops")
MODEL_CARD = Path("models/model_card.json")
METRICS_FILE = Path("reports/metrics.json")
PLOTS_DIR = Path("reports/plots")
CONFUSION_FILE = Path("reports/confusion.csv")
IMPORTANCE_FILE = PLOTS_DIR / "importance.json"
DRIFT_FILE = Path("reports/drift.json")
DRIFT_PLOTS_DIR = Path("reports/drift_plots")
DRIFT_REPORT = Path("reports/drift_report.html")


@dataclass(frozen=True)
class FeatureSpec:
    """What the model sees: numeric columns, and categorical columns with their train levels."""

    numeric: list[str]
    categorical: dict[str, list[str]]
    target: str = TARGET
    time: str = TIME
    task: str = "classification"

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> FeatureSpec:
        return cls(**payload)


def load_prepared(name: str) -> pd.DataFrame:
    return read_parquet(PREPARED_DIR / f"{name}.parquet", "run `dvc repro prepare` first")


def load_features(name: str) -> tuple[FeatureSpec, pd.DataFrame]:
    """The feature spec and one featurized split, as later stages read them."""
    spec = FeatureSpec.from_json(read_json(FEATURE_SPEC, "run `dvc repro featurize` first"))
    return spec, read_parquet(FEATURES_DIR / f"{name}.parquet", "run `dvc repro featurize` first")
