"""The pull-request report's text: a pure function of what `commands/report.py` gathered.

`render_report(ReportInputs)` reads no file and runs nothing, so it is tested with hand-written inputs;
the gates' checks (`metric_checks`, `drift_gate_check`) and the paired bootstrap live here with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from commands.drift_gate import GateVerdict
from stages.lib.catalog import METRICS_FILE, SOURCES_STAGE
from stages.lib.config import ReportGate
from stages.lib.drift.methods import METHODS_BY_NAME
from stages.lib.metrics import MAIN_METRIC, SETTINGS, TASK_METRICS, WEIGHTED_METRICS, direction, weighted_metric

MARKER = "<!-- mlops-pr-report -->"


BOOTSTRAP_SAMPLES = 1000


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


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


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else f"`{value}`"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _measured(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) else float(value)


def _measure(name: str, task: str, revisions: dict[str, dict[str, Any]]) -> tuple[bool, str] | dict[str, float]:
    """Each revision's value of `name`, or (passed, detail) for a gate that cannot compare it.

    Only a metric the task cannot produce (roc_auc for a regression) is skipped; a metric the task
    produces but a metrics file lacks (a renamed key, an evaluate bug) fails, and so does a name no task produces.

    Args:
        name: the metric a gate bounds.
        task: the task of this change ("classification", "regression").
        revisions: each revision's metrics file by how messages name it.

    Returns:
        {revision: value} when every revision measured it; otherwise the check's (passed, detail).
    """
    if task not in TASK_METRICS:
        return False, f"unknown task {task!r}: cannot tell which metrics it produces"
    if name not in TASK_METRICS[task]:
        producers = [other for other, names in TASK_METRICS.items() if name in names]
        if producers:
            return True, f"not a {task} metric ({' and '.join(producers)} only): skipped"
        return False, f"no task produces `{name}`: check the name in evaluate.gate ({task} metrics: {', '.join(TASK_METRICS[task])})"
    measured = {where: _measured(metrics, name) for where, metrics in revisions.items()}
    absent = [where for where, value in measured.items() if value is None]
    if absent:
        return False, f"`{name}` is missing from {' and from '.join(absent)} (a {task} metric, so evaluate should write it)"
    return {where: value for where, value in measured.items() if value is not None}


Interval = tuple[float, float, float]  # a change head - base and its 95% bootstrap interval (`bootstrap_change`)


def _worded(worsening: float) -> str:
    return "unchanged" if worsening == 0 else f"{'worse' if worsening > 0 else 'better'} by {abs(worsening):.4f}"


def drop_check(name: str, before: float, after: float, bound: float, drop_by: str, interval: Interval | None) -> tuple[bool, str]:
    """One `max_drop` gate: passed, and the detail. With `drop_by` "bound" it decides on the end of the change's
    interval in the metric's bad direction (a drop noise could explain fails as well as a real one), with "point" on
    the change of the metrics files' values; a gate that cannot decide (no interval, no direction) fails.

    Args:
        name: the metric.
        before: the base's value (its metrics file).
        after: this change's value.
        bound: the worsening allowed.
        drop_by: "bound" or "point" (`evaluate.gate.drop_by`).
        interval: the change's bootstrap interval, when the report computes one for this metric.
    """
    sign = direction(name)
    if sign == 0:
        return False, f"`{name}` is no measure of the model (neither higher nor lower is better): remove it from evaluate.gate.max_drop"
    worsening = sign * (before - after)
    detail = _worded(worsening)
    if interval is None:
        if drop_by == "point":
            return worsening <= bound, detail
        return False, (
            f"{detail}; no bootstrap interval of `{name}` (the report computes one for {', '.join(WEIGHTED_METRICS)}): "
            "set evaluate.gate.drop_by: point to gate it on the change alone"
        )
    _, low, high = interval
    worst = -sign * (low if sign > 0 else high)  # the interval's end on the bad side, as a worsening
    detail += f" (95% interval of the change {low:+.4f} to {high:+.4f}; at its bad end {_worded(worst)})"
    if drop_by == "point":
        return worsening <= bound, f"{detail}; decided on the change (drop_by: point)"
    return worst <= bound, f"{detail}; decided on the interval's bad end (drop_by: bound)"


def metric_checks(
    head: dict[str, Any], base: dict[str, Any], gate: ReportGate, task: str, intervals: dict[str, Interval] | None = None
) -> list[Check]:
    """The `evaluate.gate` checks on this change's metrics (and the base's, for `max_drop`).

    Args:
        head: this change's metrics file.
        base: the base's.
        gate: the `evaluate.gate` section.
        task: the task of this change.
        intervals: the bootstrap interval of the change per metric (`change_intervals`); `max_drop` with
            `drop_by: bound` decides on them.
    """
    head_label, base_label = f"this change's {METRICS_FILE}", f"the base's {METRICS_FILE}"
    head_only = {head_label: head}
    both = head_only | {base_label: base}
    checks = []
    for kind, bounds, revisions in (
        ("minimum", gate.minimum, head_only),
        ("maximum", gate.maximum, head_only),
        ("max_drop", gate.max_drop, both),
    ):
        for name, bound in sorted(bounds.items()):
            title = {"minimum": f"{name} >= {bound}", "maximum": f"{name} <= {bound}"}.get(kind, f"{name} worsens by at most {bound}")
            measured = _measure(name, task, revisions)
            if isinstance(measured, tuple):
                checks.append(Check(title, *measured))
                continue
            value = measured[head_label]
            if kind == "minimum":
                checks.append(Check(title, value >= bound, f"{name} = {_number(value)}"))
            elif kind == "maximum":
                checks.append(Check(title, value <= bound, f"{name} = {_number(value)}"))
            else:
                interval = (intervals or {}).get(name)
                checks.append(Check(title, *drop_check(name, measured[base_label], value, bound, gate.drop_by, interval)))
    return checks


def paired_rows(head: RevisionFacts, base: RevisionFacts) -> bool:
    """Whether both revisions scored the same test rows (same targets at the same times): the bootstrap pairs them."""
    return len(head.actual) == len(base.actual) and np.array_equal(head.actual, base.actual) and np.array_equal(head.times, base.times)


def change_intervals(task: str, head: RevisionFacts, base: RevisionFacts, gate: ReportGate) -> dict[str, Interval]:
    """The bootstrap interval of the change of the task's main metric, and of each metric `max_drop` bounds
    that has a weighted form (WEIGHTED_METRICS) and the task produces."""
    names = {MAIN_METRIC[task]} | {name for name in gate.max_drop if name in WEIGHTED_METRICS and name in TASK_METRICS[task]}
    paired = paired_rows(head, base)
    return {name: bootstrap_change(name, (base.actual, base.scores), (head.actual, head.scores), paired) for name in sorted(names)}


def sign_disagreement(task: str, test_change: float, head: dict[str, Any], base: dict[str, Any]) -> str | None:
    """A warning when the test split and cross-validation within train disagree on whether the main metric got
    better (one says better, the other worse), or None: then the test change may be luck of one time window.

    Args:
        task: the task (picks the main metric).
        test_change: the main metric's change head - base on the test split.
        head: this change's train summary (reports/train.json, its `cv`).
        base: the base's.
    """
    metric = MAIN_METRIC[task]
    cv = [summary.get("cv") or {} for summary in (head, base)]
    if not all(isinstance(entry.get("mean"), int | float) and entry.get("metric") == metric for entry in cv):
        return None
    cv_change = float(cv[0]["mean"]) - float(cv[1]["mean"])
    sign = direction(metric)
    if sign * test_change * sign * cv_change >= 0:
        return None  # the same sign, or one of them unchanged
    verdicts = ["better" if sign * change > 0 else "worse" for change in (test_change, cv_change)]
    return (
        f"**The test split and cross-validation disagree**: {metric} is {verdicts[0]} on the test split ({test_change:+.4f}) "
        f"but {verdicts[1]} cross-validated within train ({cv_change:+.4f}); the change may not hold beyond this test window."
    )


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
    if head.failed is not None and base.failed is not None:
        new = sorted(head.failed - base.failed)
        if new:
            return Check(
                name,
                False,
                f"newly fails on {', '.join(new)} (the base failed on {', '.join(sorted(base.failed)) or 'nothing'}): {reasons}",
            )
    return Check(name, True, f"failed on base and head, not caused by this change: {reasons}")


def verdict_checks(
    head: dict[str, Any],
    base: dict[str, Any],
    gate: ReportGate,
    task: str,
    drift: tuple[GateVerdict | str, GateVerdict | str],
    intervals: dict[str, Interval] | None = None,
) -> list[Check]:
    """Every check of the PR verdict: the metric gates (`max_drop` on `intervals` when `drop_by: bound`), then the
    drift gate (this change's verdict vs the base's)."""
    return [*metric_checks(head, base, gate, task, intervals), drift_gate_check(*drift)]


def stage_runs(log: str) -> dict[str, list[str]]:
    # The sources stage runs on every `dvc repro` (always_changed) and reruns nothing unless a source changed: not news.
    return {
        "ran": sorted(set(re.findall(r"Running stage '([\w-]+)'", log)) - {SOURCES_STAGE}),
        "restored from the run cache": sorted(set(re.findall(r"Stage '([\w-]+)' is cached", log))),
        "unchanged": sorted(set(re.findall(r"Stage '([\w-]+)' didn't change", log))),
    }


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


@dataclass(frozen=True)
class RevisionFacts:
    """What the report reads from one revision (this change's working tree, or the base's worktree)."""

    choices: dict[str, str]  # config group -> option (`group_choices`)
    metrics: dict[str, Any]  # reports/metrics.json
    train_summary: dict[str, Any]  # reports/train.json ({} when absent)
    drift: GateVerdict | str  # its drift gate verdict, or why there is none
    drift_summary: dict[str, Any] | None  # reports/drift.json when it has a verdict
    actual: np.ndarray  # the test split's target
    scores: np.ndarray  # the revision's model's predictions on it
    times: np.ndarray  # the test rows' times (to tell whether both revisions scored the same rows)


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report is built from, gathered by `gather_inputs`: the report itself reads no file and runs nothing."""

    task: str
    head: RevisionFacts
    base: RevisionFacts
    base_label: str
    base_sha: str
    head_sha: str
    dirty: bool  # this change has uncommitted edits to tracked files
    gate: ReportGate
    params_diff: dict[str, dict[str, Any]]  # `dvc params diff --json`'s params.yaml part
    data_diff: dict[str, list[dict[str, Any]]]  # `dvc diff --json`
    plots: dict[str, str]  # plot title -> PNG file name beside the report
    artifact_url: str | None
    repro_log: str | None  # the output of `dvc repro`, when recorded
    notes: list[str]  # how the base was materialized, and the CI remote note


