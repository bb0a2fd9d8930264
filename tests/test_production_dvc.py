"""DVC versions the production store: real git and dvc in a temporary repository holding the project's
production-store stage exactly as dvc.yaml declares it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.production import append_batch, batches
from tests.conftest import PROJECT, project_params, tool_env

pytestmark = pytest.mark.slow  # real stages, git and dvc in temporary projects

STAGE = "production-store"


def run(repo: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 or not check, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()
    }


def store_hash(repo: Path) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    (out,) = lock["stages"][STAGE]["outs"]
    assert out["path"] == PRODUCTION_DIR.as_posix()
    return out["md5"]


def append(repo: Path, start: str, rows: int, prefix: str) -> None:
    """A scored batch appended the way score-batch appends it (the library call, no model needed)."""
    times = pd.date_range(start, periods=rows, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {
            "row_id": pd.Series([f"{prefix}-{n}" for n in range(rows)], dtype="string"),
            "time_hour": times,
            "prediction": 0.25,
            "history_complete": True,
        }
    )
    append_batch(frame, "time_hour", "workspace", "0" * 40, "0" * 32, times[-1].isoformat(), repo / PRODUCTION_DIR)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with the stage's code, params.yaml and dvc.yaml reduced to the production-store stage."""
    repo = tmp_path / "repo"
    for path in (PROJECT / "stages").rglob("*.py"):
        target = repo / path.relative_to(PROJECT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shutil.copy2(PROJECT / ".dvcignore", repo / ".dvcignore")
    (repo / "params.yaml").write_text(yaml.safe_dump(project_params()))
    pipeline = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {STAGE: pipeline["stages"][STAGE]}}, sort_keys=False))
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "dvc", "init", "-q")
    return repo


def commit(repo: Path, message: str) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", message)


def test_dvc_records_each_append_never_deletes_and_checks_out_older_stores(repo, tmp_path):
    store = repo / PRODUCTION_DIR
    run(repo, "dvc", "repro")
    assert files(store).keys() == {"store.json"}
    empty = store_hash(repo)
    commit(repo, "empty store")
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout

    append(repo, "2013-11-01", 5, "a")
    status = run(repo, "dvc", "status").stdout
    assert STAGE in status and "modified:           data/production" in status
    before = files(store)
    run(repo, "dvc", "repro")
    assert files(store) == before  # the stage ran (outs changed) and neither deleted nor rewrote a file
    one = store_hash(repo)
    assert one != empty and "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout
    commit(repo, "one batch")
    with_one = files(store)

    append(repo, "2013-11-08", 3, "b")
    run(repo, "dvc", "repro")
    assert {name: files(store)[name] for name in with_one} == with_one and len(batches(store)) == 2
    commit(repo, "two batches")

    # An older revision's store comes back with `dvc checkout`; the newer one from the cache afterwards.
    run(repo, "git", "checkout", "-q", "HEAD~1")
    run(repo, "dvc", "checkout")
    assert files(store) == with_one
    run(repo, "git", "checkout", "-q", "main")
    run(repo, "dvc", "checkout")
    assert len(batches(store)) == 2 and store_hash(repo) != one

    # An append not yet recorded (no `dvc repro` since): `dvc checkout` of another revision refuses to remove it.
    append(repo, "2013-11-15", 2, "c")
    unsaved = files(store)
    run(repo, "git", "checkout", "-q", "HEAD~1")
    refused = run(repo, "dvc", "checkout", check=False)
    assert refused.returncode != 0 and "Can't remove the following unsaved files without confirmation" in refused.stderr
    assert files(store) == unsaved
    run(repo, "git", "checkout", "-q", "main")
    # `make checkout` runs `dvc checkout --force`, which would delete them: it refuses first, and moves nothing.
    venv = PROJECT / ".venv"
    made = run(
        repo, "make", "-f", str(PROJECT / "Makefile"), "-o", f"{venv}/.installed", "checkout", "REV=HEAD~1", f"VENV={venv}", check=False
    )
    assert made.returncode != 0 and "data/production holds batches or outcomes dvc.lock does not record yet" in made.stderr
    assert files(store) == unsaved and run(repo, "git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == "main"

    # A fresh clone has no DVC data (no remote here): `dvc repro` creates an empty store there.
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / PRODUCTION_DIR).exists()
    run(clone, "dvc", "repro")
    assert files(clone / PRODUCTION_DIR).keys() == {"store.json"} and store_hash(clone) == empty
