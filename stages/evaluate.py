"""evaluate: score the model on the later-in-time test split; write DVC metrics and plot data.

On the dask engine the test split is read as a Dask dataframe, the model is applied per partition, and the
metrics, curves and calibration come from mergeable per-partition summaries (stages/lib/exact.py), equal to
the pandas engine's; permutation importance runs on the same sampled rows in this process.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import precision_recall_curve, roc_curve

from stages.lib import exact
from stages.lib.catalog import (
    CONFUSION_FILE,
    FEATURE_SPEC,
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_FILE,
    PLOT_FILES,
    FeatureSpec,
    load_features,
)
from stages.lib.config import EvaluateConfig, load_params
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.io import Writer, json_writer, read_json, write_outputs
from stages.lib.metrics import classification_metrics, regression_metrics
from stages.lib.models import load_model, predict_scores
from stages.lib.runtime import limit_threads

if TYPE_CHECKING:
    from distributed import Client

MAX_CURVE_POINTS = 400
DIGITS = 6
Points = list[dict[Hashable, Any]]  # a plot file's rows, as `DataFrame.to_dict(orient="records")` gives them


CONFUSION_COLUMNS = ("actual", "predicted")


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    plots: dict[str, Points]
    confusion: pd.DataFrame | None  # one row per test row; None on the dask engine, which streams it to the file
    write_confusion: Writer  # writes reports/confusion.csv


def _thin(points: pd.DataFrame) -> Points:
    """At most MAX_CURVE_POINTS evenly spaced points, keeping both ends, rounded for small diffs."""
    if len(points) > MAX_CURVE_POINTS:
        points = points.iloc[np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).round().astype(int))]
    return points.round(DIGITS).to_dict(orient="records")


def _calibration(actual: np.ndarray, scores: np.ndarray, bins: int, task: str) -> Points:
    """Mean prediction against mean outcome per bin: probability bins, or prediction quantiles for regression."""
    edges = None if task == "classification" else np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1])
    return _calibration_points(scores, np.ones(len(scores), dtype=np.int64), actual, bins, edges)


def _calibration_points(scores: np.ndarray, rows: np.ndarray, outcome: np.ndarray, bins: int, edges: np.ndarray | None) -> Points:
    """The calibration table of scores each held by `rows` rows with summed `outcome` (one row each on the pandas
    engine, the merged score table on the dask engine); `edges`: quantile cuts, None for probability bins."""
    index = np.minimum((scores * bins).astype(int), bins - 1) if edges is None else np.searchsorted(np.unique(edges), scores, side="right")
    counts = np.bincount(index, weights=rows, minlength=bins).astype(np.int64)
    mean_score = np.bincount(index, weights=scores * rows, minlength=bins)
    late = np.bincount(index, weights=outcome, minlength=bins)
    filled = counts > 0
    table = pd.DataFrame(
        {
            "mean_predicted": mean_score[filled] / counts[filled],
            "mean_observed": late[filled] / counts[filled],
            "rows": counts[filled],
        }
    )
    return table.round(DIGITS).to_dict(orient="records")


def _importance_sample(test: pd.DataFrame, config: EvaluateConfig) -> pd.DataFrame:
    """The rows permutation importance runs on: `importance_rows` of them drawn with `seed` (all if fewer)."""
    rows = min(config.importance_rows, len(test))
    return test.sample(n=rows, random_state=config.seed) if rows < len(test) else test


def sample_positions(length: int, config: EvaluateConfig) -> np.ndarray | None:
    """The row positions `_importance_sample` draws from a table of `length` rows, in its order, without the table
    (DataFrame.sample's rule: RandomState(seed).choice without replacement); None when it takes every row."""
    rows = min(config.importance_rows, length)
    return np.random.RandomState(config.seed).choice(length, size=rows, replace=False) if rows < length else None


def _importance(model: BaseEstimator, sample: pd.DataFrame, spec: FeatureSpec, config: EvaluateConfig) -> pd.DataFrame:
    importance = permutation_importance(
        model,
        sample[spec.features],
        sample[spec.target],
        scoring="roc_auc" if spec.task == "classification" else "neg_root_mean_squared_error",
        n_repeats=config.importance_repeats,
        random_state=config.seed,
        n_jobs=1,
    )
    ranked = pd.DataFrame({"feature": spec.features, "importance": importance.importances_mean, "std": importance.importances_std})
    return ranked.round(DIGITS).sort_values(["importance", "feature"], ascending=[False, True], kind="stable")


def _classification(
    actual: np.ndarray, scores: np.ndarray, config: EvaluateConfig, target: str
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    actual = actual.astype(np.int64)
    if len(np.unique(actual)) < 2:
        fail("data/features/test.parquet: the target has one class only; ROC AUC needs both, widen the test window")
    predicted = (scores >= config.threshold).astype(np.int64)
    metrics = classification_metrics(actual, scores, config.threshold)
    metrics = {name: round(value, DIGITS) for name, value in metrics.items()} | {"threshold": config.threshold}
    return metrics, _curves(actual, scores, None), _confusion(actual, predicted, target)


def _curves(actual: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> dict[str, Points]:
    """The ROC and precision-recall plot data. With `weights` (whole counts) each row stands for that many rows:
    sklearn then sums the same whole numbers the unweighted curves count, so the curves are the same."""
    fpr, tpr, roc_thresholds = roc_curve(actual, scores, sample_weight=weights)
    precision, recall, pr_thresholds = precision_recall_curve(actual, scores, sample_weight=weights)
    pr = pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_thresholds})[::-1]
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thresholds, 1.0)})
    return {"roc": _thin(roc), "precision_recall": _thin(pr)}


