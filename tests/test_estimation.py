"""Performance estimation without labels (CBPE, DLE) and bootstrap intervals, checked against independent
computations: brute-force label draws scored by sklearn, a known miscalibration, coverage over many simulated
chunks, scipy's bootstrap and normal-theory intervals."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from stages.lib.monitor.estimation import Calibrator, estimate_classification, estimate_regression, fit_calibrator, fit_loss_model
from stages.lib.monitor.intervals import bootstrap_interval

THRESHOLD = 0.5


def _brute_force(scores: np.ndarray, p: np.ndarray, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Each metric realized under `draws` label draws y ~ Bernoulli(p), one draw at a time (sklearn's ROC AUC):
    what CBPE claims to expect."""
    rng = np.random.default_rng(seed)
    predicted = scores >= THRESHOLD
    found: dict[str, list[float]] = {name: [] for name in ("tp", "fp", "fn", "tn", "roc_auc", "accuracy", "f1")}
    for _ in range(draws):
        actual = rng.random(len(p)) < p
        tp, fp = np.sum(actual & predicted), np.sum(~actual & predicted)
        fn, tn = np.sum(actual & ~predicted), np.sum(~actual & ~predicted)
        for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn)):
            found[name].append(float(value))
        found["roc_auc"].append(roc_auc_score(actual, scores))
        found["accuracy"].append((tp + tn) / len(p))
        found["f1"].append(2 * tp / (2 * tp + fp + fn))
    return {name: np.array(values) for name, values in found.items()}


ROWS, DRAWS = 2000, 2000
Z95 = NormalDist().inv_cdf(0.975)


