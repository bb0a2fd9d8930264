"""Exact metrics from mergeable per-part summaries (stages/lib/exact.py) equal sklearn's and NumPy's on the whole
table, with tied scores, whatever the number of parts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from stages.lib import exact


def classified(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes and probabilities rounded to two decimals (many ties), with exact 0 and 1 among them."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.beta(2, 5, rows), 2)
    scores[:3] = [0.0, 1.0, 0.5]
    actual = (rng.random(rows) < scores * 0.8 + 0.1).astype(np.int64)
    return actual, scores


def merged(actual: np.ndarray, scores: np.ndarray, parts: int) -> exact.ScoreTable:
    # Uneven parts, an empty one among them: what partitions of a real table look like.
    cuts = np.sort(np.random.default_rng(parts).choice(np.arange(1, len(actual)), parts - 2, replace=False))
    pieces = np.split(np.arange(len(actual)), [0, *cuts])
    assert len(pieces) == parts and len(pieces[0]) == 0
    return exact.merge_score_tables(exact.score_table(actual[piece], scores[piece]) for piece in pieces)


@pytest.mark.parametrize("parts", [3, 7])
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_classification_metrics_from_merged_tables_equal_sklearn(parts, threshold):
    actual, scores = classified(5000, 0)
    table = merged(actual, scores, parts)
    assert len(table.scores) < 120 and table.total == 5000  # ties: far fewer distinct scores than rows
    predicted = (scores >= threshold).astype(np.int64)
    expected = {
        "roc_auc": roc_auc_score(actual, scores),
        "average_precision": average_precision_score(actual, scores),
        "log_loss": log_loss(actual, y_proba=scores, labels=[0, 1]),
        "brier": brier_score_loss(actual, scores),
        "accuracy": accuracy_score(actual, predicted),
        "f1": f1_score(actual, predicted),
        "precision": precision_score(actual, predicted),
        "recall": recall_score(actual, predicted),
        "late_share": actual.mean(),
    }
    found = exact.classification_metrics(table, threshold)
    assert list(found) == list(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_precision_and_f1_are_zero_when_nothing_reaches_the_threshold():
    actual, scores = classified(500, 1)
    found = exact.classification_metrics(exact.score_table(actual, scores * 0.5), threshold=0.9)
    assert found["precision"] == found["recall"] == found["f1"] == 0.0
    assert found["accuracy"] == pytest.approx(1 - actual.mean())


@pytest.mark.parametrize("parts", [3, 7])
def test_regression_metrics_from_merged_sums_equal_sklearn(parts):
    rng = np.random.default_rng(2)
    actual = np.round(rng.normal(10, 3, 4000), 1)
    predicted = np.round(actual + rng.normal(0, 1, 4000), 1)
    pieces = np.array_split(np.arange(4000), parts)
    sums = exact.merge_error_sums(exact.error_sums(actual[piece], predicted[piece]) for piece in [*pieces, np.arange(0)])
    found = exact.regression_metrics(sums)
    expected = {
        "rmse": np.sqrt(mean_squared_error(actual, predicted)),
        "mae": mean_absolute_error(actual, predicted),
        "r2": r2_score(actual, predicted),
        "rmse_constant": np.std(actual),
        "target_mean": actual.mean(),
    }
    assert list(found) == list(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-10), name


@pytest.mark.parametrize("parts", [3, 7])
def test_quantiles_from_the_table_equal_numpy_bit_for_bit(parts):
    rng = np.random.default_rng(3)
    for rows in (1, 2, 5, 101, 2000):
        values = np.round(rng.normal(size=rows), 1)  # ties
        levels = np.linspace(0, 1, 11)
        table = exact.merge_score_tables(exact.score_table(np.zeros(len(p)), values[p]) for p in np.array_split(np.arange(rows), parts))
        assert np.array_equal(exact.quantiles(table, levels), np.quantile(values, levels)), rows
