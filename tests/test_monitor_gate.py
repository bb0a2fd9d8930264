"""`make monitor-gate` (commands/monitor_gate.py): exit 0 on a chunk within its bounds, 1 with one line per alert or
undecidable condition, 2 when reports/monitor.json gives no verdict."""

from __future__ import annotations

import numpy as np

from stages.lib.catalog import MONITOR_FILE
from stages.lib.io import json_text
from tests.conftest import run_module
from tests.monitor_support import weekly_batches, write_batch, write_labelled_batches, write_labels
from tests.test_monitor import SETTINGS, run, settings


def gate(folder, summary) -> tuple[int, str, str]:
    if summary is not None:
        (folder / MONITOR_FILE).parent.mkdir(parents=True, exist_ok=True)
        (folder / MONITOR_FILE).write_text(json_text(summary))
    result = run_module("commands.monitor_gate", folder)
    return result.returncode, result.stdout, result.stderr


def test_the_gate_passes_a_plain_store_and_fails_a_degraded_one_with_one_line_per_alert(tmp_path):
    frames = weekly_batches(2, per_week=1400)
    store = tmp_path / "store"
    write_labelled_batches(store, frames)
    plain = run(store, None).summary
    code, out, err = gate(tmp_path, plain)
    assert (code, err) == (0, "") and out.startswith(f"monitor gate: passed (chunk {plain['chunk']}: ")

    # A third week whose scores are noise and whose temperatures moved: the newest chunk alerts.
    degraded = weekly_batches(3, per_week=1400, shifts={2: 30.0})[2]
    degraded = degraded.assign(prediction=np.random.default_rng(3).uniform(0, 1, len(degraded)))
    write_batch(store, 3, degraded)
    write_labels(store, 3, degraded, "batch-0003")
    alerts = SETTINGS.monitor.alerts.model_copy(update={"prediction_drift": True})
    summary = run(store, None, settings(alerts=alerts)).summary
    code, out, err = gate(tmp_path, summary)
    lines = err.splitlines()
    assert code == 1 and out == "" and len(lines) == len(summary["gate"]["reasons"]) >= 2
    assert lines[0].startswith(f"monitor gate: FAILED: chunk {summary['chunk']}: realized roc_auc ")
    assert any("prediction drift" in line for line in lines)


def test_an_empty_store_fails_the_gate_it_cannot_decide(tmp_path):
    code, _, err = gate(tmp_path, run(tmp_path / "none", None).summary)
    assert code == 1
    assert (
        err == "monitor gate: FAILED: the production store holds no batches yet (make score-batch or make simulate-production adds them)\n"
    )


def test_no_verdict_is_exit_2_with_one_line(tmp_path):
    code, _, err = gate(tmp_path, None)
    assert (code, err) == (2, f"error: {MONITOR_FILE}: file not found; run `make repro` (the monitor stage writes it)\n")
    code, _, err = gate(tmp_path, {"gate": {"passed": "yes"}})
    assert code == 2 and "no monitor gate verdict (expected 'gate.passed' true or false)" in err
