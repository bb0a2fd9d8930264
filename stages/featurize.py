"""featurize: build typed, leakage-safe model inputs from the prepared splits, as `conf/features/` declares.

The transformer and every statistic are fitted on the train split only; history features use
outcomes known strictly before each row. Writes one feature table per split, the fitted
transformer (skops), a reviewable manifest (git) and a metrics file.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer

from stages.lib.catalog import (
    FEATURE_MANIFEST,
    FEATURE_SPEC,
    FEATURES_DIR,
    FEATURIZE_SUMMARY,
    FEATURIZE_TIMING,
    HISTORY_EVENTS,
    PREPARED_DIR,
    REFERENCE_PROFILE,
    SCHEMA_FILE,
    TRANSFORMER_FILE,
    FeatureSpec,
    load_prepared,
)
from stages.lib.config import SPLIT_NAMES, FeaturesConfig, Window, load_params
from stages.lib.engine import engine_session
from stages.lib.errors import fail, run_stage
from stages.lib.features.build import build_transformer, describe_outputs
from stages.lib.features.history import HistoryLookup, history_features, history_name, look_back
from stages.lib.features.manifest import train_statistics
from stages.lib.features.plan import Plan, plan_features
from stages.lib.features.screen import LEAK_KINDS, Screen, column_findings, screen_inputs
from stages.lib.features.selection import select_features
from stages.lib.features.serving import model_columns
from stages.lib.io import FolderWriter, Piece, Writer, json_writer, parquet_writer, pieces, read_yaml, write_outputs
from stages.lib.models import model_writer
from stages.lib.profile import (
    SORTED_TYPES,
    Spooled,
    profile_values,
    sorted_columns,
    spool_column,
    write_sorted_columns,
    write_sorted_spooled,
)
from stages.lib.runtime import limit_threads
from stages.lib.timespan import parse_span, span_text

LIBRARIES = ("scikit-learn", "pandas", "numpy", "holidays")
FAMILIES = ("datetime", "numeric", "categorical", "history")


@dataclass(frozen=True)
class Featurized:
    spec: FeatureSpec
    frames: dict[str, pd.DataFrame]  # split name -> features, target, time
    transformer: ColumnTransformer
    events: pd.DataFrame  # labelled rows the history features look back on (empty without history)
    manifest: dict[str, Any]
    counts: dict[str, Any]
    warnings: list[str]  # the screen's findings, one line each (stderr and the manifest's `screen:`)


def history_events(splits: dict[str, pd.DataFrame], windows: Sequence[Window], columns: Sequence[str], time: str) -> pd.DataFrame:
    """Every labelled row once: splits may overlap, and a row inside two windows is the same row."""
    covered: list[Window] = []
    parts = []
    for window in windows:
        rows = splits[window.name]
        stamps = rows[time]
        seen = np.zeros(len(rows), dtype=bool)
        for earlier in covered:
            seen |= ((stamps >= earlier.start) & (stamps < earlier.end)).to_numpy()
        parts.append(rows.loc[~seen, list(columns)])
        covered.append(window)
    return pd.concat(parts, ignore_index=True).sort_values(time, kind="stable", ignore_index=True)


def _manifest_columns(
    planned: dict[str, dict[str, Any]], categorical: Sequence[str], dropped: dict[str, str], train: pd.DataFrame, target_encoded: bool
) -> dict[str, dict[str, Any]]:
    """The manifest's entry for every planned feature: how it is built, its train statistics, kept or why dropped."""
    columns = {}
    for name in sorted(planned):
        entry = dict(planned[name])
        if name in categorical:
            entry["transform"] += " -> target encoding out of fold in train" if target_encoded else ""
        entry["train"] = train_statistics(train[name])
        entry["selected"] = name not in dropped
        if name in dropped:
            entry["reason"] = dropped[name]
        columns[name] = entry
    return columns


