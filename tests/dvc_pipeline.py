"""What dvc.yaml declares, as DVC itself reads it (any `vars:` or templating resolved): per stage, the
module it runs, its data dependencies and the outputs it writes. Tests compare these with the catalogue
(stages/lib/catalog.py) instead of keeping their own list of paths."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from stages.lib import catalog
from tests.conftest import PROJECT

COMMAND = re.compile(r"^python -m (?P<module>stages(\.\w+)+)(\s|$)")
CODE = "stages/"  # deps under it are code, every other dep is data


@dataclass(frozen=True)
class DeclaredStage:
    name: str
    cmd: str
    outputs: frozenset[str]  # outs, metrics and plots, relative to the project root
    uncached: frozenset[str]  # of them, those declared `cache: false` (kept in git)
    data_deps: frozenset[str]
    code_deps: frozenset[str]

    @property
    def module(self) -> str:
        """The module the stage runs: its cmd must be `python -m stages.<module>`."""
        match = COMMAND.match(self.cmd)
        assert match, f"stage {self.name}: cmd {self.cmd!r} is not `python -m stages.<module>`"
        return match["module"]


@functools.cache
def declared_stages(root: Path = PROJECT) -> dict[str, DeclaredStage]:
    """Every stage of `root`/dvc.yaml, in the file's order."""
    with Repo(str(root)) as repo:
        stages = [stage for stage in repo.index.stages if stage.path_in_repo == "dvc.yaml"]
        declared = {}
        for stage in stages:
            deps = [dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)]
            declared[stage.name] = DeclaredStage(
                name=stage.name,
                cmd=stage.cmd,
                outputs=frozenset(out.def_path for out in stage.outs),
                uncached=frozenset(out.def_path for out in stage.outs if not out.use_cache),
                data_deps=frozenset(dep for dep in deps if not dep.startswith(CODE)),
                code_deps=frozenset(dep for dep in deps if dep.startswith(CODE)),
            )
    return declared


def inside(path: str, outputs: frozenset[str] | set[str]) -> bool:
    """True when `path` is one of `outputs` or a file inside one of them (a folder output)."""
    return any(path == out or path.startswith(f"{out}/") for out in outputs)


def catalogued() -> dict[str, str]:
    """Every path stages/lib/catalog.py names (module constants, and the plot files), by name."""
    paths = {name: value.as_posix() for name, value in vars(catalog).items() if isinstance(value, Path)}
    return paths | {f"PLOT_FILES[{name!r}]": path.as_posix() for name, path in catalog.PLOT_FILES.items()}
