"""`make plots`: DVC's plots of the workspace against HEAD, as a page that renders with no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, render_page, tool_env

ENV = {**tool_env(), "PYTHONPATH": str(PROJECT)}
BIN = Path(sys.executable).parent
DVC_YAML = """plots:
  - plots/roc.json:
      x: fpr
      y: tpr
  - Loss by epoch:
      x: epoch
      y:
        plots/loss.json: [train, valid]
"""
# Headless, and no way out: every host name fails to resolve and any other request goes to a closed port.


def write_plots(repo: Path, shift: float) -> None:
    (repo / "plots").mkdir(exist_ok=True)
    roc = [{"fpr": step / 10, "tpr": min(1.0, (step / 10) ** 0.5 + shift)} for step in range(11)]
    loss = [{"epoch": epoch, "train": 1 / (epoch + 1) + shift, "valid": 1.2 / (epoch + 1)} for epoch in range(8)]
    (repo / "plots/roc.json").write_text(json.dumps(roc))
    (repo / "plots/loss.json").write_text(json.dumps(loss))


def run(repo: Path, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git+dvc project with two plots committed, then changed in the workspace."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_plots(repo, 0.0)
    (repo / ".venv").symlink_to(BIN.parent)
    (repo / ".gitignore").write_text(".venv\ndvc_plots/\n")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "plots")
    write_plots(repo, 0.05)
    return repo


@pytest.mark.needs_tool("chromium")
def test_make_plots_renders_every_plot_with_no_network(repo, tmp_path, tools):
    run(repo, "make", "-f", str(PROJECT / "Makefile"), "-o", ".venv/.installed", "plots")
    page = repo / "dvc_plots/index.html"
    dom, shot = render_page(tools["chromium"], page, "1200,900")
    charts = re.findall(r"<svg\b.*?</svg>", dom, flags=re.DOTALL)
    assert len(charts) == 2, "one drawn chart per plot"
    for chart in charts:
        width, height = (float(value) for value in re.search(r'width="([\d.]+)" height="([\d.]+)"', chart).groups())
        assert width > 100 and height > 100
        assert len(re.findall(r'<path[^>]*\bd="M', chart)) >= 3  # axes, grid and the lines themselves
        assert "HEAD" in chart and "workspace" in chart  # both revisions, as DVC's diff draws them
    assert "Loss by epoch" in dom and "plots/roc.json" in dom
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000  # drawn, not a blank page
    text = page.read_text()
    assert "<script" not in text and not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert ids and len(ids) == len(set(ids))  # each chart's clip paths are its own


@pytest.mark.slow  # real dvc and make in a temporary repository
def test_plots_against_a_named_revision_and_a_clear_error_for_an_unknown_one(repo):
    made = run(repo, "make", "-f", str(PROJECT / "Makefile"), "-o", ".venv/.installed", "plots", "REVS=main")
    assert "2 plot(s) drawn to dvc_plots/index.html" in made.stdout
    assert "Plots: workspace vs main" in (repo / "dvc_plots/index.html").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "commands.plots", "no-such-rev"], cwd=repo, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
