"""The monitor gate as an exit code: `python -m commands.monitor_gate` (or `make monitor-gate`) reads reports/monitor.json.

It judges the newest chunk with at least `monitor.alerts.min_rows` rows (newer, smaller chunks are too small to
judge) and the newest chunk judged on realized performance (all its outcomes in), when that is another: while
outcomes lag, the newest chunk is judged on an estimate, which cannot see concept drift. Not every chunk: the store
is append-only, so a gate failing on any past alert would fail forever after one bad week, even once a retrained
model serves well; the timeline keeps the history.

Exit 0: both chunks are within every bound. Exit 1: one crossed a bound, or could not be decided (performance
without outcomes or an estimate, a chunk scored by another model, no chunk to judge, an empty store): one line per
reason on stderr. Exit 2: no verdict to go by (monitor.json missing, not JSON, or without `gate.passed`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.lib.catalog import MONITOR_FILE, MONITOR_REPORT
from stages.lib.errors import fail, run_stage
from stages.lib.io import read_json

GATE_FAILED_EXIT = 1
RERUN = "run `make repro` (the monitor stage writes it)"


@dataclass(frozen=True)
class MonitorVerdict:
    passed: bool
    chunk: str | None
    reasons: tuple[str, ...]


def monitor_verdict(summary: Any, where: Path = MONITOR_FILE) -> MonitorVerdict:
    """The gate's verdict in a monitor.json payload; a clear error when it has none."""
    gate = summary.get("gate") if isinstance(summary, dict) else None
    if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
        fail(f"{where}: no monitor gate verdict (expected 'gate.passed' true or false); {RERUN}")
    reasons = gate.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(reason, str) for reason in reasons):
        fail(f"{where}: 'gate.reasons' must be a list of strings; {RERUN}")
    if not gate["passed"] and not reasons:
        reasons = ["(no reason recorded)"]
    return MonitorVerdict(gate["passed"], gate.get("chunk"), tuple(reasons))


def main() -> None:
    summary = read_json(MONITOR_FILE, RERUN)
    verdict = monitor_verdict(summary)
    if verdict.passed:
        print(f"monitor gate: passed (chunk {verdict.chunk}: {summary.get('chunk_rows', '?')} rows); timeline in {MONITOR_REPORT}")
        return
    for reason in verdict.reasons:
        print(f"monitor gate: FAILED: {reason}", file=sys.stderr)
    sys.exit(GATE_FAILED_EXIT)


if __name__ == "__main__":
    run_stage(main)
