"""predict: score a CSV or Parquet file with a registered model version, through the features it was trained with.

    python -m commands.predict --model model@v1.0.0 --input rows.csv --output scores.csv
    python -m commands.predict --model model#prod --input rows.parquet --outcomes labels.csv --output scores.parquet
    python -m commands.predict --model workspace --input rows.csv --output scores.csv
    make predict MODEL=model@v1.0.0 INPUT=rows.csv OUTPUT=scores.csv [OUTCOMES="a.csv b.parquet"] [BEYOND_HISTORY=1]

The model version is a GTO registry entry (a git tag). Its revision is materialized in a temporary
worktree and scored there by its own code (commands/score_here.py, stages/lib/scoring.py), with its data
contract, fitted feature transformer, labelled history and model; the libraries that change results must
match its requirements.lock. `workspace` scores with this checkout's code and committed pipeline outputs.
The input rows must look like that version's prepared table: every input column of `data/schema.yaml`,
with its type, and the time column written in that version's `data.time.format`; the cells read as
missing are that version's `data.missing_values`.

--outcomes (repeatable) gives labelled rows known now: the time, the history key columns and the target
(as prepare names it, or its source column). History features count them with the version's labelled
history, as featurize would have. Rows whose every history window lies past the last known outcome are
refused, unless --score-beyond-history scores them and marks them in a `beyond_history` column; rows
whose windows are partly covered are scored with `history_complete` False.

With `engine: dask` in params.yaml the rows are scored on a Dask cluster, partition by partition, with the
same scores, marks and refusals (stages/lib/scoring_partitioned.py). --input may then also be a folder of
Parquet parts or a glob of files (quoted), and --output a folder (no suffix) the workers fill with
part-00000.parquet, ... one per input piece, in input order; a .csv or .parquet output is one file, the
pandas engine's, written by this process from the collected rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.lib.config import EngineConfig, load_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import GLOB_CHARACTERS, FolderWriter, parquet_files, parquet_writer, source_files, write_outputs
from stages.lib.production import BEYOND_HISTORY, HISTORY_COMPLETE, INPUT_HINT, OUTCOMES_HINT
from stages.lib.runtime import limit_threads
from stages.lib.scoring_versions import ScoredBatch, score_files_with


def check_paths(input_path: Path, output: Path, outcomes: list[Path], engine: EngineConfig) -> None:
    """The input, output and outcome paths the engine can take, checked before a model version is materialized."""
    if engine.distributed:
        if output.suffix not in (".csv", ".parquet", ""):
            fail(f"--output {output}: write .csv, .parquet, or a folder (no suffix) of Parquet parts")
        # One line when nothing is there: io's own messages, as for prepare's sources.
        parquet_files(input_path, INPUT_HINT) if input_path.is_dir() else source_files(input_path, INPUT_HINT)
    else:
        if output.suffix not in (".csv", ".parquet"):
            fail(f"--output {output}: write .csv or .parquet")
        if input_path.is_dir() or any(character in input_path.name for character in GLOB_CHARACTERS):
            fail(f"--input {input_path}: a folder or a glob is read on the dask engine only (engine: dask); give one CSV or Parquet file")
        if not input_path.is_file():
            fail(f"{input_path}: file not found; {INPUT_HINT}")
    for path in outcomes:
        if not path.is_file():
            fail(f"{path}: file not found; {OUTCOMES_HINT}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="<name>@<version> or <name>#<stage> from the GTO registry, or workspace")
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="CSV or Parquet rows shaped like the prepared table (dask engine: also a folder of parts or a glob)",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help="where to write the rows with their prediction (.csv or .parquet; dask engine: also a folder)",
    )
    parser.add_argument(
        "--outcomes",
        action="append",
        default=[],
        type=Path,
        help="CSV or Parquet labelled rows known now (time, history keys, target); repeatable",
    )
    parser.add_argument(
        "--score-beyond-history",
        action="store_true",
        help=f"score rows beyond the known outcomes too, marked in a '{BEYOND_HISTORY}' column",
    )
    args = parser.parse_args(argv)
    params = load_params()
    engine = params.engine
    check_paths(args.input, args.output, args.outcomes, engine)  # before the model version is materialized
    limit_threads(params.runtime)
    if not args.output.suffix:  # a folder of parts, filled by the workers (dask engine); the batch holds the marks
        batches: list[ScoredBatch] = []
        folder = FolderWriter(
            lambda path: batches.append(
                score_files_with(args.model, Path.cwd(), args.input, args.outcomes, args.score_beyond_history, engine=engine, folder=path)
            )
        )
        write_outputs({args.output: folder})
        batch = batches[0]
    else:
        batch = score_files_with(args.model, Path.cwd(), args.input, args.outcomes, args.score_beyond_history, engine=engine)
        scored = batch.scores
        writer = parquet_writer(scored) if args.output.suffix == ".parquet" else (lambda path: scored.to_csv(path, index=False))
        write_outputs({args.output: writer})
    scored = batch.scores
    print(f"predict: {len(scored):,} rows scored with {args.model} ({batch.ref}, {batch.model_sha[:8]}) -> {args.output}")
    partial = int((~scored[HISTORY_COMPLETE]).sum() - (scored[BEYOND_HISTORY].sum() if BEYOND_HISTORY in scored else 0))
    if partial:
        print(
            f"predict: note: {partial:,} row(s) have history windows only partly covered by the known outcomes "
            f"({HISTORY_COMPLETE} False): their history features miss the latest outcomes; supply them with --outcomes"
        )
    if BEYOND_HISTORY in scored and scored[BEYOND_HISTORY].any():
        print(f"predict: note: {int(scored[BEYOND_HISTORY].sum()):,} row(s) lie beyond the known outcomes, marked in '{BEYOND_HISTORY}'")


if __name__ == "__main__":
    run_stage(main)
