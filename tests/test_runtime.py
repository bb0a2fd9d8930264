"""Threads under CPU contention: the configured count reaches OpenMP and BLAS, and idle OpenMP threads sleep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib.config import RuntimeConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.runtime import thread_count
from tests.conftest import project_params

REPO = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_DISPLAY_ENV", "GOMP_SPINCOUNT")


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any thread setting (tests run with OMP_NUM_THREADS=1), plus `extra`."""
    return {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES} | extra


def pools_after_limit(threads: object, cpus: set[int] | None = None, **env: str) -> list[dict]:
    """threadpoolctl's view of a stage process (train's imports) after `limit_threads` with `runtime.threads`."""
    probe = (
        "import json, threadpoolctl, stages.train; from stages.lib.runtime import limit_threads; "
        "from stages.lib.config import RuntimeConfig; "
        f"limit_threads(RuntimeConfig(threads={threads!r})); print(json.dumps(threadpoolctl.threadpool_info()))"
    )
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=clean_env(**env), capture_output=True, text=True, timeout=120, preexec_fn=pin
    )
    assert result.returncode == 0, result.stderr
    pools = json.loads(result.stdout.splitlines()[-1])
    assert {pool["user_api"] for pool in pools} == {"openmp", "blas"}, pools  # both kinds loaded: nothing passes vacuously
    return pools


@pytest.mark.parametrize("threads", [1, 3])
def test_configured_threads_reach_openmp_and_blas(threads):
    # 3 is more than this machine's cores: only the configuration can produce it.
    assert {pool["num_threads"] for pool in pools_after_limit(threads)} == {threads}


def test_auto_is_the_cores_the_process_may_run_on():
    assert thread_count(RuntimeConfig(threads="auto"), environ={}) == len(os.sched_getaffinity(0))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin a process to fewer")
def test_auto_follows_the_affinity_mask_not_the_machine():
    one_cpu = {min(os.sched_getaffinity(0))}
    assert {pool["num_threads"] for pool in pools_after_limit("auto", cpus=one_cpu)} == {1}


def test_auto_takes_fewer_threads_when_the_environment_asks_for_fewer():
    assert thread_count(RuntimeConfig(threads="auto"), environ={"OMP_NUM_THREADS": "1"}) == 1
    assert thread_count(RuntimeConfig(threads="auto"), environ={"OMP_NUM_THREADS": "999"}) == len(os.sched_getaffinity(0))
    assert thread_count(RuntimeConfig(threads=4), environ={"OMP_NUM_THREADS": "1"}) == 4  # an explicit count wins


@pytest.mark.parametrize(("value", "message"), [(0, "got 0"), ("many", "got 'many'"), (True, "got True")])
def test_bad_thread_counts_are_named(value, message):
    with pytest.raises(UserError, match=f"'runtime.threads' must be .*{message}"):
        RuntimeConfig.parse({"threads": value}, ["runtime"])


def test_a_params_file_without_runtime_says_how_to_fix_it():
    with pytest.raises(UserError, match=r"missing section 'runtime'; run `make params`"):
        parse_params({key: value for key, value in project_params().items() if key != "runtime"})


@pytest.mark.parametrize(
    "module",
    ["stages.prepare", "stages.featurize", "stages.train", "stages.evaluate", "stages.drift_check", "commands", "commands.predict"],
)
def test_openmp_starts_with_the_passive_wait_policy(module):
    """libgomp prints its settings when it loads (OMP_DISPLAY_ENV): a spin count of 0 means idle threads sleep at once."""
    probe = f"import {module}, sklearn.utils._openmp_helpers as helpers; helpers._openmp_effective_n_threads()"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=clean_env(OMP_DISPLAY_ENV="VERBOSE"), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "GOMP_SPINCOUNT = '0'" in result.stderr, result.stderr


def test_an_explicit_wait_policy_wins():
    probe = "import stages.train"
    env = clean_env(OMP_DISPLAY_ENV="VERBOSE", OMP_WAIT_POLICY="ACTIVE")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in result.stderr, result.stderr


def test_training_gives_the_same_model_for_any_thread_count():
    """Why `runtime` is no tracked param: the trained model's scores are identical with 1 and 2 threads."""
    probe = """
import hashlib, sys
import numpy as np, pandas as pd
from stages.lib.catalog import FeatureSpec
from stages.lib.config import RuntimeConfig, TrainConfig
from stages.lib.runtime import limit_threads
from stages.train import train_model
limit_threads(RuntimeConfig(threads=int(sys.argv[1])))
from tests.conftest import model_config
rng = np.random.default_rng(0)
frame = pd.DataFrame({"a": rng.normal(size=6000), "b": rng.normal(size=6000), "c": pd.Categorical(rng.choice(list("xyz"), 6000))})
frame["late"] = (frame["a"] + rng.normal(size=6000) > 0.5).astype(np.int8)
frame["time_hour"] = pd.Timestamp("2013-01-01", tz="UTC")
spec = FeatureSpec.plain(["a", "b"], ["c"])
model = train_model(frame, spec, model_config(max_iter=40), TrainConfig(seed=0, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None)).model
print(hashlib.sha256(model.predict_proba(frame[spec.features]).tobytes()).hexdigest())
"""
    digests = set()
    for threads in (1, 2):
        result = subprocess.run(
            [sys.executable, "-c", probe, str(threads)], cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.split()[-1])
    assert len(digests) == 1
