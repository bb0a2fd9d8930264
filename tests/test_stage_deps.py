"""Each stage in dvc.yaml depends on exactly the project modules it imports, so unrelated edits rerun nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from commands.verify_cache import FETCH_MODULE
from stages.lib.scoring_versions import ENTRY_MODULE
from tests import warm_python
from tests.dvc_pipeline import COMMAND

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def loaded(statement: str) -> dict[str, str | None]:
    """Every module a clean interpreter holds after `statement`, with its file (run from the project root)."""
    probe = f"{statement}; import sys, json; print(json.dumps({{n: getattr(m, '__file__', None) for n, m in sys.modules.items()}}))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def project_modules_of(module: str, folder: Path) -> dict[str, str | None]:
    """The project's modules (stages.*) a process running `python -m module` holds after importing it, with
    their files. From the warm interpreter (tests/warm_python.py): it preloads only third-party libraries, so
    which project files an import pulls in is what a cold interpreter shows."""
    probe = folder / "import_probe.py"
    probe.write_text(
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items() if n.split('.')[0] == 'stages'}))\n"
    )
    result = warm_python.run("import_probe", [], REPO, {**os.environ, "PYTHONPATH": str(folder)}, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def project_files(modules: dict[str, str | None]) -> set[str]:
    return {Path(path).resolve().relative_to(REPO).as_posix() for name, path in modules.items() if name.split(".")[0] == "stages"}


def stage_module(stage: dict) -> str:
    match = COMMAND.match(stage["cmd"])
    assert match, f"cmd {stage['cmd']!r} is not `python -m stages.<module>`: this test cannot tell what it imports"
    return match["module"]


def declared_code(stage: dict) -> set[str]:
    return {dep for dep in stage.get("deps", []) if dep.split("/")[0] == "stages"}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_are_exactly_the_modules_the_stage_imports(name, tmp_path):
    stage = STAGES[name]
    imported = project_files(project_modules_of(stage_module(stage), tmp_path))
    declared = declared_code(stage)
    assert declared == imported, (
        f"stage {name}: declared but not imported {sorted(declared - imported)}; imported but not declared {sorted(imported - declared)}"
    )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_are_files(name):
    """A directory dep hashes everything under it (the reason edits used to rerun every stage)."""
    directories = [dep for dep in declared_code(STAGES[name]) if (REPO / dep).is_dir()]
    assert not directories, f"stage {name}: directory deps {directories}"


def test_config_does_not_load_the_drift_statistics():
    modules = loaded("import stages.lib.config")
    assert "numba" not in modules
    assert "scipy" not in modules
    assert "stages.lib.drift" not in modules


def test_train_does_not_load_drift_code():
    modules = loaded("import stages.train")
    assert not {"stages.lib.drift", "stages.lib.drift_html", "stages.lib.profile", "stages.lib.revisions"} & set(modules)


def test_featurize_does_not_load_drift_statistics():
    """featurize writes the sorted reference profile; the statistics that read it are drift-check's."""
    modules = loaded("import stages.featurize")
    assert "stages.lib.profile" in modules
    assert not {"stages.lib.drift", "stages.lib.drift_html", "numba"} & set(modules)


def test_dvcignore_keeps_bytecode_out():
    """Bytecode next to the stage code must never count as data or code for DVC."""
    dvc = Path(sys.executable).with_name("dvc")
    for path in ("stages/lib/__pycache__/config.cpython-311.pyc", "stages/__pycache__/train.cpython-311.pyc"):
        result = subprocess.run([str(dvc), "check-ignore", "-q", path], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{path} is not ignored by .dvcignore: {result.stdout}{result.stderr}"


def test_stages_holds_the_pipeline_stages_and_nothing_else():
    """`stages/` is what dvc.yaml runs; every other command lives in `commands/`."""
    modules = {f"stages.{path.stem}" for path in (REPO / "stages").glob("*.py") if path.stem != "__init__"}
    assert modules == {stage_module(stage) for stage in STAGES.values()}


def test_every_command_has_a_make_target():
    """Each module in `commands/` that runs as a program is run by a make target, as `python -m commands.<name>`
    (the others, such as report_text, are parts of a command)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    programs = [path for path in (REPO / "commands").glob("*.py") if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")]
    commands = sorted(path.stem for path in programs)
    assert commands, "no commands found"
    # score_here is run by predict inside a registered version's worktree, fetch_objects by repair-cache's command.
    run_by_commands = {module.removeprefix("commands.") for module in (ENTRY_MODULE, FETCH_MODULE)}
    assert [name for name in commands if f"python -m commands.{name}" not in makefile and name not in run_by_commands] == []
