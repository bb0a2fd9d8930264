"""The pull-request report: what a change did to params, metrics, plots, data and drift, against a base revision.

    python -m commands.report --base main [--output reports/pr/report.md] [--repro-log repro.log]
    make report BASE=main

The base revision's artifacts are really materialized: its commit is checked out into a temporary
git worktree sharing this repository's DVC cache, and `dvc checkout` (then `dvc pull`, then
`dvc repro` as the last resort) brings back its data, model and metrics. Exits 1 when the verdict
against the gates in `params.yaml` (`evaluate.gate`, and the drift gate where this change newly fails it)
fails, after writing the report; exits 2 when it cannot build the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from commands.drift_gate import GateVerdict, gate_verdict, read_drift, read_summary
from commands.plots import vega_specs
from commands.report_figures import report_figure
from commands.report_text import (
    ReportInputs,
    RevisionFacts,
    render_report,
)
from stages.lib.catalog import DRIFT_FILE, METRICS_FILE, MODEL_FILE, PLOT_FILES, TRAIN_SUMMARY, load_features
from stages.lib.config import ReportGate, load_params, read_params
from stages.lib.errors import UserError, run_stage
from stages.lib.io import read_json, write_outputs
from stages.lib.models import load_model, predict_scores
from stages.lib.revisions import Revision, dvc, materialized, run

PLOTS = {  # the evaluation plots the report draws: their name in PLOT_FILES, and title
    "roc": "ROC",
    "precision_recall": "Precision-recall",
    "calibration": "Calibration",
    "importance": "Permutation importance",
}
REMOTE_NOTE = Path("reports/pr/remote.txt")  # written by .ci/repro
HEAD = "this change"  # how messages name the revision under review (its drift details are read; the base's are not shown)


def group_choices(root: Path, params: dict[str, Any]) -> dict[str, str]:
    """Which `conf/<group>/<option>.yaml` each params section equals ("custom" when overridden)."""
    defaults = yaml.safe_load((root / "conf/config.yaml").read_text())["defaults"]
    choices = {}
    for entry in defaults:
        if not isinstance(entry, dict):
            continue
        ((group, _),) = entry.items()
        options = sorted((root / "conf" / group).glob("*.yaml"))
        matching = [option.stem for option in options if yaml.safe_load(option.read_text()) == params.get(group)]
        choices[group] = matching[0] if matching else "custom"
    return choices


def scores_on_test(root: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Task, actual target, predictions and times of a revision's model on its test split."""
    spec, test = load_features("test", root)
    model = load_model(root / MODEL_FILE)
    times = pd.DatetimeIndex(test[spec.time]).asi8 if spec.time in test else np.arange(len(test))
    return spec.task, test[spec.target].to_numpy(dtype=np.float64), predict_scores(model, test[spec.features], spec.task), times


def read_gate_verdict(root: Path, label: str) -> GateVerdict | str:
    """A revision's drift gate verdict, or why there is none."""
    path = root / DRIFT_FILE
    if not path.exists():
        return f"{label} has no {DRIFT_FILE}; run `dvc repro`"
    try:
        return gate_verdict(read_summary(path), DRIFT_FILE)
    except UserError as error:
        return f"{label}: {error}"


