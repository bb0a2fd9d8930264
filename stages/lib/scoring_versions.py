"""Which code scores: a registered version with its own code in its own worktree, or the workspace as it is.

A registered version (a GTO tag) is materialized in a temporary worktree (stages/lib/revisions.py) and
scored there by `python -m commands.score_here`, the version's own entry point, so the version's own
stages/lib/features code transforms with its own fitted objects: a later change to a transformer does not
change an old version's scores. The libraries whose versions change results must match the version's
requirements.lock pins. `workspace` scores in this process with the current code and the committed
pipeline outputs of this checkout.

On the dask engine (this checkout's params.yaml `engine`), the version's own code scores on the cluster
(stages/lib/scoring_partitioned.py): its commands/score_here.py must declare `ENGINES` with "dask", else the
run is refused (a version written before the engine is never scored on pandas in its place).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.lib.catalog import FEATURES_DIR, MODEL_FILE
from stages.lib.config import EngineConfig
from stages.lib.errors import fail
from stages.lib.io import parquet_files, parquet_schema
from stages.lib.production import BEYOND_HISTORY, HISTORY_COMPLETE, PREDICTION
from stages.lib.revisions import command_timeout, materialized, run

WORKSPACE = "workspace"
MODEL_REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)(?:@(?P<version>v[\w.+-]+)|#(?P<stage>[\w-]+))$")
# The stable entry point a version's checkout scores with; its arguments are an interface between versions.
ENTRY_MODULE = "commands.score_here"
ENTRY_FILE = Path("commands/score_here.py")
REQUIREMENTS_LOCK = Path("requirements.lock")
# The libraries whose versions change what a fitted transformer or model computes, or how it loads.
# score_frame on the dask engine: the rows are staged as Parquet row groups of this many rows, one scoring task each.
PIECE_ROWS = 250_000
RESULT_LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "skops")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;#\\]+)")


@dataclass(frozen=True)
class ScoredBatch:
    # The input rows + `prediction` + `history_complete` (+ `beyond_history` when allowed); when the scores were
    # written to a folder (dask engine), only the marks `history_complete` (and `beyond_history`), read back from it.
    scores: pd.DataFrame
    model_sha: str  # the git commit the model came from (HEAD for the workspace)
    model_md5: str  # md5 of the model file, as dvc.lock records it
    ref: str  # the git tag scored (model@v1.0.0), or `workspace`


def model_ref(reference: str, repo: Path) -> str:
    """The git tag behind `name@version` or `name#stage` in the GTO registry; `workspace` as it is."""
    if reference == WORKSPACE:
        return WORKSPACE
    match = MODEL_REFERENCE.match(reference)
    if not match:
        fail(
            f"--model {reference!r}: expected <name>@<version> (e.g. model@v1.0.0), <name>#<stage> (e.g. model#prod) "
            f"or {WORKSPACE}; see `gto show`"
        )
    if match["version"]:
        return f"{match['name']}@{match['version']}"
    shown = run(["gto", "show", reference, "--ref"], repo, check=False)
    ref = shown.stdout.strip().splitlines()[-1] if shown.returncode == 0 and shown.stdout.strip() else ""
    if not ref:
        fail(f"--model {reference}: no version of '{match['name']}' is in stage '{match['stage']}'; see `gto show` and `make promote`")
    return ref


def md5_file(path: Path) -> str:
    """The file's md5, as DVC records it for a file output."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned_versions(lock_text: str) -> dict[str, str]:
    """`name==version` lines of a requirements.lock, by normalized name (PEP 503)."""
    return {
        re.sub(r"[-_.]+", "-", match["name"]).lower(): match["version"]
        for line in lock_text.splitlines()
        if (match := PIN.match(line.strip()))
    }


def library_mismatch(pins: dict[str, str], installed: dict[str, str]) -> tuple[str, str | None, str] | None:
    """The first result-changing library whose pin differs from what is installed: (name, pinned, installed)."""
    for name in RESULT_LIBRARIES:
        if pins.get(name) != installed[name]:
            return name, pins.get(name), installed[name]
    return None


