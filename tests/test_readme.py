"""README examples work as written: the "Bring your own data" walk-through (a CSV and a contract, no code), the
time-travel block (`make checkout`), and the make targets' answers to the mistakes a new user makes."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import vega_datasets
import yaml

from commands.compose import compose
from stages.lib.catalog import FEATURE_MANIFEST, METRICS_FILE, SCHEMA_FILE
from tests.conftest import PROJECT, choice_overrides, run_module, tool_env

SECTION = "### Bring your own data"


def readme_contract() -> str:
    text = (PROJECT / "README.md").read_text()
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION))]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the walk-through shows exactly one contract"
    return "\n".join(line.removeprefix("   ") for line in blocks[0].splitlines())


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    (tmp_path / "data/raw").mkdir(parents=True)
    # The README copies this file with the same one-liner's path.
    shutil.copy(Path(vega_datasets.__file__).parent / "_data/seattle-weather.csv", tmp_path / "data/raw/weather.csv")
    return tmp_path


def test_the_walk_through_contract_runs_every_stage(project):
    contract = readme_contract()
    assert yaml.safe_load(contract)["name"] == "my_weather"
    (project / "conf/data/my_weather.yaml").write_text(contract)
    (project / "params.yaml").write_text(compose(project / "conf", [*choice_overrides(), "data=my_weather", "model=hgb_regressor"]))
    for module in ("stages.prepare", "stages.featurize", "stages.train", "stages.evaluate"):
        result = run_module(module, project)
        assert result.returncode == 0, f"{module}: {result.stderr}"
    schema = yaml.safe_load((project / SCHEMA_FILE).read_text())
    assert schema["task"] == "regression" and schema["columns"]["weather"]["type"] == "categorical"
    metrics = json.loads((project / METRICS_FILE).read_text())
    assert metrics["r2"] > 0.6
    manifest = yaml.safe_load((project / FEATURE_MANIFEST).read_text())
    assert manifest["features"]["by_family"]["history"] > 0  # known_after switched history on


def test_a_typo_in_the_contract_is_named(project):
    contract = readme_contract().replace("column: date", "column: day")
    (project / "conf/data/my_weather.yaml").write_text(contract)
    (project / "params.yaml").write_text(compose(project / "conf", [*choice_overrides(), "data=my_weather", "model=hgb_regressor"]))
    result = run_module("stages.prepare", project)
    assert result.returncode == 2
    assert (
        result.stderr
        == "error: weather.csv: missing column 'day' (the target and time columns); rename it in the source or fix conf/data/\n"
    )


TIME_TRAVEL = "## Versioning and remote storage"
ENV = tool_env()


def time_travel_commands() -> list[str]:
    """The commands of the section's first shell block, comments and comment lines left out."""
    text = (PROJECT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(TIME_TRAVEL) :], flags=re.DOTALL)
    assert block is not None
    lines = (line.split("  #")[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def shell(repo: Path, command: str) -> subprocess.CompletedProcess:
    """A README line as a user runs it; `make` is this project's Makefile with the venv counted as installed."""
    words = command.split()
    if words[0] == "make":
        words = ["make", "-s", "-f", str(PROJECT / "Makefile"), "-o", ".venv/.installed", *words[1:]]
    return subprocess.run(words, cwd=repo, env=ENV, capture_output=True, text=True, timeout=120)


def commit_data(repo: Path, content: str) -> None:
    (repo / "data.csv").write_text(content)
    for command in ("dvc add -q data.csv", "git add -A", f"git commit -qm {len(content)}"):
        assert shell(repo, command).returncode == 0


@pytest.mark.slow  # real git, dvc and make in a temporary repository
def test_the_time_travel_block_checks_out_the_version_it_tagged_and_says_how_to_come_back(tmp_path):
    commands = time_travel_commands()
    assert commands[0].startswith("git tag ") and [command.split()[:2] for command in commands[1:]] == [["make", "checkout"]] * 2
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / ".venv").symlink_to(PROJECT / ".venv")
    for command in ("git init -q -b main", "dvc init -q"):
        assert shell(repo, command).returncode == 0
    (repo / ".gitignore").write_text(".venv\n")
    commit_data(repo, "id,value\n1,1\n")
    assert shell(repo, commands[0]).returncode == 0  # the tag
    commit_data(repo, "id,value\n1,2\n")

    back = shell(repo, commands[1])
    assert back.returncode == 0, back.stderr
    assert (repo / "data.csv").read_text() == "id,value\n1,1\n"  # the tagged version's data
    tag = commands[0].split()[2]
    assert (
        back.stdout.splitlines()[-1]
        == f"note: detached HEAD at {tag} (on no branch: commit nothing here); go back with make checkout REV=main"
    )
    newest = shell(repo, commands[2])
    assert newest.returncode == 0, newest.stderr
    assert (repo / "data.csv").read_text() == "id,value\n1,2\n" and "detached" not in newest.stdout

    # Its data gone from the cache: DVC's own message is shown, not only make's "Error 2".
    digest = hashlib.md5(b"id,value\n1,1\n").hexdigest()
    (repo / ".dvc/cache/files/md5" / digest[:2] / digest[2:]).unlink()
    failed = shell(repo, commands[1])
    assert failed.returncode != 0
    assert "ERROR: failed to checkout" in failed.stderr or "ERROR: Checkout failed" in failed.stderr, failed.stderr
    assert f"error: git is at {tag} but `dvc checkout --force` failed (DVC's message above)" in failed.stderr


def test_make_predict_without_its_variables_says_what_to_pass_and_how_to_make_an_input(tmp_path):
    made = shell(tmp_path, "make predict INPUT=rows.csv")
    assert made.returncode != 0 and made.stdout == ""
    usage, hint = made.stderr.splitlines()[:2]
    assert usage == "usage: make predict MODEL=model@v0.0.1|model#prod|workspace INPUT=rows.csv OUTPUT=scores.csv (missing: MODEL OUTPUT)"
    readme = (PROJECT / "README.md").read_text()
    one_liner = hint.split(": ", 1)[1]
    assert "data/prepared/test.parquet" in one_liner and one_liner in readme  # the README shows the same line


@pytest.mark.slow  # real git, dvc and make in a temporary repository
def test_make_metrics_says_so_when_nothing_changed(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / ".venv").symlink_to(PROJECT / ".venv")
    for command in ("git init -q -b main", "dvc init -q"):
        assert shell(repo, command).returncode == 0
    made = shell(repo, "make metrics")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("metrics: no change between the workspace and HEAD")