def screened_plan(train: pd.DataFrame, schema: dict[str, Any], config: FeaturesConfig) -> tuple[Plan, Screen]:
    """The feature plan without identifiers, time proxies and (features.screen.on_leak: drop) suspected leaks; and the screen.

    Raises:
        UserError: features.screen.on_leak is error and the screen suspects a leak: one line per finding.
    """
    leave_out, findings = column_findings(schema, config)
    plan = plan_features(train, schema, config, leave_out)
    screen = screen_inputs(train, [*plan.numeric, *plan.onehot, *plan.high_cardinality], schema, config, findings)
    leaks = screen.leaks()
    if leaks and config.screen.on_leak == "error":
        # run_stage prints "error: " before the first line; every finding gets its own.
        fail("\nerror: ".join(finding.message for finding in screen.findings if finding.kind in LEAK_KINDS))
    if leaks and config.screen.on_leak == "drop":
        plan = plan_features(train, schema, config, {**leave_out, **leaks})
    return plan, screen


@dataclass(frozen=True)
class Fit:
    """What featurize fits on the train rows before it builds anything: the plan, the screen, the fitted transformer,
    every planned feature and the history lookup."""

    plan: Plan
    screen: Screen
    transformer: ColumnTransformer
    planned: dict[str, dict[str, Any]]
    lookup: HistoryLookup


@dataclass(frozen=True)
class Selected:
    """The features kept after selection on the built train rows, and what featurize records of them."""

    spec: FeatureSpec
    manifest: dict[str, Any]
    counts: dict[str, Any]
    warnings: list[str]


def fit_features(train: pd.DataFrame, schema: dict[str, Any], config: FeaturesConfig) -> Fit:
    """The plan, the leak screen and the transformer, fitted on `train`; the history lookup with its prior (train's target mean)."""
    target = schema["target"]
    plan, screen = screened_plan(train, schema, config)
    transformer = build_transformer(plan, schema, config, train)
    try:
        transformer.fit(train)
    except ValueError as error:
        fail(f"conf/features/: cannot build the features ({str(error).splitlines()[0]})")
    described = describe_outputs(transformer)
    history_names = {
        history_name(key, window, target, what): {"family": "history", "sources": list(key), "transform": f"past {what} of {target}"}
        for key in plan.history_keys
        for window in plan.history_windows
        for what in ("mean", "rows")
    }
    planned = {**described, **history_names}
    if len(planned) > config.max_features:
        by_family = {family: sum(entry["family"] == family for entry in planned.values()) for family in FAMILIES}
        fail(
            f"params.yaml: the feature plan has {len(planned)} features ({', '.join(f'{k} {v}' for k, v in by_family.items())}), "
            f"more than features.max_features = {config.max_features}; raise it, lower features.categorical.max_onehot, "
            f"or list fewer history keys/windows in conf/features/"
        )
    if not planned:
        fail(f"{SCHEMA_FILE}: no feature is left to learn from; check data.drop, features.exclude and the families in conf/features/")
    lookup = HistoryLookup(
        keys=tuple(plan.history_keys),
        windows=plan.history_windows,
        smoothing=config.history.smoothing,
        prior=float(train[target].mean()),
        known_after=parse_span(schema["known_after"]) if plan.history_keys else pd.Timedelta(0),
    )
    return Fit(plan=plan, screen=screen, transformer=transformer, planned=planned, lookup=lookup)


def event_columns(fit: Fit, schema: dict[str, Any]) -> list[str]:
    """The columns of the labelled events history features read: time, target and every key column."""
    return sorted({schema["time"], schema["target"], *(column for key in fit.plan.history_keys for column in key)})


def query_columns(fit: Fit, schema: dict[str, Any]) -> list[str]:
    """The columns of a row history features read: time and every key column."""
    return [schema["time"], *sorted({column for key in fit.plan.history_keys for column in key})]


