"""Another git revision of this project, with its DVC outputs really in place (for the report and scoring).

The revision is checked out into a temporary git worktree that shares this repository's DVC cache;
`dvc checkout` brings back its outputs, then `dvc pull`, then `dvc repro` as the last resort.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stages.lib.errors import fail

# git and dvc may wait on a network remote that never answers: every command gets a deadline.
TIMEOUT_VARIABLE = "COMMAND_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 3600.0  # generous: the last-resort `dvc repro` may train a model


@dataclass
class Revision:
    label: str  # as the user named it (branch, tag, sha)
    sha: str
    root: Path  # the worktree
    notes: list[str] = field(default_factory=list)  # how its outputs were obtained, when not from the cache


def command_timeout() -> float:
    """Seconds a git or dvc command may take: COMMAND_TIMEOUT_SECONDS from the environment, else one hour."""
    raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        fail(f"{TIMEOUT_VARIABLE}={raw!r}: expected a positive number of seconds")
    return seconds


def last_line(result: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed (stderr first), or its exit code when it printed nothing."""
    for stream in (result.stderr, result.stdout):
        lines = (stream or "").strip().splitlines()
        if lines:
            return lines[-1]
    return f"exit code {result.returncode}, no output"


def shown(command: list[str]) -> str:
    """A command as a user would type it (`dvc fetch`, not the interpreter's full path)."""
    return " ".join(["dvc", *command[3:]] if command[:3] == [sys.executable, "-m", "dvc"] else command)


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with a deadline; with `check`, a non-zero exit is a one-line error."""
    timeout = command_timeout()
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(
            f"`{shown(command)}` did not finish within {timeout:g} s in {cwd} and was stopped; "
            f"check the network and the DVC remote, or set {TIMEOUT_VARIABLE} to wait longer"
        )
    if check and result.returncode != 0:
        fail(f"`{shown(command)}` failed in {cwd}: {last_line(result)}")
    return result


def dvc(*arguments: str) -> list[str]:
    """A `dvc` command line run by this interpreter (the project's venv)."""
    return [sys.executable, "-m", "dvc", *arguments]


def resolve(revision: str, repo: Path, what: str) -> str:
    resolved = run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], repo, check=False)
    if resolved.returncode != 0:
        fail(f"{what} {revision}: no such git revision here; fetch it first (e.g. `git fetch origin --tags`)")
    return resolved.stdout.strip()


def share_cache_and_remotes(repo: Path, worktree: Path) -> None:
    """Point the worktree at this repository's DVC cache, and give it each local remote's absolute path: a
    local remote's relative path (the default `../../dvc-remote`) is relative to .dvc/, so in a worktree
    elsewhere it would name another folder."""
    # In-process through DVC's own Config (what `dvc cache dir` and `dvc remote modify --local` do): four
    # `python -m dvc` start-ups cost about 2.5 s a revision. Paths in the merged config come resolved to
    # absolute (DVC's RelPath); URLs with a scheme are left alone. Credentials stay in config.local, copied.
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as here:
            cache = str(here.cache.local_cache_dir)
            remotes = {name: str(section["url"]) for name, section in here.config["remote"].items()}
        with Repo(str(worktree)) as there, there.config.edit("local") as local:
            local.setdefault("cache", {})["dir"] = cache
            for name, url in sorted(remotes.items()):
                if Path(url).is_absolute():
                    local.setdefault("remote", {}).setdefault(name, {})["url"] = url
    except DvcException as error:  # a malformed .dvc/config: DVC's own words name the file and key
        fail(f"the DVC configuration of {repo} could not be read: {error}")


@contextlib.contextmanager
def materialized(revision: str, repo: Path, what: str = "--base") -> Iterator[Revision]:
    """The revision in a temporary worktree with its DVC outputs in place; removed afterwards."""
    sha = resolve(revision, repo, what)
    with tempfile.TemporaryDirectory(prefix="revision-") as scratch:
        root = Path(scratch) / "worktree"
        run(["git", "worktree", "add", "--detach", "--quiet", str(root), sha], repo)
        try:
            materialized_revision = Revision(label=revision, sha=sha, root=root)
            # Remote credentials live in the git-ignored .dvc/config.local: the worktree needs them to pull.
            local_config = repo / ".dvc" / "config.local"
            if local_config.is_file():
                shutil.copyfile(local_config, root / ".dvc" / "config.local")
            share_cache_and_remotes(repo, root)
            if run(dvc("checkout", "--quiet"), root, check=False).returncode != 0:
                if run(dvc("pull", "--quiet"), root, check=False).returncode == 0:
                    materialized_revision.notes.append(f"outputs of {revision} pulled from the DVC remote")
                else:
                    materialized_revision.notes.append(
                        f"outputs of {revision} were not in the cache and the DVC remote was not available: reproduced with `dvc repro`"
                    )
                    run(dvc("repro", "--quiet"), root)
            yield materialized_revision
        finally:
            run(["git", "worktree", "remove", "--force", str(root)], repo, check=False)
