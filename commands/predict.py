"""predict: score a CSV or Parquet file with a registered model version, through the features it was trained with.

    python -m commands.predict --model model@v1.0.0 --input rows.csv --output scores.csv
    python -m commands.predict --model model#prod --input rows.parquet --output scores.parquet
    make predict MODEL=model@v1.0.0 INPUT=rows.csv OUTPUT=scores.csv

The model version is a GTO registry entry (a git tag). Its revision is materialized in a temporary
worktree (data contract, schema, fitted feature transformer, labelled history, model) and the input
rows must look like that revision's prepared table: every input column of `data/schema.yaml`, with
its type, and the time column written in that version's `data.time.format`; the cells read as
missing are that version's `data.missing_values`. The output is the input with a `prediction` column: the probability of the positive
class, or the predicted value for regression. Rows so late that their history features would
reach past the version's labelled history are refused (`beyond_history`), unless --score-beyond-history
scores them and marks them in a `beyond_history` column.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.catalog import FEATURE_SPEC, HISTORY_EVENTS, MODEL_FILE, SCHEMA_FILE, TRANSFORMER_FILE, FeatureSpec
from stages.lib.config import load_params
from stages.lib.contract import DEFAULT_MISSING_VALUES, parse_time, refuse_infinite
from stages.lib.errors import fail, run_stage
from stages.lib.features.serving import apply_features
from stages.lib.io import parquet_writer, read_json, read_parquet, read_table, read_yaml, write_outputs
from stages.lib.models import load_model, predict_scores
from stages.lib.revisions import materialized, run
from stages.lib.runtime import limit_threads

PREDICTION = "prediction"
BEYOND_HISTORY = "beyond_history"  # with --score-beyond-history: True where the row's history windows reach past the stored outcomes
INPUT_HINT = "check --input (INPUT= with make predict)"
MODEL_REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)(?:@(?P<version>v[\w.+-]+)|#(?P<stage>[\w-]+))$")


def model_ref(reference: str, repo: Path) -> str:
    """The git tag behind `name@version` or `name#stage` in the GTO registry."""
    match = MODEL_REFERENCE.match(reference)
    if not match:
        fail(f"--model {reference!r}: expected <name>@<version> (e.g. model@v1.0.0) or <name>#<stage> (e.g. model#prod); see `gto show`")
    if match["version"]:
        return f"{match['name']}@{match['version']}"
    shown = run(["gto", "show", reference, "--ref"], repo, check=False)
    ref = shown.stdout.strip().splitlines()[-1] if shown.returncode == 0 and shown.stdout.strip() else ""
    if not ref:
        fail(f"--model {reference}: no version of '{match['name']}' is in stage '{match['stage']}'; see `gto show` and `make promote`")
    return ref


def validate_rows(rows: pd.DataFrame, schema: dict[str, Any], spec: FeatureSpec, where: str) -> pd.DataFrame:
    """The rows typed as training saw them, or a clear error naming the column and what was expected."""
    if rows.empty:
        fail(f"{where}: no rows to score")
    key_columns = {column for key in (spec.history or {}).get("keys", []) for column in key}
    needed = sorted({*spec.inputs, spec.time, *key_columns})
    missing = [column for column in needed if column not in rows.columns]
    if missing:
        fail(
            f"{where}: missing column '{missing[0]}' (the model was trained on {', '.join(needed)}; "
            f"see data/schema.yaml at that version); add it to the file"
        )
    typed = rows.copy()
    # Versions trained before data.time.format and data.missing_values existed used these defaults.
    time_format = schema.get("time_format", "iso8601")
    tokens = ", ".join(repr(token) for token in schema.get("missing_values", DEFAULT_MISSING_VALUES))
    typed[spec.time] = parse_time(
        rows[spec.time], time_format, where, spec.time, f"write it as the model was trained with (data.time.format: {time_format})"
    )
    for column in needed:
        kind = schema["columns"].get(column, {}).get("type")
        if kind in ("numeric", "boolean"):
            values = pd.to_numeric(rows[column], errors="coerce")
            bad = rows[column][values.isna() & rows[column].notna()]
            if len(bad):
                fail(f"{where}: column '{column}' must be {kind} (as in training), got {bad.iloc[0]!r} in {len(bad):,} row(s)")
            typed[column] = values.astype(np.float64)
            refuse_infinite(typed, where, [column], f"fix those rows; a missing value is written as one of {tokens}")
        elif kind == "categorical":
            typed[column] = rows[column].astype("string")
    return typed


def beyond_history(times: pd.Series, events: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Which rows have history windows reaching past the last outcome this version's labelled history holds.

    A row at time t counts the outcomes of (t - known_after - window, t - known_after]. When t - known_after
    is later than the last stored outcome, part of every window lies where no outcome was recorded, and its
    counts and rates fall towards 0 and the prior: a training/serving skew, not a fact about the row.

    Args:
        times: the rows' times (UTC).
        events: the labelled history (data/features/history.parquet of the version).
        spec: the version's feature spec (no history features: no row is beyond).

    Returns:
        A boolean per row.
    """
    if not spec.history:
        return np.zeros(len(times), dtype=bool)
    if events.empty:
        return np.ones(len(times), dtype=bool)
    known_after = pd.Timedelta(spec.history["known_after"])
    beyond: np.ndarray = (times - known_after > events[spec.time].max()).to_numpy(dtype=bool)
    return beyond