@pytest.fixture(scope="module")
def calibrated_chunk() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A chunk whose scores are calibrated (p = score), rounded so they tie (ROC AUC counts ties half), and its
    metrics under DRAWS brute-force label draws."""
    scores = np.round(np.random.default_rng(1).beta(2.0, 3.0, ROWS), 3)
    return scores, _brute_force(scores, scores, DRAWS, seed=2)


def test_cbpe_matches_the_average_over_simulated_label_draws(calibrated_chunk: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    scores, brute = calibrated_chunk
    estimate = estimate_classification(scores, scores, THRESHOLD, 0.95)
    for name, values in brute.items():
        # The confusion matrix and accuracy are sums of Bernoulli(p) draws: CBPE's value is their exact mean, so it
        # is off only by the Monte Carlo error of the brute-force average (4 standard errors: fails 1 in 16,000).
        # ROC AUC and F1 are ratios: CBPE gives the ratio of the expected counts, whose bias is O(1/rows) (here
        # below 1e-4 for ROC AUC, about 2e-4 for F1), added to the same 4 standard errors.
        tolerance = 4 * values.std() / np.sqrt(DRAWS) + (2 / ROWS if name in ("roc_auc", "f1") else 0.0)
        assert estimate[name]["estimate"] == pytest.approx(values.mean(), abs=tolerance), name


def test_cbpe_band_has_the_spread_of_simulated_label_draws(calibrated_chunk: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    scores, brute = calibrated_chunk
    estimate = estimate_classification(scores, scores, THRESHOLD, 0.95)
    for name, values in brute.items():
        band = estimate[name]
        # The band is estimate -+ z sd (nothing clipped here: every metric is far from its bounds), so its half width
        # over z is the sd it claims the realized metric has under the draws.
        claimed = (band["high"] - band["low"]) / (2 * Z95)
        assert band["high"] - band["estimate"] == pytest.approx(band["estimate"] - band["low"], rel=1e-9), name
        # The brute-force sd of DRAWS draws has a relative standard error of about 1 / sqrt(2 DRAWS) = 1.6% (the
        # metrics are near normal); 4 of them is 6.3%. The variance is exact for the counts and accuracy; the delta
        # method for ROC AUC and F1 is off by O(1 / expected positives) in the variance (measured against 40,000
        # draws: under 0.5% at this size): 1% more. Leaving out the covariance of the rank sum and the positives
        # in the ROC AUC's delta method would triple its sd here; using p instead of p (1 - p) would double the counts'.
        assert claimed == pytest.approx(values.std(ddof=1), rel=0.073), name
        # The band's ends are the draws' 2.5% and 97.5% percentiles, within their own sampling error (about
        # 2.5 sd / sqrt(DRAWS) of the metric, 4 of them) plus a count's discreteness, and the normal shape's skew (small).
        low, high = np.percentile(values, [2.5, 97.5])
        spread = 4 * 2.5 * values.std() / np.sqrt(DRAWS) + (1.0 if name in ("tp", "fp", "fn", "tn") else 0.0)
        assert band["low"] == pytest.approx(low, abs=spread), name
        assert band["high"] == pytest.approx(high, abs=spread), name


def test_cbpe_band_collapses_when_the_outcomes_are_certain() -> None:
    # p in {0, 1}: every label draw is the same, so the realized metrics are certain and the band is the estimate.
    rng = np.random.default_rng(10)
    scores = rng.random(400)
    certain = (scores > 0.3).astype(np.float64)  # ranks like the scores: ROC AUC 1
    estimate = estimate_classification(scores, certain, THRESHOLD, 0.95)
    for name, band in estimate.items():
        assert band["low"] == pytest.approx(band["estimate"], abs=1e-12) and band["high"] == pytest.approx(band["estimate"], abs=1e-12), (
            name
        )
    assert estimate["roc_auc"]["estimate"] == pytest.approx(1.0)
    assert estimate["fn"]["estimate"] == pytest.approx(np.sum((scores > 0.3) & (scores < THRESHOLD)))


def test_cbpe_does_not_depend_on_a_seed_and_uses_the_raw_scores_for_ranking() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(500)
    calibrated = np.full(500, 0.3)  # every row equally likely: no ranking can be told from chance
    first = estimate_classification(scores, calibrated, THRESHOLD, 0.9, 200, seed=7)
    # Nothing is drawn: another seed or count of draws (the parameters older callers pass) changes nothing.
    assert (
        first
        == estimate_classification(scores, calibrated, THRESHOLD, 0.9, 500, seed=8)
        == estimate_classification(scores, calibrated, THRESHOLD, 0.9)
    )
    assert first["roc_auc"]["estimate"] == pytest.approx(0.5, abs=1e-12)
    assert first["tp"]["estimate"] == pytest.approx(0.3 * np.sum(scores >= THRESHOLD))


def test_calibrator_recovers_a_known_miscalibration_and_survives_json() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(60_000)
    labels = (rng.random(60_000) < scores**2).astype(int)  # the model says s, the truth is s squared
    calibrator = fit_calibrator(scores, labels)
    grid = np.linspace(0.05, 0.95, 19)
    # Isotonic regression pools runs of about a few hundred rows here; their mean outcome has a standard error
    # of at most sqrt(0.25 / 300) = 0.03, and the step within a pooled run adds a little: 0.05 holds with room,
    # while the uncalibrated score is up to 0.25 away from the truth.
    assert np.abs(calibrator.apply(grid) - grid**2).max() < 0.05
    # It is exactly the isotonic fit sklearn gives (linear between breakpoints, flat beyond the ends).
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    probe = np.concatenate([grid, [-1.0, 2.0], rng.random(1000)])
    np.testing.assert_allclose(calibrator.apply(probe), reference.predict(probe), atol=1e-12)
    restored = Calibrator.from_json(json.loads(json.dumps(calibrator.to_json())))
    np.testing.assert_array_equal(restored.apply(probe), calibrator.apply(probe))


def test_calibrator_refuses_labels_of_one_class() -> None:
    with pytest.raises(ValueError, match="both present"):
        fit_calibrator(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1]))


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "f1"])
def test_cbpe_band_covers_the_realized_metric_at_about_its_nominal_rate(metric: str) -> None:
    rng = np.random.default_rng(5)
    chunks, rows, level = 400, 800, 0.9
    covered = 0
    for chunk in range(chunks):
        scores = rng.beta(2.0, 4.0, rows)
        actual = (rng.random(rows) < scores).astype(int)  # the scores are calibrated: what CBPE assumes
        band = estimate_classification(scores, scores, THRESHOLD, level, 400, seed=chunk)[metric]
        realized = {"roc_auc": roc_auc_score, "accuracy": accuracy_score, "f1": f1_score}[metric](
            actual, scores if metric == "roc_auc" else (scores >= THRESHOLD).astype(int)
        )
        covered += band["low"] <= realized <= band["high"]
    # 400 chunks: the coverage's standard error is sqrt(0.9 * 0.1 / 400) = 0.015; 0.85-0.95 is 3.3 of them either side
    # (discrete metrics land on band ends, which counts as covered, so they sit at the upper half).
    assert 0.85 <= covered / chunks <= 0.95 + (0.03 if metric != "roc_auc" else 0.0)


def _regression_data(rng: np.random.Generator, rows: int, x2_mean: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """y = 2 x1 + noise whose size grows with |x2|; the model predicts 2 x1 (its mean), so |error| = |noise|."""
    x1, x2 = rng.normal(0.0, 1.0, rows), rng.normal(x2_mean, 1.0, rows)
    kind = pd.Categorical(rng.choice(["a", "b", "c"], rows), categories=["a", "b", "c"])
    noise = rng.normal(0.0, 0.5 + np.abs(x2), rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "kind": kind}), 2 * x1, 2 * x1 + noise


def test_dle_matches_the_realized_mae_and_follows_a_shift_in_the_input_the_error_grows_with() -> None:
    rng = np.random.default_rng(6)
    inputs, predictions, actual = _regression_data(rng, 10_000, 0.0)
    loss_model = fit_loss_model(inputs, predictions, actual, seed=0)
    for x2_mean in (0.0, 1.0):
        chunk_inputs, chunk_predictions, chunk_actual = _regression_data(rng, 5_000, x2_mean)
        estimate = estimate_regression(loss_model, chunk_inputs, chunk_predictions, 0.95, 500, seed=0)
        realized = float(np.mean(np.abs(chunk_actual - chunk_predictions)))
        # The realized MAE of 5,000 rows varies by about 0.01 (sd of |error| ~0.7 / sqrt(5000)); the loss model
        # learned E|error| from 10,000 rows: 5% of the MAE (0.05-0.08) is several times both.
        assert estimate["estimate"] == pytest.approx(realized, rel=0.05), x2_mean
        assert estimate["low"] <= realized <= estimate["high"], x2_mean
    # The shift raises the error by about half (E|x2| from 0.8 to 1.2): the estimate moved with it, checked above.


def test_dle_band_has_the_spread_of_the_realized_mae() -> None:
    rng = np.random.default_rng(11)
    loss_model = fit_loss_model(*_regression_data(rng, 10_000, 0.0), seed=0)
    for x2_mean in (0.0, 1.0):
        inputs, predictions, _ = _regression_data(rng, 5_000, x2_mean)
        band = estimate_regression(loss_model, inputs, predictions, 0.95)
        claimed = (band["high"] - band["low"]) / (2 * Z95)
        # The truth, exactly: given the inputs, |error| = |noise| with noise ~ N(0, sigma_i), sigma_i = 0.5 + |x2|, so
        # Var |error_i| = sigma_i^2 (1 - 2 / pi) and the realized MAE of independent rows has sd sqrt(sum Var) / rows.
        sigma = 0.5 + np.abs(inputs["x2"].to_numpy())
        truth = np.sqrt(np.sum(sigma**2 * (1 - 2 / np.pi))) / len(sigma)
        # DLE's spread comes from 2,500 held-out relative errors (the sample variance of |N(0, 1)|-like ratios, kurtosis
        # 3.9, has a relative standard error of sqrt(2.9 / 2500) = 3.4%, 1.7% in sd) and the loss model's estimates
        # (a few % off per row): 10% is about 4 of the former plus the latter (measured on 5 seeds: within 4%).
        assert claimed == pytest.approx(truth, rel=0.1), x2_mean


def test_dle_does_not_depend_on_the_draw_parameters_and_refuses_a_bad_level() -> None:
    rng = np.random.default_rng(12)
    inputs, predictions, actual = _regression_data(rng, 400, 0.0)
    loss_model = fit_loss_model(inputs, predictions, actual, seed=0)
    first = estimate_regression(loss_model, inputs, predictions, 0.9, 100, seed=1)
    assert (
        first
        == estimate_regression(loss_model, inputs, predictions, 0.9, 900, seed=2)
        == estimate_regression(loss_model, inputs, predictions, 0.9)
    )
    with pytest.raises(ValueError, match="level must be in"):
        estimate_regression(loss_model, inputs, predictions, 1.0)


def test_dle_refuses_inputs_without_the_fitted_columns() -> None:
    rng = np.random.default_rng(7)
    inputs, predictions, actual = _regression_data(rng, 300, 0.0)
    loss_model = fit_loss_model(inputs, predictions, actual, seed=0)
    with pytest.raises(ValueError, match="lack x2"):
        estimate_regression(loss_model, inputs.drop(columns="x2"), predictions, 0.95, 100, seed=0)


def test_bootstrap_interval_of_a_mean_matches_scipy_and_normal_theory() -> None:
    rng = np.random.default_rng(8)
    values = rng.exponential(2.0, 600)
    low, high = bootstrap_interval("mae", values, np.zeros(600), 0.95, 5000, seed=0)  # MAE against 0: the mean
    theirs = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=5000, random_state=1).confidence_interval
    half_width = stats.norm.ppf(0.975) * values.std(ddof=1) / np.sqrt(600)
    # Two independent 5,000-resample percentile bootstraps: each end moves by about 0.01 here (percentile sampling
    # error); normal theory differs from the percentile interval by the skew of an exponential mean: about 0.02.
    assert (low, high) == pytest.approx((theirs.low, theirs.high), abs=0.02)
    assert (low, high) == pytest.approx((values.mean() - half_width, values.mean() + half_width), abs=0.04)


def test_bootstrap_interval_of_roc_auc_matches_scipy_and_is_deterministic() -> None:
    rng = np.random.default_rng(9)
    actual = (rng.random(400) < 0.3).astype(int)
    scores = np.round(rng.random(400) + 0.4 * actual, 2)  # ties
    ours = bootstrap_interval("roc_auc", actual, scores, 0.9, 2000, seed=3)
    theirs = stats.bootstrap(
        (actual, scores),
        roc_auc_score,
        paired=True,
        vectorized=False,
        method="percentile",
        n_resamples=1000,
        confidence_level=0.9,
        random_state=4,
    ).confidence_interval
    # Percentile sampling error of a 1,000-resample bootstrap of this AUC (sd about 0.027): about 0.004 per end.
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.012)
    assert bootstrap_interval("roc_auc", actual, scores, 0.9, 2000, seed=3) == ours
    assert bootstrap_interval("roc_auc", actual, scores, 0.9, 2000, seed=5) != ours


def test_bootstrap_interval_refuses_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric 'brier'"):
        bootstrap_interval("brier", np.zeros(3), np.zeros(3), 0.95, 100, seed=0)
