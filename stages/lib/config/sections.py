"""The `train`, `evaluate`, `drift` and `runtime` sections (conf/train/, conf/evaluate/, conf/drift/, conf/runtime/)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from stages.lib.config.base import ConfigError, Flag, Int, OptionalNumber, OptionalPositive, Positive, Share, Strict, choice, expect, rule

CvFolds = Annotated[int, rule(lambda value: value == 0 or value >= 2, "0 (off) or at least 2"), expect(int)]
AtLeastTwo = Annotated[int, rule(lambda value: value >= 2, "at least 2"), expect(int)]


class TrainConfig(Strict):
    seed: Int  # random_state of the model and of the target-encoding folds
    cv_folds: CvFolds  # time-ordered folds inside the train split; 0 skips cross-validation
    encoding_folds: AtLeastTwo  # folds of out-of-fold target encoding
    max_selected: OptionalPositive  # keep the best-scoring features (F-test, fitted inside each fold); None keeps all
    sample_rows: OptionalPositive  # fit on a seeded sample of this many train rows, stratified by month; None: all


Bound = Annotated[float, expect(int, float, described="a number")]


def _sorted(bounds: dict[str, float]) -> dict[str, float]:
    return dict(sorted(bounds.items()))


def _not_negative(bounds: dict[str, float]) -> dict[str, float]:
    negative = [name for name, value in bounds.items() if value < 0]
    if negative:
        # A negative allowance would demand an improvement: every unchanged PR would fail.
        raise ConfigError(f"must be 0 or more, got {bounds[negative[0]]:g}", at=(negative[0],))
    return bounds


DROP_BY = ("bound", "point")


class ReportGate(Strict):
    """The pull-request report's verdict on the test metrics (`make report`); {} sets no bound."""

    minimum: Annotated[dict[str, Bound], AfterValidator(_sorted)]  # fail when a metric is below
    maximum: Annotated[dict[str, Bound], AfterValidator(_sorted)]  # fail when a metric is above
    max_drop: Annotated[dict[str, Bound], AfterValidator(_not_negative), AfterValidator(_sorted)]  # worsening allowed against the base
    # What `max_drop` bounds: the end of the change's 95% bootstrap interval in the metric's bad direction ("bound":
    # a drop that noise alone could explain as well as a real one fails), or the observed change ("point").
    drop_by: Annotated[str, choice(DROP_BY)]


class EvaluateConfig(Strict):
    threshold: Annotated[float, rule(lambda value: 0.0 < value < 1.0, "between 0 and 1"), expect(int, float)]
    calibration_bins: Positive
    importance_repeats: Positive
    importance_rows: Positive
    seed: Int
    gate: ReportGate


class DriftThresholds(Strict):
    """The verdict rule and its thresholds (conf/drift/)."""

    small_reference_rows: Int  # at or below: p-value tests; above: effect sizes
    p_value: Share
    wasserstein: Annotated[float, expect(int, float)]  # Wasserstein distance / reference standard deviation
    jensen_shannon: Annotated[float, expect(int, float)]
    few_values: Int  # numeric columns with at most this many distinct values count as categorical
    psi_bins: Annotated[int, rule(lambda value: value >= 2, "at least 2"), expect(int)]
    missing_share: Annotated[float, expect(int, float)]  # absolute change in the share of missing values
    drift_share: Share  # the dataset drifts when this share of columns drifts


class GateConfig(Strict):
    """When `make drift-gate` fails: thresholds on the drift check's findings."""

    fail_on_dataset_drift: Flag
    fail_on_prediction_drift: Flag
    max_roc_auc_drop: OptionalNumber  # current-window ROC AUC below the test ROC AUC by more than this


class DriftConfig(DriftThresholds):
    """The `drift` section: the thresholds (flat in conf/drift/, as DriftThresholds), the plots and the gate."""

    plots: Positive  # most drifted features the top-level drift plot shows (reports/drift_plots.json `shown`)
    gate: GateConfig

    @property
    def thresholds(self) -> DriftThresholds:
        return DriftThresholds.model_validate(self.model_dump(include=set(DriftThresholds.model_fields)))


def _auto(value: Any) -> Any:
    if isinstance(value, str) and value != "auto":
        raise ConfigError(f"must be auto or a whole number of at least 1, got {value!r}")
    return None if value == "auto" else value


Threads = Annotated[
    int | None,
    PlainSerializer(lambda threads: "auto" if threads is None else threads),
    rule(lambda value: value is None or value >= 1, "auto or a whole number of at least 1"),
    BeforeValidator(_auto),
    expect(int, str, described="auto or a whole number of at least 1"),
]


class RuntimeConfig(Strict):
    """How the stages use this machine (conf/runtime/). No stage tracks it as a param: results do not depend on it."""

    threads: Threads  # threads of OpenMP, BLAS and the drift columns; None: auto (stages/lib/runtime.py)
