"""End to end on the data sample, the dask engine: `dvc exp run -S engine=dask` after the pandas engine's first run
gives the same results (issue 13: same prepared rows, features to 1e-9, model bytes, metrics, drift verdicts and
monitor output), on a cluster of its own: a `dask scheduler` and two `dask worker` processes on 127.0.0.1, which the
pipeline joins through `engine.scheduler`, as it would join a team's cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.lib.catalog import DRIFT_DETAILS, DRIFT_FILE, FEATURES_DIR, METRICS_FILE, MODEL_FILE, MONITOR_FILE, PREPARED_DIR, SCHEMA_FILE
from tests.e2e_support import out_hashes, run, stages_run
from tests.servers import dask_cluster

pytestmark = pytest.mark.slow

SPLITS = ("train", "test", "reference", "current")


def test_dvc_exp_run_on_the_dask_engine_gives_the_pandas_engines_results(pipeline, tmp_path):
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    prepared = {split: pd.read_parquet(repo / PREPARED_DIR / f"{split}.parquet") for split in SPLITS}
    features = {split: pd.read_parquet(repo / FEATURES_DIR / f"{split}.parquet") for split in SPLITS}
    same_bytes = [SCHEMA_FILE, MODEL_FILE, METRICS_FILE, DRIFT_FILE, DRIFT_DETAILS, MONITOR_FILE]
    before = {path: (repo / path).read_bytes() for path in same_bytes}
    try:
        with dask_cluster(tmp_path / "cluster") as cluster:  # the workers import the stages' code once, for every stage
            output = run(repo, "dvc", "exp", "run", "-S", "engine=dask", "-S", f"engine.scheduler={cluster.address}")
        # Every stage that branches on the engine ran on it, and the monitor after them (its reference is the test split).
        assert stages_run(output) == {"prepare", "featurize", "train", "evaluate", "drift-check", "monitor"}
        for split in SPLITS:
            assert (repo / PREPARED_DIR / f"{split}.parquet").is_dir()  # written as a folder of monthly parts
            pd.testing.assert_frame_equal(pd.read_parquet(repo / PREPARED_DIR / f"{split}.parquet"), prepared[split])
            dask_features = pd.read_parquet(repo / FEATURES_DIR / f"{split}.parquet")
            pd.testing.assert_frame_equal(dask_features, features[split], check_exact=False, rtol=0, atol=1e-9)
        for path in same_bytes:
            assert (repo / path).read_bytes() == before[path], path
        assert out_hashes(repo)[str(MODEL_FILE)] == hashes[str(MODEL_FILE)]
        assert np.isfinite(pd.read_json(repo / METRICS_FILE, typ="series")["roc_auc"])
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes
