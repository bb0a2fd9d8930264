"""Check the DVC cache object by object and the workspace against dvc.lock; repair both from the remote.

    python -m commands.verify_cache            # list corrupted objects and workspace copies; exit 1 if any
    python -m commands.verify_cache --repair   # remove them, fetch them again by hash, restore the workspace
    make verify-cache / make repair-cache

DVC names every cache object after the MD5 of its content but trusts its cache afterwards: a
corrupted object (a disk error, a stray edit through a hard link) is checked out as it is, and
`dvc fetch` does not replace it. This recomputes each object's hash and compares it with its name.
DVC sometimes deletes a corrupted object itself (when `dvc status` happens to hash it) and leaves the
workspace copy as it is, so the workspace files of the current dvc.lock and .dvc files are hashed too.
Objects are fetched again by their hash (commands/fetch_objects.py), whichever revision needs them:
a plain `dvc fetch` brings only what the current dvc.lock needs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stages.lib.errors import fail, run_stage
from stages.lib.revisions import TIMEOUT_VARIABLE, command_timeout, dvc, last_line, run

CHUNK = 1 << 20
CORRUPTED_EXIT = 1


@dataclass(frozen=True)
class Recorded:
    """A cached output of the current revision as dvc.lock or a .dvc file records it."""

    path: str  # relative to the project root
    oid: str  # its object name: the file's MD5, or `<md5>.dir` for a directory's listing


@dataclass(frozen=True)
class Mismatch:
    """A workspace file whose content is not what the current revision records."""

    file: str
    oid: str  # the object it should be
    output: str  # the recorded output holding it (what `dvc checkout` restores)


# Run by repair in a child process (a remote may hang), not by make.
FETCH_MODULE = "commands.fetch_objects"


def project_state(repo: Path) -> tuple[Path, list[Recorded]]:
    """The cache folder and the cached outputs the current dvc.lock and .dvc files record (read in-process)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as project:
            cache = Path(project.cache.local_cache_dir)
            outputs = sorted(
                {
                    Recorded(str(Path(out.fs_path).relative_to(repo)), str(out.hash_info.value))
                    for out in project.index.outs
                    if out.use_cache and out.hash_info and out.hash_info.name == "md5" and out.hash_info.value
                },
                key=lambda recorded: recorded.path,
            )
    except DvcException as error:
        fail(f"{repo}: not a DVC project or its dvc.yaml/dvc.lock cannot be read ({error}); run from the project root")
    return cache, outputs


def object_path(cache: Path, oid: str) -> Path:
    return cache / "files" / "md5" / oid[:2] / oid[2:]


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def corrupted_objects(cache: Path) -> Iterator[Path]:
    """Objects whose content no longer hashes to their name (`files/md5/ab/cdef...[.dir]`)."""
    for path in sorted((cache / "files" / "md5").glob("??/*")):
        if path.is_file() and not path.name.endswith(".tmp") and md5_of(path) != path.parent.name + path.name.removesuffix(".dir"):
            yield path


def listing(cache: Path, oid: str) -> list[tuple[str, str]] | None:
    """A directory's (relative path, object name) entries from its cached listing; None when absent or corrupted."""
    path = object_path(cache, oid)
    if not path.is_file() or md5_of(path) != oid.removesuffix(".dir"):
        return None
    return [(str(entry["relpath"]), str(entry["md5"])) for entry in json.loads(path.read_text(encoding="utf-8"))]


def workspace_mismatches(repo: Path, cache: Path, outputs: list[Recorded]) -> tuple[list[Mismatch], list[Recorded]]:
    """Workspace files (present ones: a missing file is merely not checked out) whose content differs from the
    recorded hash, and the directory outputs that cannot be checked because their listing is not in the cache."""
    mismatches: list[Mismatch] = []
    unlisted: list[Recorded] = []
    for output in outputs:
        if not output.oid.endswith(".dir"):
            files = [(output.path, output.oid)]
        elif (entries := listing(cache, output.oid)) is not None:
            files = [(f"{output.path}/{relpath}", oid) for relpath, oid in entries]
        else:
            if (repo / output.path).exists():
                unlisted.append(output)
            continue
        for file, oid in files:
            path = repo / file
            if path.is_file() and md5_of(path) != oid:
                mismatches.append(Mismatch(file, oid, output.path))
    return mismatches, unlisted


