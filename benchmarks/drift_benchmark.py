"""Our drift check against Evidently 0.7.23, side by side on the same frames (issues 3 and 13).

Run from the repository root:

    .venv/bin/python benchmarks/drift_benchmark.py                          # 100k and 1M with both tools, 10M ours only
    .venv/bin/python benchmarks/drift_benchmark.py --sizes 100000 --skip-evidently
    .venv/bin/python benchmarks/drift_benchmark.py --sizes 10000000 --skip-evidently --exclude num_19

What it does:
1. Builds, from a seeded NumPy Generator, a reference and a current frame of 26 columns (20 float64,
   6 pandas Categorical) with known drift injected in the current one (see COLUMNS: real shifts,
   tiny shifts that must not count, a missing share going from 0% to 20%, a level only the current
   window holds, its categories in another order), and writes both once to Parquet in a temporary
   directory, with the sorted reference profile that featurize stores.
2. Runs each tool in a child process of its own: ours in this venv (`detect_drift(..., threads=2)` on both windows'
   columns, then again as drift-check runs it: the reference's numeric columns from the stored profile, a memory-mapped
   Arrow IPC file, the current window's numeric columns read by the drift tasks themselves, `read_sorted`, and the
   categorical columns of both windows counted by the tasks from the files' codes, `read_level_counts`, so that this
   part of the read counts as drift time; each phase's CPU time is reported too), Evidently in benchmarks/.venv-evidently (created on first use:
   Evidently needs pandas<3), once as the `DataDriftPreset` report users run and once as one
   `ValueDrift` metric per column (the leanest report that gives per-column flags; the preset computes
   every column twice). Each child warms up on 5,000 rows, then times the drift computation; ours also
   times reading the Parquet files as drift-check reads them (`read_columns`: only the checked columns;
   the files are in the page cache, written just before) and reports read, drift and both. Peak memory
   is the child's peak RSS (VmHWM) above its RSS once the frames are loaded (the peak is reset there
   through /proc/self/clear_refs); the stored profile, when used, counts towards it. Results come back
   as JSON on stdout.
3. Where Evidently runs, the preset and ours (one timed run each; by default ours as drift-check runs it, with the
   stored profile: `--pair-with`) run back to back `--pairs` times, and every pair's ratio is printed, not only the
   median's.
4. Prints Markdown: the load average before and after, the timing table, the pairs, each tool's flags
   against the expected verdicts, and a per-column comparison for the largest size both tools ran.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = REPO / "benchmarks" / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
EVIDENTLY_MAX_ROWS = 1_000_000  # Evidently needs far more memory than this machine has at 10M rows
WARM_UP_ROWS = 5_000
MB = 1024 * 1024


# --- the data ------------------------------------------------------------------------------------


Maker = Callable[[np.random.Generator, int, bool], np.ndarray]  # (rng, rows, current side?) -> values (codes if categorical)


@dataclass(frozen=True)
class Column:
    name: str
    what: str
    drifted: bool  # expected distribution verdict
    missing_drifted: bool  # expected missing-share verdict
    make: Maker
    categories: tuple[str, ...] = ()  # set for categorical columns: make() returns codes
    current_categories: tuple[str, ...] = ()  # the current window's categories and code order, when not `categories`


def _normal(mean: float, sd: float, current_mean: float | None = None, current_sd: float | None = None) -> Maker:
    def make(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
        if current:
            return rng.normal(mean if current_mean is None else current_mean, sd if current_sd is None else current_sd, rows)
        return rng.normal(mean, sd, rows)

    return make


def _mixture(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
    """Half N(-1, 0.5), half N(1, 0.5); in the current window the second component sits at 2."""
    second = rng.random(rows) < 0.5
    return rng.normal(np.where(second, 2.0 if current else 1.0, -1.0), 0.5)


def _exponential(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
    return rng.exponential(1.5 if current else 1.0, rows)  # rate 1 -> 2/3


def _missing_share(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
    values = rng.normal(5.0, 1.0, rows)
    if current:
        values[rng.random(rows) < 0.2] = np.nan
    return values


def _unchanged(draw: Callable[[np.random.Generator, int], np.ndarray]) -> Maker:
    def make(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
        return np.asarray(draw(rng, rows), dtype=np.float64)

    return make


def _categorical(reference_shares: list[float], current_shares: list[float] | None = None) -> Maker:
    def make(rng: np.random.Generator, rows: int, current: bool) -> np.ndarray:
        shares = np.array(current_shares if current and current_shares is not None else reference_shares)
        return rng.choice(len(shares), size=rows, p=shares / shares.sum()).astype(np.int8)

    return make


ZIPF_50 = [1 / (rank + 1) for rank in range(50)]

COLUMNS: list[Column] = [
    # Real drift: every tool should flag these.
    Column("num_00", "mean shift of 0.5 sd", True, False, _normal(10.0, 2.0, current_mean=11.0)),
    Column("num_01", "scale x1.5", True, False, _normal(0.0, 1.0, current_sd=1.5)),
    Column("num_02", "mixture, one component shifted by 1", True, False, _mixture),
    Column("num_03", "exponential rate 1 -> 2/3", True, False, _exponential),
    # Tiny shifts that should not count (any p-value test at this size flags them).
    Column("num_04", "+0.03 sd mean shift", False, False, _normal(0.0, 1.0, current_mean=0.03)),
    Column("num_05", "+0.03 sd mean shift", False, False, _normal(100.0, 15.0, current_mean=100.45)),
    Column("num_06", "+0.03 sd mean shift", False, False, _normal(-3.0, 0.2, current_mean=-2.994)),
    # Missing share 0% -> 20%, the values keep their distribution.
    Column("num_07", "missing share 0% -> 20%", False, True, _missing_share),
    # Unchanged.
    Column("num_08", "unchanged normal", False, False, _normal(0.0, 1.0)),
    Column("num_09", "unchanged lognormal", False, False, _unchanged(lambda rng, rows: rng.lognormal(0.0, 1.0, rows))),
    Column("num_10", "unchanged uniform", False, False, _unchanged(lambda rng, rows: rng.uniform(0.0, 1.0, rows))),
    Column("num_11", "unchanged gamma(2)", False, False, _unchanged(lambda rng, rows: rng.gamma(2.0, 1.0, rows))),
    Column("num_12", "unchanged Student t(5)", False, False, _unchanged(lambda rng, rows: rng.standard_t(5, rows))),
    Column("num_13", "unchanged Poisson(30) (ties)", False, False, _unchanged(lambda rng, rows: rng.poisson(30.0, rows))),
    Column("num_14", "unchanged, 2 decimals (ties)", False, False, _unchanged(lambda rng, rows: np.round(rng.normal(0, 1, rows), 2))),
    Column("num_15", "unchanged beta(2, 5)", False, False, _unchanged(lambda rng, rows: rng.beta(2.0, 5.0, rows))),
    Column("num_16", "unchanged normal", False, False, _normal(1000.0, 50.0)),
    Column("num_17", "unchanged Weibull(1.5)", False, False, _unchanged(lambda rng, rows: rng.weibull(1.5, rows))),
    Column("num_18", "unchanged Laplace", False, False, _unchanged(lambda rng, rows: rng.laplace(0.0, 1.0, rows))),
    Column("num_19", "unchanged, 4 values 0-3", False, False, _unchanged(lambda rng, rows: rng.integers(0, 4, rows))),
    # Categorical.
    Column("cat_0", "mix change", True, False, _categorical([0.4, 0.3, 0.2, 0.1], [0.2, 0.2, 0.3, 0.3]), ("a", "b", "c", "d")),
    Column("cat_1", "1-point share change", False, False, _categorical([0.5, 0.3, 0.2], [0.49, 0.31, 0.2]), ("x", "y", "z")),
    Column("cat_2", "unchanged, 12 uniform", False, False, _categorical([1.0] * 12), tuple(f"m{i:02d}" for i in range(12))),
    Column("cat_3", "unchanged, 50 Zipf", False, False, _categorical(ZIPF_50), tuple(f"z{i:02d}" for i in range(50))),
    Column("cat_4", "unchanged, binary 90/10", False, False, _categorical([0.9, 0.1]), ("no", "yes")),
    # A level only the current window holds (10% of its rows), its categories in another order: Jensen-Shannon
    # distance about 0.19 (shares 50/30/20 -> 45/27/18 + 10).
    Column(
        "cat_5", "new level at 10%, codes reordered", True, False,
        _categorical([0.5, 0.3, 0.2], [0.1, 0.18, 0.27, 0.45]), ("p", "q", "r"), ("new", "r", "q", "p"),
    ),
]  # fmt: skip
NUMERIC = [column.name for column in COLUMNS if not column.categories]
TYPES = {column.name: "categorical" if column.categories else "numeric" for column in COLUMNS}  # as data/schema.yaml would type them
# The expected verdict per column: (distribution drifted, missing share drifted).
EXPECTED: dict[str, tuple[bool, bool]] = {column.name: (column.drifted, column.missing_drifted) for column in COLUMNS}


def build_frames(rows: int, seed: int) -> tuple[Any, Any]:
    """Reference and current frames; each column and side has its own seeded stream, so any size is reproducible."""
    import pandas as pd

    frames = []
    for side in (0, 1):
        data = {}
        for index, column in enumerate(COLUMNS):
            rng = np.random.default_rng([seed, index, side])
            values = column.make(rng, rows, bool(side))
            categories = column.current_categories if side and column.current_categories else column.categories
            data[column.name] = pd.Categorical.from_codes(values, categories=pd.Index(categories)) if categories else values
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


# --- the child processes ---------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _settle() -> int:
    """Free what loading left behind; the RSS then, in bytes."""
    gc.collect()
    try:
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except ImportError:
        pass
    return _status_kb("VmRSS") * 1024


_reset_peak_allowed = False


def _reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where that is not allowed."""
    global _reset_peak_allowed
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        _reset_peak_allowed = True
    except OSError:
        _reset_peak_allowed = False
    return _reset_peak_allowed


