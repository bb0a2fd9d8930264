"""Push and pull of the full pipeline outputs to each kind of DVC remote, side by side (issue 6).

Run from the repository root after `make repro` (the outputs must be in .dvc/cache):

    .venv/bin/python benchmarks/remote_benchmark.py

For each remote (a local directory, OpenSSH's sshd and the s3rver S3 server, both on 127.0.0.1,
started as the tests start them), in one run: clone this repository into a scratch folder that
reads this repository's cache, time `dvc push` of every output `dvc.lock` names, then clone again
with an empty cache and time `dvc pull` (fetch and checkout). Prints a Markdown table with the
ratio to the local-directory remote. Needs `.ci/system-deps` to have installed sshd and s3rver.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import servers  # noqa: E402  (the servers the tests use)

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def dvc(folder: Path, *arguments: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=folder, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(arguments)} failed: {result.stderr}")
    return time.perf_counter() - started


def clone(scratch: Path, name: str) -> Path:
    folder = scratch / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(folder)], check=True)
    return folder


def point_at(folder: Path, settings: list[tuple[str, str]], credentials: list[tuple[str, str]]) -> None:
    dvc(folder, "remote", "add", "-f", "-d", "bench", settings[0][1])
    for key, value in settings[1:]:
        dvc(folder, "remote", "modify", "bench", key, value)
    for key, value in credentials:
        dvc(folder, "remote", "modify", "--local", "bench", key, value)


Settings = list[tuple[str, str]]  # `dvc remote modify` key and value pairs


@contextlib.contextmanager
def remote(kind: str, scratch: Path) -> Iterator[tuple[Settings, Settings]]:
    if kind == "local directory":
        yield [("url", str(scratch / "store"))], []
    elif kind == "SSH (sshd)":
        with servers.sshd(scratch / "sshd") as server:
            yield [("url", server.url(scratch / "store"))], [("keyfile", str(server.key))]
    else:
        with servers.s3rver(scratch / "s3") as server:
            yield (
                [("url", f"s3://{servers.BUCKET}/bench"), ("endpointurl", server.endpoint)],
                [
                    ("access_key_id", servers.S3RVER_KEY),
                    ("secret_access_key", servers.S3RVER_KEY),
                ],
            )


def cache_size(folder: Path) -> tuple[int, int]:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def main() -> None:
    rows = []
    for kind in ("local directory", "SSH (sshd)", "S3 (s3rver)"):
        with tempfile.TemporaryDirectory(prefix="remote-bench-") as scratch_name:
            scratch = Path(scratch_name)
            with remote(kind, scratch) as (settings, credentials):
                source = clone(scratch, "source")
                dvc(source, "cache", "dir", "--local", str(REPO / ".dvc/cache"))
                point_at(source, settings, credentials)
                push = dvc(source, "push")
                target = clone(scratch, "target")
                point_at(target, settings, credentials)
                pull = dvc(target, "pull")
                objects, size = cache_size(target / ".dvc/cache")
                rows.append((kind, push, pull, objects, size))
    base_push, base_pull = rows[0][1], rows[0][2]
    print(f"Outputs of dvc.lock: {rows[0][3]} objects, {rows[0][4] / 1e6:.1f} MB\n")
    print("| Remote | dvc push | ratio | dvc pull (fresh clone) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for kind, push, pull, _, _ in rows:
        print(f"| {kind} | {push:.1f} s | {push / base_push:.1f}x | {pull:.1f} s | {pull / base_pull:.1f}x |")


if __name__ == "__main__":
    main()
