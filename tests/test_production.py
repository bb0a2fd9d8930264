"""The production store's commands on a tiny trained project: make score-batch, make add-labels, the
production-store stage's check. Real stages trained the model; every command runs as `python -m`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from commands import add_labels, score_batch
from stages import production_store
from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.config import parse_params
from stages.lib.errors import run_stage
from stages.lib.production import batches, label_files, read_batch, read_labels
from stages.prepare import labelled_rows
from tests.conftest import HGB, commit_trained, make_flights, make_weather, project_params, run_module

pytestmark = pytest.mark.slow  # real stages, git and dvc in temporary projects

ID = "row_id"
MODEL = {"name": "hgb", "_target_": HGB, "preprocessing": "none", "max_iter": 20}


def files(folder: Path) -> dict[str, str]:
    """Every file of the store with the sha256 of its bytes."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A git-committed project folder after prepare, featurize, train and production-store on tiny flights, and
    the prepared rows of November-December (after every split) with their ids and outcomes."""
    folder = tmp_path_factory.mktemp("production")
    flights = make_flights(rows_per_month=60)
    weather = make_weather(flights)
    (folder / "source").mkdir()
    flights.to_csv(folder / "source/flights.csv", index=False)
    weather.to_csv(folder / "source/weather.csv", index=False)
    params = project_params()
    params["data"]["source"] = {"path": str(folder / "source/flights.csv"), "package": None}
    params["data"]["join"][0]["source"] = {"path": str(folder / "source/weather.csv"), "package": None}
    params["features"]["categorical"]["min_count"] = 2
    params["model"] = dict(MODEL)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    for module in ("stages.prepare", "stages.featurize", "stages.train", "stages.production_store"):
        result = run_module(module, folder)
        assert result.returncode == 0, f"{module}: {result.stderr}"
    commit_trained(folder)
    contract = parse_params(params).data
    rows = labelled_rows(flights, [weather], contract).rows
    later = rows[rows["time_hour"] >= pd.Timestamp("2013-11-01", tz="UTC")]
    later = later.assign(**{ID: [f"r{position}" for position in later.index], "arr_delay": flights.loc[later.index, "arr_delay"]})
    return folder, later.reset_index(drop=True)


@pytest.fixture
def project(trained, tmp_path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(trained[0], folder)
    return folder


@pytest.fixture
def later(trained) -> pd.DataFrame:
    return trained[1].copy()


def inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as a user sends them to score-batch: no outcome columns."""
    return rows.drop(columns=["late", "arr_delay"])


