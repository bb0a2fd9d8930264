"""The monitor's cost per appended batch against the store's size, and the default data's replay chunk by chunk.

    .venv/bin/python -m benchmarks.monitor_incremental            # timing table (docs/benchmarks.md)
    .venv/bin/python -m benchmarks.monitor_incremental --replay   # Nov-Dec 2013 weekly: each chunk's numbers and status

Run from the project root after `make repro` (it reads data/, models/ and params.yaml, and writes only to a temporary
folder). The rows are the source rows prepare would give for the window, scored with the workspace's model
(history features from the outcomes known by each row's time, with the code scoring uses), written as weekly batches in the store's layout with outcomes one batch later.
Timing: the whole of 2013 replayed week by week (52 batches, ~327k rows); after each append (a batch and the
previous batch's outcomes) one monitor run with the chunk cache, and at some sizes a run from scratch beside it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.catalog import HISTORY_EVENTS, MODEL_FILE, TRANSFORMER_FILE, FeatureSpec, load_features
from stages.lib.config import Params, load_params, parse_params, read_params
from stages.lib.features.serving import apply_features
from stages.lib.io import read_parquet, read_table
from stages.lib.models import load_model, predict_scores
from stages.lib.monitor.cache import ChunkCache
from stages.lib.production import PREDICTION, batches, label_files, read_batch, read_labels
from stages.monitor import Settings, Store, file_md5, load_reference, monitor
from stages.prepare import prepare
from tests.monitor_support import ID, write_batch, write_labels

YEAR = ("2013-01-01", "2014-01-01")
REPLAY = ("2013-11-01", "2014-01-01")


def source_rows(window: tuple[str, str]) -> pd.DataFrame:
    """The prepared rows of a time window, as prepare cuts them (data.splits.current pointed at it)."""
    raw = read_params()
    raw["data"]["splits"]["current"] = {"start": window[0], "end": window[1]}
    contract = parse_params(raw).data
    paths = [contract.source.locate(), *(join.source.locate() for join in contract.joins)]
    tables = [read_table(path, "", contract.missing_values) for path in paths]
    return prepare(tables[0], tables[1:], contract).splits["current"]


def scored(rows: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The rows with the workspace model's scores and a row id. History features count every outcome known by each
    row's time (the `known_after` rule), from the stored history and the window's own outcomes: as featurize built
    the test split's, so the replay's scores are comparable with the reference's."""
    stored = read_parquet(HISTORY_EVENTS, "run `dvc repro featurize` first")
    events = pd.concat([stored, rows[stored.columns]], ignore_index=True).sort_values(spec.time, kind="stable", ignore_index=True)
    features = apply_features(rows, load_model(TRANSFORMER_FILE), events, spec)
    scores = predict_scores(load_model(MODEL_FILE), features, spec.task)
    result = rows.copy()
    result[PREDICTION] = scores
    result[ID] = [f"r{index:07d}" for index in range(len(rows))]
    return result


def weekly(frame: pd.DataFrame, time_column: str, start: str) -> list[pd.DataFrame]:
    """Batches of seven days from `start` (as `make simulate-production` cuts them by default)."""
    week = ((frame[time_column] - pd.Timestamp(start, tz="UTC")) // pd.Timedelta(days=7)).to_numpy()
    return [frame[week == index].reset_index(drop=True) for index in np.unique(week)]


def settings(params: Params, spec: FeatureSpec) -> Settings:
    return Settings(monitor=params.monitor, drift=params.drift.thresholds, threshold=params.evaluate.threshold, spec=spec)


def store_of(root: Path) -> Store:
    return Store(batches(root), label_files(root), lambda meta: read_batch(meta, root), lambda meta: read_labels(meta, root))


def append(root: Path, frames: list[pd.DataFrame], index: int, md5: str) -> None:
    """Batch `index` (1-based) and the outcomes of the batch before it."""
    write_batch(root, index, frames[index - 1], model_md5=md5)
    if index > 1:
        write_labels(root, index - 1, frames[index - 2], f"batch-{index - 1:04d}")


def replay_table(params: Params, spec: FeatureSpec) -> None:
    frames = weekly(scored(source_rows(REPLAY), spec), spec.time, REPLAY[0])
    md5 = file_md5(MODEL_FILE)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for index in range(1, len(frames) + 1):
            append(root, frames, index, md5)
        report = monitor(store_of(root), load_reference(spec), md5, settings(params, spec), ChunkCache(None))
    print("| chunk | rows | drift share | drifted | prediction drift | labelled | realized ROC AUC | estimated ROC AUC [band] | status |")
    print("|---|---|---|---|---|---|---|---|---|")
    for chunk in report.chunks:
        realized, estimated = chunk["realized"], chunk["estimated"] or {}
        drift = chunk["prediction_drift"]
        print(
            f"| {chunk['label']} | {chunk['rows']:,} | {chunk['drift']['share']:.2f} | {', '.join(chunk['drift']['drifted']) or '-'} "
            f"| {drift['method']} {drift['score']:.3f} | {realized['share_labelled']:.2f} | {_value(realized)} "
            f"| {_value(estimated)} [{_value(estimated, 'lower')}, {_value(estimated, 'upper')}] | {chunk['status']} {'; '.join(chunk['alerts'] + chunk['undecided'])} |"
        )
    print(f"gate: {report.summary['gate']}")


def _value(found: dict, key: str = "value") -> str:
    value = found.get(key)
    return "-" if value is None else f"{value:.3f}"


def timing_table(params: Params, spec: FeatureSpec, sizes: set[int]) -> None:
    frames = weekly(scored(source_rows(YEAR), spec), spec.time, YEAR[0])
    md5 = file_md5(MODEL_FILE)
    config = settings(params, spec)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; {len(frames)} weekly batches")
    print("| batches in store | rows in store | append + monitor (cached), s | chunks computed | monitor from scratch, s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        root, cache = Path(folder) / "store", Path(folder) / "cache"
        for index in range(1, len(frames) + 1):
            started = time.perf_counter()
            append(root, frames, index, md5)
            report = monitor(store_of(root), load_reference(spec), md5, config, ChunkCache(cache))
            incremental = time.perf_counter() - started
            if index in sizes:
                started = time.perf_counter()
                monitor(store_of(root), load_reference(spec), md5, config, ChunkCache(None))
                scratch = time.perf_counter() - started
                rows = sum(len(frame) for frame in frames[:index])
                print(f"| {index} | {rows:,} | {incremental:.2f} | {len(report.computed)} | {scratch:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", action="store_true", help="print the Nov-Dec 2013 replay's chunks instead of timing")
    parser.add_argument("--sizes", default="1,5,10,20,30,40,52", help="store sizes (batches) at which to time a run from scratch too")
    args = parser.parse_args()
    params = load_params()
    spec, _ = load_features("test")
    if args.replay:
        replay_table(params, spec)
    else:
        timing_table(params, spec, {int(size) for size in args.sizes.split(",")})


if __name__ == "__main__":
    main()