def fetch_by_hash(repo: Path, oids: list[str]) -> subprocess.CompletedProcess[str]:
    """Fetch objects by name from the remotes, in a child process with the commands' deadline (a remote may hang)."""
    timeout = command_timeout()
    command = [sys.executable, "-m", FETCH_MODULE, *oids]
    try:
        return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(
            f"fetching {len(oids)} object(s) from the DVC remote did not finish within {timeout:g} s in {repo} and was stopped; "
            f"check the network and the DVC remote, or set {TIMEOUT_VARIABLE} to wait longer"
        )


def report(cache: Path, corrupted: list[Path], mismatches: list[Mismatch], unlisted: list[Recorded]) -> None:
    for path in corrupted:
        print(f"corrupted: {path.relative_to(cache)} (content does not match its hash)")
    for mismatch in mismatches:
        print(f"workspace: {mismatch.file} differs from its recorded hash {mismatch.oid} (dvc.lock or .dvc file)")
    for output in unlisted:
        print(f"unchecked: {output.path}/ (its listing {output.oid} is not in the cache)")


def repair(
    repo: Path, cache: Path, corrupted: list[Path], outputs: list[Recorded], mismatches: list[Mismatch], unlisted: list[Recorded]
) -> str:
    """Remove the corrupted objects, fetch what is gone or needed by hash, relink the workspace; what was done."""
    for path in corrupted:
        path.chmod(0o644)
        path.unlink()
    removed = f"removed {len(corrupted)} corrupted object(s)" if corrupted else "no cache object was corrupted"
    wanted = {path.parent.name + path.name for path in corrupted} | {output.oid for output in unlisted}
    wanted |= {mismatch.oid for mismatch in mismatches if not object_path(cache, mismatch.oid).is_file()}
    if wanted:
        fetched = fetch_by_hash(repo, sorted(wanted))
        if fetched.returncode != 0:
            fail(f"{removed} but could not fetch them again: {last_line(fetched)}")
        missing = sorted(oid for oid in wanted if not object_path(cache, oid).is_file())
        if missing:
            said = f" (the remote said: {last_line(fetched)})" if fetched.stderr.strip() else ""
            fail(
                f"{removed} but could not fetch them again: files/md5/{missing[0][:2]}/{missing[0][2:]} is on no remote{said}; "
                "push it from a clone that has it"
            )
        still = list(corrupted_objects(cache))
        if still:
            fail(f"{len(still)} object(s) still corrupted after fetching: the remote holds bad copies too ({still[0].relative_to(cache)})")
    if unlisted:  # their listings arrived: now their files can be checked
        mismatches = workspace_mismatches(repo, cache, outputs)[0]
    targets = sorted({mismatch.output for mismatch in mismatches})
    if targets:
        # --relink rewrites the outputs from the cache: DVC's state still vouches for the bad workspace copies.
        restored = run(dvc("checkout", "--force", "--relink", *targets), repo, check=False)
        if restored.returncode != 0:
            fail(f"fetched the objects again but could not restore {', '.join(targets)}: {last_line(restored)}")
        left, _ = workspace_mismatches(repo, cache, outputs)
        if left:
            fail(f"restored {', '.join(targets)} but {left[0].file} still differs from dvc.lock")
    fetched_note = f"fetched {len(wanted)} object(s) again by hash" if wanted else "nothing to fetch"
    return f"repaired: {removed}, {fetched_note}, restored {len(mismatches)} workspace file(s)" + (
        f" in {', '.join(targets)}" if targets else ""
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="remove corrupted objects, fetch them again and restore the workspace")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    cache, outputs = project_state(repo)
    corrupted = list(corrupted_objects(cache))
    mismatches, unlisted = workspace_mismatches(repo, cache, outputs)
    report(cache, corrupted, mismatches, unlisted)
    if not (corrupted or mismatches or unlisted):
        print(f"cache: every object in {cache} matches its hash; workspace: every output matches dvc.lock")
        return
    if not args.repair:
        print(
            f"{len(corrupted)} corrupted object(s), {len(mismatches)} workspace file(s) unlike dvc.lock, {len(unlisted)} output(s) unchecked; "
            "run `make repair-cache` to fetch them again from the remote and restore the workspace "
            "(it replaces workspace edits not yet recorded with `dvc add` or `make repro`)",
            file=sys.stderr,
        )
        sys.exit(CORRUPTED_EXIT)
    print(repair(repo, cache, corrupted, outputs, mismatches, unlisted))


if __name__ == "__main__":
    run_stage(main)
