"""Scoring on the dask engine (issue 13): the model applied per partition gives the pandas engine's scores, marks
and refusals, whatever the cut of the input; a folder input and output through `commands.predict`; a version whose
own code predates the engine is refused. The tiny registered project of tests/test_scoring.py, shared with it.
Equality runs on an in-process cluster (threads); the command joins one by engine.scheduler."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import FEATURE_SPEC, HISTORY_EVENTS, PREPARED_DIR
from stages.lib.errors import UserError
from stages.lib.io import parquet_writer, write_outputs
from stages.lib.scoring import score_files
from stages.lib.scoring_versions import check_engine, entry_engines
from tests import warm_python
from tests.conftest import PROJECT, run_module
from tests.test_scoring import SOURCE, TARGET, TIME, registered_project

pytestmark = pytest.mark.slow  # a real trained project, git and dvc

MARKS = ["prediction", "history_complete", "beyond_history"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return registered_project(tmp_path_factory)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=True) as connected,
    ):
        yield connected


def rows_around_the_history(project: Path) -> pd.DataFrame:
    """Test rows (covered), rows whose windows reach past the last stored outcome (partly covered) and rows wholly
    beyond it, in time order: the pieces' history cuts, coverage marks and the refusal all come into play."""
    test = pd.read_parquet(project / PREPARED_DIR / "test.parquet").drop(columns=[TARGET])
    last = pd.read_parquet(project / HISTORY_EVENTS)[TIME].max()
    history = json.loads((project / FEATURE_SPEC).read_text())["history"]
    edge = last + pd.Timedelta(history["known_after"])
    widest = max(pd.Timedelta(window) for window in history["windows"])
    later = test.iloc[:24].assign(**{TIME: [edge + widest * k / 16 for k in range(24)]})
    return pd.concat([test, later], ignore_index=True)


def pandas_scores(project: Path, path: Path, outcomes: list[Path], allow: bool) -> pd.DataFrame:
    return score_files(project, path, outcomes, allow)