def drift_finding(finding: dict[str, Any]) -> str:
    """One drift finding of reports/drift.json in words, with its method as the method table describes it."""
    verdict = "yes" if finding.get("drifted") else "no"
    method = METHODS_BY_NAME.get(finding.get("method", ""))
    if method is None:
        return f"{verdict} (not tested: {finding.get('note') or 'no values to compare'})"
    return f"{verdict} ({method.name} {_number(finding.get('score'))} against {finding.get('threshold')}: {method.description})"


def render_report(inputs: ReportInputs) -> tuple[str, bool]:
    """The Markdown report and whether the verdict passed: a pure function of what `gather_inputs` read.

    Args:
        inputs: both revisions' facts, the diffs, the plots and the logs.

    Returns:
        (the report's text, whether every gate passed).
    """
    head, base = inputs.head, inputs.base
    intervals = change_intervals(inputs.task, head, base, inputs.gate)
    checks = verdict_checks(head.metrics, base.metrics, inputs.gate, inputs.task, (head.drift, base.drift), intervals)
    passed = all(check.passed for check in checks)
    main = intervals[MAIN_METRIC[inputs.task]]
    disagreement = sign_disagreement(inputs.task, main[0], head.train_summary, base.train_summary)
    lines = [
        *_verdict_lines(inputs, checks, passed),
        *([] if disagreement is None else ["", f"> {disagreement}"]),
        *_parameter_lines(head.choices, base.choices, inputs.params_diff),
        *_metric_lines(head, base),
        _bootstrap_line(inputs.task, main, paired_rows(head, base)),
        "",
        "### Plots (base vs this change)",
        *plot_lines(inputs.plots, inputs.artifact_url),
        *_data_lines(inputs.data_diff),
        *_drift_lines(head, base),
        *_stage_lines(inputs.repro_log, inputs.notes),
        "",
        "### Reproduce",
        "```sh",
        f"git checkout {inputs.head_sha} && dvc pull && dvc repro    # this change",
        f"git checkout {inputs.base_sha} && dvc pull && dvc repro    # the base",
        "```",
        "",
    ]
    return "\n".join(lines), passed