def _confusion(actual: np.ndarray, predicted: np.ndarray, target: str) -> pd.DataFrame:
    labels = np.array([f"not {target}", target])
    return pd.DataFrame({"actual": labels[actual], "predicted": labels[predicted]})


def _confusion_writer(confusion: pd.DataFrame) -> Writer:
    return lambda path: confusion.to_csv(path, index=False, lineterminator="\n")


def _regression(actual: np.ndarray, predicted: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    metrics = {name: round(value, DIGITS) for name, value in regression_metrics(actual, predicted).items()}
    # ROC and PR curves have no meaning for a numeric target; their plot files stay empty.
    return metrics, {"roc": [], "precision_recall": []}, pd.DataFrame({name: [] for name in CONFUSION_COLUMNS})


def evaluate_model(model: BaseEstimator, test: pd.DataFrame, spec: FeatureSpec, config: EvaluateConfig) -> Evaluation:
    if test.empty:
        fail("data/features/test.parquet: no rows; widen data.splits.test in conf/data/")
    actual = test[spec.target].to_numpy(dtype=np.float64)
    scores = predict_scores(model, test[spec.features], spec.task)
    if spec.task == "classification":
        metrics, curves, confusion = _classification(actual, scores, config, spec.target)
    else:
        metrics, curves, confusion = _regression(actual, scores)
    metrics["rows"] = len(test)
    plots = curves | {
        "calibration": _calibration(actual, scores, config.calibration_bins, spec.task),
        "importance": _importance(model, _importance_sample(test, config), spec, config).to_dict(orient="records"),
    }
    return Evaluation(metrics=metrics, plots=plots, confusion=confusion, write_confusion=_confusion_writer(confusion))


# The dask engine. Dask is imported inside these functions only, so the pandas engine never loads it; the
# per-partition functions are module-level so workers import them by name (the project on their path).


def _score_partition(part: pd.DataFrame, model: BaseEstimator, spec: FeatureSpec) -> pd.DataFrame:
    """One partition's outcomes and scores (the model is a task input, sent to each worker once)."""
    if part.empty:
        return pd.DataFrame({"actual": np.zeros(0), "score": np.zeros(0)})
    scores = predict_scores(model, part[spec.features], spec.task)
    return pd.DataFrame({"actual": part[spec.target].to_numpy(dtype=np.float64), "score": scores})


def _partition_summary(part: pd.DataFrame, task: str) -> tuple[exact.ScoreTable, exact.ErrorSums | None]:
    actual, scores = part["actual"].to_numpy(), part["score"].to_numpy()
    sums = exact.error_sums(actual, scores) if task == "regression" else None
    return exact.score_table(actual, scores), sums


def _merge_summaries(parts: list[tuple[exact.ScoreTable, exact.ErrorSums | None]]) -> tuple[exact.ScoreTable, exact.ErrorSums | None]:
    table = exact.merge_score_tables(part[0] for part in parts)
    sums = [part[1] for part in parts if part[1] is not None]
    return table, exact.merge_error_sums(sums) if sums else None


def _confusion_lines(part: pd.DataFrame, threshold: float, target: str) -> str:
    """One partition's lines of reports/confusion.csv, without the header (what the pandas engine writes for them)."""
    actual = part["actual"].to_numpy().astype(np.int64)
    predicted = (part["score"].to_numpy() >= threshold).astype(np.int64)
    text: str = _confusion(actual, predicted, target).to_csv(index=False, header=False, lineterminator="\n")
    return text


def _take(part: pd.DataFrame, positions: np.ndarray, start: int) -> pd.DataFrame:
    taken = part.iloc[positions]
    return taken.set_axis(positions + start, axis=0)


def read_dask_features(path: Path, spec: FeatureSpec) -> Any:
    """The test split as a Dask dataframe of the columns evaluate needs (one Parquet file or a folder of parts)."""
    import dask.dataframe as dd

    if not path.exists():
        fail(f"{path}: file not found; run `dvc repro featurize` first")
    columns = [*spec.features, spec.target]
    frame = dd.read_parquet(path, engine="pyarrow")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        fail(f"{path}: no column {missing[0]!r}, which {FEATURE_SPEC} names; rerun `dvc repro featurize`")
    return frame[columns]


def evaluate_on_dask(client: Client, model: BaseEstimator, path: Path, spec: FeatureSpec, config: EvaluateConfig) -> Evaluation:
    """`evaluate_model` on the cluster: the same metrics, plots and confusion file, with the test split read by
    partition; only the merged score table and the importance sample reach this process."""
    import dask

    frame = read_dask_features(path, spec)
    scored_meta = pd.DataFrame({"actual": np.zeros(0), "score": np.zeros(0)})
    scored = frame.map_partitions(_score_partition, dask.delayed(model, pure=True), spec, meta=scored_meta).persist()
    parts = scored.to_delayed()
    # Lengths counted per partition (not len() of the frame: dask#12225); they place the importance rows.
    lengths = np.asarray(dask.compute(*[dask.delayed(len)(part) for part in parts]), dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        fail(f"{path}: no rows; widen data.splits.test in conf/data/")
    summaries = [dask.delayed(_partition_summary)(part, spec.task) for part in parts]
    table, sums = dask.delayed(_merge_summaries)(summaries).compute()
    if spec.task == "classification":
        positives = int(table.outcome.sum())
        if positives in (0, total):
            fail(f"{path}: the target has one class only; ROC AUC needs both, widen the test window")
        metrics: dict[str, Any] = {
            name: round(value, DIGITS) for name, value in exact.classification_metrics(table, config.threshold).items()
        }
        metrics["threshold"] = config.threshold
        kept_positive, kept_negative = table.outcome > 0, table.negatives > 0
        curves = _curves(
            np.concatenate([np.ones(kept_positive.sum(), dtype=np.int64), np.zeros(kept_negative.sum(), dtype=np.int64)]),
            np.concatenate([table.scores[kept_positive], table.scores[kept_negative]]),
            np.concatenate([table.outcome[kept_positive], table.negatives[kept_negative]]).astype(np.float64),
        )
        edges = None
        lines = client.compute([dask.delayed(_confusion_lines)(part, config.threshold, spec.target) for part in parts])
    else:
        metrics = {name: round(value, DIGITS) for name, value in exact.regression_metrics(sums).items()}
        curves = {"roc": [], "precision_recall": []}
        edges = exact.quantiles(table, np.linspace(0, 1, config.calibration_bins + 1)[1:-1])
        lines = []
    metrics["rows"] = total
    sample = _dask_importance_sample(frame, lengths, config)
    plots = curves | {
        "calibration": _calibration_points(table.scores, table.rows, table.outcome, config.calibration_bins, edges),
        "importance": _importance(model, sample, spec, config).to_dict(orient="records"),
    }
    return Evaluation(metrics=metrics, plots=plots, confusion=None, write_confusion=_streamed_confusion(lines))


def _dask_importance_sample(frame: Any, lengths: np.ndarray, config: EvaluateConfig) -> pd.DataFrame:
    """The rows `_importance_sample` takes from the whole table, in its order and with its index, gathered from
    the partitions that hold them."""
    import dask

    total = int(lengths.sum())
    drawn = sample_positions(total, config)
    positions = np.arange(total) if drawn is None else drawn
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    # A second read of the partitions holding sampled rows: cheaper than keeping every feature column in memory.
    owner = np.searchsorted(starts, positions, side="right") - 1
    pieces = [
        dask.delayed(_take)(part, np.sort(positions[owner == index]) - starts[index], int(starts[index]))
        for index, part in enumerate(frame.to_delayed())
        if (owner == index).any()
    ]
    gathered = pd.concat(dask.compute(*pieces))
    sample: pd.DataFrame = gathered.loc[positions]
    return sample


def _streamed_confusion(futures: list[Any]) -> Writer:
    """reports/confusion.csv written partition by partition, in order: one partition's lines in memory at a time."""

    def write(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(",".join(CONFUSION_COLUMNS) + "\n")
            for future in futures:
                handle.write(future.result())
                future.release()

    return write


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    config = params.evaluate
    model = load_model(MODEL_FILE)
    with engine_session(params.engine) as client:
        if client is None:
            spec, test = load_features("test")
            evaluation = evaluate_model(model, test, spec, config)
        else:
            spec = FeatureSpec.from_json(read_json(FEATURE_SPEC, "run `dvc repro featurize` first"))
            # An absolute path: the workers, started elsewhere, read it themselves.
            evaluation = evaluate_on_dask(client, model, (FEATURES_DIR / "test.parquet").resolve(), spec, config)
        outputs = {METRICS_FILE: json_writer(evaluation.metrics)}
        outputs |= {PLOT_FILES[name]: json_writer(points) for name, points in evaluation.plots.items()}
        outputs[CONFUSION_FILE] = evaluation.write_confusion
        write_outputs(outputs)  # inside the session: the dask engine streams the confusion file from its workers
    headline = ", ".join(
        f"{name} {evaluation.metrics[name]:.4f}" for name in ("roc_auc", "average_precision", "rmse", "r2") if name in evaluation.metrics
    )
    print(f"evaluate: {headline} on {evaluation.metrics['rows']:,} test rows")


if __name__ == "__main__":
    run_stage(main)
