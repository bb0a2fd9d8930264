"""The drift gate as an exit code: `make drift-gate` fails (exit 1) when reports/drift.json says so.

`dvc repro` records the verdict and finishes; CI runs this afterwards to fail a pull request.
"""

from __future__ import annotations

import sys

from stages.lib.catalog import DRIFT_FILE, DRIFT_REPORT
from stages.lib.errors import run_stage
from stages.lib.io import read_json

GATE_FAILED_EXIT = 1


def main() -> None:
    summary = read_json(DRIFT_FILE, "run `dvc repro drift-check` first")
    gate = summary["gate"]
    drifted = ", ".join(summary["drifted"]) or "none"
    print(f"drift: {summary['drifted_columns']} of {summary['columns_checked']} columns drifted ({drifted}); details in {DRIFT_REPORT}")
    if gate["passed"]:
        print("drift gate: passed")
        return
    for reason in gate["reasons"]:
        print(f"drift gate: FAILED: {reason}", file=sys.stderr)
    sys.exit(GATE_FAILED_EXIT)


if __name__ == "__main__":
    run_stage(main)
