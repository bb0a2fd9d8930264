"""End to end: real `dvc repro` / `dvc exp run` / `dvc push` in a temporary git repo, on a sample of the real data."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.compose import compose
from stages.lib.models import load_model
from tests import servers
from tests.conftest import PROJECT, tool_env

pytestmark = pytest.mark.slow

SAMPLE_ROWS = 30000
OUTPUTS = [
    "data/prepared/train.parquet",
    "data/prepared/test.parquet",
    "data/prepared/reference.parquet",
    "data/prepared/current.parquet",
    "data/features/spec.json",
    "data/features/train.parquet",
    "models/model.skops",
    "models/model_card.json",
    "reports/prepare.json",
    "data/schema.yaml",
    "reports/metrics.json",
    "reports/plots/roc.json",
    "reports/plots/precision_recall.json",
    "reports/plots/calibration.json",
    "reports/plots/importance.json",
    "reports/confusion.csv",
    "data/features/reference_sorted.parquet",
    "data/features/transformer.skops",
    "data/features/history.parquet",
    "data/feature_manifest.yaml",
    "reports/featurize.json",
    "reports/train.json",
    "reports/drift.json",
    "reports/drift_report.html",
    "reports/drift_plots/top1.json",
]
# Bytecode is written as usual: .dvcignore must keep __pycache__ out of the stages' code deps.
ENV = {key: value for key, value in tool_env().items() if key != "PYTHONDONTWRITEBYTECODE"}


def run(repo: Path, *command: str, check: bool = True) -> str:
    result = subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 or not check, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def out_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def new_project(folder: Path) -> Path:
    """A git repo holding this project's files, with the data sample switched on in conf/."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        source = PROJECT / name
        # Skip committed pipeline results: the copy must produce its own.
        committed_results = ("dvc.lock", "data/schema.yaml", "data/feature_manifest.yaml")
        if source.is_file() and name not in committed_results and not name.startswith(("reports/", "models/model_card")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    data_conf = folder / "conf/data/nycflights13.yaml"
    data_conf.write_text(data_conf.read_text().replace("sample_rows: null", f"sample_rows: {SAMPLE_ROWS}"))
    run(folder, sys.executable, "-m", "stages.compose")
    run(folder, "git", "init", "-q", "-b", "main")
    run(folder, "git", "add", "-A")
    run(folder, "git", "commit", "-qm", "project")
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, str, dict[str, str]]:
    """The project after a first `dvc repro`: its folder, the run's output, and the outs' hashes."""
    repo = new_project(tmp_path_factory.mktemp("first") / "project")
    output = run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run")
    return repo, output, out_hashes(repo)


def test_first_repro_runs_every_stage_and_writes_every_output(pipeline):
    repo, output, _ = pipeline
    assert stages_run(output) == {"prepare", "featurize", "train", "evaluate", "drift-check"}
    missing = [name for name in OUTPUTS if not (repo / name).is_file()]
    assert not missing
    summary = json.loads((repo / "reports/prepare.json").read_text())
    assert summary["rows"]["used"] == SAMPLE_ROWS
    assert summary["sources"]["flights.csv.zip"]["sha256"] == "b6b5560eeae070d89916f5d6b7019179c07d97cef3a61db0887ca9cf78a7ad5d"
    assert summary["sources"]["weather.csv"]["sha256"] == "5d1ea2548a3941eac0b4a9ca70805daa9fa49bbb711a0c7557b2bba0bd7c3f64"
    assert summary["splits"]["test"]["first"] > summary["splits"]["train"]["last"]


def test_metrics_are_in_sane_ranges(pipeline):
    repo, _, _ = pipeline
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert 0.6 < metrics["roc_auc"] < 0.9
    assert metrics["average_precision"] > metrics["late_share"]  # better than a constant guess
    assert 0 < metrics["brier"] < 0.2 and 0 < metrics["log_loss"] < 0.6
    assert 0.1 < metrics["late_share"] < 0.35
    schema = yaml.safe_load((repo / "data/schema.yaml").read_text())
    assert schema["columns"]["dest"]["type"] == "categorical" and schema["columns"]["late"]["role"] == "target"
    plotted = run(repo, "dvc", "plots", "show", "--json")
    for title in ("ROC", "Precision-recall", "Confusion matrix", "Calibration", "Permutation importance (ROC AUC drop)"):
        assert title in plotted


