"""train.sample_rows: a seeded, month-stratified sample of the train split, the same rows on both engines
whatever the partitions, and the model fitted on it byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import FEATURE_SPEC, FEATURES_DIR, MODEL_CARD, MODEL_FILE, FeatureSpec
from stages.lib.config import TrainConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.io import parquet_writer, read_parquet
from stages.lib.models import model_writer
from stages.lib.train_sample import allocate, sample_frame, sample_partitioned
from stages.train import train_model
from tests.conftest import PROJECT, model_config, project_params, run_module

SPEC = FeatureSpec.plain(["distance", "hour"], ["carrier"])
LEVELS = ["AA", "B6", "DL", "UA"]
MONTH_ROWS = {1: 60, 2: 90, 3: 150}  # rows of the synthetic train split in January, February and March 2013


def train_config(sample_rows: int | None) -> TrainConfig:
    return TrainConfig(seed=7, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=sample_rows)


def features_frame() -> pd.DataFrame:
    """A train split as featurize writes it: in time order, several rows per hour, a categorical column."""
    rng = np.random.default_rng(3)
    times = pd.concat(
        [
            pd.Series(pd.date_range(f"2013-{month:02d}-01", periods=rows // 3, freq="h", tz="UTC").repeat(3))
            for month, rows in MONTH_ROWS.items()
        ],
        ignore_index=True,
    )
    distance = rng.uniform(100, 2500, len(times))
    return pd.DataFrame(
        {
            "distance": distance,
            "hour": times.dt.hour.astype("float64"),
            "carrier": pd.Categorical(rng.choice(LEVELS, len(times)), categories=LEVELS),
            "time_hour": times,
            "late": (rng.uniform(size=len(times)) < 0.2 + distance / 5000).astype("int64"),
        }
    )


def write_layout(frame: pd.DataFrame, folder: Path, cuts: list[int] | None) -> Path:
    """The split as one file (`cuts` None), or as a folder of parts cut at these row positions."""
    folder.mkdir(parents=True, exist_ok=True)
    if cuts is None:
        parquet_writer(frame)(folder / "train.parquet")
        return folder / "train.parquet"
    (folder / "train.parquet").mkdir(parents=True)
    for index, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(frame)], strict=True)):
        parquet_writer(frame.iloc[start:end].reset_index(drop=True))(folder / "train.parquet" / f"part-{index:05d}.parquet")
    return folder / "train.parquet"


def model_bytes(rows: pd.DataFrame, sample_rows: int | None, tmp_path: Path) -> bytes:
    model = train_model(rows, SPEC, model_config(max_iter=15), train_config(sample_rows)).model
    path = tmp_path / "model.skops"
    model_writer(model)(path)
    return path.read_bytes()


def test_each_month_gets_its_share_and_the_shares_add_up():
    assert allocate({0: 10, 1: 20, 2: 30}, 12) == {0: 2, 1: 4, 2: 6}
    # 7 * (10, 20, 30) / 60 = 1.17, 2.33, 3.5: floors 1, 2, 3 and the one row left to the largest remainder (March).
    assert allocate({0: 10, 1: 20, 2: 30}, 7) == {0: 1, 1: 2, 2: 4}
    assert allocate({5: 1, 6: 1, 7: 1}, 2) == {5: 1, 6: 1, 7: 0}  # ties: the earlier months


def test_a_sample_keeps_each_months_share_in_time_order_and_follows_the_seed():
    frame = features_frame()
    sample = sample_frame(frame, "time_hour", 100, seed=7, where="train.parquet").rows
    assert len(sample) == 100
    # 100 of 300 rows: a third of each month.
    assert sample["time_hour"].dt.month.value_counts().sort_index().to_dict() == {1: 20, 2: 30, 3: 50}
    assert sample["time_hour"].is_monotonic_increasing
    # Every sampled row is a row of the split, taken whole.
    merged = sample.merge(frame, how="left", on=list(frame.columns), indicator=True)
    assert (merged["_merge"] == "both").all()
    again = sample_frame(frame, "time_hour", 100, seed=7, where="").rows
    other = sample_frame(frame, "time_hour", 100, seed=8, where="").rows
    pd.testing.assert_frame_equal(sample, again)
    assert not sample["distance"].equals(other["distance"])


def test_null_or_a_size_above_the_split_uses_the_whole_split():
    frame = features_frame()
    for size in (None, len(frame), len(frame) + 1):
        sample = sample_frame(frame, "time_hour", size, seed=7, where="")
        assert sample.rows is frame
        assert sample.card == {"rows_used": len(frame), "rows_available": len(frame)}


@pytest.mark.parametrize("sample_rows", [None, 100])
def test_the_dask_engine_draws_the_pandas_engines_rows_whatever_the_parts_and_fits_the_same_model(tmp_path, sample_rows):
    """Two part layouts (by month; and cut mid-month, a part with no sampled row) against the pandas engine on one file."""
    frame = features_frame()
    single = write_layout(frame, tmp_path / "single", None)
    expected = sample_frame(read_parquet(single, ""), "time_hour", sample_rows, seed=7, where="")
    expected_model = model_bytes(expected.rows, sample_rows, tmp_path)
    assert expected.available == len(frame)
    for name, cuts in {"months": [60, 150], "uneven": [7, 8, 100, 233]}.items():
        path = write_layout(frame, tmp_path / name, cuts)
        with dask.config.set(scheduler="sync"):
            sample = sample_partitioned(path, "time_hour", sample_rows, seed=7, hint="")
        pd.testing.assert_frame_equal(sample.rows, expected.rows, check_exact=True)
        assert sample.available == len(frame)
        assert model_bytes(sample.rows, sample_rows, tmp_path) == expected_model, name


def test_a_missing_time_stops_with_one_line():
    frame = features_frame()
    frame.loc[5, "time_hour"] = pd.NaT
    with pytest.raises(UserError, match=r"^data/features/train.parquet: column 'time_hour' has 1 missing time\(s\)"):
        sample_frame(frame, "time_hour", 10, seed=7, where="data/features/train.parquet")


@pytest.mark.parametrize("value", [0, -3, "many", 2.5])
def test_sample_rows_must_be_null_or_at_least_one(value):
    params = project_params()
    params["train"]["sample_rows"] = value
    with pytest.raises(UserError) as error:
        parse_params(params)
    message = str(error.value)
    assert "'train.sample_rows'" in message
    assert "\n" not in message


def test_the_stage_on_a_local_cluster_samples_the_parts_and_writes_the_pandas_engines_model(tmp_path):
    """`python -m stages.train` on the dask engine (a local cluster of one worker process) with the split as a folder
    of parts: the model bytes the pandas engine's functions give on the split as one file, the sample in the card."""
    frame = features_frame()
    params = project_params()
    params["model"] = {
        "name": "hgb",
        "_target_": "sklearn.ensemble.HistGradientBoostingClassifier",
        "preprocessing": "none",
        "max_iter": 15,
    }
    params["train"] |= {"seed": 7, "cv_folds": 0, "sample_rows": 100}
    dask_keys = yaml.safe_load((PROJECT / "conf/engine/dask.yaml").read_text())
    params["engine"] = {**dask_keys, "workers": 1, "threads_per_worker": 1, "memory_limit": "1GiB", "spill_dir": "spill"}
    (tmp_path / FEATURES_DIR).mkdir(parents=True)
    write_layout(frame, tmp_path / FEATURES_DIR, [60, 150])
    (tmp_path / FEATURE_SPEC).write_text(json.dumps(SPEC.to_json()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_module("stages.train", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "on 100 rows (a sample of 300)" in result.stdout
    card = json.loads((tmp_path / MODEL_CARD).read_text())
    assert card["sample"] == {"rows_used": 100, "rows_available": 300}
    assert card["train"]["sample_rows"] == 100
    parsed = parse_params(params)
    expected = train_model(sample_frame(frame, "time_hour", 100, seed=7, where="").rows, SPEC, parsed.model, parsed.train).model
    model_writer(expected)(tmp_path / "expected.skops")
    assert (tmp_path / MODEL_FILE).read_bytes() == (tmp_path / "expected.skops").read_bytes()