def write(folder: Path, name: str, frame: pd.DataFrame) -> str:
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return name


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(main: Callable[[list[str]], None], folder: Path, *arguments: str) -> Ran:
    """A command's main() run from `folder` as `python -m` runs it (run_stage: one line, exit 2), in this process:
    a fresh interpreter per call would take most of this module's time."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    previous = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_stage(lambda: main(list(arguments)))
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        os.chdir(previous)
    return Ran(code, out.getvalue(), err.getvalue())


def score(folder: Path, rows: pd.DataFrame, *options: str, name: str = "batch.csv") -> Ran:
    return cli(score_batch.main, folder, "--input", write(folder, name, rows), *options)


def label(folder: Path, outcomes: pd.DataFrame, name: str = "outcomes.csv") -> Ran:
    return cli(add_labels.main, folder, "--input", write(folder, name, outcomes))


def halves(later: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """November, and December."""
    november = later["time_hour"] < pd.Timestamp("2013-12-01", tz="UTC")
    return later[november].reset_index(drop=True), later[~november].reset_index(drop=True)


def test_appends_add_files_and_never_change_earlier_ones(project, later):
    store = project / PRODUCTION_DIR
    november, december = halves(later)
    # The real command line once: `python -m commands.score_batch` as make score-batch runs it.
    batch = write(project, "batch.csv", inputs(november))
    result = run_module("commands.score_batch", project, "--input", batch, "--score-beyond-history", "--scored-at", "2013-12-01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("score-batch: batch-0001: ")
    after_first = files(store)
    result = label(project, november[[ID, "late"]])
    assert result.returncode == 0, result.stderr
    after_labels = files(store)
    assert {name: after_labels[name] for name in after_first} == after_first
    result = score(project, inputs(december), "--score-beyond-history", name="december.parquet")
    assert result.returncode == 0, result.stderr
    after_second = files(store)
    assert {name: after_second[name] for name in after_labels} == after_labels
    assert sorted(set(after_second) - set(after_labels)) == ["batches/batch-0002.json", "batches/batch-0002.parquet"]

    metas = batches(store)
    assert [meta.rows for meta in metas] == [len(november), len(december)]
    assert metas[0].scored_at == "2013-12-01T00:00:00+00:00"
    assert metas[0].first == november["time_hour"].min().isoformat() and metas[1].last == december["time_hour"].max().isoformat()
    for meta in metas:
        assert meta.sha256 == hashlib.sha256((store / f"batches/{meta.batch_id}.parquet").read_bytes()).hexdigest()
        assert meta.model == "workspace" and len(meta.model_sha) == 40
        assert meta.model_md5 == hashlib.md5((project / "models/model.skops").read_bytes()).hexdigest()
    first = read_batch(metas[0], store)
    assert first[ID].tolist() == november[ID].tolist()
    assert first["prediction"].between(0, 1).all() and first["distance"].tolist() == november["distance"].astype(float).tolist()
    assert "late" not in first.columns
    # A CSV batch and a Parquet batch are stored with the same column types.
    assert read_batch(metas[1], store).dtypes.to_dict() == first.dtypes.to_dict()


def test_the_outcomes_the_store_holds_feed_the_history_features_of_later_batches(project, later):
    """December scored after November's outcomes arrived differs from December scored without them."""
    november, december = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    blind = project.parent / "blind"
    shutil.copytree(project, blind)
    assert label(project, november[[ID, "late"]]).returncode == 0
    assert score(project, inputs(december), "--score-beyond-history").returncode == 0
    assert score(blind, inputs(december), "--score-beyond-history").returncode == 0
    informed, unaware = (
        read_batch(batches(project / PRODUCTION_DIR)[1], project / PRODUCTION_DIR),
        read_batch(batches(blind / PRODUCTION_DIR)[1], blind / PRODUCTION_DIR),
    )
    assert not np.allclose(informed["prediction"], unaware["prediction"])


def test_rows_beyond_the_known_outcomes_are_refused_unless_asked(project, later):
    store = project / PRODUCTION_DIR
    before = files(store)
    result = score(project, inputs(halves(later)[1]))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lie beyond the known outcomes" in result.stderr and "make add-labels" in result.stderr
    assert files(store) == before
    assert score(project, inputs(halves(later)[1]), "--score-beyond-history").returncode == 0
    assert not read_batch(batches(store)[0], store)["history_complete"].all()


def test_a_batch_scored_twice_or_overlapping_the_store_is_refused_and_changes_nothing(project, later):
    store = project / PRODUCTION_DIR
    november, december = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    before = files(store)
    for rows in (november, pd.concat([december, november.iloc[[3, 5]]], ignore_index=True)):
        result = score(project, inputs(rows), "--score-beyond-history")
        assert result.returncode == 2
        repeated = len(november) if len(rows) == len(november) else 2
        assert result.stderr == (
            f"error: batch.csv: {repeated:,} (e.g. {rows[ID].iloc[0 if repeated > 2 else len(december)]!r}) row id(s) of column 'row_id' "
            "are already in the production store (batch-0001 holds the first); a batch is scored once: leave those rows out\n"
        )
        assert files(store) == before
    assert sum(meta.rows for meta in batches(store)) == len(november)


def test_outcomes_given_again_count_once_and_a_changed_outcome_is_refused(project, later):
    store = project / PRODUCTION_DIR
    november, _ = halves(later)
    assert score(project, inputs(later), "--score-beyond-history").returncode == 0
    first = november.iloc[:10]
    assert label(project, first[[ID, "late"]]).returncode == 0
    before = files(store)
    again = label(project, first[[ID, "late"]])
    assert (
        again.returncode == 0
        and again.stdout == "add-labels: nothing new in outcomes.csv; 10 already stored with the same value, not added again\n"
    )
    assert files(store) == before
    # Repeats within the file and of stored outcomes, with new ones: only the new ones are stored.
    mixed = pd.concat([first, first, november.iloc[10:15]], ignore_index=True)[[ID, "late"]]
    assert label(project, mixed).returncode == 0
    assert [meta.rows for meta in label_files(store)] == [10, 5]
    changed = first.iloc[[0]].assign(late=1 - first["late"].iloc[0])[[ID, "late"]]
    before = files(store)
    result = label(project, changed)
    assert result.returncode == 2 and "already have a different 'late' in the production store" in result.stderr
    assert files(store) == before
    stored = pd.concat([read_labels(meta, store) for meta in label_files(store)])
    assert stored[ID].is_unique and len(stored) == 15


