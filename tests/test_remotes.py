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

from tests import servers, warm_python
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


def wait_until(condition, seconds: float = 120.0) -> bool:
    """Poll a state (never a fixed sleep standing in for one)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.needs_tool("s3rver", "node")
def test_a_push_killed_midway_completes_when_run_again(project, tmp_path):
    """The push is killed at a defined point: a proxy in front of the S3 server lets exactly 10 object uploads
    through and holds the 11th unanswered, so the remote has 10 objects, not all, whatever the machine's speed."""
    for index in range(40):
        (project / "data" / f"extra{index:03}.csv").write_text(f"id,value\n{index},{index % 7}\n")
    assert dvc(project, "add", "-q", "data").returncode == 0
    # One object per distinct file content, plus the directory's listing.
    cached = len({hashlib.md5(path.read_bytes()).hexdigest() for path in (project / "data").iterdir()}) + 1
    limit = 10
    with servers.s3rver(tmp_path / "s3") as server, servers.gated_proxy(server.port, limit) as (endpoint, gate):
        dvc(project, "remote", "add", "-d", "team", f"s3://{servers.BUCKET}/project")
        dvc(project, "remote", "modify", "team", "endpointurl", endpoint)
        for key in ("access_key_id", "secret_access_key"):
            dvc(project, "remote", "modify", "--local", "team", key, servers.S3RVER_KEY)
        push = subprocess.Popen(
            [sys.executable, "-m", "dvc", "push", "-j", "1"], cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            assert gate.holding.wait(timeout=240), "the push never reached its 11th upload"
        finally:
            push.send_signal(signal.SIGKILL)  # no chance to clean up or record anything
            push.wait()
        assert wait_until(lambda: len(remote_objects(server)) >= limit)  # uploads already passed finish on the server
        assert len(remote_objects(server)) == limit < cached  # cut off midway, at the defined point
        gate.limit = cached + 1  # the network is back
        again = dvc(project, "push")
        assert again.returncode == 0, again.stderr
        assert "in sync" in dvc(project, "status", "--cloud").stdout
        assert len(remote_objects(server)) == cached  # every object of this version, once


SSH_GAP = "sshfs (which dvc-ssh 4.3 uses) sets known_hosts=None by default: asyncssh then checks no host key"


def ssh_project(project: Path, server: servers.SshServer, store: Path, env: dict[str, str]) -> None:
    assert dvc(project, "remote", "add", "-d", "team", server.url(store), env=env).returncode == 0
    assert dvc(project, "remote", "modify", "--local", "team", "keyfile", str(server.key), env=env).returncode == 0


@pytest.mark.needs_tool("sshd", "ssh-keygen")
def test_ssh_push_accepts_a_server_whose_host_key_is_not_the_known_one(project, tmp_path):
    """The upstream gap the README warns about, proved: known_hosts names another key for this server, and the
    push still succeeds (OpenSSH's ssh would refuse). The day this test fails, host keys are checked: update the README."""
    with servers.sshd(tmp_path / "sshd") as server:
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        kind, key, _ = Path(f"{other}.pub").read_text().split()
        (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{server.port} {kind} {key}\n")  # not the server's key
        assert server.host_key_line.split()[2] != key
        env = {**ENV, "HOME": str(home)}
        env.pop("SSH_AUTH_SOCK", None)
        ssh_project(project, server, tmp_path / "store", env)
        pushed = dvc(project, "push", env=env)
        assert pushed.returncode == 0, f"{SSH_GAP}, yet the push failed: {pushed.stderr}"
        assert "in sync" in dvc(project, "status", "--cloud", env=env).stdout
        assert list((tmp_path / "store").rglob("*"))  # the objects went to the unverified server


@pytest.mark.needs_tool("sshd", "ssh-keygen", "ssh-agent")
@pytest.mark.parametrize("agent", [True, False], ids=["with-agent", "no-agent"])
def test_ssh_forwards_the_agent_unless_ssh_auth_sock_is_unset(project, tmp_path, agent, tools):
    """dvc-ssh asks for agent forwarding by default (and DVC has no config key to turn it off); with SSH_AUTH_SOCK
    unset for the push, as the README advises, there is no agent to forward and the server sees no such request."""
    with servers.sshd(tmp_path / "sshd") as server:
        env = {**ENV, "HOME": str(tmp_path / "home")}
        env.pop("SSH_AUTH_SOCK", None)
        if agent:
            socket_path = tmp_path / "agent.sock"
            started = subprocess.run([tools["ssh-agent"], "-a", str(socket_path)], capture_output=True, text=True, timeout=30, check=True)
            agent_pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
            env["SSH_AUTH_SOCK"] = str(socket_path)
        try:
            ssh_project(project, server, tmp_path / "store", env)
            pushed = dvc(project, "push", env=env)
        finally:
            if agent:
                os.kill(agent_pid, signal.SIGTERM)
        assert pushed.returncode == 0, pushed.stderr
        requested = "req auth-agent-req@openssh.com" in server.log.read_text()
        assert requested is agent


def run_module_in(repo: Path, module: str, *arguments: str) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return warm_python.run(module, list(arguments), repo, env, timeout=300)


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

    check = run_module_in(project, "commands.verify_cache")
    assert check.returncode == 1
    assert f"corrupted: files/md5/{digest[:2]}/{digest[2:]}" in check.stdout
    repaired = run_module_in(project, "commands.verify_cache", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert (
        "repaired: removed 1 corrupted object(s), fetched 1 object(s) again by hash, restored 1 workspace file(s) in data"
        in repaired.stdout
    )
    assert target.read_bytes() == good and cached.read_bytes() == good
    assert "up to date" in dvc(project, "status").stdout
    assert run_module_in(project, "commands.verify_cache").returncode == 0


def folder_remote(project: Path, folder: Path) -> None:
    """A default local-folder remote, written as `dvc remote add -d team FOLDER` writes it (one dvc start-up less)."""
    with (project / ".dvc/config").open("a") as config:
        config.write(f"[core]\n    remote = team\n['remote \"team\"']\n    url = {folder}\n")


def corrupt(project: Path, content: bytes) -> Path:
    digest = hashlib.md5(content).hexdigest()
    cached = project / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    cached.chmod(0o644)
    cached.write_bytes(b"flipped bits\n")
    return cached


def test_repair_fetches_by_hash_an_object_only_an_older_revision_needs(project, tmp_path):
    """The current dvc.lock does not need the corrupted object: a plain `dvc fetch` would not bring it back."""
    folder_remote(project, tmp_path / "remote")
    assert dvc(project, "push").returncode == 0
    old = (project / "data/part03.csv").read_bytes()
    (project / "data/part03.csv").write_text("id,value\n3,10\n")
    assert dvc(project, "add", "-q", "data").returncode == 0
    subprocess.run(["git", "commit", "-qam", "part03 changed"], cwd=project, env=ENV, check=True)
    cached = corrupt(project, old)
    repaired = run_module_in(project, "commands.verify_cache", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.endswith(
        "repaired: removed 1 corrupted object(s), fetched 1 object(s) again by hash, restored 0 workspace file(s)\n"
    )
    assert cached.read_bytes() == old
    assert (project / "data/part03.csv").read_text() == "id,value\n3,10\n"  # the current version, untouched


def test_a_workspace_copy_left_corrupt_after_dvc_deleted_its_object_is_found_and_restored(project, tmp_path):
    """`dvc status` hashes an object it doubts and deletes it when corrupted, leaving the workspace copy as it is:
    the cache then looks clean, and only hashing the workspace against dvc.lock finds the bad file."""
    folder_remote(project, tmp_path / "remote")
    assert dvc(project, "push").returncode == 0
    target = project / "data/part03.csv"
    good = target.read_bytes()
    cached = corrupt(project, good)
    target.unlink()
    dvc(project, "checkout")
    dvc(project, "status")
    assert target.read_bytes() == b"flipped bits\n" and not cached.exists()  # what DVC leaves behind
    check = run_module_in(project, "commands.verify_cache")
    assert check.returncode == 1
    assert (
        f"workspace: data/part03.csv differs from its recorded hash {hashlib.md5(good).hexdigest()} (dvc.lock or .dvc file)" in check.stdout
    )
    repaired = run_module_in(project, "commands.verify_cache", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert target.read_bytes() == good and cached.read_bytes() == good


def test_repair_without_a_remote_says_what_failed(project):
    digest = hashlib.md5((project / "data/part03.csv").read_bytes()).hexdigest()
    cached = project / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    cached.chmod(0o644)
    cached.write_bytes(b"flipped bits\n")
    repaired = run_module_in(project, "commands.verify_cache", "--repair")
    assert repaired.returncode == 2
    assert repaired.stderr.startswith("error: removed 1 corrupted object(s) but could not fetch them again:")


@pytest.mark.needs_tool("s3rver", "node")
def test_ci_publishes_to_a_real_s3_remote_and_a_pr_run_pulls_from_it(tmp_path):
    """The CI path end to end on s3rver: `make ci-remote`'s configure from repository variables, the publish
    check, a push with the write keys; then a fresh clone (a PR run) configured the same way pulls, and its note says so."""
    from tests.test_workflows import ci_clone, ci_repro, git_dvc, one_stage_project, remote_script

    origin = one_stage_project(tmp_path / "origin")
    git_dvc(origin, "dvc", "remote", "add", "-d", "local", "../../dvc-remote")  # the project's default: a folder
    git_dvc(origin, "dvc", "repro", "-q")
    git_dvc(origin, "git", "add", "-A")
    git_dvc(origin, "git", "commit", "-qm", "pipeline")
    with servers.s3rver(tmp_path / "s3") as server:
        variables = {"CI": "true", "DVC_REMOTE_URL": f"s3://{servers.BUCKET}/flights", "DVC_REMOTE_ENDPOINT_URL": server.endpoint}
        keys = {"AWS_ACCESS_KEY_ID": servers.S3RVER_KEY, "AWS_SECRET_ACCESS_KEY": servers.S3RVER_KEY}
        assert remote_script(origin, "check-publish", CI="true").returncode == 1  # still the folder: refused
        assert remote_script(origin, "configure", **variables).returncode == 0
        assert remote_script(origin, "check-publish", CI="true").returncode == 0
        git_dvc(origin, "dvc", "push", "-q", env={**ENV, **keys})
        clone = ci_clone(origin, tmp_path / "clone", str(tmp_path / "unused"))
        (clone / ".dvc/config.local").unlink()  # a runner starts from the tracked config only
        assert remote_script(clone, "configure", **variables).returncode == 0
        note, log = ci_repro(clone, CI="true", **keys)
        assert note == "DVC remote 'ci' available: outputs it holds were pulled, not recomputed (it holds every output of this revision)"
        assert "Running stage 'count'" not in log and (clone / "out.txt").read_text().strip() == "12"
