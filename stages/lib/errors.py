"""User-facing errors: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import yaml

USER_ERROR_EXIT = 2
PIPELINE_FILE = Path("dvc.yaml")
GIT_TIMEOUT_SECONDS = 60


class UserError(Exception):
    """A problem with the user's data or configuration, explained with how to fix it."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def stage_outputs(module: str, pipeline: Path = PIPELINE_FILE) -> list[str]:
    """Every out, metric and plot file of the dvc.yaml stages whose command runs `python -m <module>`."""
    stages = (yaml.safe_load(pipeline.read_text(encoding="utf-8")) or {}).get("stages") or {}
    paths: list[str] = []
    for stage in stages.values():
        command = str(stage.get("cmd", "")).split() if isinstance(stage, dict) else []
        if not any(command[index : index + 2] == ["-m", module] for index in range(len(command))):
            continue
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                paths.extend([entry] if isinstance(entry, str) else list(entry))
    return paths


def restore_tracked_outputs(module: str) -> list[str]:
    """Put back the stage's git-tracked outputs that are missing, from the git index; the paths restored.

    DVC deletes a stage's outputs before running it, so a failed stage leaves `data/schema.yaml` or
    `reports/*.json` deleted in the working tree, where `git commit -a` would record the deletion.
    Best effort: anything that stops it (no dvc.yaml, no git) leaves the files as they are.
    """
    try:
        missing = [path for path in stage_outputs(module) if not Path(path).exists()]
        if not missing:
            return []
        listed = subprocess.run(["git", "ls-files", "-z", "--", *missing], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS)
        tracked = [path for path in listed.stdout.split("\0") if path] if listed.returncode == 0 else []
        if not tracked:
            return []
        # `git restore` (not `git checkout`) runs no post-checkout hook; the index holds the last staged results.
        restored = subprocess.run(
            ["git", "restore", "--worktree", "--", *tracked], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.SubprocessError, yaml.YAMLError, AttributeError, TypeError):
        return []
    return tracked if restored.returncode == 0 else []


def _restore_for_running_stage() -> list[str]:
    """restore_tracked_outputs for the stage `python -m <module>` is running, if any."""
    module = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None)
    return restore_tracked_outputs(module) if module else []


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's `main()`, turning a `UserError` into one line and exit code 2.

    On any failure, the stage's git-tracked outputs that DVC deleted before running it are restored.
    """
    try:
        main()
    except UserError as error:
        restored = _restore_for_running_stage()
        note = f" (restored {', '.join(restored)} from git: DVC deletes a stage's outputs before running it)" if restored else ""
        print(f"error: {error}{note}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    except BaseException as error:
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        restored = _restore_for_running_stage()
        if restored:
            print(f"restored {', '.join(restored)} from git: DVC deletes a stage's outputs before running it", file=sys.stderr)
        raise
