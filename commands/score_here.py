"""score_here: score rows with THIS checkout's code and artifacts; `predict` runs it inside a version's worktree.

    python -m commands.score_here --input rows.csv --output scores.parquet [--outcomes labels.csv ...] [--score-beyond-history]

A registered version is scored by its own code: `predict` materializes the version's revision in a temporary
worktree and runs this module there (cwd = the worktree), so the version's own stages/lib/features code
transforms with its own fitted objects. Its arguments are an interface between versions: a later predict
runs an older version's copy of this file, so keep them (add new ones as optional). The output is always
Parquet: the input rows as read, plus `prediction` and `history_complete` (and `beyond_history` with
--score-beyond-history); a refusal is one `error:` line on stderr and exit code 2, as every command's.

--engine (JSON of an `engine` section, from the params.yaml of the checkout running predict) selects where to
score; with the dask engine the input may also be a folder of Parquet parts or a glob, and --output a folder
(no suffix) the workers fill with parts (stages/lib/scoring_partitioned.py). `ENGINES` says which engines this
version's scoring runs on: predict reads it from this file (without running it) before asking for another engine
than pandas, so a version written before the dask engine is refused, never scored on pandas instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stages.lib.config import EngineConfig, load_params
from stages.lib.errors import run_stage
from stages.lib.io import parquet_writer, write_outputs
from stages.lib.runtime import limit_threads
from stages.lib.scoring import score_files

ENGINES = ("pandas", "dask")  # read by predict (scoring_versions.entry_engines) before it asks for an engine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet rows shaped like the prepared table")
    parser.add_argument("--output", required=True, type=Path, help="where to write the scored rows (Parquet)")
    parser.add_argument("--outcomes", action="append", default=[], type=Path, help="labelled rows known now (repeatable)")
    parser.add_argument("--score-beyond-history", action="store_true", help="score rows beyond the known outcomes, marked")
    parser.add_argument("--input-label", default=None, help="how to name the input in messages (a temporary copy's origin)")
    parser.add_argument("--outcomes-label", default=None, help="how to name the outcome files in messages")
    parser.add_argument("--engine", default=None, help="the engine section as JSON (default: pandas)")
    args = parser.parse_args(argv)
    limit_threads(load_params().runtime)
    engine = EngineConfig.parse(json.loads(args.engine), ["--engine"]) if args.engine else None
    labels = (args.input_label, args.outcomes_label)
    if engine is not None and engine.distributed:
        from stages.lib.scoring_partitioned import score_files_on_dask

        # A folder: one named without a suffix, or the (suffixed) temporary folder predict stages the output in.
        folder = args.output if args.output.is_dir() or not args.output.suffix else None
        scored = score_files_on_dask(Path(), args.input, args.outcomes, args.score_beyond_history, engine, folder, labels)
        if scored is not None:
            write_outputs({args.output: parquet_writer(scored)})
        return
    scored = score_files(Path(), args.input, args.outcomes, args.score_beyond_history, *labels)
    write_outputs({args.output: parquet_writer(scored)})


if __name__ == "__main__":
    run_stage(main)