def figure_specs(repo: Path, base_revision: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The evaluation plots (base vs this change) as the report draws them: {name: (caption, Vega-Lite spec)}, from
    DVC's own specs named and annotated by `report_figure`."""
    paths = {name: str(PLOT_FILES[name]) for name in PLOTS}
    specs, _ = vega_specs(repo, [base_revision], list(paths.values()))  # a failing `dvc plots diff` is an error, not "no plots"
    figures = {}
    for name, title in PLOTS.items():
        if paths[name] in specs:
            figure, note = report_figure(name, specs[paths[name]], base_revision)
            figures[name] = (f"{title} ({note})" if note else title, figure)
    return figures


def render_plots(repo: Path, base_revision: str, images: Path) -> dict[str, str]:
    """PNG images of `figure_specs` beside the report: {caption: file name}."""
    import vl_convert

    rendered = {}
    images.mkdir(parents=True, exist_ok=True)
    for name, (caption, figure) in figure_specs(repo, base_revision).items():
        file_name = f"{PLOT_FILES[name].stem}.png"
        (images / file_name).write_bytes(vl_convert.vegalite_to_png(figure, scale=1))
        rendered[caption] = file_name
    return rendered


def revision_facts(root: Path, label: str, params: dict[str, Any]) -> tuple[str, RevisionFacts]:
    """Read what the report needs from one revision's folder.

    Args:
        root: the revision's project folder.
        label: how messages name it ("this change", "the base").
        params: its params.yaml as a mapping (to name the config group options it chose).

    Returns:
        (its task, its facts).
    """
    drift = read_gate_verdict(root, label)
    task, actual, scores, times = scores_on_test(root)
    facts = RevisionFacts(
        choices=group_choices(root, params),
        metrics=read_json(root / METRICS_FILE, "run `dvc repro` first" if label == HEAD else "the base revision has no metrics"),
        train_summary=read_json(root / TRAIN_SUMMARY, "") if (root / TRAIN_SUMMARY).exists() else {},
        drift=drift,
        drift_summary=read_drift(root) if isinstance(drift, GateVerdict) and label == HEAD else None,
        actual=actual,
        scores=scores,
        times=times,
    )
    return task, facts


def gather_inputs(
    repo: Path, base: Revision, gate: ReportGate, output: Path, repro_log: str | None, artifact_url: str | None
) -> ReportInputs:
    """The report's I/O: read both revisions' files, run git and dvc, render the plot images beside `output`.

    Args:
        repo: this change's project folder.
        base: the materialized base revision.
        gate: the `evaluate.gate` section.
        output: where the report goes (its images go to `images/` beside it).
        repro_log: the output of `dvc repro`, if recorded.
        artifact_url: where CI uploads the images, to link instead of embedding them.

    Returns:
        Everything `render_report` needs.
    """
    # This change's params as the typed models write them; the base's as its own revision wrote them (an older schema).
    task, head = revision_facts(repo, HEAD, load_params(repo / "params.yaml").model_dump(mode="json"))
    _, base_facts = revision_facts(base.root, "the base", read_params(base.root / "params.yaml"))
    remote = [REMOTE_NOTE.read_text(encoding="utf-8").strip()] if REMOTE_NOTE.exists() else []
    return ReportInputs(
        task=task,
        head=head,
        base=base_facts,
        base_label=base.label,
        base_sha=base.sha,
        head_sha=run(["git", "rev-parse", "HEAD"], repo).stdout.strip(),
        dirty=bool(run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout.strip()),
        gate=gate,
        params_diff=json.loads(run(dvc("params", "diff", base.sha, "--json"), repo).stdout or "{}").get("params.yaml", {}),
        data_diff=json.loads(run(dvc("diff", base.sha, "--json"), repo).stdout or "{}"),
        plots=render_plots(repo, base.label, output.parent / "images"),
        artifact_url=artifact_url,
        repro_log=repro_log,
        notes=[*base.notes, *remote],
    )


def build_report(
    repo: Path, base: Revision, gate: ReportGate, output: Path, repro_log: str | None, artifact_url: str | None
) -> tuple[str, bool]:
    """The Markdown report and whether the verdict passed (`gather_inputs`, then `render_report`)."""
    return render_report(gather_inputs(repo, base, gate, output, repro_log, artifact_url))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--output", type=Path, default=Path("reports/pr/report.md"))
    parser.add_argument("--repro-log", type=Path, help="the output of `dvc repro`, to list which stages ran")
    parser.add_argument("--artifact-url", help="link to the rendered plots instead of embedding them (CI)")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    gate = load_params().evaluate.gate
    log = args.repro_log.read_text(encoding="utf-8") if args.repro_log else None
    with materialized(args.base, repo) as base:
        text, passed = build_report(repo, base, gate, args.output, log, args.artifact_url)
    write_outputs({args.output: lambda path: path.write_text(text, encoding="utf-8")})
    print(f"report: verdict {'PASSED' if passed else 'FAILED'} against {args.base} -> {args.output}")
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
