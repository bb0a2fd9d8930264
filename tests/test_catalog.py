"""Paths once: dvc.yaml and stages/lib/catalog.py name the same artifacts, stage by stage.

DVC reads dvc.yaml, the stages read the catalogue; these tests are what keeps the two equal (dvc.yaml
takes no `vars:` from the catalogue: like example-get-started, it stays the one readable place that
names each stage's inputs and outputs). That each stage really writes what both say is checked by
running the stages: tests/test_stage_commands.py.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from stages.lib.catalog import PLOTS_DIR, STAGE_OUTPUTS, UNTRACKED_OUTPUTS
from tests.conftest import PROJECT
from tests.dvc_pipeline import catalogued, declared_stages, inside

DECLARED = declared_stages()
README_SECTION = "## Where outputs land"


def posix(paths) -> set[str]:
    return {path.as_posix() for path in paths}


def test_dvc_yaml_runs_the_stages_the_catalogue_lists_in_its_order():
    assert list(DECLARED) == list(STAGE_OUTPUTS)


@pytest.mark.parametrize("name", list(STAGE_OUTPUTS))
def test_each_stage_declares_exactly_the_outputs_the_catalogue_gives_it(name):
    declared, catalogue = set(DECLARED[name].outputs), posix(STAGE_OUTPUTS[name])
    assert declared == catalogue, (
        f"stage {name}: in dvc.yaml only {sorted(declared - catalogue)}; in the catalogue's STAGE_OUTPUTS only {sorted(catalogue - declared)}"
    )


def test_every_data_dependency_is_an_output_of_an_earlier_stage():
    written: set[str] = set()
    for name, stage in DECLARED.items():
        unknown = {dep for dep in stage.data_deps if not inside(dep, written)}
        assert not unknown, f"stage {name} depends on {sorted(unknown)}, which no earlier stage writes"
        written |= posix(STAGE_OUTPUTS[name])


def test_every_catalogued_path_is_an_output_inside_one_or_a_folder_of_them():
    outputs = {path for stage in DECLARED.values() for path in stage.outputs}
    untracked = posix(UNTRACKED_OUTPUTS)
    stray = {
        name: path
        for name, path in catalogued().items()
        if not inside(path, outputs) and path not in untracked and path != PLOTS_DIR.as_posix()
    }
    assert stray == {}, "the catalogue names paths that no dvc.yaml stage writes"
    assert {path for path in outputs if path not in catalogued().values()} == set()


def test_untracked_outputs_are_ignored_by_git():
    """featurize's timings differ on every run: DVC does not track them, so git must not either."""
    for path in posix(UNTRACKED_OUTPUTS):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=PROJECT).returncode == 0, f"{path} is not git-ignored"


def test_top_level_plots_and_the_model_artifact_name_catalogued_outputs():
    pipeline = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    outputs = {path for stage in DECLARED.values() for path in stage.outputs}
    plotted = {path for plot in pipeline.get("plots", []) for spec in plot.values() for path in spec["y"]}
    artifacts = {artifact["path"] for artifact in pipeline.get("artifacts", {}).values()}
    assert plotted and artifacts and (plotted | artifacts) <= outputs


def readme_table() -> list[tuple[str, str, str]]:
    """The README's "Where outputs land" table: (first path of the row, stage that writes it, where it is stored)."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(README_SECTION) : text.index("\n## ", text.index(README_SECTION) + 1)]
    rows = re.findall(r"^\| `([^`]+)`[^|]* \| ([\w-]+)[^|]* \| ([^|]+) \|$", section, flags=re.MULTILINE)
    assert rows, f"no table in README's {README_SECTION!r}"
    return [(path, stage, stored.strip()) for path, stage, stored in rows]


def test_the_readme_table_of_outputs_matches_dvc_yaml():
    """Each row names an output (or files in one) of the stage it says, stored where dvc.yaml says; no output is left out."""
    covered = set()
    for path, stage, stored in readme_table():
        folder = path.split("*")[0].rstrip("/")  # data/prepared/*.parquet: files in data/prepared
        globbed = "*" in path
        matches = {out for out in DECLARED[stage].outputs if out == path or (globbed and (inside(out, {folder}) or inside(folder, {out})))}
        assert matches, f"README: {path} is not an output of {stage} in dvc.yaml"
        expected = "git" if matches <= DECLARED[stage].uncached else "DVC cache"
        assert stored == expected, f"README: {path} is stored in {expected}, not {stored}"
        covered |= matches
    assert {path for stage in DECLARED.values() for path in stage.outputs} - covered == set()


# Paths written for people (README, make targets, CI scripts and workflows) that point into the pipeline's
# folders. Not the pipeline's: the user's raw data (`dvc add`-ed) and the pull-request report's folder.
MENTION = re.compile(r"(?<![\w/.-])((?:data|models|reports)/[\w./*<>-]*)")
NOT_PIPELINE = ("data/raw", "reports/pr/")
FOR_PEOPLE = ["README.md", "Makefile", *sorted(path.relative_to(PROJECT).as_posix() for path in (PROJECT / ".ci").glob("*"))]
FOR_PEOPLE += sorted(path.relative_to(PROJECT).as_posix() for path in (PROJECT / ".github/workflows").glob("*.y*ml"))


def named(path: str) -> bool:
    """True when `path` (perhaps a glob such as reports/plots/*.json) is a catalogued output, inside one, or a folder of them."""
    outputs = {out for stage in DECLARED.values() for out in stage.outputs} | posix(UNTRACKED_OUTPUTS)
    folder = path.split("*")[0].rstrip("/")
    return inside(folder, outputs) or any(inside(out, {folder}) for out in outputs)


@pytest.mark.parametrize("name", [name for name in FOR_PEOPLE if (PROJECT / name).is_file()])
def test_artifact_paths_written_for_people_are_catalogued(name):
    text = (PROJECT / name).read_text(encoding="utf-8")
    mentioned = {match.rstrip(".,:") for match in MENTION.findall(text)}
    unknown = sorted(path for path in mentioned if not path.startswith(NOT_PIPELINE) and not named(path))
    assert unknown == [], f"{name} names pipeline paths that no dvc.yaml stage writes"


def test_the_drawn_pipeline_shows_every_stage():
    """README's drawing of the pipeline (`dvc dag`'s, whose layout varies with the terminal) boxes every dvc.yaml stage."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    start = text.index("draws it:\n\n```\n") + len("draws it:\n\n```\n")
    drawn = set(re.findall(r"\| ([\w-]+) \|", text[start : text.index("```", start)]))
    assert drawn == set(declared_stages())
