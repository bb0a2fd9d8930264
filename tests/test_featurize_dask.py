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
from stages.lib.config import parse_params
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


def test_above_the_limit_the_fit_uses_a_seeded_sample_whatever_the_pieces(project, tmp_path):
    """With fewer allowed rows than train holds, the transformer is fitted on the seeded sample of train rows (as the pandas
    engine fits on exactly those rows), the same for every layout, and the manifest says so."""
    splits, schema, config, windows = project
    train = splits["train"]
    chosen = np.sort(np.random.RandomState(config.seed).choice(len(train), 120, replace=False))
    expected = model_writer(stage.fit_features(train.iloc[chosen].reset_index(drop=True), schema, config).transformer)
    written = {}
    for layout in (monthly_parts, row_groups):
        result = dask_outputs(splits, schema, replace(config, fit_sample_rows=120), windows, tmp_path / layout.__name__, layout)
        assert result.selected.manifest["fit_sample"] == {"rows": 120, "of": len(train), "seed": config.seed}
        assert result.selected.manifest["train_rows"] == len(train)
        written[layout.__name__] = files(tmp_path / layout.__name__)
        written[layout.__name__ + "-features"] = read_parquet(tmp_path / layout.__name__ / FEATURES_DIR / "test.parquet", "")
        payload = tmp_path / f"{layout.__name__}.skops"
        expected(payload)
        assert (tmp_path / layout.__name__ / FEATURES_DIR / "transformer.skops").read_bytes() == payload.read_bytes()
    assert written["monthly_parts"] == written["row_groups"]
    pd.testing.assert_frame_equal(written["monthly_parts-features"], written["row_groups-features"], check_exact=True)
