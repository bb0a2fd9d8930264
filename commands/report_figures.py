"""The PR report's figures: DVC's Vega-Lite specs of the evaluation plots, made to read as the report does.

DVC names the series by revision ("workspace", the base's name); the report says "this change" and "the base". The
ROC and calibration plots get their reference line (chance, y = x), and the importance plot its most important
features at a height where each label has room (DVC draws every feature into 300 px).
"""

from __future__ import annotations

import copy
from typing import Any

IMPORTANCE_TOP = 20  # features the report's importance plot shows, the most important in either revision
BAR_BAND = 24  # px of height per feature: one bar per revision and a gap
REFERENCE_COLOUR = "#777777"
# The plot each reference line belongs to, and what its label says.
REFERENCE_LINES = {"roc": "chance (y = x)", "calibration": "perfectly calibrated (y = x)"}


def series_names(base_label: str) -> dict[str, str]:
    """DVC's revision names -> the report's: the workspace is this change."""
    return {"workspace": "this change", base_label: f"base ({base_label})"}


def renamed_revisions(spec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The spec with every `rev` value in its data and every colour-scale domain entry renamed by `names`."""

    def rename(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {name: (names.get(value, value) if name == "rev" else rename(value, name)) for name, value in node.items()}
        if isinstance(node, list):
            return [names.get(item, item) if key == "domain" and isinstance(item, str) else rename(item) for item in node]
        return node

    renamed: dict[str, Any] = rename(spec)
    colour = renamed.get("encoding", {}).get("color")
    if isinstance(colour, dict) and colour.get("field") == "rev":
        colour["title"] = "Revision"
    return renamed


def _channel(spec: Any, channel: str) -> dict[str, Any] | None:
    """The first encoding of `channel` with a field, searching the spec and its layers."""
    if isinstance(spec, dict):
        encoding = spec.get("encoding", {}).get(channel)
        if isinstance(encoding, dict) and "field" in encoding and "aggregate" not in encoding:
            return encoding
        for key in ("layer", "spec"):
            for part in spec.get(key, []) if key == "layer" else [spec.get(key)]:
                found = _channel(part, channel)
                if found:
                    return found
    return None


def with_identity_line(spec: dict[str, Any], label: str, span: tuple[float, float] | None = None) -> dict[str, Any]:
    """The spec layered over a dashed grey y = x line from span[0] to span[1] (default: the range of x and y in the data).

    Raises:
        ValueError: when the spec has no x or y field (not a plot this applies to).
    """
    x, y = _channel(spec, "x"), _channel(spec, "y")
    if x is None or y is None:
        raise ValueError("the plot has no x and y fields to draw y = x over")
    rows = spec.get("data", {}).get("values") or []
    if span is None:
        values = [float(row[field]) for row in rows for field in (x["field"], y["field"]) if row.get(field) is not None]
        span = (min(values), max(values)) if values else (0.0, 1.0)
    low, high = span
    line = [{x["field"]: low, y["field"]: low}, {x["field"]: high, y["field"]: high}]
    position = {
        "x": {"field": x["field"], "type": "quantitative", "title": x.get("title")},
        "y": {"field": y["field"], "type": "quantitative", "title": y.get("title")},
    }
    outer: dict[str, Any] = {key: spec[key] for key in ("$schema", "data", "title", "width", "height") if key in spec}
    inner = {key: value for key, value in spec.items() if key not in outer and key != "params"}
    # A value param (the calibration template's smoothing slider) must stay top-level; a selection belongs to its layer.
    params = spec.get("params", [])
    if [param for param in params if "select" not in param]:
        outer["params"] = [param for param in params if "select" not in param]
    if [param for param in params if "select" in param]:
        inner["params"] = [param for param in params if "select" in param]
    middle = low + (high - low) * 0.4  # the label below the line, left of the middle: inside the plot
    return outer | {
        "layer": [
            inner,
            {"data": {"values": line}, "mark": {"type": "line", "color": REFERENCE_COLOUR, "strokeDash": [5, 4]}, "encoding": position},
            {
                "data": {"values": [{x["field"]: middle, y["field"]: middle, "label": label}]},
                "mark": {"type": "text", "color": REFERENCE_COLOUR, "align": "left", "baseline": "top", "dx": 6},
                "encoding": position | {"text": {"field": "label"}},
            },
        ]
    }


def top_importance(spec: dict[str, Any], top: int = IMPORTANCE_TOP) -> tuple[dict[str, Any], int, int]:
    """The importance spec keeping the `top` features of highest importance in any revision, `BAR_BAND` px per feature.

    Returns:
        (the spec, how many features it shows, how many there were).
    """
    rows = spec.get("data", {}).get("values") or []
    best: dict[str, float] = {}
    for row in rows:
        best[row["feature"]] = max(best.get(row["feature"], float("-inf")), float(row["importance"]))
    kept = set(sorted(best, key=lambda feature: (-best[feature], feature))[:top])
    trimmed = copy.deepcopy(spec)
    trimmed["data"] = {**spec.get("data", {}), "values": [row for row in rows if row["feature"] in kept]}
    trimmed["height"] = max(BAR_BAND * len(kept), 120)
    if len(kept) < len(best):
        title: dict[str, Any] = spec["title"] if isinstance(spec.get("title"), dict) else {"text": spec.get("title", "")}
        trimmed["title"] = {**title, "subtitle": f"the {len(kept)} most important of {len(best)} features (in either revision)"}
    return trimmed, len(kept), len(best)


def report_figure(name: str, spec: dict[str, Any], base_label: str) -> tuple[dict[str, Any], str]:
    """One evaluation plot as the report draws it, and the note its caption adds ("" for none).

    Args:
        name: the plot's name in `PLOT_FILES` ("roc", "precision_recall", "calibration", "importance").
        spec: DVC's Vega-Lite spec of it (`dvc plots diff --json`, data inline).
        base_label: the base revision's name as DVC gave it to the series.
    """
    figure = renamed_revisions(spec, series_names(base_label))
    note = ""
    if name == "roc":
        figure = with_identity_line(figure, REFERENCE_LINES[name], (0.0, 1.0))
    elif name == "calibration":
        figure = with_identity_line(figure, REFERENCE_LINES[name])
    elif name == "importance":
        figure, shown, total = top_importance(figure)
        note = f"top {shown} of {total} features" if shown < total else ""
    return figure, note
