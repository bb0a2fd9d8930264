"""Scoring on the dask engine (engine.name: dask): stages/lib/scoring.py applied per partition on the workers.

The input is one CSV or Parquet file, a folder of Parquet parts (part-00000.parquet, ... as the dask engine
writes a split) or a glob of files; it is read in pieces (stages/lib/io.py `pieces`: Parquet row groups, CSV
byte ranges cut at line ends, with the column types pandas infers over the whole table), one task each. The
stage's process holds what the pandas engine holds but the rows: the version's artifacts and the known outcomes
(the labelled history plus --outcomes, `known_events`).

Two passes over the pieces. The first types each piece (`typed_rows`) and counts its rows, its time span and
the rows beyond the known outcomes (`coverage_after`), so the refusal of rows beyond the history is the pandas
engine's own line (`refuse_beyond_counted`); a piece that fails a check is reported by collecting the checked
columns of every piece and running the pandas engine's `validate_rows` on them, so the message (first bad
value, row count) is the pandas engine's too. The second scores each piece with `add_scores`, the pandas
engine's step, given only the known outcomes its rows can reach (`stages.featurize.reach`, the cut featurize's
dask path uses): history features are computed by the one function, exactly across pieces. The scored pieces
are collected into one table (a file output: the pandas engine's frame) or written by the workers as the parts
of a folder, one per piece, in input order. Dask is imported inside these functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from stages.lib.catalog import FeatureSpec
from stages.lib.config import EngineConfig
from stages.lib.errors import UserError, fail
from stages.lib.features.history import HistoryLookup
from stages.lib.io import (
    FolderWriter,
    Piece,
    Profile,
    is_parquet,
    merged_types,
    parquet_files,
    parquet_writer,
    pieces,
    profile,
    read_table,
    read_typed,
    source_files,
    write_outputs,
)
from stages.lib.production import INPUT_HINT, OUTCOMES_HINT
from stages.lib.scoring import (
    add_scores,
    coverage_after,
    key_columns,
    known_events,
    load_artifacts,
    outcome_events,
    refuse_beyond_counted,
    typed_rows,
    validate_rows,
)

CSV_BLOCK_BYTES = 64 * 2**20  # a CSV piece: about this many bytes, cut at a line end (as prepare reads a source)


@dataclass(frozen=True)
class Scorer:
    """What each partition is scored with (sent to each worker once): the version's contract, spec, transformer, model."""

    schema: dict[str, Any]
    spec: FeatureSpec
    transformer: Any
    model: BaseEstimator
    tokens: tuple[str, ...]  # the version's data.missing_values
    where: str  # how messages name the input
    types: dict[str, Any] | None  # the column types over every CSV piece (None: Parquet pieces keep their own)


class Facts(NamedTuple):
    """One piece after the first pass: its rows, whether a check failed, its time span and the rows beyond."""

    rows: int
    failed: bool
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    beyond: int
    beyond_first: pd.Timestamp | None
    beyond_last: pd.Timestamp | None


def input_pieces(path: Path, blocksize: int) -> list[Piece]:
    """The pieces of the input, in row order: a folder's parts, a glob's files (in name order), or one file, cut."""
    files = parquet_files(path, INPUT_HINT) if path.is_dir() else source_files(path, INPUT_HINT)
    return [piece for file in files for piece in pieces(file, blocksize)]


def _read(piece: Piece, scorer: Scorer, seen: Profile | None) -> pd.DataFrame:
    if scorer.types is None or seen is None:
        return piece.read(scorer.tokens)
    return read_typed(piece, scorer.tokens, scorer.types, seen)


def _profile(piece: Piece, tokens: Sequence[str]) -> Profile:
    return profile(piece.read(tokens))


def _facts(piece: Piece, scorer: Scorer, seen: Profile | None, last_outcome: pd.Timestamp | None, lookup: HistoryLookup | None) -> Facts:
    rows = _read(piece, scorer, seen)
    try:
        typed = typed_rows(rows, scorer.schema, scorer.spec, scorer.where)
    except UserError:
        return Facts(len(rows), True, None, None, 0, None, None)
    if rows.empty:
        return Facts(0, False, None, None, 0, None, None)
    times = typed[scorer.spec.time]
    beyond = times[coverage_after(times, last_outcome, lookup).beyond]
    if beyond.empty:
        return Facts(len(rows), False, times.min(), times.max(), 0, None, None)
    return Facts(len(rows), False, times.min(), times.max(), len(beyond), beyond.min(), beyond.max())


