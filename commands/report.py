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
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from commands.drift_gate import GateVerdict, gate_verdict, read_summary
from commands.plots import vega_specs
from stages.lib.catalog import DRIFT_FILE, METRICS_FILE, MODEL_FILE, TRAIN_SUMMARY, load_features
from stages.lib.config import ReportGate, load_params
from stages.lib.errors import UserError, run_stage
from stages.lib.io import read_json, write_outputs
from stages.lib.metrics import LOWER_IS_BETTER, TASK_METRICS
from stages.lib.models import load_model, predict_scores
from stages.lib.revisions import Revision, dvc, materialized, run

MARKER = "<!-- mlops-pr-report -->"
MAIN_METRIC = {"classification": "roc_auc", "regression": "rmse"}
PLOTS = {
    "reports/plots/roc.json": "ROC",
    "reports/plots/precision_recall.json": "Precision-recall",
    "reports/plots/calibration.json": "Calibration",
    "reports/plots/importance.json": "Permutation importance",
}
BOOTSTRAP_SAMPLES = 1000
REMOTE_NOTE = Path("reports/pr/remote.txt")  # written by .ci/repro


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


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


def weighted_metric(
    metric: str, actual: np.ndarray, scores: np.ndarray, weights: np.ndarray, order: np.ndarray, starts: np.ndarray
) -> float:
    """ROC AUC or RMSE with row weights (bootstrap counts); `order`/`starts` group tied scores."""
    if metric == "rmse":
        return float(np.sqrt(np.sum(weights * (actual - scores) ** 2) / np.sum(weights)))
    positive = np.add.reduceat((weights * actual)[order], starts)
    negative = np.add.reduceat((weights * (1 - actual))[order], starts)
    below = np.concatenate([[0.0], np.cumsum(negative)[:-1]])
    total = positive.sum() * negative.sum()
    return float(np.sum(positive * (below + 0.5 * negative)) / total) if total > 0 else float("nan")


def bootstrap_change(
    metric: str, base: tuple[np.ndarray, np.ndarray], head: tuple[np.ndarray, np.ndarray], paired: bool, seed: int = 0
) -> tuple[float, float, float]:
    """The change head - base of the metric and its 95% bootstrap interval (paired when both scored the same rows)."""
    rng = np.random.default_rng(seed)
    prepared = []
    for actual, scores in (base, head):
        order = np.argsort(scores, kind="stable")
        starts = np.flatnonzero(np.concatenate([[True], np.diff(scores[order]) != 0]))
        prepared.append((actual.astype(np.float64), scores, order, starts))
    ones = [np.ones(len(actual)) for actual, *_ in prepared]
    change = weighted_metric(metric, *prepared[1][:2], ones[1], *prepared[1][2:]) - weighted_metric(
        metric, *prepared[0][:2], ones[0], *prepared[0][2:]
    )
    changes = []
    for _ in range(BOOTSTRAP_SAMPLES):
        weights = [
            np.bincount(rng.integers(0, len(actual), len(actual)), minlength=len(actual)).astype(np.float64) for actual, *_ in prepared
        ]
        if paired:
            weights[1] = weights[0]
        values = [
            weighted_metric(metric, actual, scores, weight, order, starts)
            for (actual, scores, order, starts), weight in zip(prepared, weights, strict=True)
        ]
        changes.append(values[1] - values[0])
    low, high = np.nanpercentile(changes, [2.5, 97.5])
    return change, float(low), float(high)


