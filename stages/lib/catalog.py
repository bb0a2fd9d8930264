"""The data catalogue: where every artifact lives, and the feature contract between stages.

Stages import paths from here rather than from each other, so each stage's `dvc.yaml` deps
are its own module plus `stages/lib`. dvc.yaml names the same paths as each stage's outs, metrics
and plots (it is what DVC reads); `STAGE_OUTPUTS` below says which stage writes which, and
tests/test_catalog.py checks that the two agree, stage by stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.lib.io import read_json, read_parquet

TARGET = "late"
TIME = "time_hour"

# The sources stage's fingerprint of every source file (stages/sources.py): prepare's dep in their place.
SOURCES_FILE = Path("data/sources.json")
SOURCES_STAGE = "sources"  # always_changed in dvc.yaml: it runs on every `dvc repro`, and reruns nothing else unless a source changed
PREPARED_DIR = Path("data/prepared")
PREPARE_SUMMARY = Path("reports/prepare.json")
SCHEMA_FILE = Path("data/schema.yaml")
FEATURES_DIR = Path("data/features")
FEATURE_SPEC = FEATURES_DIR / "spec.json"
REFERENCE_PROFILE = FEATURES_DIR / "reference_sorted.arrow"  # Arrow IPC (stages/lib/profile.py write_sorted_columns)
TRANSFORMER_FILE = FEATURES_DIR / "transformer.skops"
HISTORY_EVENTS = FEATURES_DIR / "history.parquet"
FEATURE_MANIFEST = Path("data/feature_manifest.yaml")
FEATURIZE_SUMMARY = Path("reports/featurize.json")
FEATURIZE_TIMING = Path("reports/featurize_timing.json")  # not a DVC output: it differs on every run
TRAIN_SUMMARY = Path("reports/train.json")
MODEL_FILE = Path("models/model.skops")
MODEL_CARD = Path("models/model_card.json")
METRICS_FILE = Path("reports/metrics.json")
PLOTS_DIR = Path("reports/plots")
# evaluate's plot data, one file per curve (dvc.yaml says how DVC draws each).
PLOT_FILES = {name: PLOTS_DIR / f"{name}.json" for name in ("roc", "precision_recall", "calibration", "importance")}
CONFUSION_FILE = Path("reports/confusion.csv")
IMPORTANCE_FILE = PLOT_FILES["importance"]
# drift-check's DVC metrics file holds only its verdicts and headline numbers, so `dvc metrics diff` and `dvc exp show`
# stay readable; every per-column finding (statistics, prediction and target drift, shifts) goes to DRIFT_DETAILS,
# a cached out that is no metric. Readers that want both merge them (commands/drift_gate.py `read_drift`).
DRIFT_FILE = Path("reports/drift.json")
DRIFT_DETAILS = Path("reports/drift_details.json")
# Shares per bin of every feature (the `drift.plots` most drifted marked `shown`), all in one file (one `feature` field
# per row), so the file dvc.yaml declares exists whatever the number of features.
DRIFT_PLOTS = Path("reports/drift_plots.json")
DRIFT_REPORT = Path("reports/drift_report.html")
# Scored batches and their outcomes (layout: stages/lib/production.py), appended by make score-batch / add-labels.
PRODUCTION_DIR = Path("data/production")
# The monitor stage's outputs: the judged chunk (metrics), performance and drift per chunk (plots), the timeline.
MONITOR_FILE = Path("reports/monitor.json")
MONITOR_PERFORMANCE_PLOT = PLOTS_DIR / "monitor_performance.json"
MONITOR_DRIFT_PLOT = PLOTS_DIR / "monitor_drift.json"
MONITOR_REPORT = Path("reports/monitor.html")
# Each chunk's findings by a key of everything they depend on, so the monitor reads only changed chunks' batches.
# A working cache, not a DVC output (git-ignored): deleting it only costs time.
MONITOR_CACHE = Path(".monitor_cache")

# What each dvc.yaml stage writes: its outs, metrics and plots, in dvc.yaml's order (a folder stands for
# every file in it). Not in the list: FEATURIZE_TIMING, which featurize writes but DVC does not track, and the
# monitor's cache folder.
STAGE_OUTPUTS: dict[str, tuple[Path, ...]] = {
    SOURCES_STAGE: (SOURCES_FILE,),
    "prepare": (PREPARED_DIR, SCHEMA_FILE, PREPARE_SUMMARY),
    "featurize": (FEATURES_DIR, FEATURE_MANIFEST, FEATURIZE_SUMMARY),
    "train": (MODEL_FILE, MODEL_CARD, TRAIN_SUMMARY),
    "evaluate": (METRICS_FILE, *PLOT_FILES.values(), CONFUSION_FILE),
    "drift-check": (DRIFT_FILE, DRIFT_DETAILS, DRIFT_PLOTS, DRIFT_REPORT),
    "production-store": (PRODUCTION_DIR,),
    "monitor": (MONITOR_FILE, MONITOR_PERFORMANCE_PLOT, MONITOR_DRIFT_PLOT, MONITOR_REPORT),
}
UNTRACKED_OUTPUTS = (FEATURIZE_TIMING, MONITOR_CACHE)


@dataclass(frozen=True)
class FeatureSpec:
    """The contract between featurize and the later stages: what the model sees and where it comes from."""

    features: list[str]  # model inputs, in order
    categorical: list[str]  # of them, pandas categories: target-encoded in train, or native/one-hot in the model
    target_encoded: bool  # train target-encodes `categorical` out of fold
    inputs: dict[str, str]  # prepared input column -> type (numeric, boolean, categorical); the drift check compares these
    sources: dict[str, list[str]]  # feature -> prepared columns it is computed from
    target: str = TARGET
    time: str = TIME
    task: str = "classification"
    # How featurize built history features, so scoring can build them the same way:
    # keys, windows, smoothing, prior (the train target mean) and known_after. None: no history.
    history: dict[str, Any] | None = None

    @property
    def numeric(self) -> list[str]:
        return [name for name in self.features if name not in self.categorical]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def plain(cls, numeric: list[str], categorical: list[str], **fields: Any) -> FeatureSpec:
        """A spec whose features are the inputs as they are (numeric columns, then categorical ones)."""
        inputs = {name: "numeric" for name in numeric} | {name: "categorical" for name in categorical}
        return cls(
            features=[*numeric, *categorical],
            categorical=list(categorical),
            target_encoded=False,
            inputs=dict(sorted(inputs.items())),
            sources={name: [name] for name in inputs},
            **fields,
        )

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> FeatureSpec:
        return cls(**payload)


def load_prepared(name: str) -> pd.DataFrame:
    return read_parquet(PREPARED_DIR / f"{name}.parquet", "run `dvc repro prepare` first")


FEATURES_HINT = "run `dvc repro featurize` first"


def load_spec(root: Path = Path()) -> FeatureSpec:
    return FeatureSpec.from_json(read_json(root / FEATURE_SPEC, FEATURES_HINT))


def load_features(name: str, root: Path = Path()) -> tuple[FeatureSpec, pd.DataFrame]:
    """The feature spec and one featurized split, as later stages read them (`root`: another checkout)."""
    return load_spec(root), read_parquet(root / FEATURES_DIR / f"{name}.parquet", FEATURES_HINT)