def test_late_outcomes_by_source_column_are_converted_and_counted_per_batch(project, later):
    """Outcomes of both batches in one file, as arr_delay: stored as late = arr_delay > 15, counted per batch."""
    store = project / PRODUCTION_DIR
    november, december = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    assert score(project, inputs(december), "--score-beyond-history").returncode == 0
    outcomes = pd.concat([november.iloc[:7], december.iloc[:4]], ignore_index=True)
    result = label(project, outcomes[[ID, "arr_delay"]])
    assert result.returncode == 0, result.stderr
    (meta,) = label_files(store)
    assert meta.batches == {"batch-0001": 7, "batch-0002": 4} and meta.rows == 11
    stored = read_labels(meta, store)
    assert stored[ID].tolist() == outcomes[ID].tolist()
    assert stored["late"].tolist() == (outcomes["arr_delay"] > 15).astype(int).tolist()


def bad_batches(rows: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, list[str], str]]:
    """(rows, options, the one line expected) per bad input to score-batch."""
    rows = inputs(rows)
    wrong = rows.astype({"distance": object})
    wrong.loc[2, "distance"] = "far"
    return {
        "unknown model version": (rows, ["--model", "model@v9.9.9"], "error: --model model@v9.9.9: no such git revision here"),
        "no id column": (rows.drop(columns=[ID]), [], "error: batch.csv: missing column 'row_id' (the row id, monitor.id_column"),
        "a column missing": (rows.drop(columns=["distance"]), [], "error: batch.csv: missing column 'distance' (data/schema.yaml lists"),
        "a column of the wrong type": (
            wrong,
            [],
            "error: batch.csv: column 'distance' must be numeric (data/schema.yaml), got 'far' in 1 row(s)",
        ),
        "an empty batch": (rows.iloc[:0], [], "error: batch.csv: no rows to score"),
        "a repeated id": (rows.assign(**{ID: "same"}), [], "error: batch.csv: column 'row_id' repeats"),
        "the outcome in the batch": (rows.assign(late=0), [], "error: batch.csv: column 'late' is the outcome"),
    }


BAD_BATCHES = ["unknown model version", "no id column", "a column missing", "a column of the wrong type", "an empty batch", "a repeated id"]


@pytest.mark.parametrize("case", [*BAD_BATCHES, "the outcome in the batch"])
def test_bad_batches_stop_with_one_line_and_leave_the_store_as_it_was(project, later, case):
    november, december = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    store = project / PRODUCTION_DIR
    before = files(store)
    rows, options, expected = bad_batches(december)[case]
    result = score(project, rows, "--score-beyond-history", *options)
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert files(store) == before


