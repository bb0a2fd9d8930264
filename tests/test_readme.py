"""The README's "Bring your own data" walk-through works as written: a CSV and a contract, no code."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import vega_datasets
import yaml

from commands.compose import compose
from stages.lib.catalog import FEATURE_MANIFEST, METRICS_FILE, SCHEMA_FILE
from tests.conftest import PROJECT, choice_overrides, run_module

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