def model_frame(built: pd.DataFrame, rows: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """A split's feature table: the selected features in model order, then the target and the time of `rows`."""
    return model_columns(built, spec.features, spec.categorical).assign(
        **{
            spec.target: rows[spec.target].to_numpy(dtype=np.int8 if spec.task == "classification" else np.float64),
            spec.time: rows[spec.time].array,  # .to_numpy() would box every timestamp
        }
    )


def select(fit: Fit, built_train: pd.DataFrame, train_rows: int, schema: dict[str, Any], config: FeaturesConfig) -> Selected:
    """Selection on the built train features, and the spec, manifest and counts featurize writes.

    Args:
        fit: what `fit_features` fitted.
        built_train: every built feature (transformer outputs, then history) of the rows the fit saw (the fit sample).
        train_rows: the train split's rows (the manifest's `train_rows`).
        schema: data/schema.yaml.
        config: the `features` section.
    """
    plan, planned, lookup = fit.plan, fit.planned, fit.lookup
    dropped = select_features(built_train, config.selection)
    features = [name for name in built_train.columns if name not in dropped]
    categorical = [name for name in features if name in plan.high_cardinality]
    columns = schema["columns"]
    inputs = {name: columns[name]["type"] for name in sorted({*plan.numeric, *plan.onehot, *plan.high_cardinality})}
    spec = FeatureSpec(
        features=features,
        categorical=categorical,
        target_encoded=config.categorical.target_encoding,
        inputs=inputs,
        sources={name: planned[name]["sources"] for name in features},
        target=schema["target"],
        time=schema["time"],
        task=schema["task"],
        history=lookup.to_json() if plan.history_keys else None,
    )
    kept = {family: sum(planned[name]["family"] == family for name in features) for family in FAMILIES}
    filters = {kind: sum(reason.startswith(kind) for reason in dropped.values()) for kind in ("near-constant", "duplicate", "correlated")}
    manifest_features = _manifest_columns(planned, categorical, dropped, built_train, config.categorical.target_encoding)
    manifest = {
        "dataset": schema.get("dataset"),
        "task": schema["task"],
        "target": schema["target"],
        "train_rows": train_rows,
        "features": {"selected": len(features), "planned": len(planned), "by_family": kept, "dropped_by_filter": filters},
        "not_built": dict(sorted(plan.skipped.items())),
        "screen": fit.screen.to_manifest(config.screen.on_leak),
        **(
            {"history_windows": {"windows": [span_text(window) for window in plan.history_windows], "from": plan.windows_source}}
            if plan.history_keys
            else {}
        ),
        "libraries": {name: version(name) for name in LIBRARIES},
        "columns": manifest_features,
    }
    if len(built_train) < train_rows:  # said only when sampled, so the manifest is unchanged when the fit saw every row
        manifest["fit_sample"] = {"rows": len(built_train), "of": train_rows, "seed": config.seed}
    counts = {"features": len(features), "planned": len(planned), "by_family": kept, "dropped_by_filter": filters}
    return Selected(spec=spec, manifest=manifest, counts=counts, warnings=[finding.message for finding in fit.screen.findings])


def featurize(splits: dict[str, pd.DataFrame], schema: dict[str, Any], config: FeaturesConfig, windows: Sequence[Window]) -> Featurized:
    """Fit on train (its seeded fit sample above `features.fit_sample_rows`), apply to every split; pure apart from its inputs."""
    train = splits["train"]
    target, time_column = schema["target"], schema["time"]
    chosen = fit_sample([len(train)], config.seed, config.fit_sample_rows)[0]
    fit = fit_features(train if chosen is None else train.iloc[chosen].reset_index(drop=True), schema, config)
    built = {name: fit.transformer.transform(rows) for name, rows in splits.items()}
    events = pd.DataFrame()  # the labelled past, needed only by history features
    if fit.plan.history_keys:
        events = history_events(splits, windows, event_columns(fit, schema), time_column)
        # One pass over every split's rows, so the events are indexed once per key.
        columns = query_columns(fit, schema)
        queries = pd.concat([rows[columns] for rows in splits.values()], ignore_index=True)
        history = history_features(queries, events, fit.lookup, time_column, target)
        start = 0
        for name, rows in splits.items():
            part = history.iloc[start : start + len(rows)].set_axis(built[name].index)
            built[name] = pd.concat([built[name], part], axis=1)
            start += len(rows)
    # Selection and the manifest's statistics read the fit sample's built rows, as on the dask engine.
    built_sample = built["train"] if chosen is None else built["train"].iloc[chosen].reset_index(drop=True)
    selected = select(fit, built_sample, len(train), schema, config)
    frames = {name: model_frame(frame, splits[name], selected.spec) for name, frame in built.items()}
    return Featurized(
        spec=selected.spec,
        frames=frames,
        transformer=fit.transformer,
        events=events,
        manifest=selected.manifest,
        counts=selected.counts,
        warnings=selected.warnings,
    )


# --- the dask engine (engine.name: dask) ---------------------------------------------------------------------
# Each split is read in pieces (a folder's part files, each file's Parquet row groups, in row order), one task each.
# Fitting needs the train rows in one process: the whole train split up to features.fit_sample_rows rows, above it the
# seeded sample of that many train rows in time order (features.seed) that the pandas engine fits on too. The fitted
# transformer is then applied piece by piece, and each piece's history features read only the labelled events it can
# see: those from [its first time - known_after - the widest window, its last time - known_after], cut from the events
# of every split (the pandas engine's `history_events`, piece by piece). The stage's process holds the fit sample and
# one reference column at a time, never every row: the workers compute the sample's history features and write
# history.parquet as parts. Dask is imported inside these functions only.


@dataclass(frozen=True)
class PartitionedFeatures:
    """What `featurize_partitioned` found: the pandas engine's results, with each split's feature table as a folder writer."""

    selected: Selected
    transformer: ColumnTransformer
    history: FolderWriter | None  # fills data/features/history.parquet/ with parts (None without history)
    profile: Writer  # writes the sorted reference profile
    writers: dict[str, FolderWriter]  # split name -> fills data/features/<split>.parquet/ with part-00000.parquet, ...
    rows: int  # rows of every split


def split_pieces(path: Path) -> list[Piece]:
    """The pieces of one prepared split, in row order: each Parquet row group of the file, or of each part of the folder."""
    if not path.exists():
        fail(f"{path}: file not found; run `dvc repro prepare` first")
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not files:
        fail(f"{path}: a folder without part-*.parquet files; run `dvc repro prepare` first")
    return [piece for file in files for piece in pieces(file, blocksize=1)]


def _read(piece: Piece) -> pd.DataFrame:
    return piece.read(())


def _facts(
    rows: pd.DataFrame, time: str, earlier: Sequence[Window], columns: Sequence[str] | None
) -> tuple[int, Any, Any, pd.DataFrame | None]:
    """A piece's row count, first and last time, and (with `columns`) its labelled events not in an earlier split's window."""
    events = None
    if columns is not None:
        stamps = rows[time]
        seen = np.zeros(len(rows), dtype=bool)
        for window in earlier:
            seen |= ((stamps >= window.start) & (stamps < window.end)).to_numpy()
        events = rows.loc[~seen, list(columns)]
    return len(rows), (rows[time].min() if len(rows) else None), (rows[time].max() if len(rows) else None), events


def _span(facts: tuple[int, Any, Any, pd.DataFrame | None]) -> tuple[int, Any, Any]:
    return facts[:3]


def _nanoseconds(first: Any, last: Any) -> tuple[int | None, int | None]:
    if first is None:
        return None, None
    stamps = pd.DatetimeIndex([first, last]).as_unit("ns").asi8
    return int(stamps[0]), int(stamps[1])


def _events(facts: tuple[int, Any, Any, pd.DataFrame | None]) -> pd.DataFrame | None:
    return facts[3]


def _ordered_events(parts: Sequence[pd.DataFrame], time: str, lower: int | None = None, upper: int | None = None) -> pd.DataFrame:
    """Event pieces (in split, then row order) as one table sorted by time as `history_events` sorts it, cut to [lower, upper] ns."""
    events = pd.concat(parts, ignore_index=True)
    if lower is not None and upper is not None:
        stamps = pd.DatetimeIndex(events[time]).as_unit("ns").asi8
        events = events[(stamps >= lower) & (stamps <= upper)]
    return events.sort_values(time, kind="stable", ignore_index=True)


def reach(first: Any, last: Any, lookup: HistoryLookup) -> tuple[int, int]:
    """The times (int64 ns, inclusive) of every event a row between `first` and `last` can count: `look_back` is
    monotone in the row's time, so the earliest start is the first row's widest window and the latest end the last row's."""
    stamps = pd.DatetimeIndex([first, last]).as_unit("ns").asi8
    starts = [look_back(stamps[:1], lookup.known_after, window)[0][0] for window in lookup.windows]
    return int(min(starts)), int(look_back(stamps[1:], lookup.known_after, lookup.windows[0])[1][0])


def _take(rows: pd.DataFrame, positions: np.ndarray | None) -> pd.DataFrame:
    return rows if positions is None else rows.iloc[positions]


@dataclass(frozen=True)
class Applied:
    """What every piece is built with: the fitted transformer, the selected features, and the history lookup."""

    transformer: ColumnTransformer
    spec: FeatureSpec
    lookup: HistoryLookup
    queries: list[str]  # the columns history features read of a row (empty without history)


def _write_part(rows: pd.DataFrame, applied: Applied, events: pd.DataFrame | None, path: Path) -> None:
    """One piece's feature table, built as the pandas engine builds a split's rows: the transformer, then history."""
    built = applied.transformer.transform(rows)
    if applied.queries:
        assert events is not None  # a piece with history queries is always given its events
        history = history_features(rows[applied.queries], events, applied.lookup, applied.spec.time, applied.spec.target)
        built = pd.concat([built, history.set_axis(built.index)], axis=1)
    parquet_writer(model_frame(built, rows, applied.spec))(path)


def _needed(spans: Sequence[tuple[int | None, int | None]], lower: int, upper: int) -> list[int]:
    """The event pieces whose times ([first, last] ns, None when empty) meet [lower, upper]."""
    return [
        index for index, (first, last) in enumerate(spans) if first is not None and last is not None and last >= lower and first <= upper
    ]


def fit_sample(counts: Sequence[int], seed: int, limit: int | None) -> list[np.ndarray | None]:
    """Per train piece (`counts`: their rows, in row order), the positions of its rows in the fit sample: all (None) up to
    `limit` rows in total (None: no limit), else a seeded sample of `limit` rows of the whole split, in row order. Both
    engines fit on these rows: the pandas engine with one piece, the whole split."""
    total = int(sum(counts))
    if limit is None or total <= limit:
        return [None] * len(counts)
    chosen = np.sort(np.random.RandomState(seed).choice(total, limit, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return [chosen[(chosen >= start) & (chosen < end)] - start for start, end in itertools.pairwise(starts)]


def event_ranges(spans: Sequence[tuple[int | None, int | None]]) -> list[tuple[int, int]]:
    """Disjoint time ranges ([lower, upper] ns, inclusive) that cover every event of the event pieces (their [first, last]
    ns, None when empty): one from each distinct first time to just before the next, the last to the latest time.

    A stable sort by time of (split, row) order restricted to a range is the global sort's slice for that range, so
    history.parquet can be written range by range, each part holding only the pieces that meet its range."""
    firsts = sorted({first for first, _ in spans if first is not None})
    if not firsts:
        return []
    last = max(last for _, last in spans if last is not None)
    return [(lower, upper - 1) for lower, upper in itertools.pairwise(firsts)] + [(firsts[-1], last)]


def _write_events(parts: Sequence[pd.DataFrame], time: str, lower: int | None, upper: int | None, path: Path) -> None:
    """One part of history.parquet: the events in [lower, upper] ns, sorted as `history_events` sorts them."""
    parquet_writer(_ordered_events(parts, time, lower, upper))(path)


def _sample_history(
    rows: pd.DataFrame,
    positions: np.ndarray | None,
    events: pd.DataFrame,
    lookup: HistoryLookup,
    queries: Sequence[str],
    names: tuple[str, str],
) -> pd.DataFrame:
    """The history features of a train piece's fit-sample rows, from that piece's slice of the events (names: time, target)."""
    return history_features(_take(rows, positions)[list(queries)], events, lookup, *names)


def _profile_writer(parts: Sequence[Any], types: dict[str, str]) -> Writer:
    """The reference profile (`sorted_columns` + `write_sorted_columns` of the whole split), one column in the stage's
    process at a time: each column is gathered from the pieces, sorted and spooled next to the output, then the file is
    written from the spooled columns (`write_sorted_spooled`), byte for byte the pandas engine's."""
    import dask
    from dask import delayed

    candidates = [name for name, kind in types.items() if kind in SORTED_TYPES]

    def write(path: Path) -> None:
        # The pieces' candidate columns as float64, kept on the workers while the columns are gathered one at a time.
        held = dask.persist(*[delayed(_numeric_columns)(part, candidates) for part in parts])
        with tempfile.TemporaryDirectory(prefix=".profile.", dir=Path(path).parent) as folder:
            spooled: dict[str, Spooled] = {}
            for name in candidates:
                values = dask.compute(*[delayed(_column)(piece, name) for piece in held])
                if any(value is None for value in values):  # not stored as numbers in the whole split: not profiled
                    continue
                column = np.concatenate(values) if values else np.empty(0)
                del values
                column.sort(kind="quicksort")  # np.sort's order, NaN last
                spooled[name] = spool_column(column, Path(folder) / f"{len(spooled)}.bin")
                del column
            del held
            write_sorted_spooled(spooled, path)

    return write


def _numeric_columns(rows: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray | None]:
    return {name: profile_values(rows[name]) for name in names}


def _column(columns: dict[str, np.ndarray | None], name: str) -> np.ndarray | None:
    return columns[name]


def featurize_partitioned(
    paths: dict[str, Path], schema: dict[str, Any], config: FeaturesConfig, windows: Sequence[Window]
) -> PartitionedFeatures:
    """`featurize` on the dask engine (the default client or scheduler runs the tasks): fitted on the train rows
    (whole up to `features.fit_sample_rows`, else the seeded sample the pandas engine fits on), applied piece by piece, history exact across pieces. The stage's
    process holds the fit sample and one reference column at a time: history.parquet is written by the workers, one
    part per time range, and the sample's history features are computed on the workers, piece by piece."""
    import dask
    from dask import delayed

    time = schema["time"]
    split_parts = {name: [delayed(_read)(piece) for piece in split_pieces(path)] for name, path in paths.items()}
    # Every piece's row count and time span; the fit needs the train rows before it knows the event columns.
    spans = {
        name: dask.compute(*[delayed(_span)(delayed(_facts)(part, time, (), None)) for part in parts])
        for name, parts in split_parts.items()
    }
    train_counts = [count for count, _, _ in spans["train"]]
    positions = fit_sample(train_counts, config.seed, config.fit_sample_rows)
    train = pd.concat(
        dask.compute(*[delayed(_take)(part, chosen) for part, chosen in zip(split_parts["train"], positions, strict=True)]),
        ignore_index=True,
    )
    fit = fit_features(train, schema, config)
    built = fit.transformer.transform(train)
    history: FolderWriter | None = None
    slices: dict[str, list[Any]] = {name: [None] * len(parts) for name, parts in split_parts.items()}
    event_parts: list[Any] = []
    if fit.plan.history_keys:
        # The pandas engine's events, piece by piece: every split's labelled rows outside the earlier splits' windows.
        columns = event_columns(fit, schema)
        earlier: list[Window] = []
        event_spans: list[tuple[int | None, int | None]] = []
        for window in windows:
            pieces_events = [delayed(_events)(delayed(_facts)(part, time, tuple(earlier), columns)) for part in split_parts[window.name]]
            event_parts += dask.persist(*pieces_events)  # kept on the cluster until the writers have run
            event_spans += [_nanoseconds(first, last) for _, first, last in spans[window.name]]
            earlier.append(window)
        for name in split_parts:
            for index, (count, first, last) in enumerate(spans[name]):
                lower, upper = reach(first, last, fit.lookup) if count else (0, -1)
                needed = [event_parts[position] for position in _needed(event_spans, lower, upper)] or event_parts[:1]
                slices[name][index] = delayed(_ordered_events)(needed, time, lower, upper)
        # The sample's history features, on the workers: each train piece's sample rows with that piece's events.
        queries = query_columns(fit, schema)
        sampled = dask.compute(
            *[
                delayed(_sample_history)(part, chosen, slices["train"][index], fit.lookup, queries, (time, schema["target"]))
                for index, (part, chosen) in enumerate(zip(split_parts["train"], positions, strict=True))
            ]
        )
        built = pd.concat([built, pd.concat(sampled, ignore_index=True).set_axis(built.index)], axis=1)
        history = _history_writer(event_parts, event_spans, time)
    train_rows = sum(train_counts)
    selected = select(fit, built, train_rows, schema, config)
    applied = delayed(
        Applied(fit.transformer, selected.spec, fit.lookup, query_columns(fit, schema) if fit.plan.history_keys else []), pure=True
    )

    def writer(name: str) -> FolderWriter:
        # `held` keeps the persisted event pieces referenced: Dask releases a persisted result with its last reference,
        # and the slices built from them do not count as one.
        def write(folder: Path, held: list[Any] = event_parts) -> None:
            folder = folder.resolve()
            dask.compute(
                *[
                    delayed(_write_part)(part, applied, slices[name][index], folder / f"part-{index:05d}.parquet")
                    for index, part in enumerate(split_parts[name])
                ]
            )

        return FolderWriter(write)

    return PartitionedFeatures(
        selected=selected,
        transformer=fit.transformer,
        history=history,
        profile=_profile_writer(split_parts["reference"], selected.spec.inputs),
        writers={name: writer(name) for name in split_parts},
        rows=sum(count for facts in spans.values() for count, _, _ in facts),
    )


def _history_writer(event_parts: list[Any], event_spans: Sequence[tuple[int | None, int | None]], time: str) -> FolderWriter:
    """history.parquet as a folder of parts written by the workers, one per time range (`event_ranges`), in time order:
    read back in order (stages.lib.io.read_parquet) it is the pandas engine's `history_events` table."""
    import dask
    from dask import delayed

    def write(folder: Path, held: list[Any] = event_parts) -> None:
        folder = folder.resolve()
        ranges = event_ranges(event_spans)
        tasks = [
            delayed(_write_events)(
                [held[i] for i in _needed(event_spans, lower, upper)], time, lower, upper, folder / f"part-{index:05d}.parquet"
            )
            for index, (lower, upper) in enumerate(ranges)
        ]
        # No event at all: one empty part, so the table still has its columns.
        dask.compute(*(tasks or [delayed(_write_events)(held, time, None, None, folder / "part-00000.parquet")]))

    return FolderWriter(write)


def _outputs(
    selected: Selected, transformer: ColumnTransformer, history: Writer | FolderWriter | None, profile: Writer, rows: int
) -> dict[Path, Writer | FolderWriter]:
    """Every output but the split tables, as both engines write them (history: None without history features)."""
    outputs: dict[Path, Writer | FolderWriter] = {FEATURE_SPEC: json_writer(selected.spec.to_json())}
    outputs[TRANSFORMER_FILE] = model_writer(transformer)
    if selected.spec.history and history is not None:
        outputs[HISTORY_EVENTS] = history
    outputs[REFERENCE_PROFILE] = profile
    manifest_text = yaml.safe_dump(selected.manifest, sort_keys=False, allow_unicode=True, width=140)
    outputs[FEATURE_MANIFEST] = lambda path: path.write_text(
        f"# Written by featurize from conf/features/ and the train split; review its diff like code.\n{manifest_text}", encoding="utf-8"
    )
    outputs[FEATURIZE_SUMMARY] = json_writer({"rows": rows, **selected.counts})
    return outputs


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    limit_threads(params.runtime)
    config, windows = params.features, params.data.splits
    schema = read_yaml(SCHEMA_FILE, "run `dvc repro prepare` first")
    with engine_session(params.engine) as client:
        if client is None:
            splits = {name: load_prepared(name) for name in SPLIT_NAMES}
            result = featurize(splits, schema, config, windows)
            selected = Selected(spec=result.spec, manifest=result.manifest, counts=result.counts, warnings=result.warnings)
            rows = sum(len(frame) for frame in splits.values())
            # Sorted once here, so the drift check only has to sort the current window; the schema types pick the columns.
            reference = sorted_columns(splits["reference"], result.spec.inputs)
            outputs = _outputs(
                selected, result.transformer, parquet_writer(result.events), lambda path: write_sorted_columns(reference, path), rows
            )
            outputs |= {FEATURES_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in result.frames.items()}
        else:
            paths = {name: (PREPARED_DIR / f"{name}.parquet").resolve() for name in SPLIT_NAMES}
            partitioned = featurize_partitioned(paths, schema, config, windows)
            selected, rows = partitioned.selected, partitioned.rows
            outputs = _outputs(selected, partitioned.transformer, partitioned.history, partitioned.profile, rows)
            outputs |= {FEATURES_DIR / f"{name}.parquet": writer for name, writer in partitioned.writers.items()}
        for warning in selected.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        write_outputs(outputs)  # inside the session: on the dask engine the workers write the split tables
    seconds = time.perf_counter() - started
    # Timings vary from run to run, so they stay out of the DVC-tracked metrics (dvc.lock stays reproducible).
    timing = {"seconds": round(seconds, 2), "rows": rows, "rows_per_second": round(rows / seconds)}
    write_outputs({FEATURIZE_TIMING: json_writer(timing)})
    families = ", ".join(f"{family} {count}" for family, count in selected.counts["by_family"].items())
    print(f"featurize: {selected.counts['features']} features ({families}) in {seconds:.1f} s -> {FEATURES_DIR}/, {FEATURE_MANIFEST}")


if __name__ == "__main__":
    # The dask engine sends this module's functions to its workers by name: run them from stages.featurize, not __main__.
    from stages.featurize import main as stage_main

    run_stage(stage_main)
