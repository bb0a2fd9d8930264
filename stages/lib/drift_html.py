"""The drift report as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched."""

from __future__ import annotations

from typing import Any

from stages.lib.drift.methods import EFFECT_SIZES
from stages.lib.drift.result import ColumnDrift
from stages.lib.html_text import escaped as _e
from stages.lib.html_text import number

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.muted{color:#59636e}.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.bad{background:#cf222e}.good{background:#1a7f37}.warn{background:#9a6700}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.drifted td{background:#fff1f0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:20px}.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
.wide{overflow-x:auto}td:last-child{min-width:180px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
REFERENCE_COLOUR, CURRENT_COLOUR = "#8c959f", "#0969da"
EFFECT_LABEL = " / ".join(label for _, label in EFFECT_SIZES.values())


def _number(value: Any, digits: int = 3) -> str:
    return number(value, digits, small_in_g=True)


def bar_chart(histogram: dict[str, list], title: str) -> str:
    """Reference and current shares side by side, as inline SVG."""
    labels, reference, current = histogram.get("value", []), histogram.get("reference", []), histogram.get("current", [])
    if not labels:
        return f'<figure><figcaption>{_e(title)}</figcaption><p class="muted">No values to plot.</p></figure>'
    width, height, left, bottom, top = 520, 200, 40, 56, 10
    plot_width, plot_height = width - left - 10, height - bottom - top
    peak = max([*reference, *current, 1e-9])
    slot = plot_width / len(labels)
    bar = max(slot / 2 - 1, 0.5)
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    parts.append(f'<line x1="{left}" y1="{top + plot_height}" x2="{width - 10}" y2="{top + plot_height}" stroke="#8c959f"/>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{peak:.0%}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + plot_height}" font-size="10" text-anchor="end">0%</text>')
    numeric = all(isinstance(label, (int, float)) for label in labels)
    for index, (label, reference_share, current_share) in enumerate(zip(labels, reference, current, strict=True)):
        x = left + index * slot
        for offset, share, colour, name in (
            (0, reference_share, REFERENCE_COLOUR, "reference"),
            (bar + 1, current_share, CURRENT_COLOUR, "current"),
        ):
            bar_height = plot_height * share / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_height - bar_height:.1f}" width="{bar:.1f}" height="{bar_height:.1f}" fill="{colour}">'
                f"<title>{_e(label)}: {name} {share:.1%}</title></rect>"
            )
        show = not numeric or index in (0, len(labels) // 2, len(labels) - 1)
        if show:
            text = f"{label:.4g}" if numeric else str(label)[:14]
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{top + plot_height + 12}" font-size="10" text-anchor="end" '
                f'transform="rotate(-35 {x + slot / 2:.1f} {top + plot_height + 12})">{_e(text)}</text>'
            )
    parts.append("</svg>")
    legend = f'<div class="legend muted"><span style="background:{REFERENCE_COLOUR}"></span>reference<span style="background:{CURRENT_COLOUR}"></span>current</div>'
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}{legend}</figure>"


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
    cells = [
        f"<td>{_e(column.column)}</td>",
        f"<td>{_e(column.kind)}</td>",
        f"<td>{_e(column.method)}</td>",
        f'<td class="num">{_number(column.score)}</td>',
        f'<td class="num">{_number(column.threshold)}</td>',
        f"<td>{_e(', '.join(flags) or 'no')}</td>",
        f'<td class="num">{_number(details.get("importance_weight"))}</td>',
        f'<td class="num">{_number(details.get("weighted_drift"))}</td>',
        f'<td class="num">{_number(effect)}</td>',
        f'<td class="num">{_number(statistics.get("psi"))}</td>',
        f'<td class="num">{_number(statistics.get("p_value_adjusted"))}</td>',
        f'<td class="num">{column.missing_reference:.1%} → {column.missing_current:.1%}</td>',
        f"<td>{_e('; '.join(notes))}</td>",
    ]
    css = ' class="drifted"' if column.drifted or column.missing_drifted else ""
    return f"<tr{css}>{''.join(cells)}</tr>"


