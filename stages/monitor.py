"""monitor: the production store (data/production/) chunk by chunk, against the reference: the test split.

Per chunk (a week, a month or N rows: params.monitor.chunk): rows, per-column drift of the raw inputs
and their missing shares (the drift-check engine and verdict rule, params.drift), prediction drift
(the stored scores against the model's scores on the reference), realized performance where outcomes
have arrived (with a bootstrap interval), estimated performance without them (calibrated on the
reference), drift within segments, the alerts params.monitor.alerts sets and a status. Chunks whose
findings cannot have changed are read back from a cache (stages/lib/monitor/cache.py) without reading
their batches. Writes reports/monitor.json (the judged chunk: DVC metrics), the plot data of
performance and drift over chunks, and the timeline reports/monitor.html.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.catalog import (
    FEATURES_DIR,
    MODEL_FILE,
    MONITOR_CACHE,
    MONITOR_DRIFT_PLOT,
    MONITOR_FILE,
    MONITOR_PERFORMANCE_PLOT,
    MONITOR_REPORT,
    PREPARED_DIR,
    PRODUCTION_DIR,
    FeatureSpec,
    load_features,
    load_prepared,
    load_spec,
)
from stages.lib.config import DriftThresholds, MonitorConfig, load_params
from stages.lib.config.monitor import Alerts
from stages.lib.drift.columns import SCORE_TYPE, sorted_profile
from stages.lib.drift.detect import detect_drift
from stages.lib.drift.result import DriftResult, json_ready
from stages.lib.drift.summaries import detect_drift_of_summaries
from stages.lib.drift.summaries import summarize as summarize_column
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.io import Writer, json_text, json_writer, sha256_file, write_outputs
from stages.lib.models import load_model, predict_scores
from stages.lib.monitor.cache import ChunkCache, code_fingerprint, digest, frame_fingerprint
from stages.lib.monitor.chunks import ChunkPlan, chunk_rows, plan_chunks
from stages.lib.monitor.estimation import fit_calibrator_of_counts
from stages.lib.monitor.partitioned import ReferenceTables, fingerprint_on_dask, sample_on_dask, tables_on_dask
from stages.lib.monitor.performance import (
    Bootstrap,
    Estimator,
    SegmentSettings,
    estimate,
    fit_estimator,
    main_metric,
    realized,
    segment_drift,
    segment_drift_of_tables,
)
from stages.lib.monitor.sample import sample_positions
from stages.lib.monitor.timeline_html import render_timeline
from stages.lib.production import (
    HINT,
    HISTORY_COMPLETE,
    PREDICTION,
    BatchMeta,
    LabelsMeta,
    batch_path,
    batches,
    label_files,
    read_batch,
    read_labels,
)
from stages.lib.profile import SORTED_TYPES, holds_numbers
from stages.lib.runtime import limit_threads

OK, ALERT, UNDECIDED, TOO_SMALL = "ok", "alert", "undecided", "too small"
REFERENCE_ROWS, REFERENCE_FEATURES = PREPARED_DIR / "test.parquet", FEATURES_DIR / "test.parquet"


# The dask engine's reference: (segment columns, {input: schema type}) -> the reference's merged tables.
Summarize = Callable[[list[str], dict[str, str]], ReferenceTables]
# The dask engine's loss-model sample: (monitor.estimator_rows, seed) -> the sampled rows and the model's scores of them.
Sample = Callable[[int | None, int], tuple[pd.DataFrame, np.ndarray]]


class Reference:
    """The labelled period just before production (the test split): what each chunk is compared with.

    Loaded only when some chunk must be computed: a run whose chunks all come from the cache never scores it.
    With `summarize` and `sample` (the dask engine) the chunks are compared with the reference's merged tables
    instead of its rows, and a regression's loss model is fitted on its sample taken on the workers: `load` is not used."""

    def __init__(
        self,
        fingerprint: str,
        load: Callable[[], tuple[pd.DataFrame, np.ndarray]],
        summarize: Summarize | None = None,
        sample: Sample | None = None,
    ) -> None:
        self.fingerprint = fingerprint  # of its rows and scores (part of every chunk's cache key)
        self._load = load
        self.summarize = summarize
        self._sample = sample

    @classmethod
    def of(cls, rows: pd.DataFrame, scores: np.ndarray) -> Reference:
        """A reference from frames at hand: its prepared rows (raw inputs, time, target) and the model's scores of them."""
        return cls(frame_fingerprint(rows, scores), lambda: (rows, scores))

    @functools.cached_property
    def data(self) -> tuple[pd.DataFrame, np.ndarray]:
        return self._load()

    @property
    def rows(self) -> pd.DataFrame:
        return self.data[0]

    @property
    def scores(self) -> np.ndarray:
        return self.data[1]

    def loss_rows(self, limit: int | None, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows DLE's loss model is fitted on and the model's scores of them: the seeded sample of `limit` rows
        (monitor.estimator_rows; stages/lib/monitor/sample.py), in table order; every row when `limit` is None."""
        if self._sample is not None:
            return self._sample(limit, seed)
        rows, scores = self.data
        positions = sample_positions(len(rows), limit, seed)
        if len(positions) == len(rows):
            return rows, scores
        return rows.iloc[positions].reset_index(drop=True), scores[positions]


@dataclass(frozen=True)
class Store:
    """The production store as the monitor sees it: metadata up front, rows only when asked for."""

    batches: list[BatchMeta]
    labels: list[LabelsMeta]
    read_batch: Callable[[BatchMeta], pd.DataFrame]
    read_labels: Callable[[LabelsMeta], pd.DataFrame]


@dataclass(frozen=True)
class Settings:
    monitor: MonitorConfig
    drift: DriftThresholds
    threshold: float  # evaluate.threshold: the score at or above which a row is predicted positive
    spec: FeatureSpec  # task, time and target columns, and the raw inputs (spec.inputs)

    def fingerprint(self) -> dict[str, Any]:
        """Everything of the settings a chunk's findings depend on (alert bounds and the simulation are not)."""
        monitor = self.monitor.model_dump(mode="json", exclude={"alerts", "simulation"})
        return {
            "monitor": monitor,
            "drift": self.drift.model_dump(mode="json"),
            "threshold": self.threshold,
            "spec": {"task": self.spec.task, "time": self.spec.time, "target": self.spec.target, "inputs": self.spec.inputs},
        }


@dataclass
class MonitorReport:
    chunks: list[dict[str, Any]]  # findings, alerts and status per chunk, in time order
    summary: dict[str, Any]  # reports/monitor.json
    performance: list[dict[str, Any]]  # plot rows per chunk
    drift: list[dict[str, Any]]
    computed: list[int] = field(default_factory=list)  # chunks computed in this run (the others came from the cache)


@dataclass
class _Context:
    """What every chunk is compared with, prepared once per run (only when some chunk must be computed)."""

    reference: Reference
    settings: Settings
    model_md5: str
    inputs: list[str]
    types: dict[str, str]  # each input's type in data/schema.yaml (spec.inputs), in `inputs` order: how it is compared
    reference_sorted: dict[str, np.ndarray]
    estimator: Estimator
    tables: ReferenceTables | None = None  # the dask engine: the reference's merged tables (its rows are never loaded)


def _context_of_tables(reference: Reference, settings: Settings, model_md5: str, types: dict[str, str]) -> _Context:
    """The context on the dask engine: the reference's tables merged on the cluster, the calibrator fitted on its
    counts per distinct score (exactly the pandas engine's calibrator)."""
    assert reference.summarize is not None
    spec = settings.spec
    tables = reference.summarize(list(settings.monitor.segments), types)
    missing = [name for name in types if name not in tables.columns]
    if missing:
        fail(f"the reference ({REFERENCE_ROWS}) has no column '{missing[0]}'; run `dvc repro prepare`")
    if spec.task == "classification":
        table = tables.score_table
        if table is None:
            fail(f"the reference ({REFERENCE_FEATURES}) has no column '{spec.target}'; run `dvc repro featurize`")
        estimator = Estimator(spec.task, calibrator=fit_calibrator_of_counts(table.scores, table.rows, table.outcome))
    else:
        estimator = _loss_estimator(reference, settings, types)
    return _Context(reference, settings, model_md5, list(types), types, {}, estimator, tables)


def _loss_estimator(reference: Reference, settings: Settings, types: dict[str, str]) -> Estimator:
    """DLE's loss model, fitted on the reference's sample of monitor.estimator_rows rows (both engines take the same rows)."""
    spec, seed = settings.spec, settings.monitor.bootstrap.seed
    rows, scores = reference.loss_rows(settings.monitor.estimator_rows, seed)
    if spec.target not in rows.columns:
        fail(f"the reference ({REFERENCE_ROWS}) has no column '{spec.target}'; run `dvc repro prepare`")
    actual = rows[spec.target].to_numpy(dtype=np.float64)
    return fit_estimator(spec.task, scores, actual, rows[list(types)], types, seed)


def _context(reference: Reference, settings: Settings, model_md5: str) -> _Context:
    spec = settings.spec
    inputs = sorted(spec.inputs)
    unknown = [name for name in settings.monitor.segments if name not in spec.inputs]
    if unknown:
        fail(
            f"params.yaml: 'monitor.segments' names '{unknown[0]}', which is not an input column of the model "
            f"({', '.join(inputs)}); set monitor.segments in conf/monitor/ to some of them, or []"
        )
    # The schema's types (copied into the spec by featurize), never the dtypes: integer codes typed categorical are categories.
    types = {name: spec.inputs[name] for name in inputs}
    if reference.summarize is not None:
        return _context_of_tables(reference, settings, model_md5, types)
    missing = [name for name in [*inputs, spec.target] if name not in reference.rows.columns]
    if missing:
        fail(f"the reference (data/prepared/test.parquet) has no column '{missing[0]}'; run `dvc repro prepare`")
    sorted_inputs = [name for name, kind in types.items() if kind in SORTED_TYPES and holds_numbers(reference.rows[name])]
    if spec.task == "classification":
        actual = reference.rows[spec.target].to_numpy(dtype=np.float64)
        estimator = fit_estimator(spec.task, reference.scores, actual, reference.rows[inputs], types, settings.monitor.bootstrap.seed)
    else:
        estimator = _loss_estimator(reference, settings, types)
    return _Context(
        reference=reference,
        settings=settings,
        model_md5=model_md5,
        inputs=inputs,
        types=types,
        reference_sorted={name: sorted_profile(reference.rows[name]) for name in sorted_inputs},
        estimator=estimator,
    )


def _typed_batch(frame: pd.DataFrame, meta: BatchMeta, settings: Settings) -> pd.DataFrame:
    """The batch with the columns the monitor reads checked, and its time column as UTC datetimes."""
    spec, id_column = settings.spec, settings.monitor.id_column
    where = f"{batch_path(meta.batch_id)}"
    for name in [id_column, spec.time, PREDICTION, *sorted(spec.inputs)]:
        if name not in frame.columns:
            fail(
                f"{where}: missing column '{name}' (every batch holds the id column, the time, the inputs and '{PREDICTION}'); rescore the batch"
            )
    times = frame[spec.time]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        try:
            times = pd.to_datetime(times, utc=True)
        except (ValueError, TypeError):
            fail(f"{where}: column '{spec.time}' does not hold times; rescore the batch")
    return frame.assign(**{spec.time: times.dt.tz_convert("UTC")})


def _chunk_labels(plan: ChunkPlan, store: Store) -> list[LabelsMeta]:
    """The outcome files holding outcomes of the chunk's batches, in arrival order."""
    return [meta for meta in store.labels if any(batch in meta.batches for batch in plan.batches)]


def _chunk_key(plan: ChunkPlan, store: Store, salt: str) -> str:
    sha = {meta.batch_id: meta.sha256 for meta in store.batches}
    touching = _chunk_labels(plan, store)
    return digest(
        {
            "chunk": plan.identity(),
            "batches": [[batch, sha[batch]] for batch in plan.batches],
            "labels": [[meta.labels_id, meta.sha256] for meta in touching],
            "salt": salt,
        }
    )


def _outcomes(rows: pd.DataFrame, files: list[pd.DataFrame], settings: Settings) -> np.ndarray:
    """Each row's outcome where one has arrived (NaN otherwise); a later file's outcome for the same id wins."""
    id_column, target = settings.monitor.id_column, settings.spec.target
    duplicated = rows[id_column][rows[id_column].duplicated()]
    if len(duplicated):
        fail(f"{PRODUCTION_DIR}: row id {duplicated.iloc[0]!r} ({id_column}) is in the store twice; {HINT}")
    if not files:
        return np.full(len(rows), np.nan)
    known = pd.concat([frame[[id_column, target]] for frame in files], ignore_index=True).drop_duplicates(id_column, keep="last")
    joined = rows[[id_column]].merge(known, on=id_column, how="left", validate="one_to_one")
    return joined[target].to_numpy(dtype=np.float64, na_value=np.nan)


def _input_drift(rows: pd.DataFrame, context: _Context) -> dict[str, Any]:
    result: DriftResult
    if context.tables is not None:
        current = {name: summarize_column(rows[name], kind) for name, kind in context.types.items()}
        result = detect_drift_of_summaries(context.tables.columns, current, context.types, context.settings.drift)
    else:
        result = detect_drift(context.reference.rows, rows, context.types, context.settings.drift, context.reference_sorted)
    columns = {
        column.column: {
            "method": column.method,
            "score": column.score,
            "threshold": column.threshold,
            "drifted": column.drifted,
            "missing_reference": column.missing_reference,
            "missing_current": column.missing_current,
            "missing_drifted": column.missing_drifted,
        }
        for column in result.columns
    }
    return {"share": result.drift_share, "drifted": sorted(result.drifted), "columns": columns}


def _prediction_drift(scores: np.ndarray, context: _Context) -> dict[str, Any]:
    types, thresholds = {PREDICTION: SCORE_TYPE}, context.settings.drift
    if context.tables is not None:
        current = {PREDICTION: summarize_column(pd.Series(scores, dtype=np.float64), SCORE_TYPE)}
        found = detect_drift_of_summaries({PREDICTION: context.tables.scores}, current, types, thresholds).columns[0]
    else:
        reference = pd.DataFrame({PREDICTION: context.reference.scores})
        found = detect_drift(reference, pd.DataFrame({PREDICTION: scores}), types, thresholds).columns[0]
    return {"drifted": found.drifted, "method": found.method, "score": found.score, "threshold": found.threshold}


def measure_chunk(plan: ChunkPlan, rows: pd.DataFrame, outcomes: np.ndarray, models: dict[str, str], context: _Context) -> dict[str, Any]:
    """Every finding of one chunk (no alert or status: those follow from the findings and the bounds).

    Args:
        plan: the chunk's place on the grid.
        rows: its rows in time order (id, time, inputs, prediction).
        outcomes: each row's outcome, NaN where none has arrived.
        models: md5 -> name of the models that scored its batches.
        context: the reference, the settings and the model the monitor runs with.
    """
    settings, spec = context.settings, context.settings.spec
    monitor = settings.monitor
    bootstrap = Bootstrap(level=monitor.bootstrap.level, resamples=monitor.bootstrap.resamples, seed=monitor.bootstrap.seed)
    found: dict[str, Any] = {"chunk": plan.index + 1, "label": plan.label, "rows": len(rows), "batches": list(plan.batches)}
    found |= {"start": plan.start.isoformat(), "end": plan.end.isoformat()} if plan.start is not None and plan.end is not None else {}
    found["models"] = sorted(set(models.values()))
    if rows.empty:
        return found | {"drift": None, "prediction_drift": None, "realized": None, "estimated": None, "segments": [], "notes": ["no rows"]}
    found |= {"first": rows[spec.time].iloc[0].isoformat(), "last": rows[spec.time].iloc[-1].isoformat()}
    if HISTORY_COMPLETE in rows.columns:
        found["incomplete_history"] = int((~rows[HISTORY_COMPLETE].astype(bool)).sum())
    scores = rows[PREDICTION].to_numpy(dtype=np.float64)
    labelled = ~np.isnan(outcomes)
    found["drift"] = _input_drift(rows, context)
    found["realized"] = {"labelled": int(labelled.sum()), "share_labelled": float(labelled.mean())} | realized(
        spec.task, outcomes[labelled], scores[labelled], settings.threshold, bootstrap
    )
    foreign = sorted(md5 for md5 in models if md5 != context.model_md5)
    notes = []
    if foreign:
        # Stored scores of another model say nothing about this model's calibration or score distribution: fail closed.
        names = ", ".join(f"{models[md5]} (md5 {md5[:8]})" for md5 in foreign)
        notes.append(f"scored by {names}, not {MODEL_FILE} (md5 {context.model_md5[:8]}): no estimate and no prediction drift")
        found |= {"prediction_drift": None, "estimated": None}
    else:
        found["prediction_drift"] = _prediction_drift(scores, context)
        found["estimated"] = estimate(context.estimator, scores, rows[context.inputs], settings.threshold, bootstrap)
    segments = SegmentSettings(columns=tuple(monitor.segments), min_rows=monitor.segment_min_rows, fdr=monitor.segment_fdr)
    if context.tables is not None:
        tables = (context.tables.segments, context.tables.segment_rows)
        found["segments"] = segment_drift_of_tables(tables, rows, context.types, segments, settings.drift)
    else:
        found["segments"] = segment_drift(context.reference.rows, rows, context.types, segments, settings.drift)
    return found | {"notes": notes}


def _performance_basis(chunk: dict[str, Any]) -> tuple[str | None, float | None, str | None]:
    """(which, value, why not): the realized metric once every row has its outcome, the estimate before."""
    realized_found, estimated = chunk.get("realized") or {}, chunk.get("estimated")
    if realized_found.get("share_labelled") == 1.0:
        if realized_found.get("value") is not None:
            return "realized", realized_found["value"], None
        return None, None, f"realized {realized_found.get('metric')} undefined: {realized_found.get('note', '')}".rstrip(": ")
    if estimated is not None and estimated.get("value") is not None:
        return "estimated", estimated["value"], None
    why = "; ".join(chunk.get("notes", [])) or "no estimate"
    return None, None, f"performance cannot be judged: outcomes are missing and there is no estimate ({why})"


def judge(chunk: dict[str, Any], alerts: Alerts, task: str) -> dict[str, Any]:
    """The chunk's alerts (bounds crossed), what could not be decided, and its status: ok, alert, undecided or too small."""
    if chunk["rows"] < alerts.min_rows:
        return {"status": TOO_SMALL, "alerts": [], "undecided": [], "judged_by": None}
    metric = main_metric(task)
    crossed, undecided = [], []
    bound = alerts.min_roc_auc if metric == "roc_auc" else alerts.max_mae
    basis, value, why = _performance_basis(chunk)
    if bound is not None and value is None:
        undecided.append(str(why))
    elif bound is not None and value is not None and (value < bound if metric == "roc_auc" else value > bound):
        side = "below the minimum" if metric == "roc_auc" else "above the maximum"
        crossed.append(
            f"{basis} {metric} {value:.3f} {side} {bound} (monitor.alerts.{'min_roc_auc' if metric == 'roc_auc' else 'max_mae'})"
        )
    share = chunk["drift"]["share"]
    if alerts.max_drift_share is not None and share > alerts.max_drift_share:
        drifted = ", ".join(chunk["drift"]["drifted"])
        crossed.append(f"drift share {share:.2f} above {alerts.max_drift_share} (monitor.alerts.max_drift_share): {drifted}")
    if alerts.prediction_drift and chunk["prediction_drift"] is None:
        undecided.append("prediction drift cannot be judged: " + ("; ".join(chunk.get("notes", [])) or "not computed"))
    elif alerts.prediction_drift and chunk["prediction_drift"]["drifted"]:
        drift = chunk["prediction_drift"]
        crossed.append(
            f"prediction drift: {drift['method']} {drift['score']:.3g} past {drift['threshold']} (monitor.alerts.prediction_drift)"
        )
    status = ALERT if crossed else UNDECIDED if undecided else OK
    return {"status": status, "alerts": crossed, "undecided": undecided, "judged_by": basis}


def _flat(chunk: dict[str, Any], metric: str, which: str) -> dict[str, Any]:
    found = chunk.get(which) or {}
    return {f"{which}_{metric}": found.get("value"), f"{which}_lower": found.get("lower"), f"{which}_upper": found.get("upper")}


def _gate(judged: dict[str, Any], truth: dict[str, Any] | None) -> dict[str, Any]:
    """The verdict on the newest judged chunk and, when another, the newest chunk judged on realized performance."""
    looked_at = [judged] if truth is None or truth is judged else [judged, truth]
    reasons = [f"chunk {chunk['label']}: {reason}" for chunk in looked_at for reason in [*chunk["alerts"], *chunk["undecided"]]]
    return {
        "passed": all(chunk["status"] == OK for chunk in looked_at),
        "chunk": judged["label"],
        "realized_chunk": truth and truth["label"],
        "reasons": reasons,
    }


def summarize(chunks: list[dict[str, Any]], alerts: Alerts, task: str) -> dict[str, Any]:
    """reports/monitor.json: the judged chunk's numbers, flat, and the gate's verdict.

    The judged chunk is the latest with at least `alerts.min_rows` rows: a newer chunk too small to judge is
    skipped (and named). The gate also looks at the latest chunk judged on realized performance (all its outcomes
    in), because an estimate cannot see concept drift: while outcomes lag, the newest ground truth is older than the
    newest chunk. With no chunk to judge, the gate fails: there is nothing to decide on."""
    metric = main_metric(task)
    summary: dict[str, Any] = {
        "chunks": len(chunks),
        "rows": sum(chunk["rows"] for chunk in chunks),
        "alerting_chunks": sum(chunk["status"] == ALERT for chunk in chunks),
        "metric": metric,
    }
    judged = next((chunk for chunk in reversed(chunks) if chunk["status"] != TOO_SMALL), None)
    skipped = [chunk["label"] for chunk in chunks[chunks.index(judged) + 1 :]] if judged else [chunk["label"] for chunk in chunks]
    if judged is None:
        why = (
            "the production store holds no batches yet (make score-batch or make simulate-production adds them)"
            if not chunks
            else f"no chunk has {alerts.min_rows} rows or more (monitor.alerts.min_rows): nothing to judge"
        )
        return summary | {"status": "empty" if not chunks else TOO_SMALL, "gate": {"passed": False, "chunk": None, "reasons": [why]}}
    truth = next((chunk for chunk in reversed(chunks) if chunk["judged_by"] == "realized"), None)
    realized_found = judged.get("realized") or {}
    summary |= {
        "chunk": judged["label"],
        "status": judged["status"],
        "chunk_rows": judged["rows"],
        "drift_share": judged["drift"]["share"],
        "drifted_columns": len(judged["drift"]["drifted"]),
        "prediction_drift": None if judged["prediction_drift"] is None else judged["prediction_drift"]["drifted"],
        "share_labelled": realized_found.get("share_labelled"),
        "segments_drifted": sum(segment["drifted"] for segment in judged["segments"]),
        "skipped_chunks": skipped,
        **_flat(judged, metric, "realized"),
        **_flat(judged, metric, "estimated"),
    }
    return summary | {"gate": _gate(judged, truth)}


def plot_rows(chunks: list[dict[str, Any]], task: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The performance and drift plot data: one row per chunk, x = the chunk's number."""
    metric = main_metric(task)
    performance, drift = [], []
    for chunk in chunks:
        realized_found, estimated = chunk.get("realized") or {}, chunk.get("estimated") or {}
        performance.append(
            {
                "chunk": chunk["chunk"],
                "label": chunk["label"],
                "metric": metric,
                "realized": realized_found.get("value"),
                "realized_lower": realized_found.get("lower"),
                "realized_upper": realized_found.get("upper"),
                "estimated": estimated.get("value"),
                "estimated_lower": estimated.get("lower"),
                "estimated_upper": estimated.get("upper"),
            }
        )
        prediction = chunk.get("prediction_drift")
        drift.append(
            {
                "chunk": chunk["chunk"],
                "label": chunk["label"],
                "drift_share": (chunk.get("drift") or {}).get("share"),
                "prediction_drift": None if prediction is None else int(prediction["drifted"]),
            }
        )
    return performance, drift


def _normalized(found: dict[str, Any]) -> dict[str, Any]:
    """Findings as the cache gives them back (JSON, rounded): a fresh run and a cached one give the same bytes."""
    loaded: dict[str, Any] = json.loads(json_text(json_ready(found)))
    return loaded


def monitor(store: Store, reference: Reference, model_md5: str, settings: Settings, cache: ChunkCache, code: str = "") -> MonitorReport:
    """Every chunk of the store, its alerts and status, and the summary; pure apart from the store's readers and the cache.

    Args:
        store: the batches and outcome files (metadata, and readers called only for chunks that must be computed).
        reference: the test split's rows and the model's scores of them.
        model_md5: md5 of the model file: batches scored by another model get no estimate.
        settings: params.monitor, the drift thresholds, evaluate.threshold and the feature spec.
        cache: findings of earlier runs by chunk key (ChunkCache(None): none).
        code: a fingerprint of the monitor's code, part of every key.

    Returns:
        The report; `computed` lists the chunks not found in the cache.
    """
    salt = digest({"settings": settings.fingerprint(), "model": model_md5, "reference": reference.fingerprint, "code": code})
    frames: dict[str, pd.DataFrame] = {}
    label_frames: dict[str, pd.DataFrame] = {}
    context: _Context | None = None
    by_id = {meta.batch_id: meta for meta in store.batches}
    chunks, computed = [], []
    for plan in plan_chunks(store.batches, settings.monitor.chunk):
        key = _chunk_key(plan, store, salt)
        found = cache.get(key)
        if found is None:
            context = context or _context(reference, settings, model_md5)
            for batch in plan.batches:
                if batch not in frames:
                    frames[batch] = _typed_batch(store.read_batch(by_id[batch]), by_id[batch], settings)
            rows = chunk_rows(plan, frames, settings.spec.time, settings.monitor.id_column)
            files = _chunk_labels(plan, store)
            for meta in files:
                label_frames.setdefault(meta.labels_id, store.read_labels(meta))
            outcomes = _outcomes(rows, [label_frames[meta.labels_id] for meta in files], settings) if not rows.empty else np.array([])
            models = {by_id[batch].model_md5: by_id[batch].model for batch in plan.batches}
            found = _normalized(measure_chunk(plan, rows, outcomes, models, context))
            cache.put(key, found)
            computed.append(plan.index + 1)
        chunks.append(found | judge(found, settings.monitor.alerts, settings.spec.task))
    cache.prune()
    summary = summarize(chunks, settings.monitor.alerts, settings.spec.task)
    performance, drift = plot_rows(chunks, settings.spec.task)
    return MonitorReport(chunks=chunks, summary=json_ready(summary), performance=performance, drift=drift, computed=computed)


def monitor_outputs(report: MonitorReport, settings: Settings) -> dict[Path, Writer]:
    """Every file the stage writes: the same set for an empty store (dvc.yaml declares them)."""
    page = render_timeline(report.chunks, report.summary, settings.monitor.chunk, settings.spec.task)
    return {
        MONITOR_FILE: json_writer(report.summary),
        MONITOR_PERFORMANCE_PLOT: json_writer(report.performance),
        MONITOR_DRIFT_PLOT: json_writer(report.drift),
        MONITOR_REPORT: lambda path: path.write_text(page, encoding="utf-8"),
    }


def file_md5(path: Path) -> str:
    """md5 of a file's bytes: what dvc.lock records and BatchMeta.model_md5 holds."""
    digest_ = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest_.update(block)
    return digest_.hexdigest()


def loaded_code() -> list[Path]:
    """The project's modules this process loaded (the stage's code deps), sorted: their bytes key the cache."""
    root = Path.cwd().resolve()
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root / "stages"):
            files.add(Path(path).resolve().relative_to(root))
    return sorted(files)


def _load_rows(spec: FeatureSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """The test split's prepared rows and the model's scores of its features, in this process."""
    rows = load_prepared("test")
    _, features = load_features("test")
    if len(rows) != len(features):
        fail(f"{REFERENCE_ROWS} and {REFERENCE_FEATURES} hold different rows; run `dvc repro featurize`")
    return rows, predict_scores(load_model(MODEL_FILE), features[spec.features], spec.task)


def load_reference(spec: FeatureSpec) -> Reference:
    """The test split's prepared rows and the model's scores of its features, keyed by the files' sha256 (the model's
    md5 is part of every key on its own), loaded when first needed."""

    files = [REFERENCE_ROWS, REFERENCE_FEATURES]
    missing = [path for path in files if not path.exists()]
    if missing:
        fail(f"{missing[0]}: file not found; run `dvc repro featurize` first")
    return Reference(digest([sha256_file(path) for path in files]), lambda: _load_rows(spec))


def _rows_never_loaded() -> tuple[pd.DataFrame, np.ndarray]:
    raise RuntimeError("the dask engine reads the reference on the workers only (its tables and the loss model's sample)")


def load_reference_on_dask(spec: FeatureSpec, cap: int, root: Path = Path()) -> Reference:
    """The test split on the dask engine: keyed by a fingerprint of its rows that does not depend on how they are cut
    into parts (summed on the workers), summarized on the workers when some chunk must be computed, and for a
    regression sampled on the workers for the loss model: only monitor.estimator_rows rows reach this process (null: all).

    Args:
        spec: the feature spec (inputs, features, target, task).
        cap: engine.max_distinct_values.
        root: the project folder (the workers get absolute paths).
    """
    prepared, features = (root / REFERENCE_ROWS).resolve(), (root / REFERENCE_FEATURES).resolve()
    missing = [path for path in (prepared, features) if not path.exists()]
    if missing:
        fail(f"{missing[0]}: file not found; run `dvc repro featurize` first")
    fingerprint = fingerprint_on_dask(
        [
            (prepared, sorted([*spec.inputs, spec.target]), "run `dvc repro prepare` first"),
            (features, sorted({*spec.features, spec.target}), "run `dvc repro featurize` first"),
        ]
    )

    model = functools.cache(lambda: load_model(root / MODEL_FILE))  # read once, when some chunk must be computed

    def summarized(segments: list[str], types: dict[str, str]) -> ReferenceTables:
        return tables_on_dask(prepared, features, types, segments, spec, model(), cap)

    def sampled(limit: int | None, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        return sample_on_dask(prepared, features, [*sorted(spec.inputs), spec.target], spec, model(), limit, seed)

    return Reference(fingerprint, _rows_never_loaded, summarized, sampled)


def main() -> None:
    params = load_params()
    limit_threads(params.runtime)
    spec = load_spec()  # the spec alone: the test features are read when a chunk needs them (on the workers on dask)
    settings = Settings(monitor=params.monitor, drift=params.drift.thresholds, threshold=params.evaluate.threshold, spec=spec)
    store = Store(
        batches=batches(PRODUCTION_DIR),
        labels=label_files(PRODUCTION_DIR),
        read_batch=lambda meta: read_batch(meta, PRODUCTION_DIR),
        read_labels=lambda meta: read_labels(meta, PRODUCTION_DIR),
    )
    with engine_session(params.engine) as client:
        reference = load_reference(spec) if client is None else load_reference_on_dask(spec, params.engine.max_distinct_values)
        report = monitor(store, reference, file_md5(MODEL_FILE), settings, ChunkCache(MONITOR_CACHE), code_fingerprint(loaded_code()))
    write_outputs(monitor_outputs(report, settings))
    summary = report.summary
    if not report.chunks:
        print(f"monitor: the production store ({PRODUCTION_DIR}) holds no batches yet; wrote an empty timeline -> {MONITOR_REPORT}")
        return
    gate = "passed" if summary["gate"]["passed"] else "FAILED"
    print(
        f"monitor: {summary['chunks']} chunk(s), {summary['rows']:,} rows ({len(report.computed)} computed, the rest from {MONITOR_CACHE}/); "
        f"{summary['alerting_chunks']} alerting; judged chunk {summary.get('chunk')}: {summary['status']}, gate {gate} -> {MONITOR_REPORT}"
    )


if __name__ == "__main__":
    run_stage(main)