def _verdict_lines(inputs: ReportInputs, checks: list[Check], passed: bool) -> list[str]:
    """The report's title, its verdict and the table of gates.

    Args:
        inputs: the revisions compared (labels, commits, uncommitted edits).
        checks: every gate's check (`verdict_checks`).
        passed: whether every check passed.

    Returns:
        The section's lines.
    """
    return [
        MARKER,
        f"## Pipeline report: `{inputs.base_label}` ({inputs.base_sha[:8]}) → this change ({inputs.head_sha[:8]}{', with uncommitted changes' if inputs.dirty else ''})",
        "",
        f"**Verdict: {'PASSED' if passed else 'FAILED'}** ({sum(check.passed for check in checks)} of {len(checks)} gates pass; gates in `params.yaml`: `evaluate.gate`, `drift.gate`)",
        "",
        "| Gate | Result | Detail |",
        "|---|---|---|",
        *(f"| {check.name} | {'pass' if check.passed else '**FAIL**'} | {check.detail} |" for check in checks),
    ]


def _parameter_lines(head: dict[str, str], base: dict[str, str], params_diff: dict[str, dict[str, Any]]) -> list[str]:
    """The parameters section: config groups whose option changed, then every changed parameter.

    Args:
        head: this change's config group choices (`group_choices`).
        base: the base's.
        params_diff: `dvc params diff --json`'s params.yaml part.

    Returns:
        The section's lines.
    """
    lines = ["", "### Parameters"]
    changed_groups = [group for group in head if base.get(group) != head[group]]
    if changed_groups:
        lines.append("Config groups: " + ", ".join(f"`{group}`: {base.get(group, '—')} → **{head[group]}**" for group in changed_groups))
    if not params_diff:
        return [*lines, "No parameter changed."]
    lines += ["", "| Parameter | Base | This change |", "|---|---|---|"]
    lines += [f"| `{name}` | {_number(change.get('old'))} | {_number(change.get('new'))} |" for name, change in sorted(params_diff.items())]
    return lines