def _checked_columns(piece: Piece, scorer: Scorer, seen: Profile | None) -> pd.DataFrame:
    rows = _read(piece, scorer, seen)
    needed = sorted({*scorer.spec.inputs, scorer.spec.time, *key_columns(scorer.spec)})
    return rows[[column for column in needed if column in rows.columns]]


def _scored(
    piece: Piece, scorer: Scorer, seen: Profile | None, events: pd.DataFrame, last_outcome: pd.Timestamp | None, allow: bool
) -> pd.DataFrame:
    rows = _read(piece, scorer, seen)
    typed = typed_rows(rows, scorer.schema, scorer.spec, scorer.where)
    lookup = HistoryLookup.from_json(scorer.spec.history) if scorer.spec.history else None
    cover = coverage_after(typed[scorer.spec.time], last_outcome, lookup)
    return add_scores(rows, typed, scorer.transformer, scorer.model, scorer.spec, events, cover, allow)


def _write_scored(scored: pd.DataFrame, path: Path) -> None:
    parquet_writer(scored)(path)


@dataclass(frozen=True)
class PartitionedScores:
    """The scored pieces, left on the cluster until collected or written."""

    parts: list[Any]  # dask delayed objects: each piece's rows with their scores and marks, in input order

    def collect(self) -> pd.DataFrame:
        """Every scored row in one table, as the pandas engine returns it (for a file output)."""
        import dask

        collected: pd.DataFrame = pd.concat(dask.compute(*self.parts), ignore_index=True)
        return collected

    def folder_writer(self) -> FolderWriter:
        """Fills a folder with part-00000.parquet, ... one per input piece, written by the workers."""

        def write(folder: Path) -> None:
            import dask

            folder = folder.resolve()
            dask.compute(
                *[dask.delayed(_write_scored)(part, folder / f"part-{index:05d}.parquet") for index, part in enumerate(self.parts)]
            )

        return FolderWriter(write)


def _sorted_events(events: pd.DataFrame, time: str) -> tuple[pd.DataFrame, np.ndarray]:
    ordered = events.sort_values(time, kind="stable", ignore_index=True)
    return ordered, pd.DatetimeIndex(ordered[time]).as_unit("ns").asi8


def _reachable(events: pd.DataFrame, stamps: np.ndarray, facts: Facts, lookup: HistoryLookup | None) -> pd.DataFrame:
    """The known outcomes a piece's rows can count (`reach`, as featurize cuts its events per piece); none without history."""
    if lookup is None or facts.first is None or facts.last is None:
        return events.iloc[:0]
    from stages.featurize import reach  # the cut featurize's dask path makes: one rule for both

    lower, upper = reach(facts.first, facts.last, lookup)
    return events.iloc[int(np.searchsorted(stamps, lower, side="left")) : int(np.searchsorted(stamps, upper, side="right"))]