def render_report(summary: dict[str, Any], ranked: list[ColumnDrift], prediction: ColumnDrift, target: ColumnDrift | None) -> str:
    """The whole report. Deterministic: the same findings give the same bytes."""
    gate = summary["gate"]
    verdict = (
        '<span class="badge bad">dataset drift</span>' if summary["dataset_drift"] else '<span class="badge good">no dataset drift</span>'
    )
    gate_badge = '<span class="badge good">gate passed</span>' if gate["passed"] else '<span class="badge bad">gate failed</span>'
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in gate["reasons"])
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
        cards.append(("drop from test split", f"{summary['roc_auc_drop']:+.3f}"))
    card_html = "".join(f'<div class="card"><span class="muted">{_e(label)}</span><b>{_e(value)}</b></div>' for label, value in cards)
    header = (
        "<tr><th>column</th><th>compared as</th><th>verdict by</th><th>score</th><th>threshold</th><th>drifted</th>"
        f"<th>importance</th><th>weighted drift</th><th>{EFFECT_LABEL}</th><th>PSI</th><th>p (BH-adjusted)</th><th>missing</th><th>notes</th></tr>"
    )
    rows = "".join(_column_row(column, summary["columns"][column.column]) for column in ranked)
    missing_rows = "".join(
        f"<tr><td>{_e(column.column)}</td><td class='num'>{column.missing_reference:.1%}</td><td class='num'>{column.missing_current:.1%}</td>"
        f"<td class='num'>{column.missing_current - column.missing_reference:+.1%}</td></tr>"
        for column in ranked
        if column.missing_drifted
    )
    missing_html = (
        f"<table><tr><th>column</th><th>reference</th><th>current</th><th>change</th></tr>{missing_rows}</table>"
        if missing_rows
        else '<p class="muted">No column changed its share of missing values by the threshold or more.</p>'
    )
    schema_rows = "".join(
        f"<tr><td>{_e(change['column'])}</td><td>{_e(change['change'])}</td><td>{_e(change['reference'])}</td><td>{_e(change['current'])}</td></tr>"
        for change in summary["schema_changes"]
    )
    schema_html = (
        f"<table><tr><th>column</th><th>change</th><th>reference type</th><th>current type</th></tr>{schema_rows}</table>"
        if schema_rows
        else '<p class="muted">Same columns and types in both windows.</p>'
    )
    model_rows = [("model prediction", prediction)] + ([("target", target)] if target else [])
    shift_rows = "".join(
        f"<tr><td>{_e(shift['feature'])}</td><td class='num'>{_number(shift['train_mean'])}</td>"
        f"<td class='num'>{_number(shift['current_mean'])}</td><td class='num'>{_number(shift['shift_in_train_std'])}</td></tr>"
        for shift in summary.get("feature_shifts", [])
    )
    shift_html = (
        "<h2>Engineered features furthest from train</h2>"
        f"<table><tr><th>feature</th><th>train mean</th><th>current mean</th><th>shift (train sd)</th></tr>{shift_rows}</table>"
        if shift_rows
        else ""
    )
    model_table = "".join(
        f"<tr><td>{_e(label)}</td><td>{_e(column.method)}</td><td class='num'>{_number(column.score)}</td><td class='num'>{_number(column.threshold)}</td>"
        f"<td>{'yes' if column.drifted else 'no'}</td></tr>"
        for label, column in model_rows
    )
    model_charts = "".join(bar_chart(column.histogram, label) for label, column in model_rows)
    metric_rows = "".join(f"<tr><td>{_e(name)}</td><td class='num'>{value:.4f}</td></tr>" for name, value in sorted(metrics.items()))
    charts = "".join(
        bar_chart(column.histogram, f"{column.column} — {column.method} {_number(column.score)}{' (drifted)' if column.drifted else ''}")
        for column in ranked
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Drift report</title><style>{CSS}</style></head>
<body>
<h1>Drift report</h1>
<p class="muted">Current window against the reference window, on the model's input features.</p>
<p>{verdict} {gate_badge}</p>
{f"<ul>{reasons}</ul>" if reasons else ""}
<div class="cards">{card_html}</div>
<h2>Features, by drift weighted by feature importance</h2>
<div class="wide"><table>{header}{rows}</table></div>
<h2>Missing values</h2>{missing_html}
<h2>Schema</h2>{schema_html}
{shift_html}
<h2>Model</h2>
<table><tr><th>what</th><th>verdict by</th><th>score</th><th>threshold</th><th>drifted</th></tr>{model_table}</table>
{f"<h3>Metrics on the current window</h3><table>{metric_rows}</table>" if metric_rows else ""}
<div class="charts">{model_charts}</div>
<h2>Distributions</h2>
<div class="charts">{charts}</div>
</body></html>
"""
