"""verify_cache and the git/dvc commands behind it: a deadline on every command, and a clear line when one fails."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.lib.errors import UserError
from stages.lib.revisions import last_line, run
from tests.conftest import PROJECT, tool_env

ENV = tool_env()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a remote that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def git_dvc_project(repo: Path) -> Path:
    repo.mkdir()
    for command in (["git", "init", "-q", "-b", "main"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, env=ENV, check=True, capture_output=True, timeout=120)
    (repo / "data.csv").write_text("id,value\n1,2\n")
    for command in ([sys.executable, "-m", "dvc", "add", "-q", "data.csv"], ["git", "add", "-A"], ["git", "commit", "-qm", "data"]):
        subprocess.run(command, cwd=repo, env=ENV, check=True, capture_output=True, timeout=120)
    return repo


def test_a_remote_that_never_answers_stops_repair_at_the_deadline(tmp_path, silent_server):
    repo = git_dvc_project(tmp_path / "project")
    remote = f"http://127.0.0.1:{silent_server}/store"
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "team", remote], cwd=repo, env=ENV, check=True, timeout=120)
    digest = hashlib.md5((repo / "data.csv").read_bytes()).hexdigest()
    cached = repo / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    cached.chmod(0o644)
    cached.write_bytes(b"flipped bits\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "commands.verify_cache", "--repair"],
        cwd=repo,
        env={**ENV, "PYTHONPATH": str(PROJECT), "COMMAND_TIMEOUT_SECONDS": "8"},
        capture_output=True,
        text=True,
        timeout=60,  # without a deadline of its own, the fetch waits on the silent server far longer
    )
    assert time.monotonic() - started < 45
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: fetching 1 object(s) from the DVC remote did not finish within 8 s in {repo} and was stopped; "
        "check the network and the DVC remote, or set COMMAND_TIMEOUT_SECONDS to wait longer\n"
    )


def test_a_command_past_its_deadline_is_stopped_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COMMAND_TIMEOUT_SECONDS", "1")  # the real environment: run() reads it for its child
    marker = tmp_path / "finished"
    started = time.monotonic()
    with pytest.raises(UserError, match=r"^`.+` did not finish within 1 s in .+ set COMMAND_TIMEOUT_SECONDS to wait longer$"):
        run([sys.executable, "-c", f"import time, pathlib; time.sleep(20); pathlib.Path({str(marker)!r}).touch()"], tmp_path)
    assert time.monotonic() - started < 15
    time.sleep(0.5)
    assert not marker.exists()  # the child was stopped, not left running


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_wrong_deadline_setting_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv("COMMAND_TIMEOUT_SECONDS", value)
    with pytest.raises(UserError, match=f"COMMAND_TIMEOUT_SECONDS='{value}': expected a positive number of seconds"):
        run(["git", "--version"], tmp_path)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("import sys; sys.exit(3)", "exit code 3, no output"),  # died without a word: no IndexError
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "exit code -9, no output"),
        ("import sys; print('first'); print('last to stdout'); sys.exit(1)", "last to stdout"),
        ("import sys; print('out'); sys.stderr.write('warn\\nthe cause\\n\\n'); sys.exit(1)", "the cause"),
    ],
    ids=["silent", "killed", "stdout-only", "stderr-first"],
)
def test_a_failed_command_is_described_by_its_last_line(tmp_path, script, expected):
    result = run([sys.executable, "-c", script], tmp_path, check=False)
    assert result.returncode != 0
    assert last_line(result) == expected
    with pytest.raises(UserError, match=f"failed in {tmp_path}: {expected}$"):
        run([sys.executable, "-c", script], tmp_path)
