"""Helpers for the end-to-end tests: a project copy in a temporary git repo, and real git/dvc commands."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from stages.lib.catalog import FEATURES_DIR, PREPARED_DIR, PRODUCTION_DIR, SOURCES_STAGE
from stages.lib.production import STORE_FILE
from tests import servers, warm_python
from tests.conftest import PROJECT, TEST_CHOICES, tool_env
from tests.dvc_pipeline import catalogued, declared_stages, inside

SAMPLE_ROWS = 30000
# The first line of docs/pr-report-sample/report.md after its marker (the copy the lifecycle test refreshes says where from).
SAMPLE_NOTE = (
    f"> A sample: made by the end-to-end test (`PR_REPORT_SAMPLE=1 .venv/bin/python -m pytest tests/test_e2e_lifecycle.py "
    f"-k feature_engine`) on a {SAMPLE_ROWS:,}-row sample of the flights with a shortened training (`E2E_SETTINGS` in "
    "tests/e2e_support.py), so its figures are not the full pipeline's."
)
# The end-to-end copy's settings, beside the data sample: these tests check the pipeline's mechanics (what reruns,
# what is restored, pushed, reported), not the model's quality, so the copy trains 60 boosting iterations with two
# CV folds and computes permutation importance once on 2,000 rows. On 30,000 rows that takes train from 22 s to
# 7 s and evaluate from 22 s to 5 s. (conf/ file, line, replacement); each line must exist exactly once.
E2E_SETTINGS = (
    ("data/nycflights13.yaml", "sample_rows: null", f"sample_rows: {SAMPLE_ROWS}"),
    ("model/hgb.yaml", "max_iter: 300", "max_iter: 60"),
    ("train/default.yaml", "cv_folds: 3 ", "cv_folds: 2 "),
    ("evaluate/default.yaml", "importance_repeats: 3 ", "importance_repeats: 1 "),
    ("evaluate/default.yaml", "importance_rows: 5000 ", "importance_rows: 2000 "),
)
# Bytecode is written as usual: .dvcignore must keep __pycache__ out of the stages' code deps.
ENV = {key: value for key, value in tool_env().items() if key != "PYTHONDONTWRITEBYTECODE"}
# The end-to-end modules run side by side on the test workers: one OpenMP thread per stage,
# or the OpenMP runtimes of several training processes spin against each other (minutes instead of seconds).
ENV["OMP_NUM_THREADS"] = "1"


def run(repo: Path, *command: str, check: bool = True) -> str:
    if command[:2] == (sys.executable, "-m") and command[2] != "dvc":  # the project's commands: a warm interpreter
        result = warm_python.run(command[2], list(command[3:]), repo, ENV, timeout=900)
    else:
        result = subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 or not check, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def expected_outputs(repo: Path) -> list[str]:
    """The files a full run of `repo` must leave: every output its dvc.yaml declares, with its folder outputs
        spelled out as the files the catalogue names in them plus prepare's and featurize's table per split, and the
    production store as the one file a new store holds."""
    declared = {path for stage in declared_stages(repo).values() for path in stage.outputs}
    folders = {PREPARED_DIR.as_posix(), FEATURES_DIR.as_posix()}
    splits = yaml.safe_load((repo / "params.yaml").read_text())["data"]["splits"]
    named = {path for path in catalogued().values() if inside(path, folders) and path not in folders}
    tables = {f"{folder}/{split}.parquet" for folder in folders for split in splits}
    store = {(PRODUCTION_DIR / STORE_FILE).as_posix()}  # the production store a first run creates holds this file only
    return sorted((declared - folders - {PRODUCTION_DIR.as_posix()}) | named | tables | store)


def stages_run(output: str) -> set[str]:
    """The stages `dvc repro` ran, but the sources stage: it runs every time (always_changed) to hash the sources."""
    return set(re.findall(r"Running stage '([\w-]+)'", output)) - {SOURCES_STAGE}


def up_to_date(repo: Path) -> bool:
    """`dvc status` finds nothing to rerun: the always-changed sources stage is the only entry."""
    result = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=300, check=True)
    return bool(json.loads(result.stdout) == {SOURCES_STAGE: ["always changed"]})


def out_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def new_project(folder: Path) -> Path:
    """A git repo holding this project's files, with the tests' choices selected in its conf/config.yaml (whatever
    this project's selects) and the data sample switched on."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    # Skip committed pipeline results (dvc.lock and every output dvc.yaml declares): the copy must produce its own.
    results = {path for stage in declared_stages().values() for path in stage.outputs}
    for name in files:
        source = PROJECT / name
        if source.is_file() and name != "dvc.lock" and not inside(name, results):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    config = yaml.safe_load((folder / "conf/config.yaml").read_text())
    groups = [next(iter(entry)) if isinstance(entry, dict) else entry for entry in config["defaults"]]
    config["defaults"] = [{group: TEST_CHOICES[group]} if group in TEST_CHOICES else group for group in groups]
    (folder / "conf/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name, line, replacement in E2E_SETTINGS:
        conf = folder / "conf" / name
        text = conf.read_text()
        assert text.count(line) == 1, f"{conf}: no line `{line}` to replace with `{replacement}` for the end-to-end copy"
        conf.write_text(text.replace(line, replacement))
    run(folder, sys.executable, "-m", "commands.compose")
    run(folder, "git", "init", "-q", "-b", "main")
    run(folder, "git", "add", "-A")
    run(folder, "git", "commit", "-qm", "project")
    return folder


def report(repo: Path, output: Path, *arguments: str) -> subprocess.CompletedProcess:
    return warm_python.run("commands.report", ["--output", str(output), *arguments], repo, ENV, timeout=900)


def section(text: str, title: str) -> str:
    start = text.index(f"### {title}")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


@contextlib.contextmanager
def remote(kind: str, folder: Path):
    """A real server on 127.0.0.1, and how to point DVC at it: (tracked url settings, credentials for config.local)."""
    if kind == "ssh":
        with servers.sshd(folder / "sshd") as server:
            yield [("url", server.url(folder / "store"))], [("keyfile", str(server.key))], server
    else:
        with servers.s3rver(folder / "s3") as server:
            tracked = [("url", f"s3://{servers.BUCKET}/project"), ("endpointurl", server.endpoint)]
            yield tracked, [("access_key_id", servers.S3RVER_KEY), ("secret_access_key", servers.S3RVER_KEY)], server


def point_at(repo: Path, tracked: list[tuple[str, str]] | None, credentials: list[tuple[str, str]]) -> None:
    if tracked:
        run(repo, "dvc", "remote", "add", "--default", "team", tracked[0][1])
        for key, value in tracked[1:]:
            run(repo, "dvc", "remote", "modify", "team", key, value)
    for key, value in credentials:
        run(repo, "dvc", "remote", "modify", "--local", "team", key, value)  # .dvc/config.local: never in git


def first_run(folder: Path) -> tuple[Path, str, dict[str, str]]:
    """A new project after its first `dvc repro`, committed: its folder, the run's output, the outs' hashes."""
    repo = new_project(folder)
    output = run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run")
    return repo, output, out_hashes(repo)
