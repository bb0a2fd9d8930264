"""The drift gate as an exit code: `python -m commands.drift_gate` (or `make drift-gate`) reads reports/drift.json.

Exit 0: the gate passed. Exit 1: the gate failed (its reasons on stderr). Exit 2: no verdict to go by
(drift.json missing, not JSON, or without `gate.passed`): a gate that cannot decide must not pass.
`dvc repro` records the verdict and finishes; CI runs this afterwards to fail a pull request.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.lib.catalog import DRIFT_DETAILS, DRIFT_FILE, DRIFT_REPORT
from stages.lib.errors import fail, run_stage
from stages.lib.io import read_json

GATE_FAILED_EXIT = 1
RERUN = "rerun `dvc repro drift-check`"


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: tuple[str, ...]
    failed: frozenset[str] | None  # the conditions that failed; None when drift.json predates that list


def gate_verdict(summary: Any, where: Path = DRIFT_FILE) -> GateVerdict:
    """The gate's verdict in a drift.json payload; a clear error when it has none."""
    gate = summary.get("gate") if isinstance(summary, dict) else None
    if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
        fail(f"{where}: no drift gate verdict (expected 'gate.passed' true or false); {RERUN}")
    reasons = gate.get("reasons", [])
    failed = gate.get("failed")
    if not isinstance(reasons, list) or not all(isinstance(reason, str) for reason in reasons):
        fail(f"{where}: 'gate.reasons' must be a list of strings; {RERUN}")
    if failed is not None and (not isinstance(failed, list) or not all(isinstance(name, str) for name in failed)):
        fail(f"{where}: 'gate.failed' must be a list of condition names; {RERUN}")
    return GateVerdict(gate["passed"], tuple(reasons), None if failed is None else frozenset(failed))


def read_summary(path: Path = DRIFT_FILE) -> Any:
    """drift.json's payload; a clear error (named as in the project, not by a checkout's temporary path) when unreadable."""
    return read_json(path, RERUN, shown_as=DRIFT_FILE)


def read_drift(root: Path = Path()) -> dict[str, Any]:
    """drift-check's whole summary: the DVC metrics file (verdicts, headline numbers) merged with its details file
    (each column's findings, prediction and target drift); a clear error when either is unreadable or not an object."""
    parts = []
    for path in (DRIFT_FILE, DRIFT_DETAILS):
        payload = read_json(root / path, RERUN, shown_as=path)
        if not isinstance(payload, dict):
            fail(f"{path}: expected a JSON object; {RERUN}")
        parts.append(payload)
    return parts[1] | parts[0]


def main() -> None:
    summary = read_summary()
    verdict = gate_verdict(summary)
    drifted = ", ".join(summary.get("drifted", [])) or "none"
    print(
        f"drift: {summary.get('drifted_columns', '?')} of {summary.get('columns_checked', '?')} columns drifted ({drifted}); details in {DRIFT_REPORT}"
    )
    if verdict.passed:
        print("drift gate: passed")
        return
    for reason in verdict.reasons or ("(no reason recorded)",):
        print(f"drift gate: FAILED: {reason}", file=sys.stderr)
    sys.exit(GATE_FAILED_EXIT)


if __name__ == "__main__":
    run_stage(main)