def _change(old: Any, new: Any) -> str:
    """`new - old` signed (integers with separators, other numbers to 4 decimals), or a dash unless both are numbers."""
    if isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, int | float) or not isinstance(new, int | float):
        return "—"
    return f"{new - old:+,}" if isinstance(new, int) and isinstance(old, int) else f"{new - old:+.4f}"


def _direction_mark(name: str, old: Any, new: Any) -> str:
    """Whether the change of a metric is better or worse by its direction; a dash for one that describes the test data."""
    sign = direction(name)
    if sign == 0:
        return "— (describes the test data)"
    if isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, int | float) or not isinstance(new, int | float):
        return "—"
    change = sign * (new - old)
    return "unchanged" if change == 0 else "better" if change > 0 else "**worse**"


def _metric_lines(head: RevisionFacts, base: RevisionFacts) -> list[str]:
    """The metrics table (every metric either revision wrote, without SETTINGS such as `rows` and `threshold`, each
    change marked better or worse by the metric's direction) and the cross-validation score.

    Args:
        head: this change's facts.
        base: the base's facts.

    Returns:
        The section's lines.
    """
    lines = ["", "### Metrics (test split)", "", "| Metric | Base | This change | Change | |", "|---|---:|---:|---:|---|"]
    for name in sorted((set(head.metrics) | set(base.metrics)) - SETTINGS):
        old, new = base.metrics.get(name), head.metrics.get(name)
        lines.append(f"| {name} | {_number(old)} | {_number(new)} | {_change(old, new)} | {_direction_mark(name, old, new)} |")
    if head.train_summary.get("cv"):
        cv = head.train_summary["cv"]
        before = f"{base.train_summary['cv']['mean']:.4f} → " if base.train_summary.get("cv") else ""
        lines.append(f"\nCross-validated {cv['metric']} within train: {before}{cv['mean']:.4f} ± {cv['std']:.4f}.")
    return lines