BAD_OUTCOMES = {
    "outcomes for unknown ids": (
        lambda rows: rows[[ID, "late"]].iloc[:3].assign(**{ID: ["nobody-1", "nobody-2", "nobody-3"]}),
        "error: outcomes.csv: 3 (e.g. 'nobody-1') id(s) of column 'row_id' are not in the production store",
    ),
    "no id column": (lambda rows: rows[["late"]], "error: outcomes.csv: missing column 'row_id'"),
    "no outcome column": (lambda rows: rows[[ID]], "error: outcomes.csv: has neither of 'late'"),
    "a target of the wrong type": (
        lambda rows: rows[[ID, "late"]].astype({"late": object}).assign(late="yes"),
        "error: outcomes.csv: column 'late' must be numeric, got 'yes'",
    ),
    "a target that is not 0 or 1": (lambda rows: rows[[ID, "late"]].assign(late=2), "error: outcomes.csv: column 'late' must be 0 or 1"),
    "an empty file": (lambda rows: rows[[ID, "late"]].iloc[:0], "error: outcomes.csv: no rows"),
    "one id with two outcomes": (
        lambda rows: pd.concat([rows[[ID, "late"]].iloc[:1], rows[[ID, "late"]].iloc[:1].assign(late=lambda f: 1 - f["late"])]),
        "error: outcomes.csv: 1 (e.g.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OUTCOMES))
def test_bad_outcomes_stop_with_one_line_and_leave_the_store_as_it_was(project, later, case):
    november, _ = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    store = project / PRODUCTION_DIR
    before = files(store)
    make, expected = BAD_OUTCOMES[case]
    result = label(project, make(november))
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert files(store) == before


def verify(_: list[str]) -> None:
    production_store.main()


def test_the_stage_creates_an_empty_store_and_fails_closed_on_a_damaged_one(project, later):
    store = project / PRODUCTION_DIR
    shutil.rmtree(store)
    result = run_module("stages.production_store", project)
    assert result.returncode == 0 and files(store).keys() == {"store.json"}
    assert json.loads((store / "store.json").read_text()) == {"id_column": "row_id"}
    november, _ = halves(later)
    assert score(project, inputs(november), "--score-beyond-history").returncode == 0
    assert label(project, november[[ID, "late"]].iloc[:5]).returncode == 0
    assert cli(verify, project).returncode == 0
    pristine = project.parent / "pristine"
    shutil.copytree(store, pristine)

    def damaged(change) -> str:
        shutil.rmtree(store)
        shutil.copytree(pristine, store)
        change()
        result = cli(verify, project)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    batch = store / "batches/batch-0001.parquet"
    assert "batch-0001.parquet: its content differs from what was appended" in damaged(lambda: batch.write_bytes(batch.read_bytes() + b"x"))
    assert "batch-0001.json: file not found, though its pair is there" in damaged(lambda: (store / "batches/batch-0001.json").unlink())
    assert "not a file of the store" in damaged(lambda: (store / "batches/.batch-0002.parquet.x.tmp").write_text(""))

    def foreign_outcome() -> None:
        from stages.lib.production import append_labels

        append_labels(
            pd.DataFrame({ID: pd.Series(["nobody"], dtype="string"), "late": np.int8([1])}), ID, "2014-01-01T00:00:00+00:00", store
        )

    assert "1 (e.g. 'nobody') outcome id(s) name no stored row" in damaged(foreign_outcome)

    def other_id_column() -> None:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["monitor"]["id_column"] = "flight_id"
        (project / "params.yaml").write_text(yaml.safe_dump(params))

    assert "the store's rows are named by 'row_id', but monitor.id_column in conf/monitor/ is 'flight_id'" in damaged(other_id_column)


def test_score_batch_on_the_dask_engine_stores_the_pandas_engines_bytes_whatever_the_pieces(trained, later, tmp_path, monkeypatch):
    """make score-batch with engine dask (joining an in-process cluster by engine.scheduler): each batch scored piece
    by piece, in pieces of 16 rows and in one piece, with the store's outcomes feeding December's history, leaves the store
    byte for byte as the pandas engine leaves it."""
    from distributed import LocalCluster

    from stages.lib import scoring_partitioned, scoring_versions

    november, december = halves(later)

    def replay(folder: Path) -> dict[str, str]:
        assert score(folder, inputs(november), "--score-beyond-history", "--scored-at", "2013-12-01").returncode == 0
        outcomes = write(folder, "outcomes.csv", november[[ID, "late"]])
        assert cli(add_labels.main, folder, "--input", outcomes, "--added-at", "2013-12-20").returncode == 0
        ran = score(folder, inputs(december), "--score-beyond-history", "--scored-at", "2014-01-01", name="december.parquet")
        assert ran.returncode == 0, ran.stderr
        return files(folder / PRODUCTION_DIR)

    expected = replay(Path(shutil.copytree(trained[0], tmp_path / "pandas")))
    pieces: list[int] = []
    real = scoring_partitioned.input_pieces

    def counted(path: Path, blocksize: int) -> list:
        found = real(path, blocksize)
        pieces.append(len(found))
        return found

    monkeypatch.setattr(scoring_partitioned, "input_pieces", counted)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        for rows in (16, 1000):
            folder = Path(shutil.copytree(trained[0], tmp_path / f"dask-{rows}"))
            params = yaml.safe_load((folder / "params.yaml").read_text())
            params["engine"] = {
                "name": "dask", "scheduler": cluster.scheduler_address, "workers": 1, "threads_per_worker": 1,
                "memory_limit": "1GiB", "spill_dir": ".dask-spill", "connect_timeout": 10,
            }  # fmt: skip
            (folder / "params.yaml").write_text(yaml.safe_dump(params))
            monkeypatch.setattr(scoring_versions, "PIECE_ROWS", rows)
            assert replay(folder) == expected
    assert pieces == [-(-len(november) // 16), -(-len(december) // 16), 1, 1] and min(pieces[:2]) >= 3
