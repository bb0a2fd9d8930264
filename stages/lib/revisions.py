"""Another git revision of this project, with its DVC outputs really in place (for the report and scoring).

The revision is checked out into a temporary git worktree that shares this repository's DVC cache;
`dvc checkout` brings back its outputs, then `dvc pull`, then `dvc repro` as the last resort.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stages.lib.errors import fail


@dataclass
class Revision:
    label: str  # as the user named it (branch, tag, sha)
    sha: str
    root: Path  # the worktree
    notes: list[str] = field(default_factory=list)  # how its outputs were obtained, when not from the cache


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        fail(f"`{' '.join(command)}` failed in {cwd}: {detail[-1] if detail else 'no output'}")
    return result


def dvc(*arguments: str) -> list[str]:
    """A `dvc` command line run by this interpreter (the project's venv)."""
    return [sys.executable, "-m", "dvc", *arguments]


def resolve(revision: str, repo: Path, what: str) -> str:
    resolved = run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], repo, check=False)
    if resolved.returncode != 0:
        fail(f"{what} {revision}: no such git revision here; fetch it first (e.g. `git fetch origin --tags`)")
    return resolved.stdout.strip()


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