def _bootstrap_line(task: str, interval: Interval, paired: bool) -> str:
    """The change of the task's main metric with its bootstrap interval, and whether it is beyond noise.

    Args:
        task: the task (picks the main metric).
        interval: the change and its interval (`change_intervals`).
        paired: whether both revisions scored the same rows.

    Returns:
        One paragraph, starting with a blank line.
    """
    metric = MAIN_METRIC[task]
    change, low, high = interval
    better = direction(metric) * change > 0
    beyond_noise = low > 0 or high < 0
    meaning = ("an improvement" if better else "a deterioration") + " beyond noise" if beyond_noise else "within noise: not a real change"
    return (
        f"\n**{metric} change {change:+.4f}** (95% bootstrap interval {low:+.4f} to {high:+.4f}, {BOOTSTRAP_SAMPLES} resamples of the test rows"
        f"{', paired' if paired else ', independent: the test rows differ'}): {meaning}."
    )


def _data_lines(data_diff: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The DVC-tracked files that changed (folders left out: their files are listed).

    Args:
        data_diff: `dvc diff --json`.

    Returns:
        The section's lines.
    """
    changed = [
        (kind, entry["path"])
        for kind in ("added", "modified", "deleted", "renamed")
        for entry in data_diff.get(kind, [])
        if not entry["path"].endswith("/")
    ]
    return [
        "",
        "### Data and model files (`dvc diff`)",
        *([f"- {kind}: `{path}`" for kind, path in changed] or ["No DVC-tracked file changed."]),
    ]


def _drift_lines(head: RevisionFacts, base: RevisionFacts) -> list[str]:
    """This change's drift summary (when it has a verdict) and both revisions' drift gate states.

    Args:
        head: this change's facts.
        base: the base's.

    Returns:
        The section's lines.
    """
    lines: list[str] = []
    if head.drift_summary is not None:
        drift = head.drift_summary
        lines += ["", "### Drift (current window vs reference)"]
        lines.append(
            f"{'**Dataset drift**' if drift['dataset_drift'] else 'No dataset drift'}: {drift['drifted_columns']} of {drift['columns_checked']} "
            f"input columns drifted ({', '.join(drift['drifted']) or 'none'}); prediction drift: {drift_finding(drift['prediction_drift'])}. "
            "Full report: `reports/drift_report.html`."
        )
    lines.append(f"\nDrift gate on this change: {_gate_state(head.drift)}. On the base: {_gate_state(base.drift)}.")
    return lines


def _stage_lines(repro_log: str | None, notes: list[str]) -> list[str]:
    """Which stages ran, came from the run cache or were unchanged, then how the base was materialized.

    Args:
        repro_log: the output of `dvc repro`, when recorded.
        notes: how the base was materialized, and the CI remote note.

    Returns:
        The section's lines.
    """
    lines = ["", "### Stages"]
    if repro_log is None:
        lines.append("Not recorded (pass `--repro-log` with the output of `dvc repro`).")
    else:
        runs = stage_runs(repro_log)
        lines += [f"- {kind}: {', '.join(f'`{name}`' for name in names)}" for kind, names in runs.items() if names] or [
            "- nothing ran: up to date"
        ]
    return [*lines, *(f"- {note}" for note in notes)]
