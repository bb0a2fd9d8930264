"""Experiments, readably: `dvc exp show` with the main model metrics and only the params that differ between its rows.

    python -m commands.exps [--keep REGEX] [--drop REGEX] [any other `dvc exp show` option, e.g. -A, --md, --csv]
    make exps [KEEP=regex] [DROP=regex]

A plain `dvc exp show` has a column for every metric of every metrics file, every param and every dependency's
hash: hundreds of columns, printed as a grid of `…`. This keeps the Experiment column, the task's threshold-free
metrics (`SUMMARY_METRICS` in stages/lib/metrics.py, from reports/metrics.json) and the cross-validated score
(reports/train.json `cv.mean`), and with DVC's `--only-changed` the params whose values differ between the rows
shown. Everything else is dropped with DVC's own `--drop`. Widen it with `--keep REGEX` (a column whose name
matches is always shown: `--keep f1`, `--keep 'model\\.'`, `--keep 'drift_share'`) and narrow it with `--drop REGEX`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from stages.lib.catalog import METRICS_FILE, TRAIN_SUMMARY
from stages.lib.errors import fail, run_stage
from stages.lib.io import read_yaml
from stages.lib.metrics import SUMMARY_METRICS

PARAMS_FILE = Path("params.yaml")


def kept_columns() -> list[str]:
    """The `--keep` patterns of the default view: the Experiment column, the summary metrics, the cross-validated score.

    A metric's column is named `<file>:<name>` when another metrics file has a key of that name, so both forms match.
    """
    metrics = sorted({name for names in SUMMARY_METRICS.values() for name in names})
    return [
        "^Experiment$",
        rf"^({re.escape(METRICS_FILE.as_posix())}:)?({'|'.join(metrics)})$",
        rf"^({re.escape(TRAIN_SUMMARY.as_posix())}:)?cv\.mean$",
    ]


def dropped_columns(sections: Iterable[str]) -> str:
    """The `--drop` pattern of the default view: every column that is not a param (params are named `<section>.<key>`):
    the other metrics, the dependencies' hashes, Created. `--only-changed` then drops the params that are the same in every row."""
    return rf"^(?!({'|'.join(re.escape(section) for section in sorted(sections))})\.)"


def exp_show_arguments(sections: Iterable[str], keep: list[str], drop: list[str], extra: list[str]) -> list[str]:
    """The `dvc exp show` command line (without `dvc`) of the default view, widened by `keep` and narrowed by `drop`.

    Args:
        sections: the top-level keys of params.yaml (the param columns start with them).
        keep: more patterns of columns to show whatever else applies.
        drop: more patterns of columns to leave out.
        extra: other `dvc exp show` options, passed as they are.
    """
    arguments = ["exp", "show", "--no-pager", "--only-changed"]
    # DVC never drops a kept column, so a `drop` pattern must also take its columns out of the default keep patterns
    # (DVC matches a pattern at the start of a column's name, as this lookahead does).
    unless_dropped = f"(?!(?:{'|'.join(drop)}))" if drop else ""
    for pattern in [*(f"{unless_dropped}{default}" for default in kept_columns()), *keep]:
        arguments += ["--keep", pattern]
    for pattern in [dropped_columns(sections), *drop]:
        arguments += ["--drop", pattern]
    return [*arguments, *extra]


def param_sections(path: Path = PARAMS_FILE) -> list[str]:
    """The top-level keys of params.yaml; a clear error when it is missing or not a mapping."""
    params = read_yaml(path, "run `make params` first")
    if not isinstance(params, dict) or not params:
        fail(f"{path}: expected a mapping of params sections; run `make params`")
    return [str(section) for section in params]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="append", default=[], metavar="REGEX", help="also show the columns matching REGEX")
    parser.add_argument("--drop", action="append", default=[], metavar="REGEX", help="leave out the columns matching REGEX")
    args, extra = parser.parse_known_args(argv)
    arguments = exp_show_arguments(param_sections(), args.keep, args.drop, extra)
    from dvc.cli import main as dvc_main  # imported here: `--help` and a missing params.yaml answer at once

    code = dvc_main(arguments)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    run_stage(main)
