"""Another revision with its DVC outputs really in place: from the cache, else the remote, else `dvc repro`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib.errors import UserError
from stages.lib.revisions import materialized
from tests.conftest import tool_env
from tests.test_verify_cache import silent_server  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A git + DVC repo with two commits of a DVC-tracked file, "base model" then "head model", and a
    default remote `team` (a folder that does not exist) in its committed .dvc/config."""
    folder = tmp_path_factory.mktemp("revisions")
    repo = folder / "repo"
    repo.mkdir()

    def run(*command: str) -> None:
        subprocess.run(command, cwd=repo, env=tool_env(), check=True, capture_output=True, timeout=120)

    run("git", "init", "-q", "-b", "main")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "remote", "add", "-d", "team", str(folder / "nowhere"))
    for version in ("base", "head"):
        (repo / "model.bin").write_text(f"{version} model")
        run(sys.executable, "-m", "dvc", "add", "-q", "model.bin")
        run("git", "add", "-A")
        run("git", "commit", "-qm", version)
    return repo


@pytest.fixture
def history(template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template repo (cache included), in an environment its child processes see."""
    # materialized() runs git and dvc as child processes: settings reach them only through the real
    # environment (monkeypatch.setenv), never by swapping the os.environ object.
    for key, value in tool_env().items():
        monkeypatch.setenv(key, value)
    return Path(shutil.copytree(template, tmp_path / "repo", symlinks=True))


def worktrees(repo: Path) -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_outputs_come_from_the_revisions_cache_not_from_the_workspace(history):
    with materialized("HEAD~1", history) as base:
        assert (base.root / "model.bin").read_text() == "base model"
        assert base.notes == []
        root = base.root
    assert not root.exists()  # the worktree is removed afterwards
    assert (history / "model.bin").read_text() == "head model"
    assert "revision-" not in worktrees(history)


def test_outputs_missing_from_the_cache_are_pulled_from_the_remote(history, tmp_path):
    # An absolute path in the git-ignored .dvc/config.local, which the revision's worktree must use too.
    url = str(tmp_path / "store")
    subprocess.run([sys.executable, "-m", "dvc", "remote", "modify", "--local", "team", "url", url], cwd=history, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "push", "-q", "--all-commits"], cwd=history, check=True, capture_output=True, timeout=120)
    shutil.rmtree(history / ".dvc/cache")
    with materialized("HEAD~1", history) as base:
        assert (base.root / "model.bin").read_text() == "base model"
        assert base.notes == ["outputs of HEAD~1 pulled from the DVC remote"]


def test_with_no_cache_and_an_empty_remote_it_falls_back_to_reproducing(history):
    shutil.rmtree(history / ".dvc/cache")
    # Nothing cached and nothing on the remote (its folder does not exist): it falls back to reproducing,
    # which fails here (no pipeline).
    with pytest.raises(UserError, match=r"`dvc repro --quiet` failed in "), materialized("HEAD~1", history):
        pass
    assert "revision-" not in worktrees(history)


def test_a_remote_that_never_answers_stops_at_the_deadline(history, monkeypatch, silent_server):  # noqa: F811
    # Set in the git-ignored .dvc/config.local, as credentials are: the revision's worktree must use it too.
    url = f"http://127.0.0.1:{silent_server}/store"
    subprocess.run([sys.executable, "-m", "dvc", "remote", "modify", "--local", "team", "url", url], cwd=history, check=True)
    shutil.rmtree(history / ".dvc/cache")
    # 8 s: the commands before the hanging pull (git worktree, dvc status) must finish inside the deadline on a busy machine.
    monkeypatch.setenv("COMMAND_TIMEOUT_SECONDS", "8")
    with pytest.raises(UserError, match=r"^`dvc pull --quiet` did not finish within 8 s in "), materialized("HEAD~1", history):
        pass
    assert "revision-" not in worktrees(history)  # the worktree is removed on the way out


def test_a_relative_remote_path_in_the_committed_config_resolves_from_the_project_not_the_worktree(history):
    # The project's default remote is a folder beside the clone (`../../dvc-remote`, relative to .dvc/): in a
    # temporary worktree elsewhere the same relative path names another folder, and the pull would miss.
    def run(*command: str) -> None:
        subprocess.run(command, cwd=history, check=True, capture_output=True, timeout=120)

    run(sys.executable, "-m", "dvc", "remote", "modify", "team", "url", "../dvc-remote")  # from here; stored relative to .dvc/
    assert "url = ../../dvc-remote" in (history / ".dvc/config").read_text()
    run("git", "commit", "-qam", "relative remote")  # HEAD~1: "head model", the relative remote
    (history / "model.bin").write_text("third model")
    run(sys.executable, "-m", "dvc", "add", "-q", "model.bin")
    run("git", "commit", "-qam", "third")
    run(sys.executable, "-m", "dvc", "push", "-q")
    run("git", "checkout", "-q", "HEAD~1")
    run(sys.executable, "-m", "dvc", "push", "-q")
    run("git", "checkout", "-q", "main")
    assert len([path for path in (history.parent / "dvc-remote").rglob("*") if path.is_file()]) == 2
    shutil.rmtree(history / ".dvc/cache")
    with materialized("HEAD~1", history) as base:
        assert (base.root / "model.bin").read_text() == "head model"
        assert base.notes == ["outputs of HEAD~1 pulled from the DVC remote"]


def test_a_malformed_dvc_config_is_one_line_naming_the_project(history):
    (history / ".dvc/config.local").write_text('[remote "team"]\n    no_such_option = 1\n')
    with (
        pytest.raises(UserError, match=r"^the DVC configuration of .+ could not be read: .*no_such_option"),
        materialized("HEAD~1", history),
    ):
        pass
    assert "revision-" not in worktrees(history)  # the worktree is removed on the way out
