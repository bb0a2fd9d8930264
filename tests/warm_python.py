"""`python -m <module>` for tests, without paying the module's imports every time.

A stage or command started by a test spends most of its CPU importing pandas, SciPy and scikit-learn
(skops imports every scikit-learn estimator): 3 to 5 CPU-seconds before its first line runs, on a suite
that starts hundreds of them on two cores. Here one interpreter per test worker imports those libraries
once (multiprocessing's fork server, with `set_forkserver_preload`), and every run is a fresh process
forked from it: its own memory, environment, working directory, argv and exit code, the module run as
`__main__` by `runpy` exactly as `python -m` runs it, stdout and stderr (file descriptors 1 and 2, so the
stage's own child processes too) captured to files.

What differs from a cold `python -m`: the preloaded third-party modules are already imported (none of the
project's own: `stages` and `commands` are imported fresh from the run's sys.path, which puts the working
directory first as `python -m` does), and every run forked from one server shares its hash seed. Tests
about a fresh interpreter itself (import side effects, set/dict order across processes) start a real
process: `fresh=True` in `run`, or TESTS_FRESH_PROCESSES=1 for the whole suite.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

# Third-party only: a project module imported here would shadow the copy a test's project folder holds.
PRELOAD = [
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.ensemble",
    "sklearn.metrics",
    "skops.io",
    "threadpoolctl",
    "yaml",
    "numba",
    "hydra",
    "omegaconf",
]


@cache
def _interpreter_path() -> tuple[str, ...]:
    """sys.path of a cold `python -m` without PYTHONPATH, after its first entry (the working directory)."""
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    probe = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"], env=environ, capture_output=True, text=True, check=True
    )
    return tuple(json.loads(probe.stdout))


@cache
def _server() -> multiprocessing.context.ForkServerContext:
    """The fork server context, its preload set; the server starts on the first run."""
    # OpenMP reads its wait policy once, when scikit-learn loads it: in the server, before any run
    # (stages/__init__.py sets it for a cold process).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _run_as_main(module: str, args: list[str], cwd: str, environ: dict[str, str], path: list[str], out: str, err: str) -> None:
    """In the forked child: become `python -m module args` in `cwd` with `environ`, output to two files."""
    for fd, name in ((1, out), (2, err)):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    sys.dont_write_bytecode = bool(environ.get("PYTHONDONTWRITEBYTECODE"))
    sys.argv = [module, *args]  # runpy sets argv[0] to the module's file, as python -m does
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        atexit._run_exitfuncs()  # what a cold interpreter runs at exit (multiprocessing's child skips it)
        sys.stdout.flush()
        sys.stderr.flush()


def run(
    module: str, args: list[str], cwd: Path, environ: dict[str, str], timeout: float, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run `python -m module args` from `cwd` with exactly `environ`; the result of subprocess.run(text=True)."""
    command = [sys.executable, "-m", module, *args]
    if fresh or os.environ.get("TESTS_FRESH_PROCESSES"):
        return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    extra = [entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    path = [str(cwd), *extra, *_interpreter_path()]
    with tempfile.TemporaryDirectory(prefix="warm-python-") as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        child = _server().Process(target=_run_as_main, args=(module, args, str(cwd), environ, path, out, err))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(command, timeout)
        read = lambda name: Path(name).read_text(errors="backslashreplace") if os.path.exists(name) else ""  # noqa: E731
        return subprocess.CompletedProcess(command, child.exitcode, read(out), read(err))
