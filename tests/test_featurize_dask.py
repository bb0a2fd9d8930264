"""featurize on the dask engine: the pandas engine's features (to 1e-9: values, columns, dtypes, row order) and files,
whatever the pieces the prepared splits come in; history counted across piece boundaries; the fit sample above a size."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from stages import featurize as stage
from stages.lib.catalog import FEATURES_DIR
from stages.lib.config import Window, parse_params
from stages.lib.io import read_parquet, write_outputs
from stages.lib.models import model_writer
from stages.lib.timespan import parse_span
from stages.prepare import prepare
from tests.conftest import make_flights, make_weather, project_params, replace

SPLITS = ("train", "test", "reference", "current")


@pytest.fixture(scope="module")
def project():
    """Prepared splits (pandas engine), the schema, the features config and the split windows of a small flights table."""
    flights = make_flights(rows_per_month=25)
    params = project_params()
    contract = parse_params(params).data
    prepared = prepare(flights, [make_weather(flights)], contract)
    base = parse_params(params).features
    config = replace(base, categorical=replace(base.categorical, min_count=2, max_onehot=3))
    return prepared.splits, prepared.schema, config, contract.splits


def monthly_parts(rows: pd.DataFrame, folder: Path) -> Path:
    """A split as the dask engine's prepare writes it: a folder with one part per calendar month, in time order."""
    folder.mkdir(parents=True)
    months = rows["time_hour"].dt.year * 12 + rows["time_hour"].dt.month
    for index, month in enumerate(sorted(months.unique())):
        rows[months == month].to_parquet(folder / f"part-{index:05d}.parquet", index=False)
    return folder


def row_groups(rows: pd.DataFrame, path: Path) -> Path:
    """A split as one file cut into row groups of 37 rows (each its own piece), across month boundaries."""
    rows.to_parquet(path, index=False, row_group_size=37)
    return path


def dask_outputs(splits, schema, config, windows, folder: Path, layout, scheduler: str | None = "sync") -> stage.PartitionedFeatures:
    """featurize_partitioned over the splits written in `layout`, on Dask's synchronous scheduler (None: the default
    client's cluster); its outputs in `folder`."""
    source = folder / "prepared"
    source.mkdir(parents=True)
    paths = {name: layout(splits[name], source / f"{name}.parquet") for name in SPLITS}
    with dask.config.set({"scheduler": scheduler, "dataframe.convert-string": False}):
        result = stage.featurize_partitioned(paths, schema, config, windows)
        outputs = stage._outputs(result.selected, result.transformer, result.history, result.profile, result.rows)
        outputs |= {FEATURES_DIR / f"{name}.parquet": writer for name, writer in result.writers.items()}
        write_outputs({folder / path: writer for path, writer in outputs.items()})
    return result


def pandas_outputs(splits, schema, config, windows, folder: Path) -> None:
    result = stage.featurize(splits, schema, config, windows)
    rows = sum(len(frame) for frame in splits.values())
    selected = stage.Selected(spec=result.spec, manifest=result.manifest, counts=result.counts, warnings=result.warnings)
    reference = stage.sorted_columns(splits["reference"], result.spec.inputs)
    outputs = stage._outputs(
        selected, result.transformer, stage.parquet_writer(result.events), lambda path: stage.write_sorted_columns(reference, path), rows
    )
    outputs |= {FEATURES_DIR / f"{name}.parquet": stage.parquet_writer(frame) for name, frame in result.frames.items()}
    write_outputs({folder / path: writer for path, writer in outputs.items()})


def files(folder: Path) -> dict[str, bytes]:
    """Every output file but the split tables and history.parquet (compared as tables: one file on the pandas engine,
    parts on the dask engine), by path."""
    tables = [f"{name}.parquet" for name in (*SPLITS, "history")]
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and "prepared" not in path.parts and not any(table in path.parts for table in tables)
    }


