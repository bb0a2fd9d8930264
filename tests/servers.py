"""Real servers on 127.0.0.1 for the remote-storage tests (OpenSSH's sshd and the s3rver S3 server) and a Dask
cluster of separate processes for the engine tests (the venv's `dask` CLI: a scheduler and its workers).

Each starts in a scratch folder on a free port and stops when its context ends. `.ci/system-deps`
installs what they need (Debian's openssh-server, nodejs and npm; s3rver from npm into .ci/.s3rver);
without it a test skips, or fails when `CI` is set. Tests that start a server say so with
`@pytest.mark.needs_tool(...)`; the servers check again with the same `tests.conftest.require_tool`.
"""

from __future__ import annotations

import contextlib
import getpass
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import require_tool

PROJECT = Path(__file__).resolve().parent.parent
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
def running(command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate a process we started, killing it if it has not exited after 10 s (a no-op if it is gone)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class SshServer:
    port: int
    user: str
    key: Path  # the client's private key, authorized on the server
    host_key_line: str  # the server's public host key as a known_hosts line
    log: Path  # sshd's own log (LogLevel DEBUG1: it names each channel request, such as agent forwarding)

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def sshd(folder: Path) -> Iterator[SshServer]:
    binary = require_tool("sshd")  # skips locally, fails in CI
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
                "LogLevel DEBUG1",
                "StrictModes no",  # the scratch folder's owner and modes are not sshd's business here
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    kind, key, _ = (folder / "host.pub").read_text().split()
    log = folder / "sshd.log"
    with running([binary, "-D", "-e", "-f", str(config)], port, log):
        yield SshServer(port=port, user=getpass.getuser(), key=folder / "client", host_key_line=f"[127.0.0.1]:{port} {kind} {key}", log=log)


@dataclass
class S3Server:
    port: int
    directory: Path  # where s3rver keeps the objects, one file each

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def s3rver(folder: Path) -> Iterator[S3Server]:
    s3rver = require_tool("s3rver")  # skips locally, fails in CI
    folder.mkdir(parents=True)
    port = free_port()
    command = [
        s3rver,
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


@dataclass
class DaskCluster:
    address: str  # the scheduler's, tcp://127.0.0.1:<port>
    workers: dict[str, subprocess.Popen]  # by worker name: each is the worker itself (no nanny), so a kill is a worker lost
    folder: Path  # logs and the workers' local directories


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2, memory_limit: str = "1GiB") -> Iterator[DaskCluster]:
    """`dask scheduler` and `workers` x `dask worker` (one process, one thread each, no dashboard) on 127.0.0.1,
    yielded once every worker is registered, all stopped on exit (also on failure). The workers import the
    project's code (PYTHONPATH), as workers on other machines must."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    started: dict[str, subprocess.Popen] = {}
    with running(scheduler, port, folder / "scheduler.log", env):
        try:
            for index in range(workers):
                name = f"w{index}"
                command = [
                    dask, "worker", address, "--host", "127.0.0.1", "--name", name, "--nworkers", "1", "--nthreads", "1",
                    "--memory-limit", memory_limit, "--local-directory", str(folder / name), "--no-dashboard", "--no-nanny",
                ]  # fmt: skip
                with (folder / f"{name}.log").open("w") as output:
                    started[name] = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
            with Client(address, timeout=20) as client:
                try:
                    client.wait_for_workers(workers, timeout=30)
                except TimeoutError as error:
                    logs = "\n".join((folder / f"{name}.log").read_text()[-1000:] for name in started)
                    raise RuntimeError(f"{workers} Dask workers did not register within 30 s: {logs}") from error
            yield DaskCluster(address=address, workers=started, folder=folder)
        finally:
            for process in started.values():
                stop(process)


class Gate:
    """What a gated proxy has let through, and the moment it starts holding requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.uploads = 0  # object uploads (PUT under files/md5/) passed to the server
        self.holding = threading.Event()  # set when an upload beyond the limit arrived and was held
        self.release = threading.Event()  # set to let held requests go (they are dropped, never forwarded)
        self.lock = threading.Lock()


@contextlib.contextmanager
def gated_proxy(upstream_port: int, limit: int) -> Iterator[tuple[str, Gate]]:
    """An HTTP proxy on 127.0.0.1 in front of an S3 server that forwards the first `limit` object uploads and holds
    every later one unanswered: a client stuck at a known point (exactly `limit` objects on the server).
    Headers, Host included, go through unchanged, so S3 request signatures stay valid."""
    gate = Gate(limit)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *arguments) -> None:  # quiet
            pass

        def forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "PUT" and "/files/md5/" in self.path:
                with gate.lock:
                    held = gate.uploads >= gate.limit
                    gate.uploads += 0 if held else 1
                if held:
                    gate.holding.set()
                    gate.release.wait()
                    self.close_connection = True
                    return
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            upstream.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gate
    finally:
        gate.release.set()
        server.shutdown()
        server.server_close()
