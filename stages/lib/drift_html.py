"""The drift report as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched.

The page holds no clock time: what dates it are its inputs (the configured windows, the first and last time in each
window's data, the model file's hash), so the same data, model and config give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stages.lib.config import DriftConfig
from stages.lib.drift.methods import EFFECT_SIZES, METHODS, METHODS_BY_NAME
from stages.lib.drift.result import ColumnDrift
from stages.lib.html_text import escaped as _e
from stages.lib.html_text import number, signed

# Tables fit the viewport from 1024 px up: cells wrap (names break after underscores), nothing keeps a minimum width,
# and numeric columns are right-aligned in the header as in the cells (class "num" on both).
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;margin:0 auto;max-width:1360px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 4px}.muted{color:#59636e}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.bad{background:#cf222e}.good{background:#1a7f37}.off{background:#8c959f}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f6f8fa;font-weight:600;vertical-align:bottom}th.num,td.num{text-align:right}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}td.notes,code{overflow-wrap:anywhere}tr.drifted td{background:#fff1f0}
table.facts{width:auto}table.facts th{background:none;text-align:left;vertical-align:top;padding-right:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:20px}.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
svg{display:block;width:100%;height:auto;max-width:640px}.wide{overflow-x:auto}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
dl.glossary dt{font-weight:600;margin-top:6px}dl.glossary dd{margin:0 0 0 16px}
"""
REFERENCE_COLOUR, CURRENT_COLOUR = "#8c959f", "#0969da"
EFFECT_LABEL = " / ".join(label for _, label in EFFECT_SIZES.values())
Y_TITLE = "share of rows with a value"
# How each registered direction (stages/lib/drift/methods.py) reads beside a threshold, escaped for HTML.
DIRECTION_SIGN = {"above": "≥", "below": "&lt;"}


@dataclass(frozen=True)
class WindowFacts:
    """One compared window: as configured (data.splits) and as its data turned out."""

    name: str  # "reference" or "current"
    start: str  # data.splits.<name>.start, as the config writes it (UTC)
    end: str  # data.splits.<name>.end, excluded
    first: str | None  # the first and last time in the window's prepared data (UTC); None: not known
    last: str | None


@dataclass(frozen=True)
class PageContext:
    """What the page says about where its findings come from, and the config that judged them."""

    dataset: str  # data.name
    time_column: str  # data.time.column
    windows: tuple[WindowFacts, ...]
    model: str  # the model file
    model_sha256: str  # its content hash: the model version, deterministic for the same file
    drift: DriftConfig  # the thresholds (glossary) and which gate conditions are on


def _number(value: Any, digits: int = 3) -> str:
    return number(value, digits, small_in_g=True)


def _breakable(name: str) -> str:
    """An escaped name that may wrap after its underscores (long column and method names in narrow tables)."""
    return _e(name).replace("_", "_<wbr>")


