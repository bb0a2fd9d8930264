"""The monitor stage over a production store written in its layout: chunks, incremental runs, late outcomes,
models that scored a batch, alerts and the gate's verdict, the timeline page."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.lib.catalog import FeatureSpec
from stages.lib.config import parse_params
from stages.lib.config.monitor import Chunk
from stages.lib.errors import UserError
from stages.lib.monitor.cache import ChunkCache
from stages.lib.monitor.chunks import ORIGIN, chunk_rows, plan_chunks
from stages.lib.production import batches, label_files, read_batch, read_labels
from stages.monitor import Reference, Settings, Store, monitor, monitor_outputs
from tests.conftest import project_params, render_page, replace
from tests.monitor_support import (
    ID,
    MODEL_MD5,
    SPEC,
    reference_rows,
    rows,
    weekly_batches,
    write_batch,
    write_labelled_batches,
    write_labels,
)


def settings(**monitor_changes) -> Settings:
    params = parse_params(project_params())
    base = params.monitor
    changes = {"segment_min_rows": 150, "bootstrap": replace(base.bootstrap, resamples=100), "alerts": replace(base.alerts, min_rows=300)}
    monitor_config = replace(base, **(changes | monitor_changes))
    return Settings(monitor=monitor_config, drift=params.drift.thresholds, threshold=params.evaluate.threshold, spec=SPEC)


SETTINGS = settings()
REFERENCE = Reference.of(*reference_rows())


def store(root: Path) -> Store:
    return Store(
        batches=batches(root),
        labels=label_files(root),
        read_batch=lambda meta: read_batch(meta, root),
        read_labels=lambda meta: read_labels(meta, root),
    )


def run(root: Path, cache: Path | None, config: Settings = SETTINGS, model_md5: str = MODEL_MD5):
    return monitor(store(root), REFERENCE, model_md5, config, ChunkCache(cache))


def output_bytes(report, config: Settings = SETTINGS) -> dict[str, bytes]:
    """Every file the stage writes, as bytes."""
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for path, writer in monitor_outputs(report, config).items():
            target = Path(folder) / path.name
            writer(target)
            found[path.as_posix()] = target.read_bytes()
    return found


# --- the chunk grid -----------------------------------------------------------------------------------------------


def test_weekly_chunks_are_iso_weeks_in_utc_whatever_the_batches(tmp_path):
    frames = weekly_batches(2, per_week=200)
    metas = [write_batch(tmp_path, index + 1, frame) for index, frame in enumerate(frames)]
    plans = plan_chunks(metas, Chunk(by="time", size="7D"))
    # Batches run Friday to Friday from 2013-11-01; weeks start on Mondays (2013-10-28, 11-04, 11-11).
    assert [plan.label for plan in plans] == ["2013-10-28", "2013-11-04", "2013-11-11"]
    assert ORIGIN.day_name() == "Monday" and all(plan.start.day_name() == "Monday" for plan in plans)
    assert [plan.batches for plan in plans] == [("batch-0001",), ("batch-0001", "batch-0002"), ("batch-0002",)]
    loaded = {meta.batch_id: read_batch(meta, tmp_path) for meta in metas}
    counted = [len(chunk_rows(plan, loaded, "time_hour", ID)) for plan in plans]
    assert sum(counted) == 400
    first_week = (frames[0]["time_hour"] < pd.Timestamp("2013-11-04", tz="UTC")).sum()
    assert counted[0] == first_week
    months = plan_chunks(metas, Chunk(by="time", size="month"))
    assert [plan.label for plan in months] == ["2013-11"]


def test_row_chunks_follow_time_order_even_when_batches_overlap(tmp_path):
    frames = weekly_batches(3, per_week=100)
    # The third batch's rows fall inside the first two weeks: it arrives late.
    late = frames[2].assign(time_hour=frames[2]["time_hour"] - pd.Timedelta(days=14))
    metas = [write_batch(tmp_path, index + 1, frame) for index, frame in enumerate([frames[0], frames[1], late])]
    plans = plan_chunks(metas, Chunk(by="rows", size=70))
    loaded = {meta.batch_id: read_batch(meta, tmp_path) for meta in metas}
    everything = pd.concat(loaded.values()).sort_values(["time_hour", ID], kind="mergesort", ignore_index=True)
    for plan in plans:
        expected = everything.iloc[plan.first_row : plan.stop_row].reset_index(drop=True)
        pd.testing.assert_frame_equal(chunk_rows(plan, loaded, "time_hour", ID), expected)
    assert [plan.stop_row - plan.first_row for plan in plans] == [70, 70, 70, 70, 20]


# --- incremental runs ---------------------------------------------------------------------------------------------


def replay(root: Path, frames: list[pd.DataFrame], cache: Path | None, config: Settings = SETTINGS):
    """Append the batches one by one, outcomes one batch later, running the monitor after each append."""
    reports = []
    for index, frame in enumerate(frames, start=1):
        write_batch(root, index, frame)
        if index > 1:
            write_labels(root, index - 1, frames[index - 2], f"batch-{index - 1:04d}")
        reports.append(run(root, cache, config))
    return reports


def test_incremental_runs_equal_a_run_from_scratch_byte_for_byte_and_compute_only_touched_chunks(tmp_path):
    frames = weekly_batches(5, shifts={3: 25.0})
    reports = replay(tmp_path / "store", frames, tmp_path / "cache")
    scratch = run(tmp_path / "store", None)
    assert output_bytes(reports[-1]) == output_bytes(scratch)
    assert scratch.computed == [1, 2, 3, 4, 5, 6]
    # Appending batch k (and the outcomes of batch k-1) recomputes only the chunks their rows fall in: batch k
    # covers weeks k and k+1 (Friday to Friday), batch k-1 weeks k-1 and k.
    assert [report.computed for report in reports] == [[1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert reports[-1].chunks[3]["drift"]["drifted"] == ["temp"]  # the shifted week is seen


def test_a_settings_change_recomputes_every_chunk_but_alert_bounds_recompute_none(tmp_path):
    frames = weekly_batches(2, per_week=1000)
    replay(tmp_path / "store", frames, tmp_path / "cache")
    stricter = settings(segment_fdr=0.01)
    assert run(tmp_path / "store", tmp_path / "cache", stricter).computed == [1, 2, 3]
    bounds = replace(stricter.monitor, alerts=replace(stricter.monitor.alerts, min_roc_auc=0.99))
    rerun = run(tmp_path / "store", tmp_path / "cache", replace_settings(stricter, bounds))
    assert rerun.computed == []
    assert {chunk["status"] for chunk in rerun.chunks} == {"alert"}


def replace_settings(config: Settings, monitor_config) -> Settings:
    return Settings(monitor=monitor_config, drift=config.drift, threshold=config.threshold, spec=config.spec)


def test_late_outcomes_change_realized_performance_of_past_chunks_and_nothing_else(tmp_path):
    frames = weekly_batches(4)
    root = tmp_path / "store"
    for index, frame in enumerate(frames, start=1):
        write_batch(root, index, frame)
    write_labels(root, 1, frames[3], "batch-0004")  # the newest batch's outcomes first
    before = run(root, tmp_path / "cache")
    before_files = output_bytes(before)
    write_labels(root, 2, frames[1], "batch-0002")  # then, late, those of the second batch
    after = run(root, tmp_path / "cache")
    assert after.computed == [2, 3]  # the chunks holding batch 2's rows
    for old, new in zip(before.chunks, after.chunks, strict=True):
        changed = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
        assert changed == ({"realized"} if new["chunk"] in (2, 3) else set()), new["label"]
    assert before.chunks[1]["realized"]["share_labelled"] == 0.0 < after.chunks[1]["realized"]["share_labelled"]
    assert after.chunks[2]["realized"]["value"] is not None and before.chunks[2]["realized"]["value"] is None
    assert after.summary == before.summary  # the judged chunk (the newest) is untouched
    after_files = output_bytes(after)
    assert after_files["reports/plots/monitor_drift.json"] == before_files["reports/plots/monitor_drift.json"]
    old_plot = json.loads(before_files["reports/plots/monitor_performance.json"])
    new_plot = json.loads(after_files["reports/plots/monitor_performance.json"])
    for old, new in zip(old_plot, new_plot, strict=True):
        assert {key for key in old if old[key] != new[key]} <= {"realized", "realized_lower", "realized_upper"}


# --- estimates, models, alerts, the gate --------------------------------------------------------------------------


def test_estimate_tracks_realized_performance_on_calibrated_scores(tmp_path):
    frames = weekly_batches(3, per_week=3000)
    root = tmp_path / "store"
    write_labelled_batches(root, frames)
    report = run(root, None)
    for chunk in report.chunks:
        realized, estimated = chunk["realized"], chunk["estimated"]
        assert realized["share_labelled"] == 1.0
        assert abs(realized["value"] - estimated["value"]) < 0.03, chunk["label"]
        assert estimated["lower"] < estimated["value"] < estimated["upper"]
        assert realized["lower"] < realized["value"] < realized["upper"]


def test_a_chunk_scored_by_another_model_gets_no_estimate_and_fails_the_gate_when_last(tmp_path):
    frames = weekly_batches(2, per_week=800)
    root = tmp_path / "store"
    write_batch(root, 1, frames[0])
    write_batch(root, 2, frames[1], model_md5="f" * 32)
    report = run(root, None)
    last = report.chunks[-1]
    assert last["estimated"] is None and last["prediction_drift"] is None
    assert last["notes"] == [
        f"scored by workspace (md5 ffffffff), not models/model.skops (md5 {MODEL_MD5[:8]}): no estimate and no prediction drift"
    ]
    assert last["status"] == "undecided"
    assert report.chunks[0]["status"] == "ok" and report.chunks[0]["estimated"] is not None
    assert report.summary["gate"]["passed"] is False
    assert any("performance cannot be judged" in reason for reason in report.summary["gate"]["reasons"])


def test_alerts_for_a_degraded_drifting_chunk_and_a_too_small_chunk_is_not_judged(tmp_path):
    frames = weekly_batches(3, per_week=1400, shifts={2: 30.0})
    # The third week's scores no longer follow its outcomes: the model has degraded.
    frames[2] = frames[2].assign(prediction=np.random.default_rng(5).uniform(0, 1, len(frames[2])))
    frames.append(rows(100, "2013-11-25", 1, seed=7, first_id=10**6))  # a Monday: a new chunk of 100 rows
    root = tmp_path / "store"
    write_labelled_batches(root, frames)
    report = run(root, None, settings(alerts=replace(SETTINGS.monitor.alerts, max_drift_share=0.2, prediction_drift=True)))
    assert [chunk["label"] for chunk in report.chunks] == ["2013-10-28", "2013-11-04", "2013-11-11", "2013-11-18", "2013-11-25"]
    assert [chunk["status"] for chunk in report.chunks] == ["ok", "ok", "alert", "alert", "too small"]
    degraded = report.chunks[3]  # the degraded week's last four days, alone in their chunk
    assert len(degraded["alerts"]) == 3
    assert re.fullmatch(r"realized roc_auc 0\.\d{3} below the minimum 0\.6 \(monitor\.alerts\.min_roc_auc\)", degraded["alerts"][0])
    assert degraded["alerts"][1] == "drift share 0.25 above 0.2 (monitor.alerts.max_drift_share): temp"  # 1 of 4 inputs
    assert degraded["alerts"][2].startswith("prediction drift: wasserstein_norm ")
    # The last chunk is too small to judge: no alert, and the gate judges the newest chunk that is large enough.
    assert report.chunks[-1]["alerts"] == [] and report.chunks[-1]["rows"] == 100
    gate = report.summary["gate"]
    assert gate["passed"] is False and gate["chunk"] == "2013-11-18" == report.summary["chunk"]
    assert gate["reasons"] == [f"chunk 2013-11-18: {reason}" for reason in degraded["alerts"]]
    assert report.summary["skipped_chunks"] == ["2013-11-25"]


def test_an_empty_store_gives_an_empty_timeline_and_a_gate_that_cannot_pass(tmp_path):
    report = run(tmp_path / "nothing", None)
    assert report.chunks == [] and report.summary["chunks"] == 0 and report.summary["status"] == "empty"
    assert report.summary["gate"] == {
        "passed": False,
        "chunk": None,
        "reasons": ["the production store holds no batches yet (make score-batch or make simulate-production adds them)"],
    }
    files = output_bytes(report)
    assert json.loads(files["reports/plots/monitor_performance.json"]) == []
    assert "The production store holds no batches yet" in files["reports/monitor.html"].decode()


def test_a_batch_without_an_input_column_is_one_clear_error(tmp_path):
    frame = weekly_batches(1, per_week=100)[0].drop(columns=["temp"])
    write_batch(tmp_path, 1, frame)
    with pytest.raises(UserError) as error:
        run(tmp_path, None)
    assert str(error.value) == (
        "data/production/batches/batch-0001.parquet: missing column 'temp' (every batch holds the id column, the time, "
        "the inputs and 'prediction'); rescore the batch"
    )


# --- the timeline page --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    frames = weekly_batches(4, shifts={2: 30.0})
    for index, frame in enumerate(frames, start=1):
        write_batch(root, index, frame)
        if index < 4:
            write_labels(root, index, frame, f"batch-{index:04d}")
    report = run(root, None)
    return report, output_bytes(report)["reports/monitor.html"].decode()


def test_the_timeline_is_self_contained(timeline):
    _, page = timeline
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert not external and "<script" not in page and "@import" not in page and "url(" not in page


@pytest.mark.needs_tool("chromium")
def test_the_timeline_renders_in_a_headless_browser_one_row_per_chunk_details_on_demand(timeline, tmp_path, tools):
    report, page = timeline
    path = tmp_path / "monitor.html"
    path.write_text(page)
    dom, shot = render_page(tools["chromium"], path, "1300,1400")
    statuses = re.findall(r'<tr class="chunk" id="chunk-(\d+)" data-status="([^"]+)">', dom)
    assert statuses == [(str(chunk["chunk"]), chunk["status"]) for chunk in report.chunks]
    assert dom.count("<details>") == len(report.chunks)  # each chunk's columns and segments, closed until asked for
    shifted = next(chunk for chunk in report.chunks if chunk["drift"]["drifted"])
    row = dom[dom.index(f'id="chunk-{shifted["chunk"]}"') :]
    row = row[: row.index("</tr>", row.index("</details>"))]
    assert '<tr class="drifted"><td>temp</td>' in row and "segments" in row
    assert "<svg" in dom and ("gate passed" if report.summary["gate"]["passed"] else "gate failed") in dom
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000


def test_a_row_id_in_two_batches_is_one_clear_error(tmp_path):
    frames = weekly_batches(2, per_week=100)
    write_batch(tmp_path, 1, frames[0])
    write_batch(tmp_path, 2, frames[1].assign(row_id=frames[0]["row_id"].to_numpy()))  # the same ids again
    with pytest.raises(UserError) as error:
        run(tmp_path, None)
    assert str(error.value).startswith("data/production: row id 'r0000")
    assert str(error.value).endswith(
        "(row_id) is in the store twice; the production store is written only by make score-batch / add-labels; restore it with `dvc checkout data/production`"
    )


def test_a_regression_store_is_judged_by_mae_realized_and_estimated(tmp_path):
    """The regression path: realized MAE with its interval, DLE's estimate before outcomes, max_mae as the bound."""
    spec = FeatureSpec.plain(numeric=["temp", "distance"], categorical=["origin", "carrier"], task="regression")
    alerts = replace(SETTINGS.monitor.alerts, min_roc_auc=None, max_mae=4.0)
    config = replace_settings(
        Settings(SETTINGS.monitor, SETTINGS.drift, SETTINGS.threshold, spec), replace(SETTINGS.monitor, alerts=alerts)
    )

    def continuous(frame: pd.DataFrame, seed: int, noise: float) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        truth = frame["temp"] / 10 + rng.normal(0, noise, len(frame))
        return frame.assign(prediction=frame["temp"] / 10, late=truth)

    base, _ = reference_rows()
    reference = continuous(base.assign(prediction=0.0), 1, 1.0)
    frames = [continuous(frame, index, 1.0 if index < 2 else 8.0) for index, frame in enumerate(weekly_batches(3, per_week=1400))]
    for index, frame in enumerate(frames, start=1):
        write_batch(tmp_path, index, frame)
        write_labels(tmp_path, index, frame, f"batch-{index:04d}")
    report = monitor(
        store(tmp_path),
        Reference.of(reference.drop(columns=["prediction"]), reference["prediction"].to_numpy()),
        MODEL_MD5,
        config,
        ChunkCache(None),
    )
    first = report.chunks[1]
    assert first["realized"]["metric"] == "mae" and abs(first["realized"]["value"] - 0.8) < 0.1  # E|N(0, 1)| = 0.80
    assert first["realized"]["lower"] < first["realized"]["value"] < first["realized"]["upper"]
    assert abs(first["estimated"]["value"] - 0.8) < 0.1 and first["status"] == "ok"
    noisy = report.chunks[3]  # the noisy week's last days, labelled: realized MAE ~6.4 crosses max_mae
    assert noisy["realized"]["share_labelled"] == 1.0 and noisy["status"] == "alert"
    assert noisy["alerts"][0].startswith("realized mae 6.") and noisy["alerts"][0].endswith(
        "above the maximum 4.0 (monitor.alerts.max_mae)"
    )


