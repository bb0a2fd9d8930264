"""Remote storage faults on real servers, with a tiny DVC project: errors are clear and nothing local is lost."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import tool_env

pytestmark = pytest.mark.slow  # real servers

ENV = tool_env()


def dvc(repo: Path, *arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=repo, env=env or ENV, capture_output=True, text=True, timeout=300)


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of the workspace and the DVC cache, by content hash."""
    return {
        str(path.relative_to(repo)): hashlib.md5(path.read_bytes()).hexdigest()
        for folder in (repo / "data", repo / ".dvc/cache")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def project(tmp_path) -> Path:
    repo = tmp_path / "project"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, env=ENV, check=True)
    assert dvc(repo, "init", "-q").returncode == 0
    for index in range(20):
        (repo / "data" / f"part{index:02}.csv").write_text(f"id,value\n{index},{index * index}\n")
    assert dvc(repo, "add", "-q", "data").returncode == 0
    subprocess.run(["git", "add", "-A"], cwd=repo, env=ENV, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=repo, env=ENV, check=True)
    return repo


@pytest.mark.parametrize("kind", ["ssh", "s3"])
def test_remote_down_is_a_clear_error_and_loses_nothing(project, tmp_path, kind):
    before = snapshot(project)
    port = servers.free_port()  # nothing listens there
    if kind == "ssh":
        assert (
            dvc(project, "remote", "add", "-d", "team", f"ssh://{os.environ.get('USER', 'root')}@127.0.0.1:{port}/srv/dvc").returncode == 0
        )
    else:
        assert dvc(project, "remote", "add", "-d", "team", "s3://bucket/project").returncode == 0
        assert dvc(project, "remote", "modify", "team", "endpointurl", f"http://127.0.0.1:{port}").returncode == 0
        for key in ("access_key_id", "secret_access_key"):
            assert dvc(project, "remote", "modify", "--local", "team", key, "unused").returncode == 0
    pushed = dvc(project, "push")
    assert pushed.returncode != 0
    message = pushed.stderr.lower()
    assert "error" in message and ("connect" in message or "refused" in message or "unable" in message), pushed.stderr
    assert snapshot(project) == before  # workspace and cache untouched
    assert "up to date" in dvc(project, "status").stdout


def remote_objects(server: servers.S3Server) -> list[Path]:
    """The DVC objects s3rver stores (one `._S3rver_object` file each, beside its metadata)."""
    return sorted(path for path in server.directory.rglob("*._S3rver_object") if "/files/md5/" in path.as_posix())


def test_a_push_killed_midway_completes_when_run_again(project, tmp_path):
    for index in range(400):  # enough objects for the push to take a while
        (project / "data" / f"extra{index:03}.csv").write_text(f"id,value\n{index},{index % 7}\n")
    assert dvc(project, "add", "-q", "data").returncode == 0
    with servers.s3rver(tmp_path / "s3") as server:
        dvc(project, "remote", "add", "-d", "team", f"s3://{servers.BUCKET}/project")
        dvc(project, "remote", "modify", "team", "endpointurl", server.endpoint)
        for key in ("access_key_id", "secret_access_key"):
            dvc(project, "remote", "modify", "--local", "team", key, servers.S3RVER_KEY)
        push = subprocess.Popen(
            [sys.executable, "-m", "dvc", "push", "-j", "1"], cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while len(remote_objects(server)) < 50 and push.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        push.send_signal(signal.SIGKILL)  # no chance to clean up or record anything
        push.wait()
        # One object per distinct file content, plus the directory's listing.
        cached = len({hashlib.md5(path.read_bytes()).hexdigest() for path in (project / "data").iterdir()}) + 1
        sent = len(remote_objects(server))
        assert 0 < sent < cached, f"the push was not cut off midway ({sent} of {cached} objects sent)"
        again = dvc(project, "push")
        assert again.returncode == 0, again.stderr
        assert "in sync" in dvc(project, "status", "--cloud").stdout
        assert len(remote_objects(server)) == cached  # every object of this version, once


@pytest.mark.xfail(strict=True, reason="dvc-ssh 4.3 passes known_hosts=None to asyncssh, so host keys are never checked (upstream gap)")
def test_ssh_host_key_mismatch_refuses_to_push(project, tmp_path):
    with servers.sshd(tmp_path / "sshd") as server:
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        kind, key, _ = (Path(f"{other}.pub")).read_text().split()
        (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{server.port} {kind} {key}\n")  # not the server's key
        env = {**ENV, "HOME": str(home)}
        dvc(project, "remote", "add", "-d", "team", server.url(tmp_path / "store"), env=env)
        dvc(project, "remote", "modify", "--local", "team", "keyfile", str(server.key), env=env)
        pushed = dvc(project, "push", env=env)
        assert pushed.returncode != 0 and "host key" in pushed.stderr.lower()


def run_module_in(repo: Path, module: str, *arguments: str) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", module, *arguments], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_a_corrupted_cache_object_is_detected_and_fetched_again(project, tmp_path):
    assert dvc(project, "remote", "add", "-d", "team", str(tmp_path / "remote")).returncode == 0
    assert dvc(project, "push").returncode == 0
    target = project / "data/part03.csv"
    good = target.read_bytes()
    digest = hashlib.md5(good).hexdigest()
    cached = next((project / ".dvc/cache/files/md5").glob(f"{digest[:2]}/{digest[2:]}"))
    cached.chmod(0o644)
    cached.write_bytes(b"flipped bits\n")
    target.unlink()
    dvc(project, "checkout")
    assert target.read_bytes() == b"flipped bits\n"  # DVC itself checks out the corrupted copy

    check = run_module_in(project, "stages.verify_cache")
    assert check.returncode == 1
    assert f"corrupted: files/md5/{digest[:2]}/{digest[2:]}" in check.stdout
    repaired = run_module_in(project, "stages.verify_cache", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired 1 object(s)" in repaired.stdout
    assert target.read_bytes() == good and cached.read_bytes() == good
    assert "up to date" in dvc(project, "status").stdout
    assert run_module_in(project, "stages.verify_cache").returncode == 0


def test_repair_without_a_remote_says_what_failed(project):
    digest = hashlib.md5((project / "data/part03.csv").read_bytes()).hexdigest()
    cached = project / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    cached.chmod(0o644)
    cached.write_bytes(b"flipped bits\n")
    repaired = run_module_in(project, "stages.verify_cache", "--repair")
    assert repaired.returncode == 2
    assert repaired.stderr.startswith("error: removed 1 corrupted object(s) but could not fetch them again:")
