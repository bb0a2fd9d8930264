"""Fetch DVC cache objects by their hash from the project's DVC remotes (used by `make repair-cache`).

    python -m commands.fetch_objects HASH [HASH ...]     # e.g. 0f3a...e1 or 9b2c...47.dir

`dvc fetch` brings only what the current dvc.lock (or a named revision) needs, so an object another
branch, tag or older commit needs cannot be fetched with it. This asks each remote for the objects by
name, the default remote first, then the others in name order, each only for what is still missing.
A remote that fails is reported with DVC's own message (on stderr) and the next one is tried; what
arrived is for the caller to check, in the cache.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from stages.lib.errors import fail, run_stage

OBJECT_NAME = re.compile(r"[0-9a-f]{32}(\.dir)?")


def remote_order(default: str | None, names: list[str]) -> list[str]:
    """The default remote first, then the others by name."""
    return ([default] if default in names else []) + sorted(name for name in names if name != default)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("objects", nargs="+", help="object names: 32 hex digits, `.dir` for a directory listing")
    args = parser.parse_args(argv)
    wrong = [name for name in args.objects if not OBJECT_NAME.fullmatch(name)]
    if wrong:
        fail(f"{wrong[0]!r} is not a DVC object name: expected 32 lowercase hex digits, optionally followed by .dir")

    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    try:
        repo = Repo(str(Path.cwd()))
    except DvcException as error:
        fail(f"{Path.cwd()}: not a DVC project ({error}); run from the project root")
    with repo:
        names = list(repo.config["remote"])
        if not names:
            fail("no DVC remote is configured: add one (`dvc remote add -d NAME URL`) or pull from a clone that has the objects")
        cache = repo.cache.local
        for name in remote_order(repo.config["core"].get("remote"), names):
            wanted = [HashInfo("md5", oid) for oid in args.objects if not Path(cache.oid_to_path(oid)).exists()]
            if not wanted:
                break
            try:
                repo.cloud.pull(wanted, remote=name)
            except DvcException as error:  # DVC's own words: which remote, what went wrong
                print(f"remote '{name}': {error}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
