"""Configuration: conf/ composes into params.yaml exactly as `dvc exp run` does, and dvc.yaml uses it per stage."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest
import yaml

from stages.compose import compose
from stages.lib.errors import UserError
from tests.conftest import PROJECT, run_module


def test_committed_params_equal_the_composition_of_conf():
    assert (PROJECT / "params.yaml").read_text() == compose(PROJECT / "conf")


def test_group_override_swaps_only_that_section():
    default = yaml.safe_load(compose(PROJECT / "conf"))
    logreg = yaml.safe_load(compose(PROJECT / "conf", ["model=logreg", "train.seed=7"]))
    assert logreg["model"] == yaml.safe_load((PROJECT / "conf/model/logreg.yaml").read_text())
    assert logreg["train"]["seed"] == 7
    assert {key: value for key, value in logreg.items() if key not in ("model", "train")} == {
        key: value for key, value in default.items() if key not in ("model", "train")
    }


def test_every_group_option_composes():
    for group in sorted(path for path in (PROJECT / "conf").iterdir() if path.is_dir()):
        for option in sorted(group.glob("*.yaml")):
            composed = yaml.safe_load(compose(PROJECT / "conf", [f"{group.name}={option.stem}"]))
            assert group.name in composed


def test_unknown_group_option_is_one_clear_line():
    with pytest.raises(UserError, match="Could not find 'model/xgboost' Available options in 'model': hgb logreg$"):
        compose(PROJECT / "conf", ["model=xgboost"])


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_edit_in_conf_reaches_params_and_check_catches_staleness(project_copy):
    config = project_copy / "conf/train/default.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 1234"))
    stale = run_module("stages.compose", project_copy, "--check")
    assert stale.returncode == 2
    assert "+  seed: 1234" in stale.stderr
    assert stale.stderr.strip().endswith("error: params.yaml differs from the composition of conf/; run `make params` and commit it")

    assert run_module("stages.compose", project_copy).returncode == 0
    assert yaml.safe_load((project_copy / "params.yaml").read_text())["train"]["seed"] == 1234
    assert run_module("stages.compose", project_copy, "--check").returncode == 0


def test_cli_override_error_exits_2_without_touching_params(project_copy):
    before = (project_copy / "params.yaml").read_bytes()
    result = run_module("stages.compose", project_copy, "model=nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: conf/: cannot compose the configuration")
    assert (project_copy / "params.yaml").read_bytes() == before


def test_dvc_composes_the_same_conf_dir():
    config = configparser.ConfigParser()
    config.read(PROJECT / ".dvc/config")
    assert config["hydra"]["enabled"] == "true"
    assert config["hydra"].get("config_dir", "conf") == "conf"
    assert config["hydra"].get("config_name", "config") == "config"


def test_each_stage_tracks_only_its_own_params_sections():
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    tracked = {name: stage.get("params", []) for name, stage in stages.items()}
    assert tracked == {
        "prepare": ["data"],
        "featurize": ["features", "data.splits"],
        "train": ["model", "train"],
        "evaluate": ["evaluate"],
        "drift-check": ["drift"],
    }
    # `runtime` (thread counts) is read by every stage and tracked by none: results do not depend on it (tests/test_runtime.py).
    assert sorted({section.split(".")[0] for sections in tracked.values() for section in sections} | {"runtime"}) == sorted(params)
