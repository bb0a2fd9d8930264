"""Check the DVC cache object by object, and repair what is corrupted from the remote.

    python -m commands.verify_cache            # list corrupted objects; exit 1 if any
    python -m commands.verify_cache --repair   # remove them, fetch them again from the remote, restore the workspace
    make verify-cache / make repair-cache

DVC names every cache object after the MD5 of its content but trusts its cache afterwards: a
corrupted object (a disk error, a stray edit through a hard link) is checked out as it is, and
`dvc fetch` does not replace it. This recomputes each object's hash and compares it with its name.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

from stages.lib.errors import fail, run_stage
from stages.lib.revisions import dvc, last_line, run

CHUNK = 1 << 20
CORRUPTED_EXIT = 1


def cache_dir(repo: Path) -> Path:
    result = run(dvc("cache", "dir"), repo, check=False)
    if result.returncode != 0:
        fail(f"{repo}: not a DVC project (`dvc cache dir` failed); run from the project root")
    return Path(result.stdout.strip())


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="remove corrupted objects, fetch them again and restore the workspace")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    cache = cache_dir(repo)
    corrupted = list(corrupted_objects(cache))
    for path in corrupted:
        print(f"corrupted: {path.relative_to(cache)} (content does not match its hash)")
    if not corrupted:
        print(f"cache: every object in {cache} matches its hash")
        return
    if not args.repair:
        print(f"{len(corrupted)} corrupted object(s); run `make repair-cache` to fetch them again from the remote", file=sys.stderr)
        sys.exit(CORRUPTED_EXIT)
    for path in corrupted:
        path.chmod(0o644)
        path.unlink()
    fetched = run(dvc("fetch"), repo, check=False)
    if fetched.returncode != 0:
        fail(f"removed {len(corrupted)} corrupted object(s) but could not fetch them again: {last_line(fetched)}")
    missing = [path for path in corrupted if not path.exists()]
    if missing:
        fail(
            f"removed {len(corrupted)} corrupted object(s) but could not fetch them again: {missing[0].relative_to(cache)} is on no remote; push it from a clone that has it"
        )
    still = list(corrupted_objects(cache))
    if still:
        fail(f"{len(still)} object(s) still corrupted after fetching: the remote holds bad copies too ({still[0].relative_to(cache)})")
    # --relink rewrites every output from the cache: DVC's state still vouches for the bad workspace copies.
    restored = run(dvc("checkout", "--force", "--relink"), repo, check=False)
    if restored.returncode != 0:
        fail(f"fetched the objects again but could not restore the workspace: {last_line(restored)}")
    print(f"repaired {len(corrupted)} object(s) from the remote; workspace restored")


if __name__ == "__main__":
    run_stage(main)
