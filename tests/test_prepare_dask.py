"""prepare on the dask engine: the same splits, schema.yaml and prepare.json as the pandas engine, from every source form,
whatever the pieces or workers; the same one-line errors; splits written as folders of parts that every reader accepts."""

from __future__ import annotations

import gzip
import itertools
import shutil
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import yaml

from stages import prepare as stage
from stages.lib.catalog import PREPARE_SUMMARY, PREPARED_DIR, SCHEMA_FILE
from stages.lib.config import parse_params
from stages.lib.errors import UserError
from stages.lib.io import FolderWriter, json_text, read_files, read_parquet, source_files, write_outputs
from tests.conftest import make_flights, make_weather, project_params, run_module

SPLITS = ("train", "test", "reference", "current")


def write_source(folder: Path, form: str, flights: pd.DataFrame) -> str:
    """The flights written as `form`; the path data.source names."""
    folder.mkdir(parents=True, exist_ok=True)
    if form == "csv":
        flights.to_csv(folder / "flights.csv", index=False)
        return str(folder / "flights.csv")
    if form == "gzip":
        with gzip.open(folder / "flights.csv.gz", "wt") as stream:
            flights.to_csv(stream, index=False)
        return str(folder / "flights.csv.gz")
    if form == "parquet":
        flights.to_parquet(folder / "flights.parquet", index=False, row_group_size=97)
        return str(folder / "flights.parquet")
    # A glob of two files, the first's delays all whole and present (read as integers on their own), the second's not.
    first, second = flights.iloc[:100], flights.iloc[100:]
    first.assign(arr_delay=first["arr_delay"].fillna(0)).to_csv(folder / "flights-1.csv", index=False)
    second.to_csv(folder / "flights-2.csv", index=False)
    return str(folder / "flights-*.csv")


def contract_for(folder: Path, form: str, **data):
    flights = make_flights(rows_per_month=25)
    params = project_params()
    params["data"]["source"] = {"path": write_source(folder, form, flights), "package": None}
    make_weather(flights).to_csv(folder / "weather.csv", index=False)
    params["data"]["join"][0]["source"] = {"path": str(folder / "weather.csv"), "package": None}
    params["data"].update(data)
    return parse_params(params).data


def pandas_engine(contract) -> stage.Prepared:
    sources, tables = stage.read_sources(contract)
    return stage.prepare(tables[0], tables[1:], contract, sources)


def dask_engine(contract, folder: Path, blocksize: int) -> tuple[stage.Partitioned, dict[str, pd.DataFrame]]:
    """The dask engine on the synchronous scheduler; each split written as a folder and read back."""
    with dask.config.set(scheduler="sync"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        prepared = stage.prepare_partitioned(contract, folder / ".staging", blocksize=blocksize)
        write_outputs({folder / f"{name}.parquet": FolderWriter(prepared.writer(name)) for name in SPLITS})
    return prepared, {name: read_parquet(folder / f"{name}.parquet", "") for name in SPLITS}


@pytest.mark.parametrize("form", ["csv", "gzip", "parquet", "glob"])
def test_the_dask_engine_prepares_what_the_pandas_engine_does_from_every_source_form(tmp_path, form):
    contract = contract_for(tmp_path / "source", form)
    expected = pandas_engine(contract)
    # The blocksizes cut the CSV into many pieces or one; the compressed CSV and the Parquet file cut their own way.
    for blocksize in (3_000, 10**9):
        prepared, splits = dask_engine(contract, tmp_path / f"out-{blocksize}", blocksize)
        for name in SPLITS:
            pd.testing.assert_frame_equal(splits[name], expected.splits[name], check_exact=True)
        assert json_text(prepared.summary) == json_text(expected.summary)
        assert yaml.safe_dump(prepared.schema, sort_keys=False) == yaml.safe_dump(expected.schema, sort_keys=False)
    months = sorted(path.name for path in (tmp_path / f"out-{3_000}/train.parquet").iterdir())
    assert months == [f"part-{index:05d}.parquet" for index in range(8)]  # January to August: one part per month


def test_a_glob_reads_its_files_in_name_order_with_the_types_of_one_table(tmp_path):
    """Both engines: a glob is its files in file-name order, typed as pandas types the concatenated file."""
    frame = pd.DataFrame({"n": [1, 2, 3, 4], "mixed": ["1", "2", "3", "x"], "gap": [1, 2, None, 4]})
    frame.iloc[2:].to_csv(tmp_path / "b.csv", index=False)  # written first, read second
    frame.iloc[:2].to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "whole.csv", index=False)
    files = source_files(tmp_path / "*.csv", "")
    assert [path.name for path in files] == ["a.csv", "b.csv", "whole.csv"]
    glued = pd.concat(read_files(files[:2], ["", "NA"], "x"), ignore_index=True)
    pd.testing.assert_frame_equal(glued, pd.read_csv(tmp_path / "whole.csv", keep_default_na=False, na_values=["", "NA"]))
    with pytest.raises(UserError, match=r"^.*nothing\*\.csv: no file matches; fix it$"):
        source_files(tmp_path / "nothing*.csv", "fix it")


