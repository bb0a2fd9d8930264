"""A stage that fails under `dvc repro` leaves its git-tracked outputs in place (DVC deletes them first)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import vega_datasets
import yaml

from commands.compose import compose
from stages.lib.catalog import PREPARE_SUMMARY, SCHEMA_FILE
from tests.conftest import PROJECT, choice_overrides, tool_env
from tests.test_readme import readme_contract

ENV = {**tool_env(), "OMP_NUM_THREADS": "1"}


def run(repo: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 or not check, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_a_failed_prepare_restores_its_git_tracked_outputs(tmp_path):
    """The README's "Bring your own data" project: prepare runs and is committed, then a bad contract fails it."""
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("stages", "conf"):
        shutil.copytree(PROJECT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(PROJECT / name, repo / name)
    (repo / "data/raw").mkdir(parents=True)
    shutil.copy(Path(vega_datasets.__file__).parent / "_data/seattle-weather.csv", repo / "data/raw/weather.csv")
    (repo / "conf/data/my_weather.yaml").write_text(readme_contract())
    (repo / "params.yaml").write_text(compose(repo / "conf", [*choice_overrides(), "data=my_weather", "model=hgb_regressor"]))
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, sys.executable, "-m", "dvc", "init", "-q")
    run(repo, sys.executable, "-m", "dvc", "repro", "prepare")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "prepared")
    tracked = [str(SCHEMA_FILE), str(PREPARE_SUMMARY)]
    committed = {path: (repo / path).read_text() for path in tracked}
    assert run(repo, "git", "ls-files", *tracked).stdout.split() == tracked

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["time"]["column"] = "day"  # no such column: prepare stops
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    failed = run(repo, sys.executable, "-m", "dvc", "repro", "prepare", check=False)

    assert failed.returncode != 0
    assert (
        "error: weather.csv: missing column 'day' (the target and time columns); rename it in the source or fix conf/data/ "
        f"(restored {SCHEMA_FILE}, {PREPARE_SUMMARY} from git: DVC deletes a stage's outputs before running it)\n"
    ) in failed.stderr
    assert {path: (repo / path).read_text() for path in tracked} == committed
    assert run(repo, "git", "status", "--porcelain").stdout.splitlines() == [" M params.yaml"]  # `git commit -a` deletes nothing
