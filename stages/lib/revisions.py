"""Another git revision of this project, with its DVC outputs really in place (for the report and scoring).

The revision is checked out into a temporary git worktree that shares this repository's DVC cache;
`dvc checkout` brings back its outputs, then `dvc pull`, then `dvc repro` as the last resort.
"""

from __future__ import annotations

import contextlib
import os
import re
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
DEFAULT_TIMEOUT_SECONDS = 3600.0
REMOTE_URL = re.compile(r"^remote\.(?P<name>.+)\.url=(?P<url>.+)$")  # generous: the last-resort `dvc repro` may train a model


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


def pin_local_remotes(repo: Path, worktree: Path) -> None:
    """A local remote's relative path (the default `../../dvc-remote`) is relative to .dvc/, so in a worktree
    elsewhere it names another folder: give the worktree each such remote's absolute path, as resolved here."""
    # `dvc config --list` prints one `key=value` a line with local paths resolved (`dvc remote list` wraps
    # long paths to the terminal's width).
    # Levels come in order of precedence (system, global, project, local): the last value of a remote wins.
    urls: dict[str, str] = dict(
        (match["name"], match["url"])
        for line in run(dvc("config", "--list"), repo).stdout.splitlines()
        if (match := REMOTE_URL.match(line.strip()))
    )
    for name, url in sorted(urls.items()):
        if Path(url).is_absolute():  # resolved local paths; URLs with a scheme are left alone
            run(dvc("remote", "modify", "--local", name, "url", url), worktree)


@contextlib.contextmanager
def materialized(revision: str, repo: Path, what: str = "--base") -> Iterator[Revision]:
    """The revision in a temporary worktree with its DVC outputs in place; removed afterwards."""
    sha = resolve(revision, repo, what)
    cache = run(dvc("cache", "dir"), repo).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="revision-") as scratch:
        root = Path(scratch) / "worktree"
        run(["git", "worktree", "add", "--detach", "--quiet", str(root), sha], repo)
        try:
            materialized_revision = Revision(label=revision, sha=sha, root=root)
            # Remote credentials live in the git-ignored .dvc/config.local: the worktree needs them to pull.
            local_config = repo / ".dvc" / "config.local"
            if local_config.is_file():
                shutil.copyfile(local_config, root / ".dvc" / "config.local")
            pin_local_remotes(repo, root)
            run(dvc("cache", "dir", "--local", cache), root)
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