def score_partitioned(
    root: Path,
    input_path: Path,
    outcome_paths: Sequence[Path],
    allow_beyond_history: bool,
    input_label: str | None = None,
    outcomes_label: str | None = None,
    blocksize: int = CSV_BLOCK_BYTES,
) -> PartitionedScores:
    """`score_files` on the dask engine (the default client or scheduler runs the tasks): the same checks, refusal
    and scores, the input read and scored piece by piece (module docstring)."""
    import dask
    from dask import delayed

    artifacts = load_artifacts(root)
    tokens = tuple(artifacts.missing_values)
    outcomes = []
    for path in outcome_paths:
        table = read_table(path, OUTCOMES_HINT, artifacts.missing_values)
        outcomes.append(outcome_events(table, artifacts, outcomes_label or str(path)))
    where = input_label or str(input_path)
    spec, lookup = artifacts.spec, artifacts.lookup
    events = known_events(artifacts.events, outcomes, spec)
    last_outcome = None if events.empty else events[spec.time].max()
    found = input_pieces(input_path, blocksize)
    # CSV pieces get the types pandas infers over the whole table (io.merged_types), so rows do not depend on the cut.
    seen: list[Profile | None] = [None] * len(found)
    types = None
    if not all(is_parquet(piece.path) for piece in found):
        seen = list(dask.compute(*[delayed(_profile)(piece, tokens) for piece in found]))
        types = merged_types([entry for entry in seen if entry is not None], where)
    scorer = Scorer(artifacts.schema, spec, artifacts.transformer, artifacts.model, tokens, where, types)
    shared = delayed(scorer, pure=True)
    facts: list[Facts] = list(
        dask.compute(*[delayed(_facts)(piece, shared, shape, last_outcome, lookup) for piece, shape in zip(found, seen, strict=True)])
    )
    if sum(entry.rows for entry in facts) == 0:
        fail(f"{where}: no rows to score")
    if any(entry.failed for entry in facts):
        # The pandas engine's message, from the checked columns of every row (collected only when a check failed).
        checked = dask.compute(*[delayed(_checked_columns)(piece, shared, shape) for piece, shape in zip(found, seen, strict=True)])
        validate_rows(pd.concat(checked, ignore_index=True), artifacts.schema, spec, where)
        raise RuntimeError(f"{where}: a piece failed the checks the whole table passes")  # cannot happen: the same rows
    beyond = [entry for entry in facts if entry.beyond]
    if beyond and not allow_beyond_history:
        assert lookup is not None  # only rows of a version with history features can be beyond
        first = min(entry.beyond_first for entry in beyond if entry.beyond_first is not None)
        last = max(entry.beyond_last for entry in beyond if entry.beyond_last is not None)
        refuse_beyond_counted(
            sum(entry.beyond for entry in beyond), sum(entry.rows for entry in facts), first, last, last_outcome, lookup, where
        )
    ordered, stamps = _sorted_events(events, spec.time) if lookup is not None else (events, np.zeros(0, dtype=np.int64))
    parts = [
        delayed(_scored)(piece, shared, shape, _reachable(ordered, stamps, entry, lookup), last_outcome, allow_beyond_history)
        for piece, shape, entry in zip(found, seen, facts, strict=True)
    ]
    return PartitionedScores(parts)


def check_worker_code(client: Any, config: EngineConfig) -> None:
    """Refuse workers that run other `stages` code than this process: a model version is scored by its own code,
    and the workers import the scoring functions from their own checkout."""

    def code_digest() -> str:
        """sha256 of every .py file of the `stages` package the process imported (names and bytes, in name order).
        Defined here, so Dask sends it by value: it runs on a worker whatever that worker's checkout holds."""
        import hashlib
        from pathlib import Path

        import stages

        package = Path(stages.__file__).parent
        digest = hashlib.sha256()
        for file in sorted(package.rglob("*.py")):
            digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes())
        return digest.hexdigest()

    where = f"the scheduler at {config.scheduler}" if config.scheduler else "the local cluster"
    here = code_digest()
    try:
        digests = client.run(code_digest)
    except Exception as error:  # e.g. a worker without the project on its path: it cannot import `stages`
        fail(
            f"engine: cannot tell which code the workers of {where} run ({type(error).__name__}: {error}); start them with the project on PYTHONPATH"
        )
    other = sorted(address for address, digest in digests.items() if digest != here)
    if other:
        fail(
            f"engine: worker {other[0]} of {where} runs other code than the checkout scoring here (its stages/ differs), and a "
            "model version is scored by its own code; start the workers with that version's checkout on PYTHONPATH, or set "
            "engine.scheduler: null to score on a local cluster"
        )


def score_files_on_dask(
    root: Path,
    input_path: Path,
    outcome_paths: Sequence[Path],
    allow_beyond_history: bool,
    config: EngineConfig,
    output: Path | None,
    labels: tuple[str | None, str | None] = (None, None),
) -> pd.DataFrame | None:
    """Score on a Dask cluster (engine_session: a local one, or engine.scheduler's). With `output` None, the scored
    rows come back as one table; with a folder (no suffix), the workers write them there as parts and None returns."""
    from stages.lib.engine import engine_session

    with engine_session(config, root) as client:
        check_worker_code(client, config)
        scores = score_partitioned(root, input_path, outcome_paths, allow_beyond_history, *labels)
        if output is None:
            return scores.collect()
        write_outputs({output: scores.folder_writer()})  # inside the session: the workers write the parts
    return None
