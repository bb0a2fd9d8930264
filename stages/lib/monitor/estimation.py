"""Performance estimated before the outcomes arrive: CBPE for classifiers, DLE for regressors.

Classification, confidence-based performance estimation (CBPE). The model's scores are calibrated on a
held-out labelled set that the model never trained on (the monitor uses the test split): isotonic regression
of the outcome on the score, kept as its breakpoints (`Calibrator`, JSON, nothing pickled). For a chunk
without outcomes, each row's calibrated probability p is read as the chance its outcome is 1, so the
expected confusion matrix at the threshold is exact sums (tp = sum of p over rows predicted 1, ...), and ROC
AUC, accuracy and F1 are those of the expected counts (for ROC AUC: the expected pair counts of the model's
ranking, ties half). The band around each estimate is the spread of the metric the chunk would realize if
its outcomes were drawn as the estimate assumes, y ~ Bernoulli(p) independently: `resamples` label draws,
the (1 - level) / 2 and (1 + level) / 2 percentiles of each draw's realized metric. It is a prediction interval
for this chunk's realized metric under the assumptions, not a confidence interval for a population value, and
it leaves out the calibrator's own error (small when the held-out set is large).

Regression, direct loss estimation (DLE). A model of the absolute error |actual - prediction| on the model's
inputs plus its prediction, fitted on the same kind of held-out set (`LossModel`: three
HistGradientBoostingRegressors, each fitted on two thirds of it, averaged). The estimated MAE of a chunk is the
mean of the estimated absolute errors of its rows. Its band: each row's absolute error drawn as its estimate
times a relative error drawn from the held-out rows' out-of-fold |error| / estimate (scaled to mean 1), the
percentiles of the drawn MAEs.

Assumptions (both methods): the calibration, or the loss model, learned on the held-out set still holds in
production, i.e. P(outcome | inputs) has not changed (no concept drift): a chunk whose outcomes now relate
to the inputs differently is estimated as if they did not, and nothing here can see that; the inputs have not
moved into regions the held-out set does not cover (there the calibrator extrapolates flat and the loss model
guesses). Covariate shift within the covered regions is what the estimates track.

Speed: everything per chunk is vectorised. A chunk's scores are sorted once; every label draw's ROC AUC then
comes from the fixed mid-ranks of that sort (Mann-Whitney: one matrix product for a block of draws, together
with the draws' confusion matrices), in blocks of draws to bound memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression

from stages.lib.metrics import midranks, roc_auc_from_masses, tie_groups

BLOCK_CELLS = 4_000_000  # draws x rows held at once (32 MB of float64)
CLASSIFICATION_ESTIMATES = ("tp", "fp", "fn", "tn", "roc_auc", "accuracy", "f1")
LOSS_FOLDS = 3
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


def estimate_classification(
    scores: np.ndarray, calibrated: np.ndarray, threshold: float, level: float, resamples: int, seed: int
) -> dict[str, dict[str, float]]:
    """CBPE for one chunk: the expected confusion matrix, ROC AUC, accuracy and F1, each with its band.

    Args:
        scores: the model's scores of the chunk's rows (they rank the rows and, against `threshold`, predict 1).
        calibrated: the calibrated probabilities of the same rows (`Calibrator.apply(scores)`).
        threshold: the score at or above which a row is predicted 1 (evaluate.threshold).
        level: the band's coverage, e.g. 0.95.
        resamples: label draws for the band.
        seed: the draws' seed (the same inputs and seed give the same result).

    Returns:
        {metric: {"estimate", "low", "high"}} for tp, fp, fn, tn (expected counts), roc_auc, accuracy and f1;
        NaN where the chunk cannot define the metric (no rows; ROC AUC with all p in {0} or {1}).

    Raises:
        ValueError: lengths differ, values not finite, probabilities outside [0, 1], a bad level or resamples.
    """
    scores, p = _finite("scores", scores), _finite("calibrated", calibrated)
    if p.shape != scores.shape or ((p < 0) | (p > 1)).any():
        raise ValueError("estimate_classification: calibrated must be probabilities in [0, 1], one per score")
    _check_band(level, resamples)
    # Every metric here is blind to row order except ROC AUC: sort once, then work in score order throughout.
    order, starts = tie_groups(scores)
    p, predicted = p[order], (scores[order] >= threshold).astype(np.float64)
    expected = _expected_metrics(p, predicted, starts)
    draws = _label_draws(p, predicted, midranks(scores[order], starts), resamples, np.random.default_rng(seed))
    return {name: _band(expected[name], draws[name], level) for name in CLASSIFICATION_ESTIMATES}


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


def _label_draws(
    p: np.ndarray, predicted: np.ndarray, ranks: np.ndarray, resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each metric realized under `resamples` label draws y ~ Bernoulli(p) (rows in score order), in blocks of draws.

    One matrix product per block gives every draw's positives, true positives and rank sum (ROC AUC in its
    Mann-Whitney form), so no draw is sorted or scanned on its own.
    """
    rows = len(p)
    columns = np.stack([np.ones(rows), predicted, ranks], axis=1)
    threshold = p.astype(np.float32)
    block = max(1, BLOCK_CELLS // max(rows, 1))
    sums = [
        (rng.random((min(block, resamples - first), rows), dtype=np.float32) < threshold).astype(np.float64) @ columns
        for first in range(0, resamples, block)
    ]
    positives, tp, rank_sum = np.concatenate(sums).T if sums else np.zeros((3, 0))
    negatives = rows - positives
    fp, fn = predicted.sum() - tp, positives - tp
    tn = rows - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        roc_auc = np.where(positives * negatives > 0, (rank_sum - positives * (positives + 1) / 2) / (positives * negatives), np.nan)
        accuracy = (tp + tn) / rows if rows else np.full(len(tp), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1.0), 0.0)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "roc_auc": roc_auc, "accuracy": accuracy, "f1": f1}