def scores_on_test(root: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Task, actual target, predictions and times of a revision's model on its test split."""
    spec, test = load_features("test", root)
    model = load_model(root / MODEL_FILE)
    times = pd.DatetimeIndex(test[spec.time]).asi8 if spec.time in test else np.arange(len(test))
    return spec.task, test[spec.target].to_numpy(dtype=np.float64), predict_scores(model, test[spec.features], spec.task), times


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else f"`{value}`"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _measured(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) else float(value)


def _unmeasurable(name: str, task: str, revisions: dict[str, dict[str, Any]]) -> tuple[bool, str] | None:
    """(passed, detail) for a gate that cannot compare `name`; None when every revision measured it.

    Only a metric the task cannot produce (roc_auc for a regression) is skipped; a metric the task
    produces but a metrics file lacks (a renamed key, an evaluate bug) fails, and so does a name no task produces."""
    if task not in TASK_METRICS:
        return False, f"unknown task {task!r}: cannot tell which metrics it produces"
    if name not in TASK_METRICS[task]:
        producers = [other for other, names in TASK_METRICS.items() if name in names]
        if producers:
            return True, f"not a {task} metric ({' and '.join(producers)} only): skipped"
        return False, f"no task produces `{name}`: check the name in evaluate.gate ({task} metrics: {', '.join(TASK_METRICS[task])})"
    absent = [where for where, metrics in revisions.items() if _measured(metrics, name) is None]
    if absent:
        return False, f"`{name}` is missing from {' and from '.join(absent)} (a {task} metric, so evaluate should write it)"
    return None


def metric_checks(head: dict[str, Any], base: dict[str, Any], gate: ReportGate, task: str) -> list[Check]:
    """The `evaluate.gate` checks on this change's metrics (and the base's, for `max_drop`)."""
    head_only = {f"this change's {METRICS_FILE}": head}
    both = head_only | {f"the base's {METRICS_FILE}": base}
    checks = []
    for kind, bounds, revisions in (
        ("minimum", gate.minimum, head_only),
        ("maximum", gate.maximum, head_only),
        ("max_drop", gate.max_drop, both),
    ):
        for name, bound in sorted(bounds.items()):
            title = {"minimum": f"{name} >= {bound}", "maximum": f"{name} <= {bound}"}.get(kind, f"{name} worsens by at most {bound}")
            unmeasurable = _unmeasurable(name, task, revisions)
            if unmeasurable is not None:
                checks.append(Check(title, *unmeasurable))
                continue
            value = _measured(head, name)
            if kind == "minimum":
                checks.append(Check(title, value >= bound, f"{name} = {_number(value)}"))
            elif kind == "maximum":
                checks.append(Check(title, value <= bound, f"{name} = {_number(value)}"))
            else:
                before = _measured(base, name)
                worsening = value - before if name in LOWER_IS_BETTER else before - value
                detail = "unchanged" if worsening == 0 else f"{'worse' if worsening > 0 else 'better'} by {abs(worsening):.4f}"
                checks.append(Check(title, worsening <= bound, detail))
    return checks


def drift_gate_check(head: GateVerdict | str, base: GateVerdict | str) -> Check:
    """The drift gate in the PR verdict: it fails only when this change fails a drift condition the base
    did not (data drift is not the change's fault), or when there is no verdict to go by (a string: why)."""
    name = "drift gate (new failures only)"
    if isinstance(head, str):
        return Check(name, False, head)
    reasons = "; ".join(head.reasons) or "no reason recorded"
    if head.passed:
        on_base = "" if isinstance(base, str) or base.passed else " (it failed on the base)"
        return Check(name, True, f"passed{on_base}")
    if isinstance(base, str):
        return Check(name, False, f"fails, and the base has no verdict to compare with ({base}): {reasons}")
    if base.passed:
        return Check(name, False, f"newly fails (passed on the base): {reasons}")
    # Both failed: new only when this change fails a condition the base passed (when both name them).
    new = sorted(head.failed - base.failed) if head.failed is not None and base.failed is not None else []
    if new:
        return Check(
            name, False, f"newly fails on {', '.join(new)} (the base failed on {', '.join(sorted(base.failed)) or 'nothing'}): {reasons}"
        )
    return Check(name, True, f"failed on base and head, not caused by this change: {reasons}")


def read_gate_verdict(root: Path, label: str) -> GateVerdict | str:
    """A revision's drift gate verdict, or why there is none."""
    path = root / DRIFT_FILE
    if not path.exists():
        return f"{label} has no {DRIFT_FILE}; run `dvc repro`"
    try:
        return gate_verdict(read_summary(path), DRIFT_FILE)
    except UserError as error:
        return f"{label}: {error}"


def verdict_checks(
    head: dict[str, Any], base: dict[str, Any], gate: ReportGate, task: str, drift: tuple[GateVerdict | str, GateVerdict | str]
) -> list[Check]:
    """Every check of the PR verdict: the metric gates, then the drift gate (this change's verdict vs the base's)."""
    return [*metric_checks(head, base, gate, task), drift_gate_check(*drift)]


def stage_runs(log: str) -> dict[str, list[str]]:
    return {
        "ran": sorted(set(re.findall(r"Running stage '([\w-]+)'", log))),
        "restored from the run cache": sorted(set(re.findall(r"Stage '([\w-]+)' is cached", log))),
        "unchanged": sorted(set(re.findall(r"Stage '([\w-]+)' didn't change", log))),
    }


def render_plots(repo: Path, base_revision: str, images: Path) -> dict[str, str]:
    """PNG images (base vs head) of the evaluation plots, from DVC's own Vega-Lite specs."""
    import vl_convert

    specs, _ = vega_specs(repo, [base_revision], list(PLOTS))  # a failing `dvc plots diff` is an error, not "no plots"
    rendered = {}
    images.mkdir(parents=True, exist_ok=True)
    for path, title in PLOTS.items():
        if path in specs:
            name = f"{Path(path).stem}.png"
            (images / name).write_bytes(vl_convert.vegalite_to_png(specs[path], scale=1))
            rendered[title] = name
    return rendered


def plot_lines(rendered: dict[str, str], artifact_url: str | None) -> list[str]:
    """The plots section's body: images beside the report, or with `--artifact-url` a link to where they are."""
    if not rendered:
        return ["No plot data."]
    if artifact_url:
        # A comment cannot show local files, and no third-party host is used: the images travel as an artifact.
        return [f"{', '.join(rendered)}: PNG images in the `pr-report` artifact of [this run]({artifact_url})."]
    return [f"![{title}](images/{name})" for title, name in rendered.items()]


def _gate_state(verdict: GateVerdict | str) -> str:
    if isinstance(verdict, str):
        return f"no verdict ({verdict})"
    return "passed" if verdict.passed else f"failed ({'; '.join(verdict.reasons) or 'no reason recorded'})"


def build_report(
    repo: Path, base: Revision, gate: ReportGate, output: Path, repro_log: str | None, artifact_url: str | None
) -> tuple[str, bool]:
    """The Markdown report and whether the verdict passed."""
    head_params, base_params = load_params(repo / "params.yaml"), load_params(base.root / "params.yaml")
    head_metrics = read_json(repo / METRICS_FILE, "run `dvc repro` first")
    base_metrics = read_json(base.root / METRICS_FILE, "the base revision has no metrics")
    head_sha = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout.strip())
    head_drift, base_drift = read_gate_verdict(repo, "this change"), read_gate_verdict(base.root, "the base")
    task, head_actual, head_scores, head_times = scores_on_test(repo)
    _, base_actual, base_scores, base_times = scores_on_test(base.root)

    checks = verdict_checks(head_metrics, base_metrics, gate, task, (head_drift, base_drift))
    passed = all(check.passed for check in checks)
    lines = [
        MARKER,
        f"## Pipeline report: `{base.label}` ({base.sha[:8]}) → this change ({head_sha[:8]}{', with uncommitted changes' if dirty else ''})",
        "",
    ]
    lines.append(
        f"**Verdict: {'PASSED' if passed else 'FAILED'}** ({sum(check.passed for check in checks)} of {len(checks)} gates pass; gates in `params.yaml`: `evaluate.gate`, `drift.gate`)"
    )
    lines += ["", "| Gate | Result | Detail |", "|---|---|---|"]
    lines += [f"| {check.name} | {'pass' if check.passed else '**FAIL**'} | {check.detail} |" for check in checks]

    choices = (group_choices(base.root, base_params), group_choices(repo, head_params))
    changed_groups = [group for group in choices[1] if choices[0].get(group) != choices[1][group]]
    params_diff = json.loads(run(dvc("params", "diff", base.sha, "--json"), repo).stdout or "{}").get("params.yaml", {})
    lines += ["", "### Parameters"]
    if changed_groups:
        lines.append(
            "Config groups: " + ", ".join(f"`{group}`: {choices[0].get(group, '—')} → **{choices[1][group]}**" for group in changed_groups)
        )
    if params_diff:
        lines += ["", "| Parameter | Base | This change |", "|---|---|---|"]
        lines += [
            f"| `{name}` | {_number(change.get('old'))} | {_number(change.get('new'))} |" for name, change in sorted(params_diff.items())
        ]
    else:
        lines.append("No parameter changed.")

    lines += ["", "### Metrics (test split)", "", "| Metric | Base | This change | Change |", "|---|---:|---:|---:|"]
    for name in sorted(set(head_metrics) | set(base_metrics)):
        old, new = base_metrics.get(name), head_metrics.get(name)
        numeric = all(isinstance(value, int | float) and not isinstance(value, bool) for value in (old, new))
        change = (f"{new - old:+,}" if isinstance(new, int) and isinstance(old, int) else f"{new - old:+.4f}") if numeric else "—"
        lines.append(f"| {name} | {_number(old)} | {_number(new)} | {change} |")
    head_train = read_json(repo / TRAIN_SUMMARY, "") if (repo / TRAIN_SUMMARY).exists() else {}
    base_train = read_json(base.root / TRAIN_SUMMARY, "") if (base.root / TRAIN_SUMMARY).exists() else {}
    if head_train.get("cv"):
        cv = head_train["cv"]
        before = f"{base_train['cv']['mean']:.4f} → " if base_train.get("cv") else ""
        lines.append(f"\nCross-validated {cv['metric']} within train: {before}{cv['mean']:.4f} ± {cv['std']:.4f}.")

    metric = MAIN_METRIC[task]
    paired = len(head_actual) == len(base_actual) and np.array_equal(head_actual, base_actual) and np.array_equal(head_times, base_times)
    change, low, high = bootstrap_change(metric, (base_actual, base_scores), (head_actual, head_scores), paired)
    better = (change < 0) if metric in LOWER_IS_BETTER else (change > 0)
    beyond_noise = low > 0 or high < 0
    meaning = ("an improvement" if better else "a deterioration") + " beyond noise" if beyond_noise else "within noise: not a real change"
    lines.append(
        f"\n**{metric} change {change:+.4f}** (95% bootstrap interval {low:+.4f} to {high:+.4f}, {BOOTSTRAP_SAMPLES} resamples of the test rows"
        f"{', paired' if paired else ', independent: the test rows differ'}): {meaning}."
    )

    lines += ["", "### Plots (base vs this change)"]
    lines += plot_lines(render_plots(repo, base.label, output.parent / "images"), artifact_url)

    data_diff = json.loads(run(dvc("diff", base.sha, "--json"), repo).stdout or "{}")
    lines += ["", "### Data and model files (`dvc diff`)"]
    changed = [
        (kind, entry["path"])
        for kind in ("added", "modified", "deleted", "renamed")
        for entry in data_diff.get(kind, [])
        if not entry["path"].endswith("/")
    ]
    lines += [f"- {kind}: `{path}`" for kind, path in changed] or ["No DVC-tracked file changed."]

    if isinstance(head_drift, GateVerdict):
        drift = read_summary(repo / DRIFT_FILE)
        lines += ["", "### Drift (current window vs reference)"]
        lines.append(
            f"{'**Dataset drift**' if drift['dataset_drift'] else 'No dataset drift'}: {drift['drifted_columns']} of {drift['columns_checked']} "
            f"input columns drifted ({', '.join(drift['drifted']) or 'none'}); prediction drift: {'yes' if drift['prediction_drift']['drifted'] else 'no'}. "
            "Full report: `reports/drift_report.html`."
        )
    lines.append(f"\nDrift gate on this change: {_gate_state(head_drift)}. On the base: {_gate_state(base_drift)}.")

    lines += ["", "### Stages"]
    if repro_log is None:
        lines.append("Not recorded (pass `--repro-log` with the output of `dvc repro`).")
    else:
        runs = stage_runs(repro_log)
        lines += [f"- {kind}: {', '.join(f'`{name}`' for name in names)}" for kind, names in runs.items() if names] or [
            "- nothing ran: up to date"
        ]
    lines += [f"- {note}" for note in base.notes]
    if REMOTE_NOTE.exists():
        lines.append(f"- {REMOTE_NOTE.read_text(encoding='utf-8').strip()}")

    lines += [
        "",
        "### Reproduce",
        "```sh",
        f"git checkout {head_sha} && dvc pull && dvc repro    # this change",
        f"git checkout {base.sha} && dvc pull && dvc repro    # the base",
        "```",
        "",
    ]
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--output", type=Path, default=Path("reports/pr/report.md"))
    parser.add_argument("--repro-log", type=Path, help="the output of `dvc repro`, to list which stages ran")
    parser.add_argument("--artifact-url", help="link to the rendered plots instead of embedding them (CI)")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    gate = ReportGate.from_params(load_params())
    log = args.repro_log.read_text(encoding="utf-8") if args.repro_log else None
    with materialized(args.base, repo) as base:
        text, passed = build_report(repo, base, gate, args.output, log, args.artifact_url)
    write_outputs({args.output: lambda path: path.write_text(text, encoding="utf-8")})
    print(f"report: verdict {'PASSED' if passed else 'FAILED'} against {args.base} -> {args.output}")
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
