"""DVC's plots of the workspace against revisions, as one page that renders offline.

    python -m commands.plots [REV ...] [--out dvc_plots]
    make plots [REVS="main v1"]

`dvc plots diff` writes an HTML page that loads Vega from a CDN: without internet it is blank. This
takes the same Vega-Lite specs (`dvc plots diff --json`, data inline) and draws each to SVG in Python
with vl-convert (no Node, no browser, no network), into `<out>/index.html`: no script, no external file.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path
from typing import Any

from stages.lib.errors import fail, run_stage
from stages.lib.revisions import dvc, last_line, run

STYLE = "body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:0 2em 2em 0;vertical-align:top}"


def vega_specs(repo: Path, revisions: list[str], targets: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """DVC's Vega-Lite spec per plot (data inline, one series per revision), and the plots DVC could not load."""
    arguments = ["plots", "diff", *revisions, "--json"] + (["--targets", *targets] if targets else [])
    result = run(dvc(*arguments), repo, check=False)
    if result.returncode != 0:
        fail(f"`dvc plots diff {' '.join(revisions)}` failed: {last_line(result)}")
    output = json.loads(result.stdout)
    specs = {
        name: entries[0]["content"]
        for name, entries in output.get("data", {}).items()
        if entries and entries[0].get("type") == "vega" and entries[0]["content"].get("data", {}).get("values")
    }
    errors = [f"{error['name']} ({error['rev']}): {error['msg']}" for error in output.get("errors") or []]
    return specs, errors


def scoped_svg(svg: str, scope: str) -> str:
    """The SVG with its ids (clip paths) made unique on the page: every chart names its first clip `clip1`."""
    for name in set(re.findall(r'\bid="([^"]+)"', svg)):
        svg = svg.replace(f'id="{name}"', f'id="{scope}-{name}"').replace(f"url(#{name})", f"url(#{scope}-{name})")
    return svg


def render_page(specs: dict[str, dict[str, Any]], errors: list[str], title: str) -> str:
    """One self-contained HTML page: each plot as inline SVG."""
    import vl_convert

    figures = [
        f"<figure><figcaption>{html.escape(name)}</figcaption>{scoped_svg(vl_convert.vegalite_to_svg(spec), f'p{index}')}</figure>"
        for index, (name, spec) in enumerate(specs.items(), start=1)
    ]
    missing = "".join(f"<li>{html.escape(error)}</li>" for error in errors)
    return "\n".join(
        [
            '<!DOCTYPE html><html><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            *(figures or ["<p>No plot has data: run `dvc repro` first.</p>"]),
            f"<h2>Not shown (DVC could not load them)</h2><ul>{missing}</ul>" if missing else "",
            "</body></html>",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", help="git revisions to compare with the workspace (default: HEAD)")
    parser.add_argument("--out", type=Path, default=Path("dvc_plots"), help="folder for index.html (default: dvc_plots)")
    arguments = parser.parse_args()
    specs, errors = vega_specs(Path.cwd(), arguments.revisions)
    title = "Plots: workspace" + (f" vs {', '.join(arguments.revisions)}" if arguments.revisions else " vs HEAD")
    arguments.out.mkdir(parents=True, exist_ok=True)
    page = arguments.out / "index.html"
    page.write_text(render_page(specs, errors, title))
    print(f"{len(specs)} plot(s) drawn to {page} (renders offline: no script, no CDN)")


if __name__ == "__main__":
    run_stage(main)
