"""score_here: score rows with THIS checkout's code and artifacts; `predict` runs it inside a version's worktree.

    python -m commands.score_here --input rows.csv --output scores.parquet [--outcomes labels.csv ...] [--score-beyond-history]

A registered version is scored by its own code: `predict` materializes the version's revision in a temporary
worktree and runs this module there (cwd = the worktree), so the version's own stages/lib/features code
transforms with its own fitted objects. Its arguments are an interface between versions: a later predict
runs an older version's copy of this file, so keep them (add new ones as optional). The output is always
Parquet: the input rows as read, plus `prediction` and `history_complete` (and `beyond_history` with
--score-beyond-history); a refusal is one `error:` line on stderr and exit code 2, as every command's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.lib.config import load_params
from stages.lib.errors import run_stage
from stages.lib.io import parquet_writer, write_outputs
from stages.lib.runtime import limit_threads
from stages.lib.scoring import score_files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet rows shaped like the prepared table")
    parser.add_argument("--output", required=True, type=Path, help="where to write the scored rows (Parquet)")
    parser.add_argument("--outcomes", action="append", default=[], type=Path, help="labelled rows known now (repeatable)")
    parser.add_argument("--score-beyond-history", action="store_true", help="score rows beyond the known outcomes, marked")
    parser.add_argument("--input-label", default=None, help="how to name the input in messages (a temporary copy's origin)")
    parser.add_argument("--outcomes-label", default=None, help="how to name the outcome files in messages")
    args = parser.parse_args(argv)
    limit_threads(load_params().runtime)
    scored = score_files(Path(), args.input, args.outcomes, args.score_beyond_history, args.input_label, args.outcomes_label)
    write_outputs({args.output: parquet_writer(scored)})


if __name__ == "__main__":
    run_stage(main)
