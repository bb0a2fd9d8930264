"""Scoring new rows with one checkout's artifacts, honestly: typed rows, the outcomes known at scoring time, coverage.

History features count outcomes known before each row (`stages/lib/features/history.py`). At scoring time
those are the version's labelled history (data/features/history.parquet) plus the outcomes supplied with
the rows. A row whose history windows reach past the last known outcome would read the missing outcomes
as none (counts towards 0, rates towards the prior): `coverage` says which rows are fully covered, partly
covered (scored, `history_complete` False) and entirely beyond (refused unless asked for, then marked).

Everything here uses only the checkout at `root`: a registered version runs it inside its own worktree
(commands/score_here.py), so its own feature code scores its own fitted objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from stages.lib.catalog import FEATURE_SPEC, HISTORY_EVENTS, MODEL_FILE, SCHEMA_FILE, TRANSFORMER_FILE, FeatureSpec
from stages.lib.config import PARAMS_FILE, load_params
from stages.lib.config.data import Target
from stages.lib.contract import DEFAULT_MISSING_VALUES, parse_time, refuse_infinite, refuse_type_mismatches
from stages.lib.errors import fail
from stages.lib.features.history import HistoryLookup, look_back
from stages.lib.features.serving import apply_features
from stages.lib.io import read_json, read_parquet, read_table, read_yaml
from stages.lib.models import load_model, predict_scores
from stages.lib.production import BEYOND_HISTORY, HISTORY_COMPLETE, INPUT_HINT, OUTCOMES_HINT, PREDICTION
from stages.lib.target import target_values
from stages.lib.timespan import widest

# With allow_beyond_history: True where every history window of the row lies past the known outcomes.
FIX_BEYOND = (
    "supply their outcomes up to then (--outcomes, OUTCOMES= with make predict; make add-labels for the production store), "
    "or score them marked with --score-beyond-history (BEYOND_HISTORY=1 with make predict or make score-batch)"
)


@dataclass(frozen=True)
class Artifacts:
    """What one checkout scores with: its contract, feature spec, fitted transformer, model and labelled history."""

    schema: dict[str, Any]
    spec: FeatureSpec
    transformer: Any
    model: BaseEstimator
    events: pd.DataFrame  # the labelled history featurize looked back on (empty without history features)
    target: Target  # data.target: the source column and the rule that makes the target from it

    @property
    def missing_values(self) -> list[str]:
        # Versions trained before data.missing_values existed used the defaults.
        return list(self.schema.get("missing_values", DEFAULT_MISSING_VALUES))

    @property
    def lookup(self) -> HistoryLookup | None:
        return HistoryLookup.from_json(self.spec.history) if self.spec.history else None


def load_artifacts(root: Path) -> Artifacts:
    """The artifacts of the checkout at `root` (a version's worktree, or the workspace)."""
    schema = read_yaml(root / SCHEMA_FILE, "this version has no data/schema.yaml", shown_as=SCHEMA_FILE)
    spec = FeatureSpec.from_json(read_json(root / FEATURE_SPEC, "this version has no feature spec", shown_as=FEATURE_SPEC))
    data = load_params(root / PARAMS_FILE).data
    return Artifacts(
        schema=schema,
        spec=spec,
        transformer=load_model(root / TRANSFORMER_FILE),
        model=load_model(root / MODEL_FILE),
        events=read_parquet(root / HISTORY_EVENTS, "this version has no labelled history") if spec.history else pd.DataFrame(),
        target=data.target_spec,
    )


def shown(value: Any) -> str:
    """A cell as a message shows it: its Python value's repr (2, 'yes'), not NumPy's (np.int64(2))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def key_columns(spec: FeatureSpec) -> list[str]:
    """The columns history features are keyed by (none without history)."""
    return sorted({column for key in (spec.history or {}).get("keys", []) for column in key})


def _typed_time(frame: pd.DataFrame, schema: dict[str, Any], time: str, where: str) -> pd.Series:
    # Versions trained before data.time.format existed wrote ISO-8601.
    time_format = schema.get("time_format", "iso8601")
    return parse_time(frame[time], time_format, where, time, f"write it as the model was trained with (data.time.format: {time_format})")


def _typed_column(frame: pd.DataFrame, column: str, entry: dict[str, Any], where: str, tokens: str) -> pd.Series:
    """One column typed as training saw it (numeric and boolean as float64, categorical as text); `entry`: the
    column's data/schema.yaml entry. Numbers in a categorical column whose training levels were text are refused:
    read as text they would all be unseen levels, and every score would change without a word."""
    kind = entry.get("type")
    if kind in ("numeric", "boolean"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][values.isna() & frame[column].notna()]
        if len(bad):
            fail(f"{where}: column '{column}' must be {kind} (as in training), got {shown(bad.iloc[0])} in {len(bad):,} row(s)")
        typed = values.astype(np.float64)
        refuse_infinite(typed.to_frame(column), where, [column], f"fix those rows; a missing value is written as one of {tokens}")
        return typed
    if kind == "categorical":
        refuse_type_mismatches(frame[[column]], {column: entry}, where, "write the categories as training saw them")
        return frame[column].astype("string")
    return frame[column]


def validate_rows(rows: pd.DataFrame, schema: dict[str, Any], spec: FeatureSpec, where: str) -> pd.DataFrame:
    """The rows typed as training saw them, or a clear error naming the column and what was expected."""
    if rows.empty:
        fail(f"{where}: no rows to score")
    return typed_rows(rows, schema, spec, where)


def typed_rows(rows: pd.DataFrame, schema: dict[str, Any], spec: FeatureSpec, where: str) -> pd.DataFrame:
    """`validate_rows` without the check for rows: the dask engine types each partition, and an empty one is no error."""
    needed = sorted({*spec.inputs, spec.time, *key_columns(spec)})
    missing = [column for column in needed if column not in rows.columns]
    if missing:
        fail(
            f"{where}: missing column '{missing[0]}' (the model was trained on {', '.join(needed)}; "
            f"see data/schema.yaml at that version); add it to the file"
        )
    tokens = ", ".join(repr(token) for token in schema.get("missing_values", DEFAULT_MISSING_VALUES))
    typed = rows.copy()
    typed[spec.time] = _typed_time(rows, schema, spec.time, where)
    for column in needed:
        if column != spec.time:
            typed[column] = _typed_column(rows, column, schema["columns"].get(column, {}), where, tokens)
    return typed


def outcome_events(outcomes: pd.DataFrame, artifacts: Artifacts, where: str) -> pd.DataFrame:
    """Labelled rows supplied at scoring time, shaped like the labelled history's events.

    The file holds the time column, the history key columns and the target, either as prepare names it
    (e.g. `late`, 0/1 for classification) or as the contract's source column (e.g. `arr_delay`, turned into
    the target by that version's rule, `data.target`: stages/lib/target.py); when both are there the prepared
    target is used. Rows without a target value are not outcomes and are left out, as prepare leaves them out.

    Args:
        outcomes: the supplied rows, as read.
        artifacts: the version scoring them.
        where: how to name the file in messages.

    Returns:
        The events: the time (UTC), the key columns typed as in training, and the target.
    """
    spec, schema = artifacts.spec, artifacts.schema
    target, time, keys = spec.target, spec.time, key_columns(spec)
    if outcomes.empty:
        fail(f"{where}: no rows; an outcomes file holds labelled rows (the time, the history keys and the target); {OUTCOMES_HINT}")
    rule = artifacts.target
    sources = [name for name in dict.fromkeys([target, rule.column]) if name in outcomes.columns]
    if not sources:
        fail(
            f"{where}: no outcome column: expected '{target}' (as prepare writes it) or '{rule.column}' "
            f"(the source column; {rule.rule}); add one"
        )
    missing = [column for column in [time, *keys] if column not in outcomes.columns]
    if missing:
        fail(
            f"{where}: missing column '{missing[0]}' (outcomes need the time column and the history keys: "
            f"{', '.join([time, *keys])}); add it to the file"
        )
    source = sources[0]
    classification = spec.task == "classification"
    if source == target:
        values = pd.to_numeric(outcomes[source], errors="coerce")
        bad = outcomes[source][values.isna() & outcomes[source].notna()]
        if len(bad):
            fail(f"{where}: column '{source}' must be numeric, got {shown(bad.iloc[0])} in {len(bad):,} row(s); fix those rows")
        if classification:
            bad = outcomes[source][values.notna() & ~values.isin([0, 1])]
            if len(bad):
                fail(f"{where}: column '{target}' must be 0 or 1 (as prepare writes it), got {shown(bad.iloc[0])} in {len(bad):,} row(s)")
    labelled = outcomes[source].notna().to_numpy()
    if not labelled.any():
        fail(f"{where}: every row lacks '{source}': no outcome to use; {OUTCOMES_HINT}")
    rows = outcomes[labelled]
    # The source column, as that version's prepare turned it into the target (one rule: stages/lib/target.py).
    values = values[labelled] if source == target else target_values(rows[source], rule, where)
    tokens = ", ".join(repr(token) for token in artifacts.missing_values)
    columns = {time: _typed_time(rows, schema, time, where)}
    columns |= {key: _typed_column(rows, key, schema["columns"].get(key, {}), where, tokens) for key in keys}
    columns[target] = values.astype(np.int8 if classification else np.float64)
    return pd.DataFrame(columns).reset_index(drop=True)


def known_events(history: pd.DataFrame, outcomes: Sequence[pd.DataFrame], spec: FeatureSpec) -> pd.DataFrame:
    """The labelled history plus the supplied outcomes later than its last event.

    A supplied outcome at or before the history's last event is already in the history (featurize stored
    every labelled row up to there), so it is not counted twice. Each outcome must be supplied once: two
    files holding the same later row count it twice.
    """
    columns = sorted({spec.time, spec.target, *key_columns(spec)})
    if not outcomes:
        return history
    supplied = pd.concat([frame[columns] for frame in outcomes], ignore_index=True)
    if not history.empty:
        later = supplied.loc[supplied[spec.time] > history[spec.time].max()]
        combined: pd.DataFrame = pd.concat([history.loc[:, columns], later], ignore_index=True)
        return combined
    return supplied.sort_values(spec.time, kind="stable", ignore_index=True)


@dataclass(frozen=True)
class Coverage:
    complete: np.ndarray  # every window ends at or before the last known outcome
    beyond: np.ndarray  # every window starts at or after it: none can hold a known outcome
    last_outcome: pd.Timestamp | None  # None: no outcome is known


def coverage(times: pd.Series, events: pd.DataFrame, lookup: HistoryLookup | None, time: str) -> Coverage:
    """How far each row's history windows are covered by the known outcomes.

    A row at t looks at outcomes of (t - known_after - window, t - known_after] (`look_back`, the rule
    history features use, calendar spans month-wise). With L the last known outcome: complete when
    t - known_after <= L; beyond when every window starts at or after L (each count would be 0 and each
    rate the prior); partly covered in between.

    Args:
        times: the rows' times (UTC).
        events: the known outcomes (history and supplied).
        lookup: the version's history lookup (None: no history features, every row is complete).
        time: the time column of `events`.

    Returns:
        Two boolean arrays (complete, beyond) and the last known outcome.
    """
    return coverage_after(times, None if events.empty else events[time].max(), lookup)


def coverage_after(times: pd.Series, last: pd.Timestamp | None, lookup: HistoryLookup | None) -> Coverage:
    """`coverage` from the last known outcome alone (None: none is known): what each dask partition needs."""
    if lookup is None:
        return Coverage(np.ones(len(times), dtype=bool), np.zeros(len(times), dtype=bool), None)
    if last is None:
        return Coverage(np.zeros(len(times), dtype=bool), np.ones(len(times), dtype=bool), None)
    stamps, last_stamp = pd.DatetimeIndex(times).as_unit("ns").asi8, pd.Timestamp(last).as_unit("ns").value
    reaches = [look_back(stamps, lookup.known_after, window) for window in lookup.windows]
    complete = reaches[0][1] <= last_stamp
    beyond = np.min([start for start, _ in reaches], axis=0) >= last_stamp
    return Coverage(complete, beyond, last)


def refuse_beyond(times: pd.Series, cover: Coverage, lookup: HistoryLookup, where: str) -> None:
    """Stop with one line: how many rows lie beyond the known outcomes, their time range, and the fix."""
    beyond = times[cover.beyond]
    refuse_beyond_counted(len(beyond), len(times), beyond.min(), beyond.max(), cover.last_outcome, lookup, where)


def refuse_beyond_counted(
    beyond: int, rows: int, first: pd.Timestamp, last: pd.Timestamp, last_outcome: pd.Timestamp | None, lookup: HistoryLookup, where: str
) -> NoReturn:
    """`refuse_beyond` from counts and times (the dask engine adds them up over its partitions): the same line."""
    known = f"the last known outcome is at {last_outcome:%Y-%m-%d %H:%M} UTC" if last_outcome is not None else "no outcome is known"
    fail(
        f"{where}: {beyond:,} of {rows:,} row(s), from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC, "
        f"lie beyond the known outcomes ({known}; a row's history reaches back {widest(lookup.windows)} from {lookup.known_after} "
        f"before it): every history feature would read the missing outcomes as none; {FIX_BEYOND}"
    )


def score_rows(
    rows: pd.DataFrame, artifacts: Artifacts, outcomes: Sequence[pd.DataFrame], allow_beyond_history: bool, where: str
) -> pd.DataFrame:
    """The rows with their `prediction` and `history_complete` (and `beyond_history` when allowed).

    Args:
        rows: the rows to score, as read (shaped like the version's prepared table).
        artifacts: the version's artifacts.
        outcomes: supplied outcomes, each as `outcome_events` returns them.
        allow_beyond_history: score rows beyond the known outcomes (marked) instead of refusing them.
        where: how to name the rows in messages.

    Returns:
        `rows` with the added columns, indexed like `rows`.
    """
    spec = artifacts.spec
    typed = validate_rows(rows, artifacts.schema, spec, where)
    events = known_events(artifacts.events, outcomes, spec)
    lookup = artifacts.lookup
    cover = coverage(typed[spec.time], events, lookup, spec.time)
    if cover.beyond.any() and not allow_beyond_history:
        assert lookup is not None  # only rows of a version with history features can be beyond
        refuse_beyond(typed[spec.time], cover, lookup, where)
    return add_scores(rows, typed, artifacts.transformer, artifacts.model, spec, events, cover, allow_beyond_history)


def add_scores(
    rows: pd.DataFrame,
    typed: pd.DataFrame,
    transformer: Any,
    model: BaseEstimator,
    spec: FeatureSpec,
    events: pd.DataFrame,
    cover: Coverage,
    allow_beyond_history: bool,
) -> pd.DataFrame:
    """`rows` with the model's `prediction` from the `typed` rows' features and the coverage marks: the one
    scoring step of both engines (the dask engine runs it per partition with the events its rows can see)."""
    features = apply_features(typed, transformer, events, spec)
    scored = rows.assign(**{PREDICTION: predict_scores(model, features, spec.task), HISTORY_COMPLETE: cover.complete})
    return scored.assign(**{BEYOND_HISTORY: cover.beyond}) if allow_beyond_history else scored


def score_files(
    root: Path,
    input_path: Path,
    outcome_paths: Sequence[Path],
    allow_beyond_history: bool,
    input_label: str | None = None,
    outcomes_label: str | None = None,
) -> pd.DataFrame:
    """`score_rows` on files, read with the version's own missing-value tokens (for predict and score_here).

    `input_label` / `outcomes_label` name the files in messages when they are temporary copies.
    """
    artifacts = load_artifacts(root)
    outcomes = []
    for path in outcome_paths:
        table = read_table(path, OUTCOMES_HINT, artifacts.missing_values)
        outcomes.append(outcome_events(table, artifacts, outcomes_label or str(path)))
    rows = read_table(input_path, INPUT_HINT, artifacts.missing_values)
    return score_rows(rows, artifacts, outcomes, allow_beyond_history, input_label or str(input_path))
