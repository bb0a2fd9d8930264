"""The engine choice (conf/engine/): validated at compose, and the dask engine's cluster started, used and stopped."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import yaml

from commands.compose import compose
from stages.lib.config import EngineConfig, parse_params
from stages.lib.engine import engine_session, lost_workers_message
from stages.lib.errors import UserError
from tests.conftest import PROJECT, choice_overrides


def dask_params(**changes) -> dict:
    params = yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), "engine=dask"]))
    params["engine"].update(changes)
    return params


def test_the_dask_engine_composes_with_every_key_and_pandas_with_its_name_alone():
    engine = parse_params(dask_params()).engine
    assert engine.distributed and engine.scheduler is None and engine.workers >= 1
    assert yaml.safe_load(compose(PROJECT / "conf", choice_overrides()))["engine"] == {"name": "pandas"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "spark"}, "'engine.name' must be one of pandas, dask, got 'spark'"),
        ({"memory_limit": "lots"}, "'engine.memory_limit' must be a size such as 3GiB"),
        ({"scheduler": "10.0.0.5:8786"}, "'engine.scheduler' must be null or a scheduler address such as tcp://"),
        ({"workers": 0}, "'engine.workers' must be at least 1"),
    ],
)
def test_a_bad_engine_key_is_one_line_naming_it(changes, message):
    with pytest.raises(UserError) as raised:
        parse_params(dask_params(**changes))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_pandas_engine_refuses_a_dask_key_and_dask_needs_all():
    with pytest.raises(UserError, match="'engine.workers' is a dask engine key; the pandas engine takes only `name`"):
        EngineConfig.parse({"name": "pandas", "workers": 2}, ["engine"])
    with pytest.raises(UserError, match="the dask engine needs 'engine.spill_dir'"):
        EngineConfig.parse({k: v for k, v in dask_params()["engine"].items() if k != "spill_dir"}, ["engine"])


def test_a_local_cluster_runs_the_work_on_its_workers_and_stops(tmp_path):
    config = parse_params(dask_params(workers=2, memory_limit="1GiB", spill_dir="spill")).engine
    frame = pd.DataFrame({"key": [i % 7 for i in range(10_000)], "value": range(10_000)})
    with engine_session(config, tmp_path) as client:
        import dask.dataframe as dd

        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(worker["host"] == "127.0.0.1" for worker in workers.values())
        sums = dd.from_pandas(frame, npartitions=5).groupby("key")["value"].sum().compute().sort_index()
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert sums.equals(frame.groupby("key")["value"].sum())  # independent: pandas in this process
    assert len(pids) == 2 and (tmp_path / "spill").is_dir()
    for _ in range(50):  # the workers' processes are gone once the session ends
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def test_an_unreachable_scheduler_is_one_line_naming_the_key(tmp_path):
    config = parse_params(dask_params(scheduler="tcp://127.0.0.1:9", connect_timeout=1)).engine
    expected = r"^engine.scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"
    with pytest.raises(UserError, match=expected), engine_session(config, tmp_path):
        pass


def _alive(pid: int) -> bool:
    try:
        __import__("os").kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_work_lost_with_its_workers_is_one_line_naming_the_engine_key():
    from distributed import KilledWorker

    config = parse_params(dask_params(scheduler="tcp://10.0.0.5:8786")).engine
    message = lost_workers_message(KilledWorker(("score-abc", 3), None, 3), config)
    assert message is not None and "\n" not in message
    assert message.startswith("engine: Dask gave up on task ('score-abc', 3) of the scheduler at tcp://10.0.0.5:8786")
    assert "raise engine.memory_limit" in message
    assert lost_workers_message(ValueError("the stage's own error"), config) is None
