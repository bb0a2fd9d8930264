"""Performance estimated before the outcomes arrive: CBPE for classifiers, DLE for regressors.

Classification, confidence-based performance estimation (CBPE). The model's scores are calibrated on a
held-out labelled set that the model never trained on (the monitor uses the test split): isotonic regression
of the outcome on the score, kept as its breakpoints (`Calibrator`, JSON, nothing pickled). For a chunk
without outcomes, each row's calibrated probability p is read as the chance its outcome is 1, so the
expected confusion matrix at the threshold is exact sums (tp = sum of p over rows predicted 1, ...), and ROC
AUC, accuracy and F1 are those of the expected counts (for ROC AUC: the expected pair counts of the model's
ranking, ties half). The band around each estimate is the spread of the metric the chunk would realize if its
outcomes were drawn as the estimate assumes, y ~ Bernoulli(p) independently: estimate -+ z sd, z the normal
quantile of the level and sd the metric's standard deviation under those draws, computed, not sampled
(`_label_draw_sd`: exact for the confusion matrix and accuracy, the delta method for F1 and ROC AUC). It is a prediction interval for this chunk's realized metric under the
assumptions, not a confidence interval for a population value, and it leaves out the calibrator's own error
(small when the held-out set is large).

Regression, direct loss estimation (DLE). A model of the absolute error |actual - prediction| on the model's
inputs plus its prediction, fitted on the same kind of held-out set (`LossModel`: one HistGradientBoostingRegressor
of shallow trees, LOSS_MODEL). The estimated MAE of a chunk is the mean of the estimated absolute errors of its
rows. Its band: the spread of the MAE if each row's absolute error were its estimate times a relative error drawn
from held-out rows' |error| / estimate (scaled to mean 1): the mean of independent terms, so its variance is
computed and the band is the normal interval.

Assumptions (both methods): the calibration, or the loss model, learned on the held-out set still holds in
production, i.e. P(outcome | inputs) has not changed (no concept drift): a chunk whose outcomes now relate
to the inputs differently is estimated as if they did not, and nothing here can see that; the inputs have not
moved into regions the held-out set does not cover (there the calibrator extrapolates flat and the loss model
guesses). Covariate shift within the covered regions is what the estimates track.

Speed: per chunk, one sort of the scores (ROC AUC's mid-ranks) and a few dot products for CBPE; one pass of the
loss model over the rows for DLE. Nothing is drawn, so the result does not depend on a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression

from stages.lib.metrics import midranks, roc_auc_from_masses, tie_groups

CLASSIFICATION_ESTIMATES = ("tp", "fp", "fn", "tn", "roc_auc", "accuracy", "f1")
# The loss model, chosen by measurement (docs/benchmarks.md, performance estimation vs NannyML): on ten seeds of the
# benchmark's regression case, one model of depth-3 trees on every held-out row had a mean chunk error of 0.0176
# (NannyML's DLE 0.0192); on four of them 0.0181 against 0.0190 for the three averaged default models it replaced,
# at a tenth of their cost; models that kept a quarter of the rows back for early stopping erred more (0.019-0.020).
LOSS_MODEL: dict[str, Any] = {"max_depth": 3, "learning_rate": 0.3, "max_iter": 30}
SPREAD_HOLDOUT = 0.25  # share of the rows whose out-of-sample relative errors give DLE's band its spread
MIN_LOSS_ROWS = 8
PREDICTION_FEATURE = "__prediction__"  # the prediction's column among the loss model's inputs
MAX_CATEGORIES = 255  # HistGradientBoosting's native categorical limit; wider categoricals go in as codes


# --- classification: CBPE ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibrator:
    """A frozen isotonic calibration: piecewise linear through (x, y), flat beyond the ends (sklearn's "clip")."""

    x: tuple[float, ...]  # score breakpoints, ascending
    y: tuple[float, ...]  # calibrated probability at each breakpoint, non-decreasing, in [0, 1]
    rows: int = 0  # held-out rows it was fitted on

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of class 1 for these scores."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def to_json(self) -> dict[str, Any]:
        return {"method": "isotonic", "rows": self.rows, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Calibrator:
        if payload.get("method") != "isotonic" or len(payload.get("x", ())) != len(payload.get("y", ())) or not payload.get("x"):
            raise ValueError("calibrator: expected {'method': 'isotonic', 'x': [...], 'y': [...]} with x and y of one (non-zero) length")
        return cls(x=tuple(map(float, payload["x"])), y=tuple(map(float, payload["y"])), rows=int(payload.get("rows", 0)))


def fit_calibrator(scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Isotonic calibration of scores against outcomes on a held-out labelled set (never the train split).

    Args:
        scores: the model's scores of the held-out rows.
        labels: their outcomes, 0 or 1 (both present).

    Returns:
        The calibrator, as its breakpoints.

    Raises:
        ValueError: lengths differ, scores not finite, labels not 0/1 or of one class only.
    """
    scores, labels = _finite("scores", scores), np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"fit_calibrator: scores and labels differ in length ({len(scores)} and {len(labels)})")
    if not np.isin(labels, (0, 1)).all() or len(np.unique(labels)) < 2:
        raise ValueError("fit_calibrator: labels must be 0 or 1 with both present (a held-out set with outcomes of both kinds)")
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels.astype(np.float64))
    return Calibrator(x=tuple(map(float, isotonic.X_thresholds_)), y=tuple(map(float, isotonic.y_thresholds_)), rows=len(scores))


def fit_calibrator_of_counts(scores: np.ndarray, rows: np.ndarray, positives: np.ndarray) -> Calibrator:
    """`fit_calibrator` of a held-out set given as counts per distinct score (an `exact.ScoreTable`, merged over parts):
    the same breakpoints bit for bit. sklearn's isotonic fit first averages the outcomes of equal scores, weighted,
    summing the weights and outcomes in score order; here each score enters twice, its negatives (outcome 0) and its
    positives (outcome 1) as weights, so those sums are the same whole numbers, exact in float64, and so is the rest.

    Args:
        scores: the distinct scores, ascending.
        rows: the held-out rows holding each score.
        positives: how many of them have outcome 1.

    Raises:
        ValueError: lengths differ, scores not finite, counts not whole numbers in [0, rows], or one class only.
    """
    scores = _finite("scores", scores)
    rows, positives = np.asarray(rows, dtype=np.float64), np.asarray(positives, dtype=np.float64)
    if not (scores.shape == rows.shape == positives.shape):
        raise ValueError("fit_calibrator_of_counts: scores, rows and positives differ in length")
    negatives = rows - positives
    if not (
        np.isfinite(positives).all() and (positives == np.round(positives)).all() and (positives >= 0).all() and (negatives >= 0).all()
    ):
        raise ValueError("fit_calibrator_of_counts: the outcomes must be 0 or 1 (positives a whole number of the rows per score)")
    if not positives.sum() or not negatives.sum():
        raise ValueError("fit_calibrator: labels must be 0 or 1 with both present (a held-out set with outcomes of both kinds)")
    held = np.concatenate([negatives, positives]) > 0
    x, y = np.concatenate([scores, scores])[held], np.repeat([0.0, 1.0], len(scores))[held]
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        x, y, sample_weight=np.concatenate([negatives, positives])[held]
    )
    return Calibrator(x=tuple(map(float, isotonic.X_thresholds_)), y=tuple(map(float, isotonic.y_thresholds_)), rows=int(rows.sum()))


def estimate_classification(
    scores: np.ndarray, calibrated: np.ndarray, threshold: float, level: float, resamples: int | None = None, seed: int | None = None
) -> dict[str, dict[str, float]]:
    """CBPE for one chunk: the expected confusion matrix, ROC AUC, accuracy and F1, each with its band.

    Args:
        scores: the model's scores of the chunk's rows (they rank the rows and, against `threshold`, predict 1).
        calibrated: the calibrated probabilities of the same rows (`Calibrator.apply(scores)`).
        threshold: the score at or above which a row is predicted 1 (evaluate.threshold).
        level: the band's coverage, e.g. 0.95.
        resamples: not used (the band is analytic; it was the number of label draws). Kept so callers need not change.
        seed: not used (nothing is drawn), for the same reason.

    Returns:
        {metric: {"estimate", "low", "high"}} for tp, fp, fn, tn (expected counts), roc_auc, accuracy and f1;
        NaN where the chunk cannot define the metric (no rows; ROC AUC with all p in {0} or {1}).

    Raises:
        ValueError: lengths differ, values not finite, probabilities outside [0, 1], a level outside (0, 1).
    """
    del resamples, seed  # the band needs no draws
    scores, p = _finite("scores", scores), _finite("calibrated", calibrated)
    if p.shape != scores.shape or ((p < 0) | (p > 1)).any():
        raise ValueError("estimate_classification: calibrated must be probabilities in [0, 1], one per score")
    _check_level(level)
    # Every metric here is blind to row order except ROC AUC: sort once, then work in score order throughout.
    order, starts = tie_groups(scores)
    p, predicted = p[order], (scores[order] >= threshold).astype(np.float64)
    expected = _expected_metrics(p, predicted, starts)
    spread = _label_draw_sd(p, predicted, midranks(scores[order], starts))
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    rows, predicted_1 = len(p), float(predicted.sum())
    upper = {"tp": predicted_1, "fp": predicted_1, "fn": rows - predicted_1, "tn": rows - predicted_1}
    return {name: _normal_band(expected[name], spread[name], z, upper.get(name, 1.0)) for name in CLASSIFICATION_ESTIMATES}


def _expected_metrics(p: np.ndarray, predicted: np.ndarray, starts: np.ndarray) -> dict[str, float]:
    """The metrics of the expected counts (rows in score order): exact expectations for the confusion matrix
    and accuracy, the ratio of expected counts for F1 and ROC AUC."""
    tp, positives, rows = float(p @ predicted), float(p.sum()), len(p)
    fp, fn = float(predicted.sum()) - tp, positives - tp
    tn = rows - tp - fp - fn
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "roc_auc": float(roc_auc_from_masses(p, 1.0 - p, None, starts)),
        "accuracy": (tp + tn) / rows if rows else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0.0,  # zero_division=0, as stages/lib/metrics.py
    }  # fmt: skip


def _label_draw_sd(p: np.ndarray, predicted: np.ndarray, ranks: np.ndarray) -> dict[str, float]:
    """Each metric's standard deviation under label draws y ~ Bernoulli(p), independent (rows in score order).

    Every quantity the metrics are built from is a sum of independent terms y_i c_i with fixed c_i, so its variance
    is sum v_i c_i^2 (v_i = p_i (1 - p_i)) and two such sums covary by sum v_i c_i d_i: exact for the confusion
    matrix and accuracy. F1 and ROC AUC are smooth functions of two such sums: the delta method (first order,
    at the expectations; its relative error in the variance is O(1 / expected positives or negatives)).
    - F1 = 2 A / (m + A + B), A = sum y over rows predicted 1 (tp), B = sum y over the others (fn), m = rows predicted 1.
    - ROC AUC = (S - k (k + 1) / 2) / (k (n - k)), S = sum y_i r_i (r_i the mid-ranks of the scores: Mann-Whitney,
      ties half), k = sum y_i.
    """
    rows, v = len(p), p * (1.0 - p)
    m = float(predicted.sum())
    # var_b is a difference of sums: rounding can take it below zero when every row is predicted 1 (its square root
    # would then be complex); a variance is never negative.
    var_a, var_b = float(v @ predicted), max(float(v.sum() - v @ predicted), 0.0)
    a, b = float(p @ predicted), float(p.sum() - p @ predicted)
    sd = {"tp": var_a**0.5, "fp": var_a**0.5, "fn": var_b**0.5, "tn": var_b**0.5}
    sd["accuracy"] = (var_a + var_b) ** 0.5 / rows if rows else float("nan")
    total = m + a + b
    sd["f1"] = (((2 * (m + b)) ** 2 * var_a + (2 * a) ** 2 * var_b) ** 0.5 / total**2) if total > 0 else 0.0
    k, s = a + b, float(p @ ranks)
    pairs = k * (rows - k)
    if pairs > 0:
        d_s = 1.0 / pairs
        d_k = (-(k + 0.5) * pairs - (s - k * (k + 1) / 2) * (rows - 2 * k)) / pairs**2
        var_auc = d_s**2 * float(v @ ranks**2) + 2 * d_s * d_k * float(v @ ranks) + d_k**2 * (var_a + var_b)
        sd["roc_auc"] = max(var_auc, 0.0) ** 0.5
    else:
        sd["roc_auc"] = float("nan")
    return sd


def _normal_band(estimate: float, sd: float, z: float, upper: float) -> dict[str, float]:
    """estimate -+ z sd, clipped to what the metric can take ([0, upper]); NaN ends where either is undefined."""
    if np.isnan(estimate) or np.isnan(sd):
        return {"estimate": estimate, "low": float("nan"), "high": float("nan")}
    return {"estimate": estimate, "low": max(estimate - z * sd, 0.0), "high": min(estimate + z * sd, upper)}


# --- regression: DLE ---------------------------------------------------------------------------------------------


@dataclass
class LossModel:
    """Estimated absolute error per row (in memory only, never saved)."""

    model: HistGradientBoostingRegressor
    columns: list[str]  # the inputs it was fitted on, in order (the prediction comes last)
    relative_errors: np.ndarray  # held-out |error| / estimate, scaled to mean 1: the band's spread
    categories: dict[str, list[Any]] = field(default_factory=dict)  # each categorical input's categories at fit

    def predict(self, inputs: pd.DataFrame, predictions: np.ndarray) -> np.ndarray:
        """Each row's estimated absolute error (at least 0)."""
        estimated: np.ndarray = np.maximum(self.model.predict(_design(inputs, predictions, self.columns, self.categories)), 0.0)
        return estimated


def fit_loss_model(inputs: pd.DataFrame, predictions: np.ndarray, actual: np.ndarray, seed: int) -> LossModel:
    """DLE's model of the absolute error, fitted on a held-out labelled set (never the train split).

    Args:
        inputs: the model's inputs of the held-out rows (numeric columns, and pandas categoricals).
        predictions: the model's predictions of those rows.
        actual: their true values.
        seed: the split of the rows for the band's spread (the boosting itself is deterministic).

    Returns:
        The loss model: one HistGradientBoostingRegressor (LOSS_MODEL) of |actual - prediction| on the inputs plus
        the prediction, fitted on every row, and the relative errors of SPREAD_HOLDOUT of the rows as predicted by
        a second such model fitted on the others (only for the band).

    Raises:
        ValueError: lengths differ, values not finite, or fewer rows than MIN_LOSS_ROWS.
    """
    predictions, actual = _finite("predictions", predictions), _finite("actual", actual)
    if not (len(inputs) == len(predictions) == len(actual)) or len(actual) < MIN_LOSS_ROWS:
        raise ValueError(f"fit_loss_model: inputs, predictions and actual need one length of at least {MIN_LOSS_ROWS} rows")
    if PREDICTION_FEATURE in inputs.columns:
        raise ValueError(f"fit_loss_model: an input column is named {PREDICTION_FEATURE!r}, the name the loss model gives the prediction")
    columns = [str(name) for name in inputs.columns]
    categories = {name: list(inputs[name].cat.categories) for name in columns if isinstance(inputs[name].dtype, pd.CategoricalDtype)}
    design = _design(inputs, predictions, columns, categories)
    native = [name in categories and len(categories[name]) <= MAX_CATEGORIES for name in columns] + [False]
    loss = np.abs(actual - predictions)
    model = _loss_regressor(native).fit(design, loss)
    # The band needs the spread of |error| around the estimate on rows the estimating model did not see: in-sample
    # ratios are tighter (measured: their sd 1.5-3% smaller on the benchmark's regression case).
    held = np.random.default_rng(seed).permutation(len(loss)) < max(1, round(SPREAD_HOLDOUT * len(loss)))
    spread_model = _loss_regressor(native).fit(design[~held], loss[~held])
    floor = max(0.01 * float(loss.mean()), np.finfo(np.float64).tiny)  # a near-zero estimate must not blow a ratio up
    relative = loss[held] / np.maximum(spread_model.predict(design[held]), floor)
    relative = relative / relative.mean() if relative.mean() > 0 else np.ones(len(relative))
    return LossModel(model=model, columns=columns, relative_errors=relative, categories=categories)


def _loss_regressor(native_categorical: list[bool]) -> HistGradientBoostingRegressor:
    categorical = native_categorical if any(native_categorical) else None
    return HistGradientBoostingRegressor(categorical_features=categorical, early_stopping=False, random_state=0, **LOSS_MODEL)


def estimate_regression(
    model: LossModel, inputs: pd.DataFrame, predictions: np.ndarray, level: float, resamples: int | None = None, seed: int | None = None
) -> dict[str, float]:
    """DLE for one chunk: the estimated MAE with its band.

    The band is the spread of the MAE the chunk would realize if each row's absolute error were its estimate times a
    relative error drawn from the loss model's held-out ones (mean 1, variance s^2): the mean of independent terms,
    variance s^2 * sum(estimate_i^2) / rows^2, and the normal interval of that (central limit theorem).

    Args:
        model: the loss model (`fit_loss_model`).
        inputs: the chunk's model inputs (the loss model's columns).
        predictions: the model's predictions of the chunk's rows.
        level: the band's coverage, e.g. 0.95.
        resamples: not used (the band is analytic; it was the number of draws). Kept so callers need not change.
        seed: not used (nothing is drawn), for the same reason.

    Returns:
        {"estimate", "low", "high"} of the MAE (NaN for an empty chunk).
    """
    del resamples, seed  # the band needs no draws
    predictions = _finite("predictions", predictions)
    _check_level(level)
    if len(predictions) == 0:
        return {"estimate": float("nan"), "low": float("nan"), "high": float("nan")}
    errors = model.predict(inputs, predictions)
    sd = float(np.sqrt(model.relative_errors.var() * (errors @ errors))) / len(errors)
    return _normal_band(float(errors.mean()), sd, NormalDist().inv_cdf((1.0 + level) / 2.0), float("inf"))


def _design(inputs: pd.DataFrame, predictions: np.ndarray, columns: Sequence[str], categories: dict[str, list[Any]]) -> np.ndarray:
    """The loss model's input matrix: numbers as float64, categoricals as their codes over the categories seen at
    fit (unseen ones missing), then the prediction. Recasting to the fitted categories keeps a category's code the
    same in every chunk; a NumPy matrix (not a frame) spares HistGradientBoosting's per-call frame preprocessing."""
    missing = [name for name in columns if name not in inputs.columns]
    if missing:
        raise ValueError(f"loss model: the inputs lack {', '.join(missing)} (the columns it was fitted on)")
    design = np.empty((len(inputs), len(columns) + 1), dtype=np.float64)
    for index, name in enumerate(columns):
        values = inputs[name]
        if name in categories:
            codes = pd.Categorical(values, categories=categories[name]).codes
            design[:, index] = np.where(codes >= 0, codes, np.nan)
        elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            design[:, index] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raise ValueError(f"loss model: input column {name!r} is {values.dtype}; expected numbers or a pandas categorical")
    design[:, -1] = predictions
    return design


# --- shared --------------------------------------------------------------------------------------------------


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name}: expected a 1-D array of finite numbers (no NaN or infinity)")
    return array


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"band: level must be in (0, 1), got {level}")