# --- regression: DLE ---------------------------------------------------------------------------------------------


@dataclass
class LossModel:
    """Estimated absolute error per row: the average of LOSS_FOLDS fold models (in memory only, never saved)."""

    models: list[HistGradientBoostingRegressor]
    columns: list[str]  # the inputs it was fitted on, in order (the prediction comes last)
    relative_errors: np.ndarray  # held-out |error| / out-of-fold estimate, scaled to mean 1: the band's spread
    categories: dict[str, list[Any]] = field(default_factory=dict)  # each categorical input's categories at fit

    def predict(self, inputs: pd.DataFrame, predictions: np.ndarray) -> np.ndarray:
        """Each row's estimated absolute error (at least 0)."""
        design = _design(inputs, predictions, self.columns, self.categories)
        estimated: np.ndarray = np.maximum(np.mean([model.predict(design) for model in self.models], axis=0), 0.0)
        return estimated


def fit_loss_model(inputs: pd.DataFrame, predictions: np.ndarray, actual: np.ndarray, seed: int) -> LossModel:
    """DLE's model of the absolute error, fitted on a held-out labelled set (never the train split).

    Args:
        inputs: the model's inputs of the held-out rows (numeric columns, and pandas categoricals).
        predictions: the model's predictions of those rows.
        actual: their true values.
        seed: the folds' and the boosting's seed.

    Returns:
        The loss model: LOSS_FOLDS HistGradientBoostingRegressors of |actual - prediction| on the inputs plus the
        prediction, each fitted on the other folds, and the held-out rows' out-of-fold relative errors.

    Raises:
        ValueError: lengths differ, values not finite, or fewer rows than 2 * LOSS_FOLDS.
    """
    predictions, actual = _finite("predictions", predictions), _finite("actual", actual)
    if not (len(inputs) == len(predictions) == len(actual)) or len(actual) < 2 * LOSS_FOLDS:
        raise ValueError(f"fit_loss_model: inputs, predictions and actual need one length of at least {2 * LOSS_FOLDS} rows")
    if PREDICTION_FEATURE in inputs.columns:
        raise ValueError(f"fit_loss_model: an input column is named {PREDICTION_FEATURE!r}, the name the loss model gives the prediction")
    columns = [str(name) for name in inputs.columns]
    categories = {name: list(inputs[name].cat.categories) for name in columns if isinstance(inputs[name].dtype, pd.CategoricalDtype)}
    design = _design(inputs, predictions, columns, categories)
    loss = np.abs(actual - predictions)
    fold = np.random.default_rng(seed).permutation(len(loss)) % LOSS_FOLDS
    models, out_of_fold = [], np.empty(len(loss))
    for index in range(LOSS_FOLDS):
        # No early stopping: it held back 10% of the rows and stopped while the tails (where errors grow) were still
        # underfitted; 100 full iterations halved the MAE error on the NannyML benchmark's regression case.
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", early_stopping=False, random_state=seed)
        model.fit(design[fold != index], loss[fold != index])
        out_of_fold[fold == index] = model.predict(design[fold == index])
        models.append(model)
    floor = max(0.01 * float(loss.mean()), np.finfo(np.float64).tiny)  # a near-zero estimate must not blow a ratio up
    relative = loss / np.maximum(out_of_fold, floor)
    relative = relative / relative.mean() if relative.mean() > 0 else np.ones(len(relative))
    return LossModel(models=models, columns=columns, relative_errors=relative, categories=categories)


