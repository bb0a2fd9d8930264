"""Another revision with its DVC outputs really in place: from the cache, else the remote, else `dvc repro`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib.errors import UserError
from stages.lib.revisions import materialized


def test_outputs_come_from_the_revisions_cache_not_from_the_workspace(tmp_path, monkeypatch):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    def run(*command: str) -> None:
        subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run(sys.executable, "-m", "dvc", "init", "-q")
    for version in ("base", "head"):
        (tmp_path / "model.bin").write_text(f"{version} model")
        run(sys.executable, "-m", "dvc", "add", "-q", "model.bin")
        run("git", "add", "-A")
        run("git", "commit", "-qm", version)
    monkeypatch.setattr(os, "environ", env)
    with materialized("HEAD~1", tmp_path) as base:
        assert (base.root / "model.bin").read_text() == "base model"
        assert base.notes == []
        root = base.root
    assert not root.exists()  # the worktree is removed afterwards
    assert (tmp_path / "model.bin").read_text() == "head model"
    assert "revision-" not in subprocess.run(["git", "worktree", "list"], cwd=tmp_path, capture_output=True, text=True).stdout
    shutil.rmtree(tmp_path / ".dvc/cache")
    # Nothing cached and no remote: it falls back to reproducing, which fails here (no pipeline).
    with pytest.raises(UserError, match="dvc repro"), materialized("HEAD~1", tmp_path):
        pass