def test_the_dask_engine_builds_the_pandas_engines_features_whatever_the_pieces(project, tmp_path):
    splits, schema, config, windows = project
    pandas_outputs(splits, schema, config, windows, tmp_path / "pandas")
    expected_files = files(tmp_path / "pandas")
    expected_history = pd.read_parquet(tmp_path / "pandas" / FEATURES_DIR / "history.parquet")
    assert len(expected_history) and "data/features/reference_sorted.arrow" in expected_files  # history features are built
    for layout in (monthly_parts, row_groups):
        folder = tmp_path / layout.__name__
        result = dask_outputs(splits, schema, config, windows, folder, layout)
        assert result.rows == sum(len(rows) for rows in splits.values())
        for name in SPLITS:
            features = folder / FEATURES_DIR / f"{name}.parquet"
            assert features.is_dir() and (features / "part-00000.parquet").exists()
            expected = pd.read_parquet(tmp_path / "pandas" / FEATURES_DIR / f"{name}.parquet")
            pd.testing.assert_frame_equal(read_parquet(features, ""), expected, check_exact=False, rtol=0, atol=1e-9)
        # spec.json, transformer.skops, the reference profile, the manifest and featurize.json: byte for byte.
        assert files(folder) == expected_files, layout.__name__
        # history.parquet: parts written by the workers, one per time range, read back as the pandas engine's table.
        history = folder / FEATURES_DIR / "history.parquet"
        assert history.is_dir() and len(list(history.glob("part-*.parquet"))) > 1
        pd.testing.assert_frame_equal(read_parquet(history, ""), expected_history, check_exact=True)


def test_history_counts_events_of_the_previous_piece(project, tmp_path):
    """A train row early in a month: its 7-day history reaches into the previous month, another part of the folder.
    Run on an in-process cluster of two workers, where the event pieces stay on the workers until the parts are written."""
    splits, schema, config, windows = project
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=True),
    ):
        dask_outputs(splits, schema, config, windows, tmp_path, monthly_parts, scheduler=None)
    train, features = splits["train"], read_parquet(tmp_path / FEATURES_DIR / "train.parquet", "")
    known_after, window = parse_span("13h"), parse_span("7D")
    times = train["time_hour"]

    def looked_at(row: int) -> pd.DataFrame:
        """Brute force: the window lies inside train's, so its events are exactly the train rows in (t - 13h - 7 days, t - 13h]."""
        end = times.iloc[row] - known_after
        return train[(times > end - window) & (times <= end)]

    # The first train row whose look-back holds events of the month before its own (UTC: the folder's previous part).
    month = times.dt.month.to_numpy()
    row = next(row for row in range(len(train)) if (looked_at(row)["time_hour"].dt.month == month[row] - 1).any())
    seen = looked_at(row)
    assert features["history_all_7d_late_rows"].iloc[row] == len(seen)
    smoothed = (seen["late"].sum() + 20 * train["late"].mean()) / (len(seen) + 20)
    assert features["history_all_7d_late_mean"].iloc[row] == pytest.approx(smoothed, abs=1e-12)


def test_above_the_limit_both_engines_fit_on_the_same_seeded_sample_whatever_the_pieces(project, tmp_path):
    """With fewer allowed rows than train holds (features.fit_sample_rows), the transformer is fitted on the seeded
    sample of train rows, the same for every layout and on the pandas engine, the manifest says so, and the engines'
    features and files are the same."""
    splits, schema, config, windows = project
    config = replace(config, fit_sample_rows=120)
    train = splits["train"]
    chosen = np.sort(np.random.RandomState(config.seed).choice(len(train), 120, replace=False))
    expected = model_writer(stage.fit_features(train.iloc[chosen].reset_index(drop=True), schema, config).transformer)
    pandas_outputs(splits, schema, config, windows, tmp_path / "pandas")
    written = {"pandas": files(tmp_path / "pandas")}
    for layout in (monthly_parts, row_groups):
        result = dask_outputs(splits, schema, config, windows, tmp_path / layout.__name__, layout)
        assert result.selected.manifest["fit_sample"] == {"rows": 120, "of": len(train), "seed": config.seed}
        assert result.selected.manifest["train_rows"] == len(train)
        written[layout.__name__] = files(tmp_path / layout.__name__)
        written[layout.__name__ + "-features"] = read_parquet(tmp_path / layout.__name__ / FEATURES_DIR / "test.parquet", "")
        payload = tmp_path / f"{layout.__name__}.skops"
        expected(payload)
        assert (tmp_path / layout.__name__ / FEATURES_DIR / "transformer.skops").read_bytes() == payload.read_bytes()
    assert written["monthly_parts"] == written["row_groups"] == written["pandas"]
    pd.testing.assert_frame_equal(written["monthly_parts-features"], written["row_groups-features"], check_exact=True)
    for name in SPLITS:  # the pandas engine builds every row with the transformer fitted on the sample
        expected_features = pd.read_parquet(tmp_path / "pandas" / FEATURES_DIR / f"{name}.parquet")
        dask_features = read_parquet(tmp_path / "row_groups" / FEATURES_DIR / f"{name}.parquet", "")
        pd.testing.assert_frame_equal(dask_features, expected_features, check_exact=False, rtol=0, atol=1e-9)