def estimate_regression(
    model: LossModel, inputs: pd.DataFrame, predictions: np.ndarray, level: float, resamples: int, seed: int
) -> dict[str, float]:
    """DLE for one chunk: the estimated MAE with its band.

    Args:
        model: the loss model (`fit_loss_model`).
        inputs: the chunk's model inputs (the loss model's columns).
        predictions: the model's predictions of the chunk's rows.
        level: the band's coverage, e.g. 0.95.
        resamples: draws for the band.
        seed: the draws' seed.

    Returns:
        {"estimate", "low", "high"} of the MAE (NaN for an empty chunk).
    """
    predictions = _finite("predictions", predictions)
    _check_band(level, resamples)
    if len(predictions) == 0:
        return {"estimate": float("nan"), "low": float("nan"), "high": float("nan")}
    errors = model.predict(inputs, predictions)
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // len(errors))
    maes = [
        (model.relative_errors[rng.integers(0, len(model.relative_errors), (min(block, resamples - first), len(errors)))] @ errors)
        / len(errors)
        for first in range(0, resamples, block)
    ]
    return _band(float(errors.mean()), np.concatenate(maes), level)


def _design(inputs: pd.DataFrame, predictions: np.ndarray, columns: Sequence[str], categories: dict[str, list[Any]]) -> pd.DataFrame:
    """The loss model's input frame: numbers as float64, categoricals over the categories seen at fit (wide ones
    as codes), then the prediction. Recasting to the fitted categories keeps a category's code the same in every chunk."""
    missing = [name for name in columns if name not in inputs.columns]
    if missing:
        raise ValueError(f"loss model: the inputs lack {', '.join(missing)} (the columns it was fitted on)")
    data: dict[str, Any] = {}
    for name in columns:
        values = inputs[name]
        if name in categories:
            recast = pd.Categorical(values, categories=categories[name])  # unseen categories become missing
            data[name] = recast.codes.astype(np.float64) if len(categories[name]) > MAX_CATEGORIES else recast
        elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            data[name] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raise ValueError(f"loss model: input column {name!r} is {values.dtype}; expected numbers or a pandas categorical")
    data[PREDICTION_FEATURE] = np.asarray(predictions, dtype=np.float64)
    return pd.DataFrame(data)


# --- shared --------------------------------------------------------------------------------------------------


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name}: expected a 1-D array of finite numbers (no NaN or infinity)")
    return array


def _check_band(level: float, resamples: int) -> None:
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"band: level must be in (0, 1) and resamples at least 1, got {level} and {resamples}")


def _band(estimate: float, draws: np.ndarray, level: float) -> dict[str, float]:
    """The estimate and the level-percentile range of the draws (NaN draws, an undefined metric, left out)."""
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return {"estimate": estimate, "low": float("nan"), "high": float("nan")}
    low, high = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return {"estimate": estimate, "low": float(low), "high": float(high)}
