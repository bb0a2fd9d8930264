"""featurize: build typed, leakage-safe model inputs from the prepared splits, as `conf/features/` declares.

The transformer and every statistic are fitted on the train split only; history features use
outcomes known strictly before each row. Writes one feature table per split, the fitted
transformer (skops), a reviewable manifest (git) and a metrics file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
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
    REFERENCE_PROFILE,
    SCHEMA_FILE,
    TRANSFORMER_FILE,
    FeatureSpec,
    load_prepared,
)
from stages.lib.config import SPLIT_NAMES, FeaturesConfig, Window, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.features.build import build_transformer, describe_outputs
from stages.lib.features.history import HistoryLookup, history_features, history_name
from stages.lib.features.manifest import train_statistics
from stages.lib.features.plan import Plan, plan_features
from stages.lib.features.screen import LEAK_KINDS, Screen, column_findings, screen_inputs
from stages.lib.features.selection import select_features
from stages.lib.features.serving import model_columns
from stages.lib.io import json_writer, parquet_writer, read_yaml, write_outputs
from stages.lib.models import model_writer
from stages.lib.profile import sorted_columns
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


def featurize(splits: dict[str, pd.DataFrame], schema: dict[str, Any], config: FeaturesConfig, windows: Sequence[Window]) -> Featurized:
    """Fit on train, apply to every split; pure apart from its inputs."""
    train = splits["train"]
    target, time_column = schema["target"], schema["time"]
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

    prior = float(train[target].mean())
    lookup = HistoryLookup(
        keys=tuple(plan.history_keys),
        windows=plan.history_windows,
        smoothing=config.history.smoothing,
        prior=prior,
        known_after=parse_span(schema["known_after"]) if plan.history_keys else pd.Timedelta(0),
    )
    built = {name: transformer.transform(rows) for name, rows in splits.items()}
    events = pd.DataFrame()  # the labelled past, needed only by history features
    if plan.history_keys:
        events = history_events(splits, windows, sorted({time_column, target, *(c for key in plan.history_keys for c in key)}), time_column)
        # One pass over every split's rows, so the events are indexed once per key.
        columns = [time_column, *sorted({column for key in plan.history_keys for column in key})]
        queries = pd.concat([rows[columns] for rows in splits.values()], ignore_index=True)
        history = history_features(queries, events, lookup, time_column, target)
        start = 0
        for name, rows in splits.items():
            part = history.iloc[start : start + len(rows)].set_axis(built[name].index)
            built[name] = pd.concat([built[name], part], axis=1)
            start += len(rows)
    dropped = select_features(built["train"], config.selection)
    features = [name for name in built["train"].columns if name not in dropped]
    categorical = [name for name in features if name in plan.high_cardinality]
    frames = {}
    for name, frame in built.items():
        frames[name] = model_columns(frame, features, categorical).assign(
            **{
                target: splits[name][target].to_numpy(dtype=np.int8 if schema["task"] == "classification" else np.float64),
                time_column: splits[name][time_column].array,  # .to_numpy() would box every timestamp
            }
        )

    columns = schema["columns"]
    inputs = {name: columns[name]["type"] for name in sorted({*plan.numeric, *plan.onehot, *plan.high_cardinality})}
    spec = FeatureSpec(
        features=features,
        categorical=categorical,
        target_encoded=config.categorical.target_encoding,
        inputs=inputs,
        sources={name: planned[name]["sources"] for name in features},
        target=target,
        time=time_column,
        task=schema["task"],
        history=lookup.to_json() if plan.history_keys else None,
    )
    kept = {family: sum(planned[name]["family"] == family for name in features) for family in FAMILIES}
    filters = {kind: sum(reason.startswith(kind) for reason in dropped.values()) for kind in ("near-constant", "duplicate", "correlated")}
    manifest_features = _manifest_columns(planned, categorical, dropped, built["train"], config.categorical.target_encoding)
    manifest = {
        "dataset": schema.get("dataset"),
        "task": schema["task"],
        "target": target,
        "train_rows": len(train),
        "features": {"selected": len(features), "planned": len(planned), "by_family": kept, "dropped_by_filter": filters},
        "not_built": dict(sorted(plan.skipped.items())),
        "screen": screen.to_manifest(config.screen.on_leak),
        **(
            {"history_windows": {"windows": [span_text(window) for window in plan.history_windows], "from": plan.windows_source}}
            if plan.history_keys
            else {}
        ),
        "libraries": {name: version(name) for name in LIBRARIES},
        "columns": manifest_features,
    }
    counts = {"features": len(features), "planned": len(planned), "by_family": kept, "dropped_by_filter": filters}
    warnings = [finding.message for finding in screen.findings]
    return Featurized(spec=spec, frames=frames, transformer=transformer, events=events, manifest=manifest, counts=counts, warnings=warnings)


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    limit_threads(params.runtime)
    config, windows = params.features, params.data.splits
    schema = read_yaml(SCHEMA_FILE, "run `dvc repro prepare` first")
    splits = {name: load_prepared(name) for name in SPLIT_NAMES}
    result = featurize(splits, schema, config, windows)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    outputs = {FEATURES_DIR / f"{name}.parquet": parquet_writer(frame) for name, frame in result.frames.items()}
    outputs[FEATURE_SPEC] = json_writer(result.spec.to_json())
    outputs[TRANSFORMER_FILE] = model_writer(result.transformer)
    if result.spec.history:
        outputs[HISTORY_EVENTS] = parquet_writer(result.events)
    # Sorted once here, so the drift check only has to sort the current window; the schema types pick the columns.
    outputs[REFERENCE_PROFILE] = parquet_writer(sorted_columns(splits["reference"], result.spec.inputs))
    manifest_text = yaml.safe_dump(result.manifest, sort_keys=False, allow_unicode=True, width=140)
    outputs[FEATURE_MANIFEST] = lambda path: path.write_text(
        f"# Written by featurize from conf/features/ and the train split; review its diff like code.\n{manifest_text}", encoding="utf-8"
    )
    rows = sum(len(frame) for frame in splits.values())
    outputs[FEATURIZE_SUMMARY] = json_writer({"rows": rows, **result.counts})
    write_outputs(outputs)
    seconds = time.perf_counter() - started
    # Timings vary from run to run, so they stay out of the DVC-tracked metrics (dvc.lock stays reproducible).
    timing = {"seconds": round(seconds, 2), "rows": rows, "rows_per_second": round(rows / seconds)}
    write_outputs({FEATURIZE_TIMING: json_writer(timing)})
    families = ", ".join(f"{family} {count}" for family, count in result.counts["by_family"].items())
    print(f"featurize: {result.counts['features']} features ({families}) in {seconds:.1f} s -> {FEATURES_DIR}/, {FEATURE_MANIFEST}")


if __name__ == "__main__":
    run_stage(main)