def _refuse_beyond_history(typed: pd.DataFrame, beyond: np.ndarray, events: pd.DataFrame, spec: FeatureSpec, where: str) -> None:
    times = typed[spec.time][beyond]
    assert spec.history is not None  # beyond_history marks rows only for versions with history features
    last = events[spec.time].max() if not events.empty else None
    known = f"its outcomes end at {last:%Y-%m-%d %H:%M} UTC" if last is not None else "it holds no outcomes"
    fail(
        f"{where}: {int(beyond.sum()):,} of {len(typed):,} row(s), from {times.min():%Y-%m-%d %H:%M} to {times.max():%Y-%m-%d %H:%M} UTC, "
        f"lie beyond the labelled history of this version ({known}; an outcome counts {spec.history['known_after']} after its row): "
        f"their history features would read missing outcomes as none. Score rows up to that end plus {spec.history['known_after']}, "
        f"or pass --score-beyond-history (make predict BEYOND_HISTORY=1) to score them marked in a '{BEYOND_HISTORY}' column"
    )


def score(input_path: Path, root: Path, allow_beyond_history: bool = False) -> pd.DataFrame:
    """Predictions for the input file's rows with the artifacts of one materialized revision.

    Rows beyond the version's labelled history (`beyond_history`) are refused, or, with `allow_beyond_history`,
    scored and marked in a `beyond_history` column.
    """
    schema = read_yaml(root / SCHEMA_FILE, "this version has no data/schema.yaml")
    spec = FeatureSpec.from_json(read_json(root / FEATURE_SPEC, "this version has no feature spec"))
    transformer = load_model(root / TRANSFORMER_FILE)
    model = load_model(root / MODEL_FILE)
    events = read_parquet(root / HISTORY_EVENTS, "this version has no labelled history") if spec.history else pd.DataFrame()
    rows = read_table(input_path, INPUT_HINT, schema.get("missing_values", DEFAULT_MISSING_VALUES))
    typed = validate_rows(rows, schema, spec, str(input_path))
    beyond = beyond_history(typed[spec.time], events, spec)
    if beyond.any() and not allow_beyond_history:
        _refuse_beyond_history(typed, beyond, events, spec, str(input_path))
    features = apply_features(typed, transformer, events, spec)
    scored = rows.assign(**{PREDICTION: predict_scores(model, features, spec.task)})
    return scored.assign(**{BEYOND_HISTORY: beyond}) if allow_beyond_history else scored


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="<name>@<version> or <name>#<stage> from the GTO registry")
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet rows shaped like the prepared table")
    parser.add_argument("--output", required=True, type=Path, help="where to write the rows with their prediction (.csv or .parquet)")
    parser.add_argument(
        "--score-beyond-history",
        action="store_true",
        help=f"score rows later than the version's labelled history covers too, marked in a '{BEYOND_HISTORY}' column",
    )
    args = parser.parse_args(argv)
    if args.output.suffix not in (".csv", ".parquet"):
        fail(f"--output {args.output}: write .csv or .parquet")
    if not args.input.is_file():  # before the model version is materialized
        fail(f"{args.input}: file not found; {INPUT_HINT}")
    limit_threads(load_params().runtime)
    repo = Path.cwd()
    ref = model_ref(args.model, repo)
    with materialized(ref, repo, what="--model") as revision:
        scored = score(args.input, revision.root, args.score_beyond_history)
    writer = parquet_writer(scored) if args.output.suffix == ".parquet" else (lambda path: scored.to_csv(path, index=False))
    write_outputs({args.output: writer})
    print(f"predict: {len(scored):,} rows scored with {args.model} ({ref}, {revision.sha[:8]}) -> {args.output}")


if __name__ == "__main__":
    run_stage(main)
