"""How `train.sample_rows` trades against test ROC AUC (issue 13): the train stage's own functions on a sample
of the prepared train split of several sizes, scored on the test split.

Run from the repository root, after `make repro` (it only reads `<root>/data/features/`):

    .venv/bin/python benchmarks/train_sample_benchmark.py
    .venv/bin/python benchmarks/train_sample_benchmark.py --root /path/to/checkout --sizes 10000 30000 100000 null --seeds 42 43 44

For each size and seed: the pandas engine's sample (`stages.lib.train_sample.sample_frame`, as train draws it
with `train.seed` = the seed), the `conf/model/` pipeline of this checkout's params.yaml fitted on it
(`stages.train.train_model`, cross-validation off: only the fit the model file holds is timed), and the test ROC
AUC of its scores. `null` is the whole train split (one run: no seed changes it). Prints a Markdown table and the
load average before and after (the machine is shared: times are comparable within one run only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from the repository root

from stages.lib.catalog import FEATURES_DIR, load_features
from stages.lib.config import load_params
from stages.lib.metrics import main_metric
from stages.lib.models import predict_scores
from stages.lib.runtime import limit_threads
from stages.lib.train_sample import sample_frame
from stages.train import train_model


def size(text: str) -> int | None:
    return None if text == "null" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(), help="checkout whose data/features/ to read (default: here)")
    parser.add_argument("--sizes", type=size, nargs="+", default=[10_000, 30_000, 100_000, None])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = parser.parse_args()
    params = load_params()
    limit_threads(params.runtime)
    spec, train = load_features("train", args.root)
    _, test = load_features("test", args.root)
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(
        f"train split: {len(train):,} rows ({args.root / FEATURES_DIR}/train.parquet); test: {len(test):,} rows; model: {params.model.name}"
    )
    print()
    print("| train.sample_rows | seed | rows used | fit (s) | test ROC AUC |")
    print("|---:|---:|---:|---:|---:|")
    for rows in args.sizes:
        for seed in args.seeds if rows is not None else [params.train.seed]:
            config = params.train.model_copy(update={"seed": seed, "sample_rows": rows, "cv_folds": 0})
            sample = sample_frame(train, spec.time, rows, seed, "train.parquet").rows
            start = time.perf_counter()
            model = train_model(sample, spec, params.model, config).model
            seconds = time.perf_counter() - start
            _, auc = main_metric(spec.task, test[spec.target].to_numpy(), predict_scores(model, test[spec.features], spec.task))
            shown = "null" if rows is None else f"{rows:,}"
            print(f"| {shown} | {seed} | {len(sample):,} | {seconds:.1f} | {auc:.4f} |")
    print()
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
