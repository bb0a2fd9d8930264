"""End to end, the project's life cycle on a data sample: pull-request reports, time travel, remotes on real servers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.catalog import FEATURE_MANIFEST, FEATURES_DIR, METRICS_FILE, MODEL_CARD, MODEL_FILE
from tests.conftest import PROJECT
from tests.e2e_support import SAMPLE_NOTE, out_hashes, point_at, remote, report, run, section, stages_run, up_to_date

pytestmark = pytest.mark.slow


def test_pull_request_report_against_the_base_commit(pipeline, tmp_path):
    """Two commits that change one param: the report names exactly it, both metric values and a verdict."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    run(repo, "git", "branch", "-f", "baseline", first)
    # The threshold leaves ROC AUC unchanged: gates set from the base's own value surely pass, then surely fail.
    roc_auc = json.loads((repo / METRICS_FILE).read_text())["roc_auc"]
    below, above = round(roc_auc - 0.01, 4), round(roc_auc + 0.01, 4)
    try:
        run(repo, sys.executable, "-m", "commands.compose", "evaluate.threshold=0.4", f"evaluate.gate.minimum.roc_auc={below}")
        (tmp_path / "repro.log").write_text(run(repo, "dvc", "repro"))
        run(repo, "git", "commit", "-qam", "evaluate at threshold 0.4")
        output = tmp_path / "pr/report.md"
        result = report(repo, output, "--base", "baseline", "--repro-log", str(tmp_path / "repro.log"))
        assert result.returncode == 0, result.stderr
        text = output.read_text()
        assert text.startswith("<!-- mlops-pr-report -->") and "**Verdict: PASSED**" in text
        assert f"| roc_auc >= {below} | pass | roc_auc = {roc_auc:.4f} |" in text
        assert re.findall(r"^\| `([\w.]+)` \|", section(text, "Parameters"), flags=re.MULTILINE) == [
            "evaluate.gate.minimum.roc_auc", "evaluate.threshold",
        ]  # fmt: skip
        accuracy = re.search(r"^\| accuracy \| ([\d.]+) \| ([\d.]+) \|", section(text, "Metrics"), flags=re.MULTILINE)
        assert accuracy and accuracy.group(1) != accuracy.group(2)  # the base's metrics, really from the base
        assert re.search(r"\*\*roc_auc change \+0\.0000\*\* .*paired\): within noise", text)  # same model, same rows
        assert "- ran: `drift-check`, `evaluate`, `monitor`" in section(text, "Stages")  # monitor reads evaluate.threshold
        assert sorted(path.name for path in (output.parent / "images").iterdir()) == [
            "calibration.png", "importance.png", "precision_recall.png", "roc.png",
        ]  # fmt: skip
        assert f"git checkout {first} && dvc pull && dvc repro" in text

        run(repo, sys.executable, "-m", "commands.compose", "evaluate.threshold=0.4", f"evaluate.gate.minimum.roc_auc={above}")
        run(repo, "dvc", "repro")
        url = "https://github.com/owner/project/actions/runs/42"
        failed = report(repo, tmp_path / "failed/report.md", "--base", "baseline", "--artifact-url", url)
        assert failed.returncode == 1, failed.stderr
        failed_text = (tmp_path / "failed/report.md").read_text()
        assert "**Verdict: FAILED**" in failed_text
        assert f"| roc_auc >= {above} | **FAIL** | roc_auc = {roc_auc:.4f} |" in failed_text
        plots = section(failed_text, "Plots")
        assert f"[this run]({url})" in plots and "![" not in plots  # a link to the artifact, no embedded images
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q")
    assert out_hashes(repo) == hashes