def nice_step(span: float, count: int) -> float:
    """1, 2 or 5 times a power of ten, the one nearest (on a log scale) to `span` (> 0) in `count` intervals, as d3's ticks."""
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    error = raw / power
    multiple = 10 if error >= math.sqrt(50) else 5 if error >= math.sqrt(10) else 2 if error >= math.sqrt(2) else 1
    return multiple * power


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values within [low, high] (multiples of `nice_step`); the one value when the range is empty."""
    if not high > low:
        return [low]
    step = nice_step(high - low, count)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    index = first
    while index * step <= high + step * 1e-9:
        ticks.append(round(index * step, 12) + 0.0)  # + 0.0: no "-0"
        index += 1
    return ticks


def tick_text(value: float, step: float, scale: float = 1.0, suffix: str = "") -> str:
    """A tick label with as many decimals as the step needs (20, 2.5, 0.05), thousands separated."""
    decimals = 0
    while decimals < 12 and abs(round(step * scale, decimals) - step * scale) > 1e-9 * max(abs(step * scale), 1):
        decimals += 1
    return f"{value * scale + 0.0:,.{decimals}f}{suffix}"


def bar_chart(histogram: dict[str, list], title: str, x_title: str) -> str:
    """Reference and current shares side by side, as inline SVG, with round ticks and both axes titled.

    Args:
        histogram: {"value": bin centres (numeric, equal width) or category labels, "reference"/"current": shares}.
        title: the figure's caption.
        x_title: what the x axis holds (the feature's name).
    """
    labels, reference, current = histogram.get("value", []), histogram.get("reference", []), histogram.get("current", [])
    if not labels:
        return f'<figure><figcaption>{_e(title)}</figcaption><p class="muted">No values to plot.</p></figure>'
    numeric = all(isinstance(label, (int, float)) and not isinstance(label, bool) for label in labels)
    width, left, right, top = 520, 58, 12, 10
    bottom = 44 if numeric else 92  # category labels are written slanted
    height = 170 + bottom
    plot_width, plot_height = width - left - right, height - bottom - top
    base = top + plot_height
    y_step = nice_step(max([*reference, *current, 1e-9]), 4)
    y_top = y_step * math.ceil(max([*reference, *current, 1e-9]) / y_step - 1e-9)
    slot = plot_width / len(labels)
    bar = max(slot / 2 - 1, 0.5)
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in nice_ticks(0.0, y_top, 4):
        y = base - plot_height * tick / y_top
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eaeef2"/>')
        parts.append(
            f'<text class="tick y" x="{left - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{tick_text(tick, y_step, 100, "%")}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#8c959f"/>')
    for index, (label, reference_share, current_share) in enumerate(zip(labels, reference, current, strict=True)):
        x = left + index * slot
        for offset, share, colour, name in (
            (0, reference_share, REFERENCE_COLOUR, "reference"),
            (bar + 1, current_share, CURRENT_COLOUR, "current"),
        ):
            bar_height = plot_height * share / y_top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{base - bar_height:.1f}" width="{bar:.1f}" height="{bar_height:.1f}" fill="{colour}">'
                f"<title>{_e(label)}: {name} {share:.1%}</title></rect>"
            )
        if not numeric:
            centre = x + slot / 2
            parts.append(
                f'<text class="tick x" x="{centre:.1f}" y="{base + 12}" font-size="10" text-anchor="end" '
                f'transform="rotate(-35 {centre:.1f} {base + 12})">{_e(str(label)[:14])}</text>'
            )
    if numeric:
        # The bins are equal-width: their edges follow from the centres, and each tick sits where its value lies.
        half = (labels[-1] - labels[0]) / (len(labels) - 1) / 2 if len(labels) > 1 else 0.0
        low, high = labels[0] - half, labels[-1] + half
        ticks = nice_ticks(low, high, 5)
        x_step = nice_step(high - low, 5) if high > low else 1.0
        for tick in ticks:
            x = left + (plot_width * (tick - low) / (high - low) if high > low else plot_width / 2)
            parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#8c959f"/>')
            parts.append(
                f'<text class="tick x" x="{x:.1f}" y="{base + 15}" font-size="10" text-anchor="middle">{tick_text(tick, x_step)}</text>'
            )
    parts.append(
        f'<text class="axis-title x" x="{left + plot_width / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">{_e(x_title)}</text>'
    )
    middle = top + plot_height / 2
    parts.append(
        f'<text class="axis-title y" x="12" y="{middle:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {middle:.1f})">{Y_TITLE}</text>'
    )
    parts.append("</svg>")
    legend = f'<div class="legend muted"><span style="background:{REFERENCE_COLOUR}"></span>reference<span style="background:{CURRENT_COLOUR}"></span>current</div>'
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}{legend}</figure>"


def _rule(column: ColumnDrift) -> str:
    """Where the column's score drifts: "≥ 0.100" for a distance, "< 0.050" for a p-value (the method's direction)."""
    method = METHODS_BY_NAME.get(column.method)
    if method is None:
        return "-"
    return f"{DIRECTION_SIGN[method.direction]} {_number(column.threshold)}"


def _num(text: str) -> str:
    return f'<td class="num">{text}</td>'


def _column_row(column: ColumnDrift, details: dict[str, Any]) -> str:
    statistics = column.statistics
    effect = statistics.get(EFFECT_SIZES[column.kind][0])
    flags = []
    if column.drifted:
        flags.append("values")
    if column.missing_drifted:
        flags.append("missing share")
    notes = [column.note] if column.note else []
    if column.unseen_categories:
        notes.append(f"unseen in reference: {', '.join(column.unseen_categories[:5])}{' …' if len(column.unseen_categories) > 5 else ''}")
    method = _breakable(column.method) if column.method in METHODS_BY_NAME else f"{_e(column.method)} ({_e(column.kind)})"
    cells = [
        f"<td>{_breakable(column.column)}</td>",
        f"<td>{method}</td>",
        _num(_number(column.score)),
        _num(_rule(column)),
        f"<td>{_e(', '.join(flags) or 'no')}</td>",
        _num(_number(details.get("importance_weight"))),
        _num(_number(details.get("weighted_drift"))),
        _num(_number(effect)),
        _num(_number(statistics.get("psi"))),
        _num(_number(statistics.get("p_value_adjusted"))),
        _num(f"{column.missing_reference:.1%} → {column.missing_current:.1%}"),
        f'<td class="notes">{_e("; ".join(notes))}</td>',
    ]
    css = ' class="drifted"' if column.drifted or column.missing_drifted else ""
    return f"<tr{css}>{''.join(cells)}</tr>"


def _header(*names: str, numeric: tuple[int, ...] = ()) -> str:
    """A header row; the columns at `numeric` positions right-aligned, over their numbers."""
    cells = "".join(f'<th class="num">{name}</th>' if index in numeric else f"<th>{name}</th>" for index, name in enumerate(names))
    return f"<tr>{cells}</tr>"


def _flag(key: str, value: Any) -> str:
    """A config key as written in conf/drift/ (drift.gate.<key>: value)."""
    text = "null" if value is None else ("true" if value is True else "false" if value is False else str(value))
    return f"<code>drift.gate.{key}: {text}</code>"


def gate_section(summary: dict[str, Any], prediction: ColumnDrift, config: DriftConfig) -> str:
    """The gate's verdict, then each condition: on or off (and by which key), what was found, and whether it failed.

    The failures are the stage's own (`summary["gate"]`); the page only explains them."""
    gate, settings = summary["gate"], config.gate
    failed = set(gate["failed"])
    drop = summary.get("roc_auc_drop")
    conditions = [
        (
            "dataset_drift",
            "data set drift",
            settings.fail_on_dataset_drift,
            _flag("fail_on_dataset_drift", settings.fail_on_dataset_drift),
            f"{'yes' if summary['dataset_drift'] else 'no'}: {summary['drifted_columns']} of {summary['columns_checked']} columns drifted "
            f"(share {summary['drift_share']:.2f}; drifts at ≥ {config.drift_share})",
        ),
        (
            "prediction_drift",
            "prediction drift",
            settings.fail_on_prediction_drift,
            _flag("fail_on_prediction_drift", settings.fail_on_prediction_drift),
            f"{'yes' if prediction.drifted else 'no'}: {_e(prediction.method)} {_number(prediction.score)}, drifts at {_rule(prediction)}",
        ),
        (
            "roc_auc_drop",
            "ROC AUC drop from the test split",
            settings.max_roc_auc_drop is not None,
            _flag("max_roc_auc_drop", settings.max_roc_auc_drop),
            "not measured"
            if drop is None
            else f"{signed(drop)}" + (f" (allowed {settings.max_roc_auc_drop})" if settings.max_roc_auc_drop is not None else ""),
        ),
    ]
    rows = []
    for name, label, on, key, found in conditions:
        if not on:
            effect = '<span class="badge off">off</span> not part of the verdict, whatever was found'
        elif name in failed:
            effect = '<span class="badge bad">fails the gate</span>'
        else:
            effect = '<span class="badge good">passes</span>'
        rows.append(f"<tr><td>{label}</td><td>{'on' if on else 'off'} ({key})</td><td>{found}</td><td>{effect}</td></tr>")
    off_but_found = [
        label
        for name, label, on, _, _ in conditions
        if not on and ((name == "dataset_drift" and summary["dataset_drift"]) or (name == "prediction_drift" and prediction.drifted))
    ]
    if gate["passed"]:
        why = "The gate passed: no condition that is on holds."
    else:
        why = f"The gate failed on {', '.join(label for name, label, *_ in conditions if name in failed)}."
    if off_but_found:
        why += f" Found but off, so not counted: {', '.join(off_but_found)}."
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in gate["reasons"])
    return (
        f"<p>{why} <span class='muted'>The gate fails when any condition that is on holds; <code>make drift-gate</code> exits 1 then."
        "</span></p>"
        f"{f'<ul>{reasons}</ul>' if reasons else ''}"
        f"<table>{_header('condition', 'in the gate', 'found', 'effect on the verdict')}{''.join(rows)}</table>"
    )