def assert_same_scores(scored: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(scored.drop(columns=["prediction"]), expected.drop(columns=["prediction"]))
    assert np.allclose(scored["prediction"], expected["prediction"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("outcomes", [False, True], ids=["history", "with-outcomes"])
def test_scores_on_dask_are_the_pandas_engines_whatever_the_cut(project, client, tmp_path, outcomes):
    """Parquet cut into row groups of 40 and of 64 rows (and, without outcomes, the same rows as a CSV cut in byte
    ranges): each scores, partition by partition, as the pandas engine scores the whole file; with the year's
    outcomes supplied (the raw flights), the later rows' history counts them across partition boundaries."""
    from stages.lib.scoring_partitioned import input_pieces, score_partitioned

    rows = rows_around_the_history(project)
    extra = [project / SOURCE] if outcomes else []
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    expected = pandas_scores(project, tmp_path / "rows.parquet", extra, True)
    # Without outcomes 8 rows lie beyond the history and 15 more are partly covered; with them every row is covered.
    assert expected["beyond_history"].sum() == (0 if outcomes else 8)
    assert (~expected["history_complete"]).sum() == (0 if outcomes else 23)
    for size in (40, 64):
        path = tmp_path / f"rows-{size}.parquet"
        rows.to_parquet(path, index=False, row_group_size=size)
        assert len(input_pieces(path, 1)) == -(-len(rows) // size) > 1
        assert_same_scores(score_partitioned(project, path, extra, True).collect(), expected)
    if not outcomes:
        # The time as text, as a CSV holds it: the pieces get the types pandas infers over the whole file.
        rows.assign(**{TIME: rows[TIME].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(tmp_path / "rows.csv", index=False)
        blocksize = (tmp_path / "rows.csv").stat().st_size // 3 + 1
        assert len(input_pieces(tmp_path / "rows.csv", blocksize)) == 3
        scored = score_partitioned(project, tmp_path / "rows.csv", extra, True, blocksize=blocksize).collect()
        assert_same_scores(scored, pandas_scores(project, tmp_path / "rows.csv", extra, True))


def test_refusals_on_dask_are_the_pandas_engines_lines(project, client, tmp_path):
    """Rows beyond the known outcomes, and a bad value in one partition, stop both engines with the same line."""
    from stages.lib.scoring_partitioned import score_partitioned

    rows = rows_around_the_history(project)
    rows.to_parquet(tmp_path / "rows.parquet", index=False, row_group_size=9)
    with pytest.raises(UserError) as pandas_refusal:
        pandas_scores(project, tmp_path / "rows.parquet", [], False)
    with pytest.raises(UserError) as dask_refusal:
        score_partitioned(project, tmp_path / "rows.parquet", [], False)
    assert "8 of " in str(pandas_refusal.value) and "lie beyond the known outcomes" in str(pandas_refusal.value)
    assert str(dask_refusal.value) == str(pandas_refusal.value)

    bad = rows.assign(temp=rows["temp"].map(lambda value: None if pd.isna(value) else str(value)))  # numbers as text
    bad.loc[[3, 30, 31], "temp"] = "warm"  # in two partitions: the count is the whole table's
    bad.to_parquet(tmp_path / "bad.parquet", index=False, row_group_size=9)
    with pytest.raises(UserError) as pandas_error:
        pandas_scores(project, tmp_path / "bad.parquet", [], True)
    with pytest.raises(UserError) as dask_error:
        score_partitioned(project, tmp_path / "bad.parquet", [], True)
    assert "column 'temp' must be numeric (as in training), got 'warm' in 3 row(s)" in str(pandas_error.value)
    assert str(dask_error.value) == str(pandas_error.value)


def test_a_folder_of_parts_is_scored_into_a_folder_of_parts_in_input_order(project, client, tmp_path):
    from stages.lib.scoring_partitioned import score_partitioned

    rows = rows_around_the_history(project)
    (tmp_path / "rows").mkdir()
    for index, start in enumerate(range(0, len(rows), 25)):
        rows.iloc[start : start + 25].to_parquet(tmp_path / "rows" / f"part-{index:05d}.parquet", index=False, row_group_size=10)
    rows.to_parquet(tmp_path / "whole.parquet", index=False)
    expected = pandas_scores(project, tmp_path / "whole.parquet", [], True)
    write_outputs({tmp_path / "scores": score_partitioned(project, tmp_path / "rows", [], True).folder_writer()})
    parts = sorted((tmp_path / "scores").iterdir())
    assert [part.name for part in parts] == [f"part-{index:05d}.parquet" for index in range(len(parts))] and len(parts) > len(rows) // 25
    assert_same_scores(pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True), expected)


def dask_repo(project: Path, folder: Path, scheduler: str) -> Path:
    """A copy of the registered project whose params.yaml selects the dask engine at `scheduler`."""
    repo = Path(shutil.copytree(project, folder, symlinks=True))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["engine"] = {
        "name": "dask", "scheduler": scheduler, "workers": 1, "threads_per_worker": 1,
        "memory_limit": "1GiB", "spill_dir": ".dask-spill", "connect_timeout": 10,
    }  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return repo


def test_predict_on_dask_scores_a_registered_version_by_its_own_code_into_a_folder_of_parts(project, client, tmp_path):
    """`commands.predict` with engine dask joining a running scheduler (engine.scheduler): model@v0.0.1's own
    score_here scores a glob of two Parquet files (three row groups) on the cluster and its workers write the scores
    as three parts, which hold the pandas engine's scores of the same rows."""
    repo = dask_repo(project, tmp_path / "project", client.scheduler.address)
    rows = rows_around_the_history(project)
    (tmp_path / "in").mkdir()
    rows.iloc[:40].to_parquet(tmp_path / "in" / "a.parquet", index=False, row_group_size=20)
    rows.iloc[40:].to_parquet(tmp_path / "in" / "b.parquet", index=False)
    rows.to_parquet(tmp_path / "whole.parquet", index=False)
    expected = pandas_scores(project, tmp_path / "whole.parquet", [], True)

    result = run_module(
        "commands.predict", repo, "--model", "model@v0.0.1", "--input", str(tmp_path / "in" / "*.parquet"),
        "--output", str(tmp_path / "scores"), "--score-beyond-history",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"predict: {len(rows):,} rows scored with model@v0.0.1" in result.stdout
    assert "predict: note: 8 row(s) lie beyond the known outcomes" in result.stdout
    parts = sorted((tmp_path / "scores").iterdir())
    assert [part.name for part in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert_same_scores(pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True), expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_on_dask_writes_the_pandas_engines_file(project, client, tmp_path, monkeypatch, suffix):
    """`workspace` scored on dask (predict's main, in this process, joining the cluster by engine.scheduler), the
    input cut into row groups: the output file is, byte for byte, the pandas engine's for the same rows."""
    from commands.predict import main

    repo = dask_repo(project, tmp_path / "project", client.scheduler.address)
    rows = rows_around_the_history(project)
    rows.to_parquet(tmp_path / "rows.parquet", index=False, row_group_size=30)
    expected = pandas_scores(project, tmp_path / "rows.parquet", [], True)
    monkeypatch.chdir(repo)
    main(["--model", "workspace", "--input", str(tmp_path / "rows.parquet"), "--output", str(tmp_path / f"scores{suffix}"),
          "--score-beyond-history"])  # fmt: skip
    if suffix == ".csv":
        assert (tmp_path / "scores.csv").read_bytes() == expected.to_csv(index=False).encode()
    else:
        write_outputs({tmp_path / "expected.parquet": parquet_writer(expected)})
        assert (tmp_path / "scores.parquet").read_bytes() == (tmp_path / "expected.parquet").read_bytes()


def test_a_version_whose_scoring_code_predates_the_dask_engine_is_refused(project, tmp_path):
    from stages.lib.config import EngineConfig

    entry = (project / "commands/score_here.py").read_text()
    assert entry_engines(project) == ("pandas", "dask")
    old = tmp_path / "old"
    (old / "commands").mkdir(parents=True)
    (old / "commands/score_here.py").write_text("\n".join(line for line in entry.splitlines() if not line.startswith("ENGINES =")))
    assert entry_engines(old) == ("pandas",)
    dask = EngineConfig.parse({"name": "dask", "scheduler": None, "workers": 1, "threads_per_worker": 1, "memory_limit": "1GiB",
                               "spill_dir": "s", "connect_timeout": 5})  # fmt: skip
    check_engine(project, "model@v0.0.1", dask)  # today's code: no refusal
    with pytest.raises(UserError) as refused:
        check_engine(old, "model@v0.0.1", dask)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("--model model@v0.0.1: its own scoring code (commands/score_here.py) predates the dask engine")
    assert "engine: pandas" in message


def test_workers_running_other_code_than_the_scoring_checkout_are_refused(client, tmp_path):
    """A checkout whose stages/ differs by one comment from the code the workers run (this process's) joins the
    cluster to score: one line naming a worker, no scoring."""
    code = tmp_path / "code"
    shutil.copytree(PROJECT / "stages", code / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    with (code / "stages/lib/scoring.py").open("a") as changed:
        changed.write("# a later change\n")
    script = (
        "from distributed import Client\n"
        "from stages.lib.config import EngineConfig\n"
        "from stages.lib.errors import run_stage\n"
        "from stages.lib.scoring_partitioned import check_worker_code\n"
        f"config = EngineConfig.parse({{'name': 'dask', 'scheduler': {client.scheduler.address!r}, 'workers': 1, "
        "'threads_per_worker': 1, 'memory_limit': '1GiB', 'spill_dir': 's', 'connect_timeout': 10})\n"
        "def main():\n"
        "    with Client(config.scheduler) as joined:\n"
        "        check_worker_code(joined, config)\n"
        "run_stage(main)\n"
    )
    (tmp_path / "check_code.py").write_text(script)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    result = warm_python.run("check_code", [], tmp_path, env, timeout=120)  # imports stages from `code`
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert (
        line.startswith("error: engine: worker tcp://127.0.0.1:")
        and f"of the scheduler at {client.scheduler.address} runs other code" in line
    )