def cut(rows: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [rows.iloc[start : start + size] for start in range(0, max(len(rows), 1), size)]


def test_history_written_by_time_ranges_is_the_pandas_engines_events_whatever_the_cut(tmp_path):
    """history.parquet as the workers write it (one part per time range, from the event pieces meeting it) reads back
    as `history_events`: with overlapping split windows, many rows at one time, and pieces cut inside those ties."""
    generator = np.random.default_rng(5)
    start = pd.Timestamp("2013-01-01", tz="UTC")
    bounds = {"train": (0, 100), "test": (100, 130), "reference": (0, 50), "current": (100, 130)}
    windows = [
        Window(name=name, start=start + pd.Timedelta(hours=lo), end=start + pd.Timedelta(hours=hi)) for name, (lo, hi) in bounds.items()
    ]
    splits = {}
    for name, (lo, hi) in bounds.items():
        hours = np.sort(generator.integers(lo, hi, 3 * (hi - lo)))  # about three rows per hour: ties everywhere
        splits[name] = pd.DataFrame(
            {
                "time": start + pd.to_timedelta(hours, unit="h"),
                "key": generator.choice(["a", "b", "c"], len(hours)),
                "late": generator.integers(0, 2, len(hours)).astype(np.int8),
                "row": [f"{name}-{index}" for index in range(len(hours))],  # tells apart rows at one time
            }
        )
    columns = ["key", "late", "row", "time"]
    expected = stage.history_events(splits, windows, columns, "time")
    for size in (7, 23):
        event_parts, spans, earlier = [], [], []
        for window in windows:
            for piece in cut(splits[window.name], size):
                facts = stage._facts(piece, "time", tuple(earlier), columns)
                event_parts.append(stage._events(facts))
                spans.append(stage._nanoseconds(facts[1], facts[2]))
            earlier.append(window)
        folder = tmp_path / f"cut-{size}"
        folder.mkdir()
        with dask.config.set(scheduler="sync"):
            stage._history_writer(event_parts, spans, "time").write(folder)
        assert len(list(folder.glob("part-*.parquet"))) > 10, size
        pd.testing.assert_frame_equal(read_parquet(folder, ""), expected, check_exact=True)


def test_the_reference_profile_gathered_column_by_column_is_the_pandas_engines_file(tmp_path):
    """The profile the dask engine writes (each column gathered from the pieces, sorted and spooled, then written in
    place into the Arrow layout) is byte for byte `write_sorted_columns(sorted_columns(...))` of the whole split: missing
    values at counts not a multiple of 8, none, all; -0.0; an integer column; a text column typed numeric
    (left out, as the pandas engine leaves it out); and a split without rows."""
    generator = np.random.default_rng(3)
    rows = 1001
    some_missing = generator.normal(size=rows)
    some_missing[generator.choice(rows, 13, replace=False)] = np.nan
    exact = generator.normal(size=rows)
    exact[:2] = [-0.0, 0.0]
    frame = pd.DataFrame(
        {
            "some_missing": some_missing,
            "exact": exact,
            "all_missing": np.full(rows, np.nan),
            "count": generator.integers(0, 50, rows),
            "text": generator.choice(["1", "2"], rows).astype(object),
            "level": generator.choice(["x", "y"], rows),
        }
    )
    types = {
        "some_missing": "numeric",
        "exact": "numeric",
        "all_missing": "numeric",
        "count": "numeric",
        "text": "numeric",
        "level": "categorical",
    }
    for name, split in {"full": frame, "empty": frame.iloc[:0]}.items():
        expected, written = tmp_path / f"{name}-pandas.arrow", tmp_path / f"{name}-dask.arrow"
        stage.write_sorted_columns(stage.sorted_columns(split, types), expected)
        with dask.config.set(scheduler="sync"):
            stage._profile_writer(cut(split, 300), types)(written)
        assert written.read_bytes() == expected.read_bytes(), name
    assert not list(tmp_path.glob(".profile.*"))  # the spooled columns are gone