def facts_section(summary: dict[str, Any], context: PageContext) -> str:
    """Which data and which model: the dataset, both windows as configured and as their data spans, the model's hash."""
    rows = [f"<tr><th>dataset</th><td>{_e(context.dataset)}</td></tr>"]
    for window in context.windows:
        span = (
            f"data from {_e(window.first)} to {_e(window.last)} ({_e(context.time_column)})"
            if window.first and window.last
            else "the data's first and last time are not known"
        )
        count = summary["rows"].get(window.name)
        rows.append(
            f"<tr><th>{_e(window.name)} window</th><td>{_e(window.start)} to {_e(window.end)} (end excluded, "
            f"<code>data.splits.{_e(window.name)}</code>); {span}; {_number(count)} rows</td></tr>"
        )
    rows.append(f"<tr><th>model</th><td>{_e(context.model)}, sha256 <code>{_e(context.model_sha256[:12])}</code></td></tr>")
    return f'<table class="facts">{"".join(rows)}</table>'


def glossary_section(context: PageContext) -> str:
    """Each verdict method (from its registration: kind, when chosen, direction, threshold), then the table's terms."""
    thresholds = context.drift.thresholds
    rows = []
    for method in METHODS:
        size = "at most" if method.small_reference else "more than"
        rows.append(
            f"<tr><td>{_breakable(method.name)}</td><td>{method.kind} columns whose reference has {size} "
            f"{thresholds.small_reference_rows:,} values</td><td>{_e(method.description)}</td>"
            f'<td class="num">{DIRECTION_SIGN[method.direction]} {_number(method.threshold(thresholds))}</td></tr>'
        )
    methods = f"<table>{_header('method', 'judges', 'score', 'drifted when the score is', numeric=(3,))}{''.join(rows)}</table>"
    terms = (
        ("score", "the value of the column's verdict method: a distance (larger is more drift) or a p-value (smaller is more drift)"),
        ("drifts at", "the threshold, with the side of it where the column counts as drifted"),
        ("importance", "the column's share of the model's permutation importance (summed over the features built from it)"),
        ("weighted drift", "how far past its threshold the column is (1 at the threshold) times its importance: the table's order"),
        (EFFECT_LABEL, "effect size shown for every column: KS statistic (numeric), Cramér's V (categorical)"),
        ("PSI", "population stability index on reference-quantile bins"),
        ("p (BH-adjusted)", "the test's p-value, Benjamini-Hochberg adjusted across columns"),
        ("missing", "share of missing values, reference → current; a change of at least "
         f"{context.drift.missing_share} is a finding of its own"),
    )  # fmt: skip
    term_html = "".join(f"<dt>{_e(term)}</dt><dd>{_e(text)}</dd>" for term, text in terms)
    return f'{methods}<dl class="glossary">{term_html}</dl>'


