"""The monitor's timeline as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched.

One table row per chunk, its status as a coloured badge; each chunk's columns and segments sit in a
<details> element in its row, opened on demand. A chart above draws the main metric over chunks.
"""

from __future__ import annotations

import math
from typing import Any

from stages.lib.config.monitor import Chunk
from stages.lib.html_text import escaped as _e
from stages.lib.html_text import number as _number

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;margin:0 auto;max-width:1200px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.muted{color:#59636e}.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff;white-space:nowrap}
.ok{background:#1a7f37}.alert{background:#cf222e}.undecided{background:#9a6700}.too-small{background:#8c959f}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fff1f0}details summary{cursor:pointer;color:#0969da}details table{font-size:13px}
ul{margin:0;padding-left:18px}.legend span{display:inline-block;width:14px;height:3px;margin:0 4px 3px 12px}
"""
REALIZED_COLOUR, ESTIMATED_COLOUR = "#1a7f37", "#0969da"
DRIFTED = ' class="drifted"'
STATUS_CLASS = {"ok": "ok", "alert": "alert", "undecided": "undecided", "too small": "too-small"}


def _with_interval(found: dict[str, Any] | None) -> str:
    if not found or found.get("value") is None:
        return "-"
    return f"{_number(found['value'])} <span class='muted'>[{_number(found.get('lower'))}, {_number(found.get('upper'))}]</span>"


def performance_chart(chunks: list[dict[str, Any]], metric: str) -> str:
    """Realized and estimated metric per chunk (lines), the estimate's band shaded, as inline SVG."""
    points = {
        which: [(chunk["chunk"], chunk.get(which) or {}) for chunk in chunks if (chunk.get(which) or {}).get("value") is not None]
        for which in ("realized", "estimated")
    }
    values: list[float] = [
        float(bound)
        for series in points.values()
        for _, found in series
        for bound in (found.get("lower"), found["value"], found.get("upper"))
        if bound is not None and math.isfinite(bound)
    ]
    if not values:
        return '<p class="muted">No performance to draw yet.</p>'
    width, height, left, right, top, bottom = 1100, 220, 48, 12, 10, 28
    low, high = min(values), max(values)
    low, high = (low - 0.05, high + 0.05) if high - low < 1e-9 else (low, high)
    count = max(len(chunks), 2)

    def x(index: int) -> float:
        return left + (index - 1) * (width - left - right) / (count - 1)

    def y(value: float) -> float:
        return top + (high - value) * (height - top - bottom) / (high - low)

    parts = [f'<svg role="img" aria-label="{_e(metric)} per chunk" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#8c959f"/>')
    for value in (low, high):
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">{value:.3f}</text>')
    band = [(index, found) for index, found in points["estimated"] if found.get("lower") is not None and found.get("upper") is not None]
    if band:
        upper = " ".join(f"{x(index):.1f},{y(found['upper']):.1f}" for index, found in band)
        lower = " ".join(f"{x(index):.1f},{y(found['lower']):.1f}" for index, found in reversed(band))
        parts.append(f'<polygon points="{upper} {lower}" fill="{ESTIMATED_COLOUR}" fill-opacity="0.15"/>')
    for which, colour in (("realized", REALIZED_COLOUR), ("estimated", ESTIMATED_COLOUR)):
        series = points[which]
        if series:
            line = " ".join(f"{x(index):.1f},{y(found['value']):.1f}" for index, found in series)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(
                f'<circle cx="{x(index):.1f}" cy="{y(found["value"]):.1f}" r="3" fill="{colour}"><title>chunk {index}: {which} {found["value"]:.3f}</title></circle>'
                for index, found in series
            )
    for chunk in chunks:
        parts.append(f'<text x="{x(chunk["chunk"]):.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{_e(chunk["label"])}</text>')
    parts.append("</svg>")
    legend = (
        f'<div class="legend muted"><span style="background:{REALIZED_COLOUR}"></span>realized'
        f'<span style="background:{ESTIMATED_COLOUR}"></span>estimated (shaded: its band)</div>'
    )
    return "".join(parts) + legend


def _columns_table(chunk: dict[str, Any]) -> str:
    drift = chunk.get("drift")
    if not drift:
        return '<p class="muted">No rows.</p>'
    rows = []
    for name, column in drift["columns"].items():
        drifted = column["drifted"] or column["missing_drifted"]
        rows.append(
            f"<tr{DRIFTED if drifted else ''}><td>{_e(name)}</td><td>{_e(column['method'])}</td>"
            f'<td class="num">{_number(column["score"])}</td><td class="num">{_number(column["threshold"])}</td>'
            f"<td>{_number(column['drifted'])}</td><td class='num'>{_number(column['missing_reference'])}</td>"
            f"<td class='num'>{_number(column['missing_current'])}</td><td>{_number(column['missing_drifted'])}</td></tr>"
        )
    head = "<tr><th>Column</th><th>Method</th><th>Score</th><th>Threshold</th><th>Drifted</th><th>Missing (reference)</th><th>Missing (chunk)</th><th>Missing share drifted</th></tr>"
    return f"<table class='columns'>{head}{''.join(rows)}</table>"


def _segments_table(chunk: dict[str, Any]) -> str:
    segments = chunk.get("segments") or []
    if not segments:
        return '<p class="muted">No segments.</p>'
    rows = [
        f"<tr{DRIFTED if segment['drifted'] else ''}><td>{_e(segment['column'])} = {_e(segment['value'])}</td>"
        f'<td class="num">{_number(segment["rows"])}</td><td>{"yes" if segment["tested"] else "no (too few rows)"}</td>'
        f"<td>{_e(', '.join(segment['drifted_columns'])) or '-'}</td></tr>"
        for segment in segments
    ]
    return f"<table class='segments'><tr><th>Segment</th><th>Rows</th><th>Tested</th><th>Drifted columns</th></tr>{''.join(rows)}</table>"


def _chunk_row(chunk: dict[str, Any]) -> str:
    status = chunk["status"]
    prediction = chunk.get("prediction_drift")
    realized = chunk.get("realized") or {}
    findings = [*chunk["alerts"], *chunk["undecided"], *chunk.get("notes", [])]
    drift = chunk.get("drift") or {}
    details = (
        f"<details><summary>{len(drift.get('drifted', []))} drifted column(s), "
        f"{sum(segment['drifted'] for segment in chunk.get('segments') or [])} drifted segment(s)</summary>"
        f"<h3>Columns</h3>{_columns_table(chunk)}<h3>Segments</h3>{_segments_table(chunk)}</details>"
    )
    return (
        f'<tr class="chunk" id="chunk-{chunk["chunk"]}" data-status="{_e(status)}"><td>{_e(chunk["label"])}</td>'
        f'<td><span class="badge {STATUS_CLASS.get(status, "undecided")}">{_e(status)}</span></td>'
        f'<td class="num">{_number(chunk["rows"])}</td><td class="num">{_number(drift.get("share"))}</td>'
        f"<td>{'-' if prediction is None else _number(prediction['drifted'])}</td>"
        f"<td class='num'>{_number(realized.get('share_labelled'))}</td><td>{_with_interval(realized)}</td>"
        f"<td>{_with_interval(chunk.get('estimated'))}</td>"
        f"<td><ul>{''.join(f'<li>{_e(item)}</li>' for item in findings)}</ul>{details}</td></tr>"
    )


def render_timeline(chunks: list[dict[str, Any]], summary: dict[str, Any], chunk: Chunk, task: str) -> str:
    """The whole page: verdict, chart, and one row per chunk with its columns and segments on demand."""
    metric = summary.get("metric", "roc_auc" if task == "classification" else "mae")
    gate = summary["gate"]
    verdict = "gate passed" if gate["passed"] else "gate failed"
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in gate["reasons"])
    grid = f"{chunk.size} rows each, in time order" if chunk.by == "rows" else f"{chunk.size} (UTC)"
    if chunks:
        head = (
            "<tr><th>Chunk</th><th>Status</th><th>Rows</th><th>Drift share</th><th>Prediction drift</th><th>Labelled</th>"
            f"<th>Realized {_e(metric)} [95% interval]</th><th>Estimated {_e(metric)} [band]</th><th>Findings</th></tr>"
        )
        body = f"<table class='timeline'>{head}{''.join(_chunk_row(chunk) for chunk in chunks)}</table>"
    else:
        body = '<p class="empty">The production store holds no batches yet: nothing to monitor.</p>'
    return "\n".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Monitor timeline</title>',
            f"<style>{CSS}</style></head><body>",
            "<h1>Monitor timeline</h1>",
            f'<p class="muted">{summary["chunks"]} chunk(s) of {_e(grid)}, {summary["rows"]:,} rows; reference: the test split. '
            f'<span class="badge {"ok" if gate["passed"] else "alert"}">{verdict}</span></p>',
            f"<ul class='reasons'>{reasons}</ul>" if reasons else "",
            f"<h2>{_e(metric)} per chunk</h2>",
            performance_chart(chunks, metric),
            "<h2>Chunks</h2>",
            body,
            "</body></html>",
        ]
    )
