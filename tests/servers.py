"""Real servers on 127.0.0.1 for the remote-storage tests: OpenSSH's sshd and the s3rver S3 server.

Each starts in a scratch folder on a free port and stops when its context ends. `.ci/system-deps`
installs what they need (Debian's openssh-server, nodejs and npm; s3rver from npm into .ci/.s3rver);
without it a test skips, or fails when `CI` is set (`tests.conftest.require_tool`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_tool

PROJECT = Path(__file__).resolve().parent.parent
S3RVER = PROJECT / ".ci/.s3rver/node_modules/.bin/s3rver"
BUCKET = "dvc-test"
S3RVER_KEY = "S3RVER"  # s3rver's fixed credentials


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {seconds} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class SshServer:
    port: int
    user: str
    key: Path  # the client's private key, authorized on the server
    host_key_line: str  # the server's public host key as a known_hosts line

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def sshd(folder: Path) -> Iterator[SshServer]:
    binary = require_tool("sshd", "/usr/sbin/sshd")  # skips locally, fails in CI
    require_tool("ssh-keygen")
    folder.mkdir(parents=True, mode=0o700)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the scratch folder's owner and modes are not sshd's business here
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    kind, key, _ = (folder / "host.pub").read_text().split()
    with running([binary, "-D", "-e", "-f", str(config)], port, folder / "sshd.log"):
        yield SshServer(port=port, user=getpass.getuser(), key=folder / "client", host_key_line=f"[127.0.0.1]:{port} {kind} {key}")


@dataclass
class S3Server:
    port: int
    directory: Path  # where s3rver keeps the objects, one file each

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def s3rver(folder: Path) -> Iterator[S3Server]:
    require_tool(S3RVER, install="`make test` installs it with npm into .ci/.s3rver")
    folder.mkdir(parents=True)
    port = free_port()
    command = [
        str(S3RVER),
        "--directory",
        str(folder),
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
        "--configure-bucket",
        BUCKET,
        "--silent",
    ]
    with running(command, port, folder.parent / f"{folder.name}.log"):
        yield S3Server(port=port, directory=folder)
