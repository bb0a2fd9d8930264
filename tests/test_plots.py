"""`make plots`: DVC's plots of the workspace against HEAD, as a page that renders with no network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT, render_page, tool_env
from tests.vega import texts, walk

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


# The top-level drift plot: written rows of two revisions whose most drifted features differ (dewp in the workspace,
# temp in HEAD; dest in both), in drift-check's format: every feature, `shown` on the most drifted.
NUMERIC_BINS = [-5.0, 5.0, 15.0, 25.0]


def drift_rows(order: list[str], shown: int, lift: float) -> list[dict]:
    rows = []
    for rank, feature in enumerate(order, start=1):
        values: list = ["EWR", "JFK", "LGA"] if feature == "dest" else NUMERIC_BINS
        for index, value in enumerate(values):
            share = 1 / len(values)
            rows.append(
                {
                    "feature": feature,
                    "rank": rank,
                    "shown": rank <= shown,
                    "bin": index,
                    "value": value,
                    "reference": share,
                    "current": share + (lift if index == 0 else -lift / (len(values) - 1)),
                }
            )
    return rows


def colour_of_revision(spec: dict | list) -> dict[str, str]:
    """{line colour: revision} from the colour scale DVC fills into the spec."""
    if isinstance(spec, list):
        return {colour: rev for item in spec for colour, rev in colour_of_revision(item).items()}
    if not isinstance(spec, dict):
        return {}
    scale = spec.get("color", {}).get("scale", {}) if isinstance(spec.get("color"), dict) else {}
    found = dict(zip(scale.get("range", []), scale.get("domain", []), strict=True))
    return found | {colour: rev for key, value in spec.items() if key != "data" for colour, rev in colour_of_revision(value).items()}


def test_the_drift_plot_names_each_feature_and_overlays_its_revisions_not_other_features(tmp_path):
    """`dvc plots diff` with the project's dvc.yaml plot and template: one panel per feature, titled with its name, holding
    both revisions' reference and current lines; a feature shown in either revision is shown, one shown in neither is not."""
    import vl_convert

    pipeline = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    drift = [plot for plot in pipeline["plots"] if any("reports/drift_plots.json" in str(definition["y"]) for definition in plot.values())]
    assert len(drift) == 1
    repo = tmp_path / "repo"
    (repo / "reports").mkdir(parents=True)
    run(repo, "git", "init", "-q", "-b", "main")
    shutil.copytree(PROJECT / ".dvc/plots", repo / ".dvc/plots")  # a `.dvc` folder is a DVC project (`dvc init` costs 1 s)
    (repo / ".dvc/config").write_text("")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": drift}))
    plot_file = repo / "reports/drift_plots.json"
    plot_file.write_text(json.dumps(drift_rows(["temp", "dest", "dewp", "humid"], shown=2, lift=0.1)))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "base")
    plot_file.write_text(json.dumps(drift_rows(["dewp", "dest", "temp", "humid"], shown=2, lift=0.2)))

    output = json.loads(run(repo, sys.executable, "-m", "dvc", "plots", "diff", "HEAD", "--json").stdout)
    ((spec,),) = [[render["content"] for render in renders] for renders in output["data"].values()]
    colours = colour_of_revision(spec)
    assert set(colours.values()) == {"workspace", "HEAD"}
    scenegraph = vl_convert.vegalite_to_scenegraph(spec)["scenegraph"]

    cells = [
        item
        for group in walk(scenegraph, "group")
        if str(group.get("name", "")).split("_")[-1] == "cell"  # one per facet panel
        for item in group["items"]
    ]
    panels = {}
    for cell in cells:
        (title,) = [text for mark in walk(cell, "group", "title") for text in texts(mark, "title-text")]
        (x_title,) = [text for text in texts(cell, "axis-title")]
        lines = {(colours[item["stroke"]], tuple(item["strokeDash"])) for mark in walk(cell, "line") for item in mark["items"]}
        panels[title] = (x_title, len(lines))
    # dewp (workspace's top), temp (HEAD's top) and dest (both): humid, shown in neither, is not drawn.
    assert set(panels) == {"Feature: dewp", "Feature: temp", "Feature: dest"}
    # Every panel overlays both revisions' reference and current lines of its own feature.
    assert all(count == 4 for _, count in panels.values()), panels
    assert panels["Feature: temp"][0] == panels["Feature: dewp"][0] == "Value of the feature (bin centre)"
    assert panels["Feature: dest"][0].startswith("Category of the feature")
    y_titles = set(texts(scenegraph, "axis-title")) - {x for x, _ in panels.values()}
    assert y_titles == {"Share of rows in the bin"}
