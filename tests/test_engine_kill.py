"""Issue 13, item 4 at the level of a stage command: `python -m stages.evaluate` on the dask engine, joined to a
scheduler and two `dask worker` processes (tests/servers.py), loses one worker to SIGKILL while the workers score.
The command completes or stops with one `error: engine:` line (no traceback); a rerun on the surviving worker
completes; the outputs are byte for byte those of a run that lost no worker. It watches the command: its exit
code, its stderr and the files it leaves."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.evaluate import main as evaluate_main
from stages.featurize import main as featurize_main
from stages.lib.catalog import FEATURES_DIR
from stages.prepare import main as prepare_main
from stages.train import main as train_main
from tests.conftest import PROJECT
from tests.dvc_pipeline import declared_stages
from tests.servers import dask_cluster
from tests.test_stage_commands import tiny_project

pytestmark = pytest.mark.slow  # real processes: a scheduler, two workers and the stage command

PARTS = 16  # the test split as a folder of parts (the dask engine's layout): one scoring task each


def trained_project(folder: Path) -> Path:
    """The tiny project after prepare, featurize and train on the pandas engine (in this process), its test
    features rewritten as a folder of PARTS parts, in row order."""
    project = tiny_project(folder)
    with contextlib.chdir(project):
        for main in (prepare_main, featurize_main, train_main):
            main()
    test = FEATURES_DIR / "test.parquet"
    rows = pd.read_parquet(project / test)
    (project / test).unlink()
    (project / test).mkdir()
    size = -(-len(rows) // PARTS)
    for index in range(PARTS):
        rows.iloc[index * size : (index + 1) * size].to_parquet(project / test / f"part-{index:05d}.parquet", index=False)
    return project


def evaluate_outputs(project: Path) -> dict[str, str]:
    """sha256 of every file evaluate's dvc.yaml entry declares."""
    return {name: hashlib.sha256((project / name).read_bytes()).hexdigest() for name in sorted(declared_stages()["evaluate"].outputs)}


def evaluate(project: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "stages.evaluate"]
    return subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_worker_killed_while_evaluate_scores_leaves_a_finished_stage_or_one_line_and_a_rerun_gives_the_same_files(tmp_path):
    from distributed import Client

    project = trained_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["importance_repeats"] = 1  # the stage's own in-process share, kept short
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with contextlib.chdir(project):  # the run without a kill: the pandas engine's, whose files the dask engine's equal
        evaluate_main()
    expected = evaluate_outputs(project)
    with dask_cluster(tmp_path / "cluster") as cluster:
        params["engine"] = {
            "name": "dask", "scheduler": cluster.address, "workers": 2, "threads_per_worker": 1,
            "memory_limit": "1GiB", "spill_dir": ".dask-spill", "connect_timeout": 20,
        }  # fmt: skip
        (project / "params.yaml").write_text(yaml.safe_dump(params))

        with Client(cluster.address, timeout=20) as watcher:
            names = {address: worker["name"] for address, worker in watcher.scheduler_info()["workers"].items()}
            running = evaluate(project)
            busy: list[str] = []
            deadline = time.monotonic() + 60
            while not busy and running.poll() is None and time.monotonic() < deadline:  # until a worker scores
                busy = [address for address, keys in watcher.processing().items() if any("_score_partition" in str(key) for key in keys)]
                time.sleep(0.005)
            assert busy and running.poll() is None, "the stage ended before a worker was seen scoring"
            victim = cluster.workers[names[busy[0]]]
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL
            _, errors = running.communicate(timeout=120)
            survivors = [worker["name"] for worker in watcher.scheduler_info()["workers"].values()]
        assert survivors == [name for name in cluster.workers if cluster.workers[name] is not victim]
        if running.returncode == 0:
            assert errors == "" and evaluate_outputs(project) == expected
        else:
            assert running.returncode == 2 and errors.count("\n") == 1 and errors.startswith("error: engine: "), errors

        again = evaluate(project)
        _, errors = again.communicate(timeout=120)
        assert again.returncode == 0 and errors == "", errors
    assert evaluate_outputs(project) == expected