def _peak() -> int:
    """Peak RSS in bytes since the last reset.

    VmHWM, not getrusage's ru_maxrss: in a child started by a parent that holds a lot of memory,
    ru_maxrss never drops below the parent's RSS at the fork (the kernel keeps the pre-exec peak).
    """
    if _reset_peak_allowed:
        return _status_kb("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_ours(data: Path, presorted: bool, threads: int, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    import yaml

    from stages.lib.config import DriftConfig
    from stages.lib.drift.detect import detect_drift
    from stages.lib.drift.tables import parquet_schema, read_columns, read_level_counts, read_profile, read_sorted, sorted_readable

    columns = {name: TYPES[name] for name in parquet_schema(data / "reference.parquet", "")}  # typed as the schema types them

    def read() -> tuple[Any, Any, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
        """The windows as drift-check reads them (only the checked columns), and the stored profile if used. Then, as
        drift-check does, the columns the profile holds are not read from the reference, those of them the current
        window stores as numbers are read by the drift check's tasks (`read_sorted`), one column at a time, and the
        categorical columns are counted from both files by the tasks too (`read_level_counts`)."""
        if not presorted:
            return (
                read_columns(data / "reference.parquet", columns, ""),
                read_columns(data / "current.parquet", columns, ""),
                None,
                None,
                None,
            )
        profile = read_profile(data / "profile.arrow", columns, "")
        counted = [name for name, kind in columns.items() if kind == "categorical"]  # both files hold every column
        reference = read_columns(data / "reference.parquet", [name for name in columns if name not in profile and name not in counted], "")
        numbers = sorted_readable(data / "current.parquet", list(profile), "")
        current = read_columns(data / "current.parquet", [name for name in columns if name not in numbers and name not in counted], "")
        readers = {
            name: tuple(functools.partial(read_level_counts, data / f"{side}.parquet", name, "") for side in ("reference", "current"))
            for name in counted
        }
        return (
            reference,
            current,
            profile,
            {name: functools.partial(read_sorted, data / "current.parquet", name) for name in numbers},
            readers,
        )

    conf = Path(__file__).resolve().parents[1] / "conf/drift/default.yaml"  # the project's thresholds
    thresholds = DriftConfig.parse(yaml.safe_load(conf.read_text(encoding="utf-8")), ["drift"]).thresholds
    reference, current = read_columns(data / "reference.parquet", columns, ""), read_columns(data / "current.parquet", columns, "")
    detect_drift(reference.head(WARM_UP_ROWS), current.head(WARM_UP_ROWS), columns, thresholds, threads=threads)  # compiles numba
    loaded = _settle()
    profile = read_profile(data / "profile.arrow", columns, "") if presorted else None
    baseline = _settle()
    reset = _reset_peak()
    seconds, cpu_seconds, read_seconds, read_cpu_seconds = [], [], [], []
    for _ in range(repeats):
        del reference, current, profile
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        reference, current, profile, current_sorted, counted = read()
        # The columns the tasks read (`read_sorted`, `read_level_counts`) count as drift time: they overlap the statistics.
        read_end, read_cpu_end = time.perf_counter(), time.process_time()
        result = detect_drift(reference, current, columns, thresholds, profile, threads, current_sorted, counted)
        seconds.append(time.perf_counter() - read_end)
        read_seconds.append(read_end - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        read_cpu_seconds.append(read_cpu_end - cpu_start)
    verdicts = {
        column.column: {
            "drifted": column.drifted,
            "missing_drifted": column.missing_drifted,
            "method": column.method,
            "score": column.score,
        }
        for column in result.columns
    }
    return {
        "seconds": seconds,
        "read_seconds": read_seconds,
        "cpu_seconds": cpu_seconds,  # read and drift
        "read_cpu_seconds": read_cpu_seconds,
        "peak_bytes": _peak() - loaded,  # the stored profile, when used, counts; so does the read of the next run
        "profile_bytes": baseline - loaded,
        "peak_reset": reset,
        "columns": verdicts,
    }


def _evidently_report(columns: list[str], preset: bool) -> Any:
    from evidently import Report

    if preset:
        from evidently.presets import DataDriftPreset

        return Report([DataDriftPreset()], include_tests=True)
    from evidently.metrics import ValueDrift

    return Report([ValueDrift(column=name) for name in columns], include_tests=True)


def _evidently_verdicts(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Per-column flags from the snapshot: each ValueDrift's test fails when its column drifted."""
    content = snapshot.dict()
    verdicts: dict[str, dict[str, Any]] = {}
    for metric in content["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            verdicts[config["column"]] = {"method": config.get("method"), "score": float(metric["value"])}
    for test in content["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            status = getattr(test["status"], "value", test["status"])
            verdicts[params["column"]]["drifted"] = status == "FAIL"
    return verdicts


def child_evidently(data: Path, preset: bool) -> dict[str, Any]:
    import pandas as pd

    reference = pd.read_parquet(data / "reference.parquet")
    current = pd.read_parquet(data / "current.parquet")
    columns = list(reference.columns)
    _evidently_report(columns, preset).run(current.head(WARM_UP_ROWS), reference.head(WARM_UP_ROWS))  # lazy imports
    baseline = _settle()
    reset = _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    snapshot = _evidently_report(columns, preset).run(current, reference)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _peak() - baseline
    return {
        "seconds": [seconds],
        "cpu_seconds": [cpu_seconds],
        "peak_bytes": peak,
        "profile_bytes": 0,
        "peak_reset": reset,
        "columns": _evidently_verdicts(snapshot),
    }


# --- the parent --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    evidently: bool


VARIANTS = [
    Variant("ours", "ours (threads=2)", False),
    Variant("ours-presorted", "ours, stored pre-sorted reference (threads=2)", False),
    Variant("evidently-preset", "Evidently DataDriftPreset", True),
    Variant("evidently-columns", "Evidently ValueDrift per column", True),
]


def evidently_python() -> Path:
    """The Evidently venv's interpreter, creating the venv on first use."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV.relative_to(REPO)} (first use) ...", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def run_child(variant: Variant, data: Path, threads: int, repeats: int) -> dict[str, Any]:
    """One child process for `variant`; its JSON result."""
    python = evidently_python() if variant.evidently else Path(sys.executable)
    command = [str(python), str(Path(__file__).resolve()), "--child", variant.key, "--data", str(data)]
    command += ["--threads", str(threads), "--repeats", str(repeats)]
    load = load_average()  # the machine is shared: every run says how busy it was when it started
    print(f"  {variant.label} (load average {load}) ...", file=sys.stderr, flush=True)
    finished = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result | {"load_before": load}


def frames_bytes(reference: Any, current: Any) -> int:
    return int(reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum())


def prepare(rows: int, seed: int, directory: Path, exclude: list[str]) -> int:
    """Write the frames and the stored reference profile as Parquet; the two frames' size in memory."""
    sys.path.insert(0, str(REPO))
    from stages.lib.profile import sorted_columns, write_sorted_columns

    reference, current = (frame.drop(columns=exclude) for frame in build_frames(rows, seed))
    size = frames_bytes(reference, current)
    reference.to_parquet(directory / "reference.parquet", index=False)
    current.to_parquet(directory / "current.parquet", index=False)
    profile = sorted_columns(reference, {name: "numeric" for name in NUMERIC if name not in exclude})
    write_sorted_columns(profile, directory / "profile.arrow")  # as featurize stores it
    del reference, current
    gc.collect()
    return size


def flagged(result: dict[str, Any], key: str = "drifted") -> list[str]:
    return [name for name, verdict in result["columns"].items() if verdict.get(key)]


def expected(columns: Any, missing_share: bool = False) -> list[str]:
    """The columns among `columns` expected to drift (in distribution, or in missing share)."""
    return [name for name, verdicts in EXPECTED.items() if name in columns and verdicts[missing_share]]


def matches_expected(variant: Variant, result: dict[str, Any]) -> str:
    distribution, missing = set(expected(result["columns"])), set(expected(result["columns"], missing_share=True))
    wrong = sorted(set(flagged(result)) ^ distribution)
    if not variant.evidently:
        wrong += [f"{name} (missing share)" for name in sorted(set(flagged(result, "missing_drifted")) ^ missing)]
    if wrong:
        return "no: " + ", ".join(wrong)
    return "yes" if not variant.evidently else "yes (distribution; cannot see the missing share)"


def fmt_rows(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1_000}k" if rows % 1_000 == 0 else str(rows)


def timing_table(runs: dict[int, dict[str, dict[str, Any]]], sizes: dict[int, int], repeats: int) -> list[str]:
    lines = [
        "| rows | tool | read s | drift s | read + drift s | CPU s | read CPU s | drift CPU s | peak MB above loaded frames | peak / two frames |"
        " Evidently preset / this | Evidently per column / this | distribution flags | as expected |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for rows, results in runs.items():
        preset = results.get("evidently-preset")
        columns = results.get("evidently-columns")
        for variant in (variant for variant in VARIANTS if variant.key in results):
            result = results[variant.key]
            seconds = statistics.median(result["seconds"])
            reads = result.get("read_seconds")  # Evidently's read is not timed
            read = f"{statistics.median(reads):.2f}" if reads else ""
            both = f"{statistics.median([a + b for a, b in zip(reads, result['seconds'], strict=True)]):.2f}" if reads else ""
            peak = result["peak_bytes"] / MB
            read_cpus = result.get("read_cpu_seconds")  # each run's, paired with its total: medians of both phases
            read_cpu = f"{statistics.median(read_cpus):.2f}" if read_cpus else ""
            drift_cpu = (
                f"{statistics.median([b - a for a, b in zip(read_cpus, result['cpu_seconds'], strict=True)]):.2f}" if read_cpus else ""
            )
            ratio_preset = f"{statistics.median(preset['seconds']) / seconds:.0f}x" if preset and not variant.evidently else ""
            ratio_columns = f"{statistics.median(columns['seconds']) / seconds:.0f}x" if columns and not variant.evidently else ""
            lines.append(
                f"| {fmt_rows(rows)} | {variant.label} | {read} | {seconds:.2f} | {both} | {statistics.median(result['cpu_seconds']):.2f}"
                f" | {read_cpu} | {drift_cpu} | {peak:,.0f} | {peak * MB / sizes[rows]:.2f}x | {ratio_preset} | {ratio_columns}"
                f" | {len(flagged(result))}: {', '.join(flagged(result))} | {matches_expected(variant, result)} |"
            )
    profiles = [
        f"{fmt_rows(rows)} {results['ours-presorted']['profile_bytes'] / MB:,.0f} MB"
        for rows, results in runs.items()
        if "ours-presorted" in results
    ]
    lines += [
        "",
        f"Ours: median of {repeats} runs in one process, each reading the files again (read s: only the checked columns, from the page"
        " cache); CPU s counts read and drift (read CPU s and drift CPU s: each phase's, the median of the runs). Evidently: the median of its runs (the preset: one per back-to-back pair), its read"
        " not timed; the ratios compare drift s. Two frames in memory: "
        + ", ".join(f"{fmt_rows(rows)} {size / MB:,.0f} MB" for rows, size in sizes.items())
        + ". Ours with the stored profile: its peak includes the profile held in memory ("
        + ", ".join(profiles)
        + ").",
    ]
    return lines


def pairs_table(pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]], paired: str) -> list[str]:
    """Every back-to-back pair of Evidently's preset and ours, and the least ratio of each size."""
    lines = [
        "",
        f"Back to back: each pair is one Evidently preset run, then one run of {paired}, each in a fresh child process.",
        "",
        "| rows | pair | load average before (preset; ours) | Evidently preset s | ours drift s | ours read + drift s | preset / ours drift |"
        " preset / ours read + drift |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows, runs in pairs.items():
        ratios = []
        for number, (preset, ours) in enumerate(runs, start=1):
            theirs, mine, both = preset["seconds"][0], ours["seconds"][0], ours["seconds"][0] + ours["read_seconds"][0]
            ratios.append((theirs / mine, theirs / both))
            loads = f"{preset['load_before']}; {ours['load_before']}"
            lines.append(
                f"| {fmt_rows(rows)} | {number} | {loads} | {theirs:.2f} | {mine:.2f} | {both:.2f} | {theirs / mine:.0f}x | {theirs / both:.0f}x |"
            )
        lines.append(f"| {fmt_rows(rows)} | least | | | | | {min(r[0] for r in ratios):.0f}x | {min(r[1] for r in ratios):.0f}x |")
    return lines


def agreement_lines(runs: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    included = next(iter(next(iter(runs.values())).values()))["columns"]
    lines = [
        "",
        f"Expected ({len(included)} columns): distribution drift in {', '.join(expected(included))};"
        f" missing-share drift in {', '.join(expected(included, missing_share=True)) or 'none'}.",
        "",
    ]
    for rows, results in runs.items():
        ours = results.get("ours")
        if ours is None:
            continue
        missing = flagged(ours, "missing_drifted")
        lines.append(
            f"- {fmt_rows(rows)}: our missing-share findings: {', '.join(missing) or 'none'} (Evidently drops NaN and cannot see them)."
        )
        for key in (key for key in ("ours-presorted", "evidently-preset", "evidently-columns") if key in results):
            other = results[key]
            disagree = [name for name in ours["columns"] if ours["columns"][name]["drifted"] != other["columns"][name]["drifted"]]
            label = next(variant.label for variant in VARIANTS if variant.key == key)
            lines.append(f"  - ours vs {label}: distribution verdicts disagree on {', '.join(disagree) or 'no column'}.")
    return lines


def per_column_table(runs: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    both = [rows for rows, results in runs.items() if "ours" in results and "evidently-preset" in results]
    if not both:
        return []
    rows = max(both)
    ours, theirs = runs[rows]["ours"]["columns"], runs[rows]["evidently-preset"]["columns"]
    lines = [
        "",
        f"Per column at {fmt_rows(rows)} rows (score: Wasserstein / reference sd for numeric columns, Jensen-Shannon distance otherwise; threshold 0.1):",
        "",
        "| column | injected | expected | ours: method, score, verdict | Evidently: method, score, verdict |",
        "|---|---|---|---|---|",
    ]
    for column in (column for column in COLUMNS if column.name in ours):
        verdict = "drift" if column.drifted else "missing share" if column.missing_drifted else "none"
        mine, other = ours[column.name], theirs[column.name]
        ours_verdict = ("drift" if mine["drifted"] else "none") + (" + missing share" if mine["missing_drifted"] else "")
        lines.append(
            f"| {column.name} | {column.what} | {verdict} | {mine['method']} {mine['score']:.4f} {ours_verdict}"
            f" | {other['method']} {other['score']:.4f} {'drift' if other['drifted'] else 'none'} |"
        )
    return lines


def report(
    runs: dict[int, dict[str, dict[str, Any]]],
    sizes: dict[int, int],
    repeats: int,
    pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] | None = None,
    paired: str = "ours",
) -> str:
    lines = (
        timing_table(runs, sizes, repeats) + (pairs_table(pairs, paired) if pairs else []) + agreement_lines(runs) + per_column_table(runs)
    )
    return "\n".join(lines)


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    today = datetime.date.today().isoformat()
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {total_kb / 1024**2:.1f} GiB RAM, Python {platform.python_version()}, {today}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000", help="comma-separated row counts (default: %(default)s)")
    parser.add_argument("--skip-evidently", action="store_true", help="run ours only")
    parser.add_argument("--exclude", default="", help="comma-separated columns to leave out of both frames, e.g. num_19")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for ours (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours per size; the median is reported (default: %(default)s)")
    parser.add_argument(
        "--pairs", type=int, default=3, help="back-to-back runs of Evidently's preset and ours per size (default: %(default)s)"
    )
    parser.add_argument(
        "--pair-with", choices=["ours", "ours-presorted"], default="ours-presorted",
        help="our variant in the back-to-back pairs (default: %(default)s, as drift-check runs: with the stored profile)",
    )  # fmt: skip
    parser.add_argument("--child", choices=[variant.key for variant in VARIANTS], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        if args.child.startswith("evidently"):
            result = child_evidently(args.data, preset=args.child == "evidently-preset")
        else:
            result = child_ours(args.data, presorted=args.child == "ours-presorted", threads=args.threads, repeats=args.repeats)
        print(json.dumps(result))
        return

    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    load_before = load_average()
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    frame_sizes: dict[int, int] = {}
    pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for rows in sizes:
        print(f"{rows:,} rows: building frames ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="drift-benchmark-") as directory:
            data = Path(directory)
            frame_sizes[rows] = prepare(rows, args.seed, data, [name for name in args.exclude.split(",") if name])
            runs[rows] = {}
            evidently = not args.skip_evidently and rows <= EVIDENTLY_MAX_ROWS
            for variant in VARIANTS:
                if variant.evidently and (not evidently or variant.key == "evidently-preset"):
                    continue
                runs[rows][variant.key] = run_child(variant, data, args.threads, args.repeats)
            if evidently:
                preset, ours = VARIANTS[2], next(variant for variant in VARIANTS if variant.key == args.pair_with)
                pairs[rows] = [
                    (run_child(preset, data, args.threads, 1), run_child(ours, data, args.threads, 1)) for _ in range(args.pairs)
                ]
                runs[rows]["evidently-preset"] = pairs[rows][0][0] | {"seconds": [theirs["seconds"][0] for theirs, _ in pairs[rows]]}
    print(f"Machine: {machine()}. Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}.\n")
    print(report(runs, frame_sizes, args.repeats, pairs, next(variant.label for variant in VARIANTS if variant.key == args.pair_with)))


if __name__ == "__main__":
    main()
