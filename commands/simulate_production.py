"""simulate-production: replay the source rows later than every data.splits window as production batches.

    python -m commands.simulate_production [--degrade]
    make simulate-production [DEGRADE=1]

The rows come through prepare's own code (join, target, checks, data.sample_rows), cut into batches of
monitor.simulation.batch from the end of the last split window, and are scored in time order with the
workspace model into the production store, exactly as `make score-batch` does (rows beyond the known
outcomes are scored and marked `history_complete` = false). Each row's id is `<dataset>-<n>`, n its position
among the source file's data rows (0 for the first). A batch is recorded as scored at its end. The outcomes
of batch k are added, as `make add-labels` does, once batch k + monitor.simulation.labels_delay is
scored, so the last labels_delay batches stay unlabelled. Batches and outcomes already in the store are
skipped, so a killed run resumes where it stopped. --degrade shuffles the outcomes within each batch from
the middle batch on: the inputs stay the same, the late share stays the same, and the outcome no longer
depends on the inputs (a concept change), so realized ROC AUC falls to about 0.5.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from commands.add_labels import add_outcomes
from commands.score_batch import WORKSPACE, score_into_store
from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.config import DataContract, Params, load_params
from stages.lib.config.base import duration_text
from stages.lib.errors import fail, run_stage
from stages.lib.production import check_store, stored_ids, stored_outcomes
from stages.lib.runtime import limit_threads
from stages.prepare import labelled_rows, read_sources

DEGRADE_SEED = 0


@dataclass(frozen=True)
class Batch:
    start: pd.Timestamp
    end: pd.Timestamp
    rows: pd.DataFrame  # prepared rows with the id column and the target, in time order


def replay_rows(rows: pd.DataFrame, contract: DataContract, id_column: str) -> pd.DataFrame:
    """The prepared rows later than every data.splits window, with their ids, in time order."""
    end = max(window.end for window in contract.splits)
    later = rows[rows[contract.time] >= end]
    if later.empty:
        last = rows[contract.time].max()
        fail(
            f"conf/data/ ({contract.name}): no source row lies after the last data.splits window (it ends {end:%Y-%m-%d}; "
            f"the rows end {last:%Y-%m-%d %H:%M}): nothing to replay; end the splits earlier to leave later rows out of them"
        )
    ids = pd.Series([f"{contract.name}-{position}" for position in later.index], dtype="string", index=later.index)
    return later.assign(**{id_column: ids}).reset_index(drop=True)


def cut(rows: pd.DataFrame, start: pd.Timestamp, length: pd.Timedelta, time_column: str) -> list[Batch]:
    """Consecutive windows [start + k * length, start + (k + 1) * length) up to the last row; empty ones are left out."""
    number = ((rows[time_column] - start) // length).astype(np.int64)
    return [
        Batch(start=start + int(k) * length, end=start + (int(k) + 1) * length, rows=group.reset_index(drop=True))
        for k, group in rows.groupby(number, sort=True)
    ]


def degrade(batch: Batch, target: str, seed: int) -> Batch:
    """The batch's outcomes shuffled among its rows: same inputs, same outcome share, no link between them."""
    shuffled = np.random.default_rng(seed).permutation(batch.rows[target].to_numpy())
    return Batch(start=batch.start, end=batch.end, rows=batch.rows.assign(**{target: shuffled}))


def replay(params: Params, degrade_from_middle: bool, repo: Path = Path(), root: Path = PRODUCTION_DIR) -> None:
    contract, monitor = params.data, params.monitor
    id_column, target = monitor.id_column, contract.target
    check_store(id_column, root)  # before the minute prepare's code takes
    _, tables = read_sources(contract)
    rows = replay_rows(labelled_rows(tables[0], tables[1:], contract).rows, contract, id_column)
    start = max(window.end for window in contract.splits)
    batches = cut(rows, start, pd.Timedelta(monitor.simulation.batch), contract.time)
    middle = len(batches) // 2
    if degrade_from_middle:
        batches = [degrade(batch, target, DEGRADE_SEED + k) if k >= middle else batch for k, batch in enumerate(batches)]
    delay = monitor.simulation.labels_delay
    print(
        f"simulate-production: {len(rows):,} rows from {start:%Y-%m-%d} in {len(batches)} batch(es) of {duration_text(monitor.simulation.batch)}, "
        f"outcomes {delay} batch(es) later{f'; degraded from batch {middle + 1} on (outcomes shuffled)' if degrade_from_middle else ''}"
    )
    for k, batch in enumerate(batches):
        began = time.perf_counter()
        scored = _score(batch, params, repo, root)
        added = _label(batches[k - delay], batch.end, params, root) if k >= delay else 0
        labelled = len(stored_outcomes(id_column, target, root))
        print(
            f"  batch {k + 1}/{len(batches)} {batch.start:%Y-%m-%d}..{batch.end:%Y-%m-%d}: {len(batch.rows):,} rows "
            f"{'scored' if scored else 'already stored'}, {added:,} outcomes added, {labelled:,} labelled so far "
            f"({time.perf_counter() - began:.1f} s)"
        )


def _score(batch: Batch, params: Params, repo: Path, root: Path) -> bool:
    """Score the batch into the store unless it is there already (True when scored)."""
    id_column = params.monitor.id_column
    ids = batch.rows[id_column]
    stored = ids.isin(stored_ids(id_column, root)[id_column])
    if stored.all():
        return False
    if stored.any():
        fail(
            f"{root}: holds {int(stored.sum()):,} of the {len(ids):,} rows of the batch from {batch.start:%Y-%m-%d} "
            f"(e.g. {ids[stored].iloc[0]!r}) but not the others: not a store this replay wrote; move it away and run `make repro`"
        )
    inputs = batch.rows.drop(columns=[params.data.target])
    where = f"batch {batch.start:%Y-%m-%d}..{batch.end:%Y-%m-%d}"
    score_into_store(inputs, where, params, WORKSPACE, batch.end.isoformat(), allow_beyond_history=True, repo=repo, root=root)
    return True


def _label(batch: Batch, arrived: pd.Timestamp, params: Params, root: Path) -> int:
    """Add the batch's outcomes as arrived at `arrived` (the end of the batch just scored); the count added (0 when stored)."""
    outcomes = batch.rows[[params.monitor.id_column, params.data.target]]
    where = f"outcomes of batch {batch.start:%Y-%m-%d}..{batch.end:%Y-%m-%d}"
    meta, _ = add_outcomes(outcomes, where, params, arrived.isoformat(), root)
    return 0 if meta is None else meta.rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degrade", action="store_true", help="shuffle the outcomes within each batch from the middle batch on")
    args = parser.parse_args(argv)
    params = load_params()
    limit_threads(params.runtime)
    replay(params, args.degrade)


if __name__ == "__main__":
    run_stage(main)