def test_sample_rows_selects_exactly_the_rows_the_pandas_engine_samples(tmp_path):
    contract = contract_for(tmp_path / "source", "csv", sample_rows=120, sample_seed=7)
    expected = pandas_engine(contract)
    prepared, splits = dask_engine(contract, tmp_path / "out", 2_000)
    assert expected.summary["rows"]["used"] == 120
    for name in SPLITS:
        pd.testing.assert_frame_equal(splits[name], expected.splits[name], check_exact=True)
    assert json_text(prepared.summary) == json_text(expected.summary)


def test_an_unparsable_time_stops_both_engines_with_the_same_line(tmp_path):
    contract = contract_for(tmp_path / "source", "csv")
    flights = pd.read_csv(contract.source.locate(), keep_default_na=False)
    flights.loc[[5, 200], "time_hour"] = ["2013-01-01 soon", "later"]  # in two different pieces
    flights.to_csv(contract.source.locate(), index=False)
    with pytest.raises(UserError) as on_pandas:
        pandas_engine(contract)
    with pytest.raises(UserError) as on_dask, dask.config.set(scheduler="sync"):
        stage.prepare_partitioned(contract, tmp_path / "staging", blocksize=3_000)
    assert str(on_dask.value) == str(on_pandas.value)
    assert "'time_hour' must hold ISO-8601 timestamps" in str(on_dask.value) and "in 2 row(s)" in str(on_dask.value)


def test_a_folder_output_replaces_a_file_and_a_failure_leaves_the_old_output(tmp_path):
    target = tmp_path / "train.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(target)  # as the pandas engine wrote it

    def parts(folder: Path) -> None:
        for index, frame in enumerate([pd.DataFrame({"a": [2, 3]}), pd.DataFrame({"a": [4]})]):
            frame.to_parquet(folder / f"part-{index:05d}.parquet", index=False)

    write_outputs({target: FolderWriter(parts)})
    assert target.is_dir() and read_parquet(target, "")["a"].tolist() == [2, 3, 4]

    def broken(folder: Path) -> None:
        (folder / "part-00000.parquet").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(UserError, match=r"train\.parquet: cannot write it \(disk full\)"):  # one line (stages/lib/io.py)
        write_outputs({target: FolderWriter(broken), tmp_path / "other.json": lambda path: path.write_text("{}")})
    assert read_parquet(target, "")["a"].tolist() == [2, 3, 4]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.parquet"]  # nothing staged left behind