def check_libraries(root: Path, ref: str) -> None:
    """Refuse a version whose requirements.lock pins other versions of the result-changing libraries."""
    lock = root / REQUIREMENTS_LOCK
    if not lock.is_file():
        fail(
            f"--model {ref}: its checkout has no {REQUIREMENTS_LOCK}, so the library versions it was trained with are unknown; refusing to score it"
        )
    installed = {name: importlib.metadata.version(name) for name in RESULT_LIBRARIES}
    mismatch = library_mismatch(pinned_versions(lock.read_text(encoding="utf-8")), installed)
    if mismatch:
        name, pinned, here = mismatch
        pinned_text = f"pins {name}=={pinned}" if pinned else f"pins no version of {name}"
        fail(
            f"--model {ref}: its {REQUIREMENTS_LOCK} {pinned_text} but {name} {here} is installed here, and {name} changes what "
            f"its fitted objects compute; score it with its own libraries: `make checkout REV={ref}` (make installs its pins), then `make predict`"
        )


def check_entry_point(root: Path, ref: str) -> None:
    """Refuse a version registered before own-code scoring existed: it has no entry point to score with."""
    if not (root / ENTRY_FILE).is_file():
        fail(
            f"--model {ref}: its checkout has no {ENTRY_FILE} (registered before versions were scored by their own code), so "
            f"today's code would score its fitted objects; score it with its own code: `make checkout REV={ref}`, then its own `make predict`"
        )