def test_drift_check_tells_the_seasonal_story(pipeline):
    repo, _, _ = pipeline
    drift = json.loads((repo / "reports/drift.json").read_text())
    # Reference is early 2013, current late 2013: the weather moves with the seasons.
    assert {"temp", "dewp"} <= set(drift["drifted"])
    assert drift["columns"]["dest"]["statistics"]["p_value_adjusted"] < 0.05  # the destination mix changes too
    assert "temp" in (repo / "reports/drift_report.html").read_text()
    gate = subprocess.run(
        ["make", "-o", f"{Path(sys.executable).parent.parent}/.installed", "drift-gate", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert gate.returncode == (0 if drift["gate"]["passed"] else 2), gate.stderr


def test_second_repro_runs_nothing(pipeline):
    repo, _, _ = pipeline
    assert (repo / "stages/lib/__pycache__").is_dir()  # bytecode beside the code deps must not count as a change
    output = run(repo, "dvc", "repro")
    assert stages_run(output) == set()
    assert "Data and pipelines are up to date" in output


def test_make_repro_twice_reports_up_to_date(pipeline):
    repo, _, _ = pipeline
    venv = Path(sys.executable).parent.parent
    # -o: the stamp of PROJECT's venv counts as current, so make never rebuilds it from here.
    output = run(repo, "make", "-o", f"{venv}/.installed", "repro", f"VENV={venv}")
    assert "Data and pipelines are up to date" in output
    assert "roc_auc" in output


def test_changing_the_model_group_reruns_only_train_and_what_follows(pipeline):
    repo, _, hashes = pipeline
    run(repo, sys.executable, "-m", "stages.compose", "model=logreg")
    assert stages_run(run(repo, "dvc", "repro")) == {"train", "evaluate", "drift-check"}
    assert out_hashes(repo)["models/model.skops"] != hashes["models/model.skops"]
    assert out_hashes(repo)["data/features"] == hashes["data/features"]

    run(repo, sys.executable, "-m", "stages.compose", "train.seed=7")
    assert stages_run(run(repo, "dvc", "repro")) <= {"train", "evaluate", "drift-check"}

    run(repo, sys.executable, "-m", "stages.compose")
    restored = run(repo, "dvc", "repro")
    # Back to the committed params: DVC's run cache restores the results without training again.
    assert stages_run(restored) == set() and "Stage 'train' is cached" in restored
    assert out_hashes(repo) == hashes


def test_two_runs_from_scratch_are_bitwise_identical(pipeline, tmp_path):
    _, _, hashes = pipeline
    again = new_project(tmp_path / "again")
    run(again, "dvc", "repro")
    assert out_hashes(again) == hashes  # timings live in reports/featurize_timing.json, outside DVC


def test_push_then_pull_into_a_fresh_clone(pipeline):
    repo, _, hashes = pipeline
    assert "pushed" in run(repo, "dvc", "push")
    assert (repo.parent / "dvc-remote/files/md5").is_dir()  # the default remote: a folder beside the clone
    clone = repo.parent / "clone"
    run(repo.parent, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "pull")
    assert out_hashes(clone) == hashes
    assert (clone / "models/model.skops").read_bytes() == (repo / "models/model.skops").read_bytes()
    assert "up to date" in run(clone, "dvc", "status")
    assert "in sync" in run(clone, "dvc", "status", "--cloud")
    assert stages_run(run(clone, "dvc", "repro")) == set()


def test_dvc_exp_run_composes_hydra_overrides(pipeline):
    repo, _, _ = pipeline
    run(repo, "dvc", "exp", "run", "-S", "model=logreg", "-S", "train.seed=7", "--name", "logreg-seed7")
    with_overrides = compose(repo / "conf", ["model=logreg", "train.seed=7"])
    assert (repo / "params.yaml").read_text() == with_overrides  # our compose == DVC's composition
    experiments = json.loads(run(repo, "dvc", "exp", "show", "--json"))
    found = [
        experiment
        for baseline in experiments
        for experiment in baseline.get("experiments") or []
        if experiment.get("name") == "logreg-seed7"
    ]
    assert found, experiments
    assert "logreg-seed7" in run(repo, "dvc", "exp", "show", "--no-pager", "--csv")


def test_second_dataset_runs_by_config_alone(pipeline):
    """Seattle weather (vega_datasets), a regression task, through every stage with no code change."""
    repo, _, hashes = pipeline
    data_conf = repo / "conf/data/seattle_weather.yaml"
    original = data_conf.read_text()
    try:
        run(repo, sys.executable, "-m", "stages.compose", "data=seattle_weather")
        output = run(repo, "dvc", "repro")
        assert stages_run(output) == {"prepare", "featurize", "train", "evaluate", "drift-check"}
        metrics = json.loads((repo / "reports/metrics.json").read_text())
        assert metrics["r2"] > 0.6 and metrics["rmse"] < 0.6 * metrics["rmse_constant"]  # far better than the mean
        manifest = yaml.safe_load((repo / "data/feature_manifest.yaml").read_text())
        assert manifest["task"] == "regression" and manifest["features"]["by_family"]["history"] > 0
        assert "calendar_day_of_year_sin" in manifest["columns"]  # train spans three years: seasonal parts are built
        drift = json.loads((repo / "reports/drift.json").read_text())
        assert "weather" in drift["drifted"]  # its labels changed over the years (rain, then fog)
        assert set(drift["current_metrics"]) == {"rmse", "mae", "target_mean"}
        run(repo, "dvc", "plots", "show", "--json")  # empty ROC/PR files for regression do not break DVC plots
    finally:
        data_conf.write_text(original)
        run(repo, sys.executable, "-m", "stages.compose")
        run(repo, "dvc", "repro")
    assert out_hashes(repo) == hashes


def report(repo: Path, output: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stages.report", "--output", str(output), *arguments],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )


def section(text: str, title: str) -> str:
    start = text.index(f"### {title}")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


def test_pull_request_report_against_the_base_commit(pipeline, tmp_path):
    """Two commits that change one param: the report names exactly it, both metric values and a verdict."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    run(repo, "git", "branch", "-f", "baseline", first)
    try:
        run(repo, sys.executable, "-m", "stages.compose", "evaluate.threshold=0.4")
        (tmp_path / "repro.log").write_text(run(repo, "dvc", "repro"))
        run(repo, "git", "commit", "-qam", "evaluate at threshold 0.4")
        output = tmp_path / "pr/report.md"
        result = report(repo, output, "--base", "baseline", "--repro-log", str(tmp_path / "repro.log"))
        assert result.returncode == 0, result.stderr
        text = output.read_text()
        assert text.startswith("<!-- mlops-pr-report -->") and "**Verdict: PASSED**" in text
        assert re.findall(r"^\| `([\w.]+)` \|", section(text, "Parameters"), flags=re.MULTILINE) == ["evaluate.threshold"]
        accuracy = re.search(r"^\| accuracy \| ([\d.]+) \| ([\d.]+) \|", section(text, "Metrics"), flags=re.MULTILINE)
        assert accuracy and accuracy.group(1) != accuracy.group(2)  # the base's metrics, really from the base
        assert re.search(r"\*\*roc_auc change \+0\.0000\*\* .*paired\): within noise", text)  # same model, same rows
        assert "- ran: `drift-check`, `evaluate`" in section(text, "Stages")
        assert sorted(path.name for path in (output.parent / "images").iterdir()) == [
            "calibration.png", "importance.png", "precision_recall.png", "roc.png",
        ]  # fmt: skip
        assert f"git checkout {first} && dvc pull && dvc repro" in text

        run(repo, sys.executable, "-m", "stages.compose", "evaluate.threshold=0.4", "evaluate.gate.minimum.roc_auc=0.99")
        run(repo, "dvc", "repro")
        failed = report(repo, tmp_path / "failed/report.md", "--base", "baseline")
        assert failed.returncode == 1
        assert "**Verdict: FAILED**" in (tmp_path / "failed/report.md").read_text()
        assert "| roc_auc >= 0.99 | **FAIL** |" in (tmp_path / "failed/report.md").read_text()
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q")
    assert out_hashes(repo) == hashes


def test_time_travel_restores_each_revision_byte_for_byte(pipeline):
    """Three tagged revisions with different params: `make checkout REV=...` gives each its own outputs back."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    venv = Path(sys.executable).parent.parent
    produced = {"v1": hashes}
    try:
        run(repo, "git", "tag", "v1")
        for tag, override in (("v2", "model.max_leaf_nodes=15"), ("v3", "model.learning_rate=0.1")):
            run(repo, sys.executable, "-m", "stages.compose", override)
            run(repo, "dvc", "repro")
            run(repo, "git", "commit", "-qam", f"{tag}: {override}")
            run(repo, "git", "tag", tag)
            produced[tag] = out_hashes(repo)
        assert produced["v1"]["models/model.skops"] != produced["v2"]["models/model.skops"] != produced["v3"]["models/model.skops"]
        for tag in ("v1", "v2", "v3", "v1", "main"):
            output = run(repo, "make", "-o", f"{venv}/.installed", "checkout", f"REV={tag}", f"VENV={venv}")
            assert f"workspace at {tag}" in output
            expected = produced["v3" if tag == "main" else tag]
            assert out_hashes(repo) == expected  # the revision's dvc.lock
            for path in ("models/model.skops", "models/model_card.json", "reports/metrics.json", "data/feature_manifest.yaml"):
                assert hashlib.md5((repo / path).read_bytes()).hexdigest() == expected[path], (tag, path)  # the bytes themselves
            assert "Data and pipelines are up to date" in run(repo, "dvc", "status")  # features and every other out
    finally:
        run(repo, "git", "checkout", "-q", "main")
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "git", "tag", "-d", "v1", "v2", "v3")
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes


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


@pytest.mark.parametrize("kind", ["ssh", "s3"])
def test_push_to_a_real_server_then_pull_into_a_fresh_clone(pipeline, tmp_path, kind):
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    try:
        with remote(kind, tmp_path) as (tracked, credentials, _server):
            point_at(repo, tracked, credentials)
            run(repo, "git", "commit", "-qam", f"team remote on {kind}")
            assert "pushed" in run(repo, "dvc", "push")
            committed = run(repo, "git", "show", "HEAD:.dvc/config")
            assert all(key not in committed for key, _ in credentials)  # credentials stay out of git...
            assert all(f"{key} = {value}" in (repo / ".dvc/config.local").read_text() for key, value in credentials)  # ...in config.local
            assert ".dvc/config.local" not in run(repo, "git", "ls-files")
            clone = tmp_path / "clone"
            run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
            point_at(clone, None, credentials)
            run(clone, "dvc", "pull")
            assert out_hashes(clone) == hashes
            assert (clone / "models/model.skops").read_bytes() == (repo / "models/model.skops").read_bytes()
            assert "in sync" in run(clone, "dvc", "status", "--cloud")
            assert stages_run(run(clone, "dvc", "repro")) == set()
    finally:
        (repo / ".dvc/config.local").unlink(missing_ok=True)
        run(repo, "git", "reset", "-q", "--hard", first)


def test_registered_model_versions_score_new_rows(pipeline, tmp_path):
    """GTO versions and stages as git tags; `make predict` scores a CSV through that version's own features."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    venv = Path(sys.executable).parent.parent

    def make(*arguments: str) -> str:
        return run(repo, "make", "-o", f"{venv}/.installed", *arguments, f"VENV={venv}")

    def predict(model: str, rows: Path, output: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "stages.predict", "--model", model, "--input", str(rows), "--output", str(output)]
        return subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=600)

    try:
        make("register")
        make("promote", "STAGE=prod")
        run(repo, sys.executable, "-m", "stages.compose", "model.learning_rate=0.2")
        run(repo, "dvc", "repro")
        run(repo, "git", "commit", "-qam", "faster learning rate")
        make("register")
        tags = run(repo, "git", "tag", "--list", "model*").split()
        assert {"model@v0.0.1", "model@v0.0.2"} <= set(tags) and any(tag.startswith("model#prod") for tag in tags)
        shown = run(repo, "gto", "show")
        assert "model" in shown and "v0.0.2" in shown and "prod" in shown

        test = pd.read_parquet(repo / "data/prepared/test.parquet").head(300)
        rows = tmp_path / "rows.csv"
        test.drop(columns=["late"]).assign(time_hour=test["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(rows, index=False)
        scored = {}
        for model in ("model@v0.0.1", "model#prod", "model@v0.0.2"):
            output = tmp_path / f"{model.replace('#', '-')}.csv"
            result = predict(model, rows, output)
            assert result.returncode == 0, result.stderr
            scored[model] = pd.read_csv(output)
            assert list(scored[model].columns) == [*pd.read_csv(rows).columns, "prediction"]
        assert scored["model#prod"]["prediction"].equals(scored["model@v0.0.1"]["prediction"])  # prod is v0.0.1
        assert not scored["model@v0.0.2"]["prediction"].equals(scored["model@v0.0.1"]["prediction"])
        # v0.0.2 is the workspace: its scores equal the model's on the features featurize stored for those rows.
        spec = json.loads((repo / "data/features/spec.json").read_text())
        stored = pd.read_parquet(repo / "data/features/test.parquet").head(300)
        expected = load_model(repo / "models/model.skops").predict_proba(stored[spec["features"]])[:, 1]
        assert np.allclose(scored["model@v0.0.2"]["prediction"], expected, rtol=0, atol=1e-12)

        broken = tmp_path / "broken.csv"
        pd.read_csv(rows).drop(columns=["temp"]).to_csv(broken, index=False)
        result = predict("model@v0.0.1", broken, tmp_path / "never.csv")
        assert result.returncode == 2 and "missing column 'temp'" in result.stderr and "Traceback" not in result.stderr
        pd.read_csv(rows).assign(temp="warm").to_csv(broken, index=False)
        result = predict("model@v0.0.1", broken, tmp_path / "never.csv")
        assert result.returncode == 2 and "column 'temp' must be numeric (as in training), got 'warm'" in result.stderr
        result = predict("model@v9.9.9", rows, tmp_path / "never.csv")
        assert result.returncode == 2 and "--model model@v9.9.9: no such git revision" in result.stderr
        assert not (tmp_path / "never.csv").exists()
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        for tag in run(repo, "git", "tag", "--list", "model*").split():
            run(repo, "git", "tag", "-d", tag)
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes


def test_report_on_switching_the_feature_engine_on(pipeline, tmp_path):
    """A pull request that turns on the feature engine (features=baseline -> default); the sample in docs/."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    try:
        run(repo, sys.executable, "-m", "stages.compose", "features=baseline")
        run(repo, "dvc", "repro")
        run(repo, "git", "commit", "-qam", "baseline features")
        run(repo, "git", "branch", "-f", "main-before", "HEAD")
        run(repo, sys.executable, "-m", "stages.compose")
        (tmp_path / "repro.log").write_text(run(repo, "dvc", "repro"))
        run(repo, "git", "commit", "-qam", "turn the feature engine on")
        output = tmp_path / "pr/report.md"
        result = report(repo, output, "--base", "main-before", "--repro-log", str(tmp_path / "repro.log"))
        assert result.returncode in (0, 1), result.stderr
        text = output.read_text()
        assert "`features`: baseline → **default**" in section(text, "Parameters")
        assert "data/features/train.parquet" in section(text, "Data and model files")
        stages = section(text, "Stages")
        # train onwards come back from DVC's run cache; featurize runs again (its manifest is a git-tracked output).
        assert "- ran: `featurize`" in stages and "restored from the run cache: `drift-check`, `evaluate`, `train`" in stages
        assert re.search(
            r"\*\*roc_auc change [+-]0\.\d{4}\*\* \(95% bootstrap interval [+-]0\.\d{4} to [+-]0\.\d{4}, 1000 resamples of the test rows, paired\)",
            text,
        )
        if os.environ.get("PR_REPORT_SAMPLE"):  # refresh the sample kept in docs/
            shutil.rmtree(PROJECT / "docs/pr-report-sample", ignore_errors=True)
            shutil.copytree(output.parent, PROJECT / "docs/pr-report-sample")
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes
