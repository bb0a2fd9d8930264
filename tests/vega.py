"""Reading what Vega drew: marks and texts of a scenegraph (`vl_convert.vegalite_to_scenegraph(spec)["scenegraph"]`)."""

from __future__ import annotations


def walk(node: dict, marktype: str, role: str | None = None) -> list[dict]:
    """Every mark of `marktype` (and `role`, if given) in a scenegraph node and below it."""
    found = [node] if node.get("marktype") == marktype and role in (None, node.get("role")) else []
    return found + [mark for item in node.get("items", []) for mark in walk(item, marktype, role)]


def texts(node: dict, role: str | None = None) -> list[str]:
    """The text of every text mark (of `role`, if given) below `node`, in drawing order."""
    return [str(item["text"]) for mark in walk(node, "text", role) for item in mark["items"]]
