"""CPU of one piece's join against a related table that grows with the data (prepare on the dask engine).

prepare joins each piece of the source with the whole related table (`stages.lib.prepare_steps._merge`), so when both
grow with the data the join work is pieces x related rows. This times one piece's join against the related table of
two sizes, as the scale benchmark builds them: the 10x weather replicas, and those replicas shifted by 10 years k times
(k = 0..9) for a table of the 100x size with the same key layout.

    .venv/bin/python benchmarks/join_growth.py [--data-dir /tmp/scale-data]   # after scale_benchmark.py --sizes 10

Prints the load average and a Markdown table (median of --repeats, one thread, CPU seconds of this process).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib.config.data import Join
from stages.lib.prepare_steps import _merge

KEYS = ["origin", "time_hour"]  # conf/data/nycflights13.yaml's weather join


def shifted(weather: pd.DataFrame, years: int) -> pd.DataFrame:
    """The table with its ISO-8601 UTC `time_hour` text moved by `years` (the keys stay unique across shifts)."""
    moved = pd.to_datetime(weather["time_hour"], utc=True) + pd.DateOffset(years=years)
    return weather.assign(time_hour=moved.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def cpu_of_merge(piece: pd.DataFrame, related: pd.DataFrame, repeats: int) -> float:
    join = Join.model_validate(
        {"source": {"package": None, "path": "weather.parquet"}, "keys": KEYS, "columns": ["temp"], "deduplicate": True}
    )
    times = []
    for _ in range(repeats):
        started = time.process_time()
        _merge(piece, related, join)
        times.append(time.process_time() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/scale-data"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = args.data_dir / "x10"
    weather_files = sorted((folder / "weather").glob("*.parquet"))
    flight_files = sorted((folder / "flights").glob("*.parquet"))
    if not weather_files or not flight_files:
        sys.exit(f"{folder}: no replicated inputs; run `benchmarks/scale_benchmark.py --sizes 10` first")
    weather = pd.concat([pd.read_parquet(path, columns=[*KEYS, "temp"]) for path in weather_files], ignore_index=True)
    weather = weather.drop_duplicates(KEYS, ignore_index=True)
    piece = pd.read_parquet(flight_files[0], columns=[*KEYS, "arr_delay"])
    larger = pd.concat([shifted(weather, 10 * k) if k else weather for k in range(10)], ignore_index=True)
    print(f"Load average (1, 5, 15 min) before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"\n| related table | related rows | piece rows | CPU s per join (median of {args.repeats}) |")
    print("|---|---:|---:|---:|")
    for name, related in (("10x weather", weather), ("100x-size weather (10x shifted 10 times)", larger)):
        print(f"| {name} | {len(related):,} | {len(piece):,} | {cpu_of_merge(piece, related, args.repeats):.3f} |")
    print(f"\nLoad average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