def test_time_travel_restores_each_revision_byte_for_byte(pipeline):
    """Two tagged revisions with different params: `make checkout REV=...` gives each its own outputs back, in any
    order, and main the newest."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    venv = Path(sys.executable).parent.parent
    produced = {"v1": hashes}
    try:
        run(repo, "git", "tag", "v1")
        run(repo, sys.executable, "-m", "commands.compose", "model.max_leaf_nodes=15")
        run(repo, "dvc", "repro")
        run(repo, "git", "commit", "-qam", "v2: model.max_leaf_nodes=15")
        run(repo, "git", "tag", "v2")
        produced["v2"] = out_hashes(repo)
        model = str(MODEL_FILE)
        assert produced["v1"][model] != produced["v2"][model]
        for tag in ("v1", "v2", "v1", "main"):
            output = run(repo, "make", "-o", f"{venv}/.installed", "checkout", f"REV={tag}", f"VENV={venv}")
            assert f"workspace at {tag}" in output
            expected = produced["v2" if tag == "main" else tag]
            assert out_hashes(repo) == expected  # the revision's dvc.lock
            for path in map(str, (MODEL_FILE, MODEL_CARD, METRICS_FILE, FEATURE_MANIFEST)):
                assert hashlib.md5((repo / path).read_bytes()).hexdigest() == expected[path], (tag, path)  # the bytes themselves
            assert up_to_date(repo)  # features and every other out
    finally:
        run(repo, "git", "checkout", "-q", "main")
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "git", "tag", "-d", "v1", "v2")
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("ssh", marks=pytest.mark.needs_tool("sshd", "ssh-keygen")),
        pytest.param("s3", marks=pytest.mark.needs_tool("s3rver", "node")),
    ],
)
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
            assert (clone / MODEL_FILE).read_bytes() == (repo / MODEL_FILE).read_bytes()
            assert "in sync" in run(clone, "dvc", "status", "--cloud")
            assert stages_run(run(clone, "dvc", "repro")) == set()
    finally:
        (repo / ".dvc/config.local").unlink(missing_ok=True)
        run(repo, "git", "reset", "-q", "--hard", first)


def test_report_on_switching_the_feature_engine_on(pipeline, tmp_path):
    """A pull request that turns on the feature engine (features=baseline -> default); the sample in docs/."""
    repo, _, hashes = pipeline
    first = run(repo, "git", "rev-parse", "HEAD").strip()
    try:
        run(repo, sys.executable, "-m", "commands.compose", "features=baseline")
        run(repo, "dvc", "repro")
        run(repo, "git", "commit", "-qam", "baseline features")
        run(repo, "git", "branch", "-f", "main-before", "HEAD")
        run(repo, sys.executable, "-m", "commands.compose")
        (tmp_path / "repro.log").write_text(run(repo, "dvc", "repro"))
        run(repo, "git", "commit", "-qam", "turn the feature engine on")
        output = tmp_path / "pr/report.md"
        result = report(repo, output, "--base", "main-before", "--repro-log", str(tmp_path / "repro.log"))
        # The expected verdict, computed here from both revisions' files and the gate in params.yaml.
        gate = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["gate"]
        assert set(gate["minimum"]) | set(gate["max_drop"]) == {"roc_auc"} and not gate["maximum"]
        head, base = (json.loads(run(repo, "git", "show", f"{rev}:reports/metrics.json")) for rev in ("HEAD", "main-before"))
        drift = [
            set(json.loads(run(repo, "git", "show", f"{rev}:reports/drift.json"))["gate"]["failed"]) for rev in ("HEAD", "main-before")
        ]
        text = output.read_text()
        # max_drop with drop_by: bound decides on the low end of the ROC AUC change's interval the report prints.
        low = float(re.search(r"\*\*roc_auc change [+-]0\.\d{4}\*\* \(95% bootstrap interval ([+-]0\.\d{4}) to", text).group(1))
        drop = -low if gate["drop_by"] == "bound" else base["roc_auc"] - head["roc_auc"]
        expected = head["roc_auc"] >= gate["minimum"]["roc_auc"] and drop <= gate["max_drop"]["roc_auc"]
        expected = expected and drift[0] <= drift[1]  # the same data on both sides: no drift condition is new
        assert result.returncode == (0 if expected else 1), result.stderr
        assert f"**Verdict: {'PASSED' if expected else 'FAILED'}**" in text
        assert "`features`: baseline → **default**" in section(text, "Parameters")
        assert f"{FEATURES_DIR}/train.parquet" in section(text, "Data and model files")
        stages = section(text, "Stages")
        # train onwards come back from DVC's run cache; featurize runs again (its manifest is a git-tracked output).
        assert "- ran: `featurize`" in stages and "restored from the run cache: `drift-check`, `evaluate`, `monitor`, `train`" in stages
        assert re.search(
            r"\*\*roc_auc change [+-]0\.\d{4}\*\* \(95% bootstrap interval [+-]0\.\d{4} to [+-]0\.\d{4}, 1000 resamples of the test rows, paired\)",
            text,
        )
        if os.environ.get("PR_REPORT_SAMPLE"):  # refresh the sample kept in docs/
            shutil.rmtree(PROJECT / "docs/pr-report-sample", ignore_errors=True)
            shutil.copytree(output.parent, PROJECT / "docs/pr-report-sample")
            marker, *rest = text.splitlines()
            (PROJECT / "docs/pr-report-sample/report.md").write_text("\n".join([marker, SAMPLE_NOTE, "", *rest]) + "\n")
    finally:
        run(repo, "git", "reset", "-q", "--hard", first)
        run(repo, "dvc", "checkout", "-q", "--force")
    assert out_hashes(repo) == hashes
