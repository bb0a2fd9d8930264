"""Threads of the numerical libraries, from `runtime.threads` (conf/runtime/).

OpenMP (scikit-learn's gradient boosting, permutation importance) and BLAS (NumPy, SciPy) start one
thread per core they see. On a machine shared with other processes (a CI runner, two experiments side
by side) more threads than free cores wait on each other at every barrier. Every stage's `main` calls
`limit_threads` first. The other half of the fix, OpenMP's passive wait policy, is set in
`stages/__init__.py`: OpenMP reads it only once, when scikit-learn first loads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from threadpoolctl import threadpool_limits

from stages.lib.config import RuntimeConfig

# Read by libraries that load after `limit_threads` (threadpoolctl only reaches the loaded ones).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask), not every CPU of the machine."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU counts
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def thread_count(config: RuntimeConfig, environ: Mapping[str, str] = os.environ) -> int:
    """The configured count; `auto`: the available cores, or fewer when OMP_NUM_THREADS asks for fewer."""
    if config.threads is not None:
        return config.threads
    cores = available_cores()
    requested = environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(requested)) if requested.isdigit() and int(requested) > 0 else cores


def limit_threads(config: RuntimeConfig) -> int:
    """Limit OpenMP and BLAS to `runtime.threads` for the rest of the process; returns the count."""
    threads = thread_count(config)
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    threadpool_limits(limits=threads)
    return threads
