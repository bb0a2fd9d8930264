"""Configuration: conf/ composes into params.yaml exactly as `dvc exp run` does, and dvc.yaml uses it per stage."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest
import yaml

from commands.compose import compose
from stages.lib.config import DriftThresholds, parse_params
from stages.lib.errors import UserError
from tests.conftest import PROJECT, TEST_CHOICES, choice_overrides, run_module


def test_committed_params_equal_the_composition_of_conf():
    assert (PROJECT / "params.yaml").read_text() == compose(PROJECT / "conf")


def test_group_override_swaps_only_that_section():
    default = yaml.safe_load(compose(PROJECT / "conf", choice_overrides()))
    logreg = yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), "model=logreg", "train.seed=7"]))
    assert logreg["model"] == yaml.safe_load((PROJECT / "conf/model/logreg.yaml").read_text())
    assert logreg["train"]["seed"] == 7
    assert {key: value for key, value in logreg.items() if key not in ("model", "train")} == {
        key: value for key, value in default.items() if key not in ("model", "train")
    }


def groups() -> list[Path]:
    return sorted(path for path in (PROJECT / "conf").iterdir() if path.is_dir())


@pytest.mark.parametrize("group", [path.name for path in groups()])
def test_each_option_of_a_group_becomes_its_section_and_leaves_the_others(group, params):
    options = sorted((PROJECT / "conf" / group).glob("*.yaml"))
    sections = {}
    for option in options:
        composed = yaml.safe_load(compose(PROJECT / "conf", [*choice_overrides(), f"{group}={option.stem}"]))
        # The expected section is the option file itself, read with plain YAML, not through Hydra.
        assert composed[group] == yaml.safe_load(option.read_text()), option.name
        assert {key: value for key, value in composed.items() if key != group} == {
            key: value for key, value in params.items() if key != group
        }, option.name
        sections[option.stem] = composed[group]
    # Choosing another option changes the section: no two options of a group compose alike.
    assert len({yaml.safe_dump(section, sort_keys=True) for section in sections.values()}) == len(options)


def test_the_tests_choose_an_existing_option_in_every_group_of_the_defaults():
    defaults = yaml.safe_load((PROJECT / "conf/config.yaml").read_text())["defaults"]
    selected_groups = [next(iter(entry)) for entry in defaults if isinstance(entry, dict)]
    assert sorted(TEST_CHOICES) == sorted(selected_groups) == [path.name for path in groups()]
    for group, option in TEST_CHOICES.items():
        assert (PROJECT / "conf" / group / f"{option}.yaml").is_file(), f"{group}={option}"


def test_the_tests_configuration_ignores_what_conf_config_yaml_selects(tmp_path, params):
    # A user selects other options in conf/config.yaml (as the README invites): in a copy of conf/,
    # every group with another option gets it.
    conf = shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    config = yaml.safe_load((conf / "config.yaml").read_text())
    others = {}
    for entry in config["defaults"]:
        if isinstance(entry, dict):
            ((group, _),) = entry.items()
            alternatives = sorted(path.stem for path in (conf / group).glob("*.yaml") if path.stem != TEST_CHOICES[group])
            if alternatives:
                entry[group] = others[group] = alternatives[0]
    (conf / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert {"data", "features", "model"} <= set(others)
    # The edit has teeth: composed as a user would (no overrides), those sections change.
    users = yaml.safe_load(compose(conf))
    for group in others:
        assert users[group] == yaml.safe_load((conf / group / f"{others[group]}.yaml").read_text()) != params[group]
    # What the tests compose (their fixture's overrides) stays exactly the same.
    assert yaml.safe_load(compose(conf, choice_overrides())) == params
    assert (params["data"]["name"], params["model"]["name"]) == ("nycflights13", "hgb")


def test_unknown_group_option_is_one_clear_line():
    with pytest.raises(UserError, match="Could not find 'model/xgboost' Available options in 'model': hgb hgb_regressor logreg$"):
        compose(PROJECT / "conf", ["model=xgboost"])


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_edit_in_conf_reaches_params_and_check_catches_staleness(project_copy):
    config = project_copy / "conf/train/default.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 1234"))
    stale = run_module("commands.compose", project_copy, "--check")
    assert stale.returncode == 1  # a finding; 2 is for conf/ that cannot be composed
    assert "+  seed: 1234" in stale.stderr
    assert stale.stderr.strip().endswith("error: params.yaml differs from the composition of conf/; run `make params` and commit it")

    assert run_module("commands.compose", project_copy).returncode == 0
    assert yaml.safe_load((project_copy / "params.yaml").read_text())["train"]["seed"] == 1234
    assert run_module("commands.compose", project_copy, "--check").returncode == 0


def test_cli_override_error_exits_2_without_touching_params(project_copy):
    before = (project_copy / "params.yaml").read_bytes()
    result = run_module("commands.compose", project_copy, "model=nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: conf/: cannot compose the configuration")
    assert (project_copy / "params.yaml").read_bytes() == before


def test_dvc_composes_the_same_conf_dir():
    config = configparser.ConfigParser()
    config.read(PROJECT / ".dvc/config")
    assert config["hydra"]["enabled"] == "true"
    assert config["hydra"].get("config_dir", "conf") == "conf"
    assert config["hydra"].get("config_name", "config") == "config"


def test_each_stage_tracks_only_its_own_params_sections(params):
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    tracked = {name: stage.get("params", []) for name, stage in stages.items()}
    assert tracked == {
        "sources": [],  # always_changed: it runs every time and reads only data.source and data.join's sources
        "prepare": ["data", "engine.name"],
        "featurize": ["features", "data.splits", "engine.name"],
        "train": ["model", "train", "engine.name"],
        "evaluate": ["evaluate", "engine.name"],
        "drift-check": ["drift", "engine.name", "data.name", "data.splits.reference", "data.splits.current", "data.time.column"],
        "production-store": ["monitor.id_column"],
        # The monitor reads its own section, evaluate's threshold and the drift engine's verdict rule (not drift.plots or drift.gate).
        "monitor": [
            "monitor",
            "evaluate.threshold",
            *(f"drift.{key}" for key in DriftThresholds.model_fields),
            "engine.name",
        ],
    }
    # `runtime` (thread counts) is read by every stage and tracked by none: results do not depend on it (tests/test_runtime.py).
    # `engine`: a stage that branches on it tracks `engine.name` only; its other keys say where to run, not what to compute.
    untracked = {"runtime", "engine"}
    assert sorted({section.split(".")[0] for sections in tracked.values() for section in sections} | untracked) == sorted(params)


# Options that need another option of a second group: a regression contract needs a regressor.
COMPANIONS = {("data", "seattle_weather"): ["model=hgb_regressor"], ("model", "hgb_regressor"): ["data=seattle_weather"]}


@pytest.mark.parametrize("group", [path.name for path in groups()])
def test_every_option_of_every_group_validates(group):
    for option in sorted((PROJECT / "conf" / group).glob("*.yaml")):
        choices = [*choice_overrides(), f"{group}={option.stem}", *COMPANIONS.get((group, option.stem), [])]
        parse_params(yaml.safe_load(compose(PROJECT / "conf", choices)), conf=PROJECT / "conf")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "features/default.yaml",
            "  windows: auto",
            "  windwos: auto",
            "unknown key 'features.history.windwos' (from conf/features/ or a -S override); "
            "known keys: enabled, keys, max_key_levels, smoothing, windows",
        ),
        ("train/default.yaml", "cv_folds: 3", "cv_folds: 1", "'train.cv_folds' must be 0 (off) or at least 2, got 1"),
        ("model/hgb.yaml", "max_iter: 300", "max_itr: 300", "'model.max_itr' (from conf/model/hgb.yaml or a -S override) is not a keyword"),
    ],
)
def test_a_mistake_in_conf_fails_make_params_naming_the_key_and_writes_nothing(project_copy, file, old, new, message):
    path = project_copy / "conf" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    before = (project_copy / "params.yaml").read_bytes()
    for extra in ([], ["--check"]):
        result = run_module("commands.compose", project_copy, *extra, *choice_overrides())
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: params.yaml composed from conf/: {message}")
        assert result.stderr.count("\n") == 1  # one line, no traceback
    assert (project_copy / "params.yaml").read_bytes() == before


def test_a_cli_override_with_a_typo_fails_before_writing(project_copy):
    before = (project_copy / "params.yaml").read_bytes()
    result = run_module("commands.compose", project_copy, *choice_overrides(), "+model.max_itr=5")
    assert result.returncode == 2 and "'model.max_itr'" in result.stderr
    assert (project_copy / "params.yaml").read_bytes() == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # scikit-learn's own constraint (HistGradientBoostingClassifier._parameter_constraints), not a table of ours
        (
            "model.max_iter=ten",
            "'model.max_iter' = 'ten' is not a valid value for HistGradientBoostingClassifier: it must be an int in the range [1, inf)",
        ),
        ("+modle.max_iter=50", "unknown key 'modle' (from conf/config.yaml or a -S override)"),  # a misspelt section added with +
    ],
)
def test_a_hyperparameter_of_the_wrong_type_or_value_fails_compose_in_one_line(project_copy, override, message):
    before = (project_copy / "params.yaml").read_bytes()
    result = run_module("commands.compose", project_copy, *choice_overrides(), override)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: params.yaml composed from conf/: {message}") and result.stderr.count("\n") == 1
    assert (project_copy / "params.yaml").read_bytes() == before