def entry_engines(root: Path) -> tuple[str, ...]:
    """The engines a checkout's commands/score_here.py declares in `ENGINES` (read, not run); pandas alone without it."""
    try:
        tree = ast.parse((root / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "ENGINES" for target in targets):
            try:
                return tuple(str(name) for name in ast.literal_eval(value))
            except (ValueError, TypeError, SyntaxError):
                return ()
    return ("pandas",)


def check_engine(root: Path, ref: str, engine: EngineConfig) -> None:
    """Refuse a version whose own scoring code does not run on the chosen engine (written before it existed)."""
    if engine.name not in entry_engines(root):
        fail(
            f"--model {ref}: its own scoring code ({ENTRY_FILE}) predates the {engine.name} engine, and a version is scored only by "
            f"its own code; score it on the pandas engine (engine: pandas in params.yaml, e.g. `- engine: pandas` in conf/config.yaml)"
        )


def score_marks(folder: Path) -> pd.DataFrame:
    """The marks of scores written as a folder of parts (`history_complete`, and `beyond_history` when there), in order."""
    columns = [name for name in (HISTORY_COMPLETE, BEYOND_HISTORY) if name in parquet_schema(folder, "scoring wrote no parts")]
    files = parquet_files(folder, "scoring wrote no parts")
    return pd.concat([pd.read_parquet(part, columns=columns, engine="pyarrow") for part in files], ignore_index=True)


def run_own_code(
    root: Path,
    ref: str,
    input_path: Path,
    outcome_paths: Sequence[Path],
    allow_beyond_history: bool,
    labels: tuple[str | None, str | None],
    engine: EngineConfig | None = None,
    folder: Path | None = None,
) -> pd.DataFrame:
    """Score inside the version's worktree with its own code: `python -m commands.score_here`, cwd = the worktree.

    With `engine` (dask), the version's code scores on the cluster; with `folder`, it writes the scores there as parts
    and only their marks come back (`score_marks`)."""
    with tempfile.TemporaryDirectory(prefix="scores-") as scratch:
        output = folder.resolve() if folder is not None else Path(scratch) / "scores.parquet"
        command = [sys.executable, "-m", ENTRY_MODULE, "--input", str(input_path.resolve()), "--output", str(output)]
        command += ["--engine", json.dumps(engine.model_dump(mode="json"))] if engine is not None else []
        command += [argument for path in outcome_paths for argument in ("--outcomes", str(path.resolve()))]
        command += ["--score-beyond-history"] if allow_beyond_history else []
        # Messages name the input as the user gave it (the worktree sees it by its absolute path).
        command += ["--input-label", labels[0] or str(input_path)]
        command += ["--outcomes-label", labels[1]] if labels[1] else []
        # The worktree's own packages, never this checkout's (PYTHONPATH would put them first otherwise).
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        timeout = command_timeout()
        try:
            result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            fail(
                f"--model {ref}: scoring with its own code did not finish within {timeout:g} s; set COMMAND_TIMEOUT_SECONDS to wait longer"
            )
        lines = result.stderr.strip().splitlines()
        if result.returncode != 0:
            last = lines[-1] if lines else f"exit code {result.returncode}, no output"
            # A user error is already one line naming the file and the fix; anything else is the version's own crash.
            fail(last.removeprefix("error: ") if last.startswith("error: ") else f"--model {ref}: its own scoring code failed: {last}")
        return score_marks(output) if folder is not None else pd.read_parquet(output, engine="pyarrow")


def check_workspace(repo: Path) -> str:
    """HEAD's sha, once the model and features in the workspace are those its committed DVC files record."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo  # imported here: only `workspace` scoring needs DVC's API

    try:
        opened = Repo(str(repo))
    except NotDvcRepoError:
        fail(
            f"--model {WORKSPACE}: {repo} is not a DVC repository, so its model cannot be checked against dvc.lock; run from the project's root"
        )
    with opened as dvc_repo:
        # By path from the repository's root (a .dvc file's def_path is relative to its own folder).
        outs = {Path(os.path.relpath(out.fs_path, dvc_repo.root_dir)).as_posix(): out for out in dvc_repo.index.outs}
        records = set()
        for path in (MODEL_FILE, FEATURES_DIR):
            out = outs.get(path.as_posix())
            if out is None:
                fail(f"--model {WORKSPACE}: {path} is not a DVC output here; run `make repro` (or score a registered version)")
            changed = out.workspace_status()
            if changed:
                fail(
                    f"--model {WORKSPACE}: {path} is {next(iter(changed.values()))} compared with {out.stage.dvcfile.relpath} "
                    f"(`dvc status` is not clean): run `make repro` (or `dvc checkout`) so the workspace holds the pipeline's outputs"
                )
            relpath = out.stage.dvcfile.relpath
            records |= {relpath, re.sub(r"\.yaml$", ".lock", relpath)} if relpath.endswith(".yaml") else {relpath}
    changed_records = run(["git", "status", "--porcelain", "--", *sorted(records)], repo).stdout.strip()
    if changed_records:
        fail(f"--model {WORKSPACE}: {', '.join(sorted(records))} differ from the last commit; commit them, so the scores name a commit")
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def score_files_with(
    model: str,
    repo: Path,
    input_path: Path,
    outcome_paths: Sequence[Path],
    allow_beyond_history: bool,
    labels: tuple[str | None, str | None] = (None, None),
    engine: EngineConfig | None = None,
    folder: Path | None = None,
) -> ScoredBatch:
    """Score the input file (with the outcome files) by `model`: a registered version with its own code, or `workspace`.

    `labels` name the input and outcome files in messages when they are temporary copies. `engine` (the dask engine;
    None or pandas: in one process) says where; on dask the input may be a folder of parts or a glob, and `folder`
    (dask only) receives the scores as parts, the batch then holding only their marks.
    """
    distributed = engine is not None and engine.distributed
    assert folder is None or distributed, "only the dask engine writes scores as a folder"
    ref = model_ref(model, repo)
    if ref == WORKSPACE:
        sha = check_workspace(repo)
        if engine is not None and engine.distributed:
            from stages.lib.scoring_partitioned import score_files_on_dask  # here: only the dask engine loads Dask

            scored = score_files_on_dask(repo, input_path, outcome_paths, allow_beyond_history, engine, folder, labels)
            scores = score_marks(folder) if folder is not None else scored
        else:
            from stages.lib.scoring import score_files  # here: a registered version scores in its own process, without it

            scores = score_files(repo, input_path, outcome_paths, allow_beyond_history, *labels)
        assert scores is not None
        return ScoredBatch(scores=scores, model_sha=sha, model_md5=md5_file(repo / MODEL_FILE), ref=WORKSPACE)
    with materialized(ref, repo, what="--model") as revision:
        check_entry_point(revision.root, ref)
        check_libraries(revision.root, ref)
        if engine is not None and engine.distributed:
            check_engine(revision.root, ref, engine)
        own_engine = engine if distributed else None
        scores = run_own_code(revision.root, ref, input_path, outcome_paths, allow_beyond_history, labels, own_engine, folder)
        md5 = md5_file(revision.root / MODEL_FILE)
    return ScoredBatch(scores=scores, model_sha=revision.sha, model_md5=md5, ref=ref)


def score_frame(
    model: str,
    rows: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    allow_beyond_history: bool,
    repo: Path,
    engine: EngineConfig | None = None,
    piece_rows: int | None = None,
) -> ScoredBatch:
    """Score rows by `model` (`model@v1.0.0`, `model#prod` or `workspace`) with the outcomes known now.

    The rows and outcomes go through Parquet files to the version's own code (for `workspace` too, so both read
    them alike: a text cell holding one of the version's data.missing_values is missing). On the dask engine
    (`engine`) the rows file is written in row groups of `piece_rows` rows (default PIECE_ROWS), each scored on the
    cluster as `make predict` scores a piece (stages/lib/scoring_partitioned.py), and the scores are collected in order.

    Args:
        model: the model version, as `make predict MODEL=` takes it.
        rows: the rows to score, shaped like the version's prepared table.
        outcomes: labelled rows known at scoring time (the time, the history keys and the target), or None.
        allow_beyond_history: score rows beyond the known outcomes, marked in `beyond_history`, instead of refusing.
        repo: the project's git repository.
        engine: where to score (None or pandas: in one process).
        piece_rows: the dask engine's rows per piece.

    Returns:
        The scores (`rows`, same index, plus `prediction`, `history_complete`, and `beyond_history` when allowed),
        the model's commit and md5, and the tag scored (or `workspace`).
    """
    with tempfile.TemporaryDirectory(prefix="score-frame-") as scratch:
        input_path, outcome_paths = Path(scratch) / "rows.parquet", []
        distributed = engine is not None and engine.distributed
        _to_parquet(rows, input_path, "rows", (piece_rows or PIECE_ROWS) if distributed else None)
        if outcomes is not None:
            outcome_paths.append(Path(scratch) / "outcomes.parquet")
            _to_parquet(outcomes, outcome_paths[0], "outcomes")
        batch = score_files_with(model, repo, input_path, outcome_paths, allow_beyond_history, labels=("rows", "outcomes"), engine=engine)
    added = [PREDICTION, HISTORY_COMPLETE, *([BEYOND_HISTORY] if allow_beyond_history else [])]
    scores = rows.assign(**{name: batch.scores[name].to_numpy() for name in added})
    return ScoredBatch(scores=scores, model_sha=batch.model_sha, model_md5=batch.model_md5, ref=batch.ref)


def _to_parquet(frame: pd.DataFrame, path: Path, what: str, row_group_rows: int | None = None) -> None:
    groups: dict[str, Any] = {} if row_group_rows is None else {"row_group_size": row_group_rows}
    try:
        frame.to_parquet(path, index=False, engine="pyarrow", **groups)
    except (ValueError, TypeError, ImportError) as error:  # pyarrow's errors derive from these
        fail(f"{what}: cannot be stored as Parquet for scoring ({str(error).splitlines()[0]}); give each column one type")
