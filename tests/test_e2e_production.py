"""End to end on a data sample, the model in production: registered versions scoring new rows, and the production
loop (replay, monitor, gate). A module of its own, so its pipeline copy runs beside the other end-to-end modules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from stages.lib.catalog import FEATURE_SPEC, FEATURES_DIR, MODEL_FILE, PREPARED_DIR
from stages.lib.models import load_model
from stages.lib.scoring_versions import model_ref
from tests.e2e_support import ENV, out_hashes, run, stages_run

pytestmark = pytest.mark.slow


def test_registered_model_versions_score_new_rows(pipeline, tmp_path, monkeypatch):
    """GTO versions and stages as git tags; `make predict` scores a CSV through that version's own features."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    venv = Path(sys.executable).parent.parent

    def make(*arguments: str) -> str:
        return run(repo, "make", "-o", f"{venv}/.installed", *arguments, f"VENV={venv}")

    def predict(model: str, rows: Path, output: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "commands.predict", "--model", model, "--input", str(rows), "--output", str(output)]
        return subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=600)

    try:
        make("register")
        make("promote", "STAGE=prod")
        run(repo, sys.executable, "-m", "commands.compose", "model.learning_rate=0.2")
        run(repo, "dvc", "repro")
        run(repo, "git", "commit", "-qam", "faster learning rate")
        make("register")
        tags = run(repo, "git", "tag", "--list", "model*").split()
        assert {"model@v0.0.1", "model@v0.0.2"} <= set(tags) and any(tag.startswith("model#prod") for tag in tags)
        assert all(word in run(repo, "gto", "show") for word in ("model", "v0.0.2", "prod"))

        test = pd.read_parquet(repo / PREPARED_DIR / "test.parquet").head(300)
        rows = tmp_path / "rows.csv"
        test.drop(columns=["late"]).assign(time_hour=test["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(rows, index=False)
        # model#prod resolves (as predict resolves it, with the venv's gto) to v0.0.1's tag, whose scoring is checked below.
        monkeypatch.setenv("PATH", ENV["PATH"])
        assert model_ref("model#prod", repo) == "model@v0.0.1"
        scored = {}
        for model in ("model@v0.0.1", "model@v0.0.2"):
            output = tmp_path / f"{model.replace('#', '-')}.csv"
            result = predict(model, rows, output)
            assert result.returncode == 0, result.stderr
            scored[model] = pd.read_csv(output)
            assert list(scored[model].columns) == [*pd.read_csv(rows).columns, "prediction", "history_complete"]
            assert scored[model]["history_complete"].all()  # test rows: inside the stored history
        assert not scored["model@v0.0.2"]["prediction"].equals(scored["model@v0.0.1"]["prediction"])
        # v0.0.2 is the workspace: its scores equal the model's on the features featurize stored for those rows.
        spec = json.loads((repo / FEATURE_SPEC).read_text())
        stored = pd.read_parquet(repo / FEATURES_DIR / "test.parquet").head(300)
        expected = load_model(repo / MODEL_FILE).predict_proba(stored[spec["features"]])[:, 1]
        assert np.allclose(scored["model@v0.0.2"]["prediction"], expected, rtol=0, atol=1e-12)

        # Bad rows: the workspace (v0.0.2's commit) validates them with the same code, in process.
        broken = tmp_path / "broken.csv"
        pd.read_csv(rows).drop(columns=["temp"]).to_csv(broken, index=False)
        result = predict("workspace", broken, tmp_path / "never.csv")
        assert result.returncode == 2 and "missing column 'temp'" in result.stderr and "Traceback" not in result.stderr
        pd.read_csv(rows).assign(temp="warm").to_csv(broken, index=False)
        result = predict("workspace", broken, tmp_path / "never.csv")
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


def test_production_replay_monitor_timeline_and_gate(pipeline, tmp_path):
    """The production loop from a committed project: `make simulate-production`, `make repro` (only the store and the
    monitor run), `make monitor-gate` passes the plain replay and fails an injected concept change; the realized
    ROC AUC of every labelled week equals sklearn's on the store's own rows and outcomes."""
    repo, _, _ = pipeline
    venv = Path(sys.executable).parent.parent
    cache = run(repo, "dvc", "cache", "dir").strip()
    verdicts = {}
    for name, options in (("plain", ()), ("degraded", ("DEGRADE=1",))):
        clone = tmp_path / name
        run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
        run(clone, "dvc", "cache", "dir", "--local", cache)
        run(clone, "dvc", "checkout", "-q")

        def make(*arguments: str, clone: Path = clone, check: bool = True) -> subprocess.CompletedProcess:
            result = subprocess.run(
                ["make", "-o", f"{venv}/.installed", *arguments, f"VENV={venv}"], cwd=clone, env=ENV, capture_output=True, text=True
            )
            assert result.returncode == 0 or not check, f"make {' '.join(arguments)}:\n{result.stdout}\n{result.stderr}"
            return result

        make("simulate-production", *options)
        assert stages_run(make("repro").stdout) == {"production-store", "monitor"}
        verdicts[name] = make("monitor-gate", check=False)

        # Independent check: per Monday-based UTC week, sklearn's ROC AUC over the stored scores and outcomes.
        store = clone / "data/production"
        scored = pd.concat([pd.read_parquet(path) for path in sorted(store.glob("batches/*.parquet"))], ignore_index=True)
        outcomes = pd.concat([pd.read_parquet(path) for path in sorted(store.glob("labels/*.parquet"))], ignore_index=True)
        rows = scored.merge(outcomes, on="row_id", how="left")
        week = (rows["time_hour"] - pd.Timestamp("1970-01-05", tz="UTC")) // pd.Timedelta("7D")
        rows["label"] = [f"{pd.Timestamp('1970-01-05') + pd.Timedelta(days=7 * int(n)):%Y-%m-%d}" for n in week]
        timeline = {point["label"]: point for point in json.loads((clone / "reports/plots/monitor_performance.json").read_text())}
        assert set(timeline) == set(rows["label"])
        labelled_weeks = 0
        for label, chunk in rows.groupby("label"):
            if chunk["late"].notna().all() and chunk["late"].nunique() == 2:
                assert timeline[label]["realized"] == pytest.approx(roc_auc_score(chunk["late"], chunk["prediction"]), abs=1e-6)
                labelled_weeks += 1
            elif chunk["late"].isna().all():
                assert timeline[label]["realized"] is None and timeline[label]["estimated"] is not None
        assert labelled_weeks >= 6
    assert verdicts["plain"].returncode == 0, verdicts["plain"].stderr
    # make exits 2 whenever a recipe fails; the gate's own line says why.
    assert verdicts["degraded"].returncode != 0 and re.search(
        r"realized roc_auc 0\.\d+ below the minimum 0\.6", verdicts["degraded"].stderr
    )