def test_the_gate_also_holds_the_newest_realized_performance_which_an_estimate_cannot_see_concept_drift_in(tmp_path):
    """Concept drift: outcomes no longer follow the scores. The newest chunk, without outcomes yet, looks fine to the
    estimate; the newest chunk with all its outcomes in shows the fall, and the gate fails on it."""
    frames = weekly_batches(3, per_week=1400)
    rng = np.random.default_rng(11)
    for index in (0, 1):  # the relation of outcome to score turns around; the inputs and scores stay as they were
        frames[index] = frames[index].assign(late=(rng.random(len(frames[index])) < 1 - frames[index]["prediction"]).astype(np.int8))
    for index, frame in enumerate(frames, start=1):
        write_batch(tmp_path, index, frame)
        if index < 3:
            write_labels(tmp_path, index, frame, f"batch-{index:04d}")
    report = run(tmp_path, None)
    newest, truth = report.chunks[-1], report.chunks[1]
    assert newest["status"] == "ok" and newest["judged_by"] == "estimated" and newest["realized"]["share_labelled"] == 0.0
    assert truth["judged_by"] == "realized" and truth["status"] == "alert" and report.chunks[2]["judged_by"] == "estimated"
    gate = report.summary["gate"]
    assert gate["passed"] is False and gate["chunk"] == newest["label"] and gate["realized_chunk"] == truth["label"] == "2013-11-04"
    assert gate["reasons"] == [f"chunk 2013-11-04: {truth['alerts'][0]}"] and truth["alerts"][0].startswith("realized roc_auc 0.2")


def test_a_segment_column_the_model_does_not_read_is_one_clear_error(tmp_path):
    write_batch(tmp_path, 1, weekly_batches(1, per_week=100)[0])
    with pytest.raises(UserError) as error:
        run(tmp_path, None, settings(segments=("dest",)))
    assert str(error.value) == (
        "params.yaml: 'monitor.segments' names 'dest', which is not an input column of the model "
        "(carrier, distance, origin, temp); set monitor.segments in conf/monitor/ to some of them, or []"
    )