def render_report(
    summary: dict[str, Any], ranked: list[ColumnDrift], prediction: ColumnDrift, target: ColumnDrift | None, context: PageContext
) -> str:
    """The whole report. Deterministic: the same findings and context give the same bytes."""
    gate = summary["gate"]
    verdict = (
        '<span class="badge bad">dataset drift</span>' if summary["dataset_drift"] else '<span class="badge good">no dataset drift</span>'
    )
    gate_badge = '<span class="badge good">gate passed</span>' if gate["passed"] else '<span class="badge bad">gate failed</span>'
    metrics = summary.get("current_metrics") or {}
    cards = [
        ("drifted columns", f"{summary['drifted_columns']} of {summary['columns_checked']}"),
        ("drift share", f"{summary['drift_share']:.0%}"),
        ("reference rows", f"{summary['rows']['reference']:,}"),
        ("current rows", f"{summary['rows']['current']:,}"),
    ]
    if "roc_auc" in metrics:
        cards.append(("ROC AUC, current window", f"{metrics['roc_auc']:.3f}"))
    if summary.get("roc_auc_drop") is not None:
        cards.append(("drop from test split", signed(summary["roc_auc_drop"])))
    card_html = "".join(f'<div class="card"><span class="muted">{_e(label)}</span><b>{_e(value)}</b></div>' for label, value in cards)
    header = _header(
        "column", "verdict by", "score", "drifts at", "drifted", "importance", "weighted drift", EFFECT_LABEL, "PSI",
        "p (BH-adjusted)", "missing", "notes", numeric=(2, 3, 5, 6, 7, 8, 9, 10),
    )  # fmt: skip
    rows = "".join(_column_row(column, summary["columns"][column.column]) for column in ranked)
    missing_rows = "".join(
        f"<tr><td>{_breakable(column.column)}</td>{_num(f'{column.missing_reference:.1%}')}{_num(f'{column.missing_current:.1%}')}"
        f"{_num(f'{column.missing_current - column.missing_reference:+.1%}')}</tr>"
        for column in ranked
        if column.missing_drifted
    )
    missing_html = (
        f"<table>{_header('column', 'reference', 'current', 'change', numeric=(1, 2, 3))}{missing_rows}</table>"
        if missing_rows
        else '<p class="muted">No column changed its share of missing values by the threshold or more.</p>'
    )
    schema_rows = "".join(
        f"<tr><td>{_e(change['column'])}</td><td>{_e(change['change'])}</td><td>{_e(change['reference'])}</td><td>{_e(change['current'])}</td></tr>"
        for change in summary["schema_changes"]
    )
    schema_html = (
        f"<table>{_header('column', 'change', 'reference type', 'current type')}{schema_rows}</table>"
        if schema_rows
        else '<p class="muted">Same columns and types in both windows.</p>'
    )
    prediction_gate = "on" if context.drift.gate.fail_on_prediction_drift else "off"
    model_rows = [("model prediction", prediction, f"prediction drift: {prediction_gate}")] + (
        [("target", target, "no gate condition")] if target else []
    )
    shift_rows = "".join(
        f"<tr><td>{_breakable(shift['feature'])}</td>{_num(_number(shift['train_mean']))}"
        f"{_num(_number(shift['current_mean']))}{_num(_number(shift['shift_in_train_std']))}</tr>"
        for shift in summary.get("feature_shifts", [])
    )
    shift_html = (
        "<h2>Engineered features furthest from train</h2>"
        f"<table>{_header('feature', 'train mean', 'current mean', 'shift (train sd)', numeric=(1, 2, 3))}{shift_rows}</table>"
        if shift_rows
        else ""
    )
    model_table = "".join(
        f"<tr><td>{_e(label)}</td><td>{_breakable(column.method)}</td>{_num(_number(column.score))}{_num(_rule(column))}"
        f"<td>{'yes' if column.drifted else 'no'}</td><td>{gate_word}</td></tr>"
        for label, column, gate_word in model_rows
    )
    model_charts = "".join(
        bar_chart(column.histogram, label, "predicted score" if column is prediction else column.column) for label, column, _ in model_rows
    )
    metric_rows = "".join(f"<tr><td>{_e(name)}</td>{_num(f'{value:.4f}')}</tr>" for name, value in sorted(metrics.items()))
    charts = "".join(
        bar_chart(
            column.histogram,
            f"{column.column} — {column.method} {_number(column.score)}{' (drifted)' if column.drifted else ''}",
            column.column,
        )
        for column in ranked
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Drift report: {_e(context.dataset)}</title><style>{CSS}</style></head>
<body>
<h1>Drift report</h1>
<p class="muted">Current window against the reference window, on the model's input features.</p>
{facts_section(summary, context)}
<p>{verdict} {gate_badge}</p>
<div class="cards">{card_html}</div>
<h2>Gate</h2>
{gate_section(summary, prediction, context.drift)}
<h2>Features, by drift weighted by feature importance</h2>
<div class="wide"><table>{header}{rows}</table></div>
<h2>Missing values</h2>{missing_html}
<h2>Schema</h2>{schema_html}
{shift_html}
<h2>Model</h2>
<table>{_header("what", "verdict by", "score", "drifts at", "drifted", "in the gate", numeric=(2, 3))}{model_table}</table>
{f"<h3>Metrics on the current window</h3><table>{_header('metric', 'value', numeric=(1,))}{metric_rows}</table>" if metric_rows else ""}
<div class="charts">{model_charts}</div>
<h2>Distributions</h2>
<div class="charts">{charts}</div>
<h2>Glossary</h2>
{glossary_section(context)}
</body></html>
"""