def test_the_stage_on_a_local_cluster_writes_what_the_pandas_engine_writes(tmp_path, monkeypatch, capsys):
    """`python -m stages.prepare` with engine=dask (a local cluster of a worker process): byte-identical schema.yaml and
    prepare.json, the same rows in each split, read back by the catalogue's reader as the later stages read them."""
    flights = make_flights(rows_per_month=25)
    (tmp_path / "source").mkdir()
    flights.to_csv(tmp_path / "source/flights.csv", index=False)
    make_weather(flights).to_csv(tmp_path / "source/weather.csv", index=False)
    params = project_params()
    params["data"]["source"] = {"path": "source/flights.csv", "package": None}
    params["data"]["join"][0]["source"] = {"path": "source/weather.csv", "package": None}
    dask_keys = yaml.safe_load((Path(__file__).parent.parent / "conf/engine/dask.yaml").read_text())
    params["engine"] = {**dask_keys, "workers": 1, "threads_per_worker": 2, "memory_limit": "1GiB", "spill_dir": "spill"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_module("stages.prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    expected_folder = tmp_path / "pandas"
    expected_folder.mkdir()
    monkeypatch.chdir(expected_folder)  # the pandas engine's outputs, written in this process
    absolute = project_params()
    absolute["data"]["source"] = {"path": str(tmp_path / "source/flights.csv"), "package": None}
    absolute["data"]["join"][0]["source"] = {"path": str(tmp_path / "source/weather.csv"), "package": None}
    contract = parse_params(absolute).data
    stage._write(pandas_engine(contract), contract)
    assert result.stdout == capsys.readouterr().out  # the same console line
    for path in (SCHEMA_FILE, PREPARE_SUMMARY):
        assert (tmp_path / path).read_bytes() == (expected_folder / path).read_bytes()
    for name in SPLITS:
        assert (tmp_path / PREPARED_DIR / f"{name}.parquet").is_dir()
        expected = pd.read_parquet(expected_folder / PREPARED_DIR / f"{name}.parquet")
        pd.testing.assert_frame_equal(read_parquet(tmp_path / PREPARED_DIR / f"{name}.parquet", ""), expected, check_exact=True)
        assert np.array_equal(pd.read_parquet(tmp_path / PREPARED_DIR / f"{name}.parquet")["time_hour"], expected["time_hour"])


def test_each_month_gathers_its_rows_only_from_the_pieces_that_hold_it():
    """The regrouping by month reads, for each month, the pieces holding it: the pairs (piece, month) number the
    months each piece holds in all, not pieces x months (which grows with the square of the data's years)."""
    from stages.lib.prepare_partitioned import month_holders

    rng = np.random.default_rng(0)
    pieces = [sorted({int(month) for month in rng.integers(24_000 + 12 * year, 24_000 + 12 * year + 14, size=20)}) for year in range(30)]
    holders = month_holders(pieces)
    every = sorted({month for months in pieces for month in months})
    assert list(holders) == every  # each month once, in time order
    assert holders == {month: [index for index, months in enumerate(pieces) if month in months] for month in every}
    assert sum(map(len, holders.values())) == sum(map(len, pieces)) < len(pieces) * len(every) / 10


def test_each_month_is_written_by_its_task_and_nothing_stays_on_the_cluster(tmp_path):
    """Memory stays bounded by a few months: each month's split rows are on disk (staged) when prepare_partitioned
    returns, and the cluster keeps no prepared rows (every month persisted until the writes filled 6 GB of workers at
    100x) nor the related table (scattered once, released with the run)."""
    import gc
    import time

    from distributed import Client, LocalCluster

    contract = contract_for(tmp_path / "source", "csv")
    expected = pandas_engine(contract)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        prepared = stage.prepare_partitioned(contract, tmp_path / "staging", blocksize=3_000)
        staged = {name: sorted((tmp_path / "staging" / name).iterdir()) for name in SPLITS}
        assert {name: len(files) for name, files in staged.items()} == {
            name: len(expected.splits[name]["time_hour"].dt.month.unique()) for name in SPLITS
        }
        for name in SPLITS:  # the staged parts are the split, in time order, before any writer has run
            pd.testing.assert_frame_equal(
                pd.concat(map(pd.read_parquet, staged[name]), ignore_index=True), expected.splits[name], check_exact=True
            )
        gc.collect()
        deadline = time.monotonic() + 5
        while any(client.has_what().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(client.has_what().values()), client.has_what()
    folder = tmp_path / "out"
    folder.mkdir()
    write_outputs({folder / f"{name}.parquet": FolderWriter(prepared.writer(name)) for name in SPLITS})
    for name in SPLITS:
        pd.testing.assert_frame_equal(read_parquet(folder / f"{name}.parquet", ""), expected.splits[name], check_exact=True)


def test_the_schema_sample_above_its_cap_is_the_seeded_choice_of_train_rows(tmp_path, monkeypatch):
    """Above SCHEMA_SAMPLE_ROWS train rows, schema inference reads back the rows at the seeded positions of the whole
    split (each part given only its own positions), whatever the parts."""
    from stages.lib import prepare_partitioned

    contract = contract_for(tmp_path / "source", "csv", sample_seed=3)
    train = pd.DataFrame({"n": np.arange(1_000), "text": [f"row {index}" for index in range(1_000)]})
    monkeypatch.setattr(prepare_partitioned, "SCHEMA_SAMPLE_ROWS", 40)
    expected = train.iloc[np.sort(np.random.RandomState(3).choice(1_000, 40, replace=False))].reset_index(drop=True)
    for cuts in ([0, 1_000], [0, 7, 400, 401, 1_000]):
        paths = []
        for index, (start, end) in enumerate(itertools.pairwise(cuts)):
            paths.append(tmp_path / f"cut{len(cuts)}-{index}.parquet")
            train.iloc[start:end].to_parquet(paths[-1], index=False)
        counts = [end - start for start, end in itertools.pairwise(cuts)]
        with dask.config.set(scheduler="sync"):
            sample = prepare_partitioned._train_rows(paths, [0, *counts], contract)  # a month without train rows has no part
        pd.testing.assert_frame_equal(sample, expected)
