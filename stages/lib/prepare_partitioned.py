"""prepare on the dask engine (engine.name: dask): the steps of stages/prepare.py on pieces of the source
(stages/lib/io.py `pieces`) scheduled by Dask, never the whole table in one process.

Checks and summaries add up counts per piece; where a check fails (and only then) the one failing column is
collected to word the message with the pandas engine's own function (stages/lib/prepare_steps.py), so both
engines stop with the same line. The prepared rows are regrouped by calendar month (UTC) of the time column,
sorted as the pandas engine sorts them (by time, ties in source order), and each split is written as one Parquet
part per month it covers: the parts depend on the data's months, not on the pieces or the workers. Dask is
imported inside the functions only, so the pandas engine never loads it. The workers run these functions by
name (stages.lib.prepare_partitioned), whatever module the stage was started as.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.config import DataContract
from stages.lib.contract import (
    infer_schema,
    merge_counts,
    mixes_numbers_and_text,
    post_outcome_counts,
    post_outcome_from_counts,
    refuse_infinite,
    refuse_text_in_numbers,
)
from stages.lib.errors import UserError, fail
from stages.lib.io import (
    Piece,
    Profile,
    Writer,
    merged_types,
    parquet_writer,
    pieces,
    profile,
    read_typed,
    source_files,
)
from stages.lib.prepare_steps import (
    FIX_INFINITE,
    _check_split_order,
    _check_values,
    _check_window,
    _empty_window,
    _joinable,
    _merge,
    _nothing_labelled,
    _one_class,
    _parse_time,
    _read_source,
    _require,
    _require_numeric,
    _settings,
    _stop_on_violations,
    _summary,
    check_pieced_source,
    needed_columns,
    validate,
    without_target,
)
from stages.lib.target import _kind, target_values

CSV_BLOCK_BYTES = 64 * 2**20  # a CSV piece (uncompressed): about this many bytes, cut at a line end
# schema.yaml is inferred from the whole train split up to this many rows (every statistic exact, as the pandas
# engine computes it); above it, from a seeded random sample of this many train rows (data.sample_seed).
SCHEMA_SAMPLE_ROWS = 1_000_000


@dataclass(frozen=True)
class Partitioned:
    """What `prepare_partitioned` found: like `Prepared`, with each split's parts already written to a staging folder."""

    staged: dict[str, list[Path]]  # per split, its parts in the staging folder (one per month holding its rows), in time order
    rows: dict[str, list[int]]  # per split, its rows in each month
    summary: dict[str, Any]
    schema: dict[str, Any]
    violations: list[str]
    warnings: list[str]
    dropped: str | None

    def writer(self, name: str) -> Writer:
        """Fills a folder with the split's parts: part-00000.parquet, ... one per month holding its rows, in time order.
        The parts are moved from the staging folder, so each split can be written once."""

        def write(folder: Path) -> None:
            for index, part in enumerate(self.staged[name]):
                shutil.move(part, folder / f"part-{index:05d}.parquet")

        return write


def _staged_part(staging: Path, split: str, month: int) -> Path:
    return staging / split / f"{month:07d}.parquet"


def _month(times: pd.Series) -> np.ndarray:
    """Each UTC timestamp's calendar month as one number (year * 12 + month - 1)."""
    months: np.ndarray = (times.dt.year * 12 + times.dt.month - 1).to_numpy()
    return months


def _read_piece(piece: Piece, tokens: Sequence[str]) -> tuple[Profile, int]:
    frame = piece.read(tokens)
    return profile(frame), len(frame)


def _typed_piece(piece: Piece, tokens: Sequence[str], types: dict[str, Any], seen: Profile, offset: int) -> pd.DataFrame:
    """A piece with the merged types, indexed by its rows' positions in the source (as the pandas engine's table)."""
    frame = read_typed(piece, tokens, types, seen)
    return frame.set_axis(pd.RangeIndex(offset, offset + len(frame)))


def _passes(check: Any) -> bool:
    try:
        check()
    except UserError:
        return False
    return True


def _piece_evidence(table: pd.DataFrame, contract: DataContract, where: str, kept: list[str], text: list[str]) -> dict[str, Any]:
    """Counts and pass/fail flags of one piece, for the checks the pandas engine runs on the whole source table."""
    numbers = {column: pd.to_numeric(table[column].dropna(), errors="coerce") for column in text}
    labelled = table[table[contract.target_column].notna()]
    evidence: dict[str, Any] = {
        # Cells read as missing in the columns prepare uses: the pandas engine never reads data.drop's columns.
        "missing": {name: int(count) for name, count in table[needed_columns(list(table.columns), contract)].isna().sum().items()},
        "labelled": len(labelled),
        "numbers": {column: [len(values), int(values.notna().sum())] for column, values in numbers.items()},
        "infinite": {column: not _passes(lambda column=column: refuse_infinite(table, where, [column], FIX_INFINITE)) for column in kept},
        "post": post_outcome_counts(table, contract.target_column, list(table.columns)),
        "months": [],
    }
    try:
        times = _parse_time(labelled, where, contract)[contract.time] if len(labelled) else None
        evidence["time"] = _passes(lambda: _parse_time(table, where, contract))
    except UserError:
        times, evidence["time"] = None, False
    if evidence["time"] and times is not None:
        evidence["months"] = sorted({int(month) for month in _month(times)})
    values = labelled[contract.target_column]
    evidence["target"] = {
        "passes": _passes(lambda: target_values(values, contract.target_spec, where)),
        "kind": _kind(values) if len(values) else "empty",
        "distinct": sorted(map(str, values.drop_duplicates().head(3))),
        "hit": bool(len(values)) and _hits(values, contract),
    }
    return evidence


def _hits(values: pd.Series, contract: DataContract) -> bool:
    """Whether a positive label occurs among the values (True when there is no positive label, or they are refused)."""
    if contract.positive is None:
        return True
    try:
        return bool(target_values(values, contract.target_spec, where="").astype(bool).any())
    except UserError:
        return True


def _columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame.loc[:, list(columns)]


def _collect(frames: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    """The columns of every frame, concatenated in order: only to word a failing check's message, or for a bounded sample."""
    import dask

    collected: pd.DataFrame = pd.concat(dask.compute(*[dask.delayed(_columns)(frame, columns) for frame in frames]))
    return collected


def _labelled_piece(
    table: pd.DataFrame, contract: DataContract, where: str, related: Sequence[pd.DataFrame], positions: np.ndarray | None
) -> tuple[pd.DataFrame, pd.Series, dict[str, int]]:
    """A piece's labelled rows (with `positions`, only those data.sample_rows keeps: their positions among the piece's),
    joined; with their target and the rows each join left unmatched."""
    table = _parse_time(table, where, contract)
    labelled = table[table[contract.target_column].notna()]
    if positions is not None:
        labelled = labelled.iloc[positions]
    target = target_values(labelled[contract.target_column], contract.target_spec, where)
    unmatched = {}
    for join, other in zip(contract.joins, related, strict=True):
        labelled, unmatched[Path(join.source.path).name] = _merge(labelled, other, join)
    return labelled, target, unmatched


def _finished(labelled: pd.DataFrame, target: pd.Series, contract: DataContract) -> pd.DataFrame:
    """Identifiers, leaks and the target's source column dropped, the target added (as `labelled_rows` does)."""
    dropped = [*contract.identifiers, *contract.leaks, *contract.other_drops]
    source_of_target = [contract.target_column] if contract.target_column != contract.target else []
    return labelled.drop(columns=[column for column in [*dropped, *source_of_target] if column in labelled.columns]).assign(
        **{contract.target: target}
    )


def _by_month(labelled: pd.DataFrame, target: pd.Series, contract: DataContract, months: Sequence[int]) -> dict[int, pd.DataFrame]:
    """A piece's prepared rows split by calendar month: `months` are the months its labelled rows hold (its evidence)."""
    prepared = _finished(labelled, target, contract)
    keys = _month(prepared[contract.time])
    stray = set(np.unique(keys).tolist()) - set(months)
    if stray:  # the evidence and the rows disagree: never drop rows silently
        raise RuntimeError(f"prepare: a piece holds rows of months {sorted(stray)} its evidence does not list")
    return {month: prepared[keys == month] for month in months}


def month_holders(piece_months: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    """For each month, the pieces (indexes, in source order) whose rows fall in it, months in time order.

    Each month's part gathers its rows from these pieces only: gathering from every piece made the work
    pieces x months, which grows with the square of the data when both grow with it (one piece per year
    of data and twelve months per year: 1,201 x 100 masks of a whole piece at 100 years)."""
    holders: dict[int, list[int]] = {}
    for index, months in enumerate(piece_months):
        for month in sorted(set(months)):
            holders.setdefault(int(month), []).append(index)
    return dict(sorted(holders.items()))


def _month_rows(pieces: Sequence[pd.DataFrame], time: str) -> pd.DataFrame:
    """One month's rows from every piece, in source order, then sorted by time (stable: ties keep source order)."""
    return pd.concat(pieces).sort_values(time, kind="stable")


def _month_stats(rows: pd.DataFrame, contract: DataContract, light: DataContract, nulls: Sequence[str]) -> dict[str, Any]:
    """One month's counts for the checks and summaries the pandas engine computes on all prepared rows."""
    times, target = rows[contract.time], rows[contract.target]
    windows = {}
    for window in contract.splits:
        inside = (times >= window.start) & (times < window.end)
        values = target[inside]
        windows[window.name] = {
            "rows": int(inside.sum()),
            "sum": values.sum(),
            "classes": sorted(map(int, values.unique())) if contract.task == "classification" else [],
            "first": times[inside].min() if inside.any() else None,
            "last": times[inside].max() if inside.any() else None,
            "first_target": values.iloc[0] if len(values) else None,
        }
    return {
        "rows": len(rows),
        "sum": target.sum(),
        "first": times.min(),
        "last": times.max(),
        "breaks": bool(validate(rows, light)),  # the range and allowed-value rules; null shares are checked over all months
        "nulls": {column: int(rows[column].isna().sum()) for column in nulls},
        "windows": windows,
    }


def _mean(total: Any, rows: int) -> float:
    return round(float(total) / rows, 6)


def _target_summary(total: Any, rows: int, contract: DataContract) -> dict[str, float]:
    key = "positive_share" if contract.task == "classification" else "target_mean"
    return {key: _mean(total, rows)}


def _checked_source(
    table: list[Any], meta: pd.DataFrame, contract: DataContract, where: str, dropped: list[str]
) -> tuple[set[str], list[dict[str, Any]]]:
    """`_check_source` and the time parse, from the column types and per-piece counts; with each piece's evidence."""
    import dask

    _require(meta, where, [contract.target_column, contract.time], "the target and time columns")
    _require(meta, where, dropped, "listed in data.drop")
    numeric = {column for column, kind in contract.types.items() if kind == "numeric"}
    numeric |= {column for column, check in contract.checks.items() if check.min is not None or check.max is not None}
    for column in sorted(numeric & set(meta.columns)):
        if not pd.api.types.is_numeric_dtype(meta[column]) or pd.api.types.is_bool_dtype(meta[column]):
            _require_numeric(_collect(table, [column]), where, column)
    kept = [column for column in meta.columns if column not in {*dropped, contract.time} or column == contract.target_column]
    declared_text = {column for column, kind in contract.types.items() if kind != "numeric"}
    text = [
        column
        for column in kept
        if column not in declared_text and (pd.api.types.is_object_dtype(meta[column]) or pd.api.types.is_string_dtype(meta[column]))
    ]
    evidence = dask.compute(*[dask.delayed(_piece_evidence)(piece, contract, where, kept, text) for piece in table])
    for column in text:
        present, numbers = (sum(piece["numbers"][column][index] for piece in evidence) for index in (0, 1))
        if mixes_numbers_and_text(numbers, present):
            refuse_text_in_numbers(_collect(table, [column]), where, [column])
    for column in kept:
        if any(piece["infinite"][column] for piece in evidence):
            refuse_infinite(_collect(table, [column]), where, [column], FIX_INFINITE)
    if not all(piece["time"] for piece in evidence):
        _parse_time(_collect(table, [contract.time]), where, contract)  # stops with the pandas engine's line
        fail(f"{where}: column '{contract.time}' cannot be parsed piece by piece; report this")  # unreachable: fail closed

    return numeric, list(evidence)


def _labelled_counts(
    table: list[Any], evidence: list[dict[str, Any]], contract: DataContract, where: str
) -> tuple[list[int], np.ndarray | None, int]:
    """`_labelled` from per-piece evidence: labelled rows per piece, the positions data.sample_rows keeps (None: all), rows used."""
    from dask import delayed

    labelled_counts = [piece["labelled"] for piece in evidence]
    labelled_total = sum(labelled_counts)
    if not labelled_total:
        _nothing_labelled(where, contract)
    digests = [piece["target"] for piece in evidence]
    kinds = {digest["kind"] for digest in digests} - {"empty"}
    distinct = {value for digest in digests for value in digest["distinct"]}
    suspect = (
        not all(digest["passes"] for digest in digests)
        or len(kinds) > 1
        or not any(digest["hit"] for digest in digests)
        or (contract.positive is not None and not isinstance(contract.positive, str) and len(distinct) > 2)
    )
    if suspect:  # as the pandas engine would stop (or, if it would not, go on: the pieces passed)
        values = _collect([delayed(_labelled_target)(piece, contract) for piece in table], [contract.target_column])
        target_values(values[contract.target_column], contract.target_spec, where, whole_column=True)
    chosen = None
    if contract.sample_rows is not None and contract.sample_rows < labelled_total:
        # pandas' DataFrame.sample(n, random_state=seed): these positions among the labelled rows, kept in source order.
        chosen = np.sort(np.random.RandomState(contract.sample_seed).choice(labelled_total, contract.sample_rows, replace=False))
    used = int(contract.sample_rows) if chosen is not None and contract.sample_rows is not None else labelled_total

    return labelled_counts, chosen, used


def _split_counts(stats: Sequence[dict[str, Any]], contract: DataContract) -> dict[str, dict[str, Any]]:
    """`_split` from the months' counts: each window's rows, target sum and classes, first and last time."""
    first, last = min(month["first"] for month in stats), max(month["last"] for month in stats)
    splits = {}
    for window in contract.splits:
        _check_window(window, pd.Series([first, last]))
        parts_of = [month["windows"][window.name] for month in stats]
        rows = sum(part["rows"] for part in parts_of)
        if not rows:
            _empty_window(window)
        inside = [part for part in parts_of if part["rows"]]
        splits[window.name] = {
            "rows": rows,
            "sum": sum(part["sum"] for part in inside),
            "classes": {value for part in inside for value in part["classes"]},
            "first": min(part["first"] for part in inside),
            "last": max(part["last"] for part in inside),
            "first_target": inside[0]["first_target"],
        }
    _check_split_order(contract)
    if contract.task == "classification" and len(splits["train"]["classes"]) < 2:
        _one_class(int(splits["train"]["first_target"]), contract)

    return splits


def _sources(
    parts: Sequence[Piece],
    profiles: Sequence[tuple[Profile, int]],
    evidence: Sequence[dict[str, Any]],
    related: Sequence[tuple[dict[str, Any], pd.DataFrame]],
) -> dict[str, Any]:
    """The summary's `sources`: each file's hash, rows and cells read as missing, added up over its pieces; then the related files'."""
    by_file: dict[Path, dict[str, Any]] = {}
    for piece, (_, rows), found in zip(parts, profiles, evidence, strict=True):
        entry = by_file.setdefault(piece.path, {"rows": 0, "missing": []})
        entry["rows"] += rows
        entry["missing"].append(found["missing"])
    sources = {path.name: _summary(path, entry["rows"], merge_counts(entry["missing"])) for path, entry in by_file.items()}
    for summary, _ in related:
        sources |= summary
    return sources


def _rules(contract: DataContract) -> tuple[DataContract, list[str]]:
    """The contract with its checks' null shares removed (checked per month), and the columns whose null share is checked
    over all months."""
    nulls = sorted(name for name, check in contract.checks.items() if check.max_null_share is not None)
    light = contract.model_copy(
        update={"checks": {name: check.model_copy(update={"max_null_share": None}) for name, check in contract.checks.items()}}
    )
    return light, nulls


def _month_part(
    pieces: Sequence[pd.DataFrame], contract: DataContract, light: DataContract, nulls: Sequence[str], staging: Path, month: int
) -> dict[str, Any]:
    """One month: its rows gathered and sorted, its counts, and each split's rows of the month written to the staging
    folder at once, so no month stays in memory after its task (the splits are moved into place only once every
    check has passed)."""
    rows = _month_rows(pieces, contract.time)
    stats = _month_stats(rows, contract, light, nulls)
    for window in contract.splits:
        if stats["windows"][window.name]["rows"]:
            inside = (rows[contract.time] >= window.start) & (rows[contract.time] < window.end)
            parquet_writer(rows[inside].reset_index(drop=True))(_staged_part(staging, window.name, month))
    return stats


def _violations(stats: Sequence[dict[str, Any]], monthly: Sequence[Any], contract: DataContract, nulls: Sequence[str]) -> list[str]:
    """`validate`'s lines over all months: the rules per month, null shares over all of them; only when a rule breaks
    are the months computed again and the checked columns collected, for the pandas engine's own wording."""
    prepared_rows = sum(month["rows"] for month in stats)
    null_counts = merge_counts([month["nulls"] for month in stats]) if stats else {}
    broken = any(month["breaks"] for month in stats) or any(
        null_counts[name] / prepared_rows > contract.checks[name].max_null_share for name in nulls
    )
    return validate(_collect(monthly, sorted(contract.checks)), contract) if broken else []


def _month_parts(
    grouped: Sequence[Any], holders: dict[int, list[int]], contract: DataContract, staging: Path
) -> tuple[list[Any], list[str]]:
    """The task of each month (`_month_part`) on the pieces' months, the staging folders made; with the columns whose null
    share is checked over all months."""
    from dask import delayed

    light, nulls = _rules(contract)
    for window in contract.splits:
        (staging / window.name).mkdir(parents=True, exist_ok=True)
    tasks = [
        delayed(_month_part)([grouped[index][month] for index in pieces], contract, light, nulls, staging, month)
        for month, pieces in holders.items()
    ]
    return tasks, nulls


def _shared(frames: Sequence[pd.DataFrame]) -> list[Any]:
    """The related tables, sent to the workers once (scattered to every worker when a distributed client runs the
    tasks; one graph key each otherwise) instead of travelling inside every piece's task: 2.6 million weather rows
    made a 227 MiB graph at 100x."""
    import dask

    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed client: the local schedulers share the objects in memory
        return [dask.delayed(frame, pure=True) for frame in frames]
    return [client.scatter(frame, broadcast=True, hash=False) for frame in frames]


def _joinables(tables: Sequence[pd.DataFrame], contract: DataContract) -> list[pd.DataFrame]:
    """Each data.join table parsed, checked and deduplicated as `_join_related` does, ready to join onto every piece."""
    related = []
    for join, other in zip(contract.joins, tables, strict=True):
        other_where = Path(join.source.path).name
        if contract.time in join.keys:
            other = _parse_time(other, other_where, contract)
        related.append(_joinable(other, join, other_where))
        _check_values(other, other_where, [column for column in (join.columns or other.columns) if column not in join.keys], contract)
    return related


def prepare_partitioned(contract: DataContract, staging: Path, blocksize: int = CSV_BLOCK_BYTES) -> Partitioned:
    """`prepare` on the dask engine (the default client runs the tasks): same checks, messages, rows and summaries.

    Each month's split rows are written to `staging` (an empty folder the workers can write to, on the outputs'
    file system) as soon as the month is gathered; `Partitioned.writer` moves them into place."""
    import dask
    from dask import delayed

    where, tokens = Path(contract.source.path).name, contract.missing_values
    # The related tables are small and joined onto every piece: read whole here, as the pandas engine reads them.
    settings = _settings(contract)
    files = [file.resolve() for file in source_files(settings[0][0], f"fix {settings[0][1]} in conf/data/")]
    check_pieced_source(files, contract, where)
    related_sources = [_read_source(path, setting, contract) for path, setting in settings[1:]]
    parts = [piece for file in files for piece in pieces(file, blocksize)]
    profiles = dask.compute(*[delayed(_read_piece)(piece, tokens) for piece in parts])
    types = merged_types([seen for seen, _ in profiles], where)
    offsets = np.concatenate([[0], np.cumsum([rows for _, rows in profiles])]).tolist()
    table = [
        delayed(_typed_piece)(piece, tokens, types, seen, offset)
        for piece, (seen, _), offset in zip(parts, profiles, offsets, strict=False)
    ]
    meta = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in types.items()})
    total = offsets[-1]
    if not total:
        fail(f"{where}: no rows; point data.source in conf/data/ at a non-empty file")

    dropped = [*contract.identifiers, *contract.leaks, *contract.other_drops]
    numeric, evidence = _checked_source(table, meta, contract, where, dropped)

    labelled_counts, chosen, used = _labelled_counts(table, evidence, contract, where)

    # _join_related: each related table checked and deduplicated here, joined onto every piece.
    related = _joinables([table for _, table in related_sources], contract)
    shared = _shared(related)
    joined = [
        delayed(_labelled_piece, nout=3)(piece, contract, where, shared, positions)
        for piece, positions in zip(table, per_part(chosen, labelled_counts), strict=True)
    ]
    meta_labelled, meta_target, _ = _labelled_piece(meta, contract, where, related, None)
    declared = sorted(set(contract.types) | set(contract.checks))
    _require(meta_labelled, where, declared, "declared in data.types or data.checks")
    for column in sorted(numeric - set(meta.columns)):
        series = meta_labelled[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            _require_numeric(_collect([rows for rows, _, _ in joined], [column]), where, column)

    # Regroup by month, sorted as the pandas engine sorts; each month counted and written in one task, then dropped.
    holders = month_holders([piece["months"] for piece in evidence])
    months = list(holders)
    grouped = [
        delayed(_by_month)(rows, target, contract, piece["months"]) for (rows, target, _), piece in zip(joined, evidence, strict=True)
    ]
    monthly = [delayed(_month_rows)([grouped[index][month] for index in holders[month]], contract.time) for month in months]
    month_parts, nulls = _month_parts(grouped, holders, contract, staging)
    stats, unmatched_parts = dask.compute(month_parts, [counts for _, _, counts in joined])
    unmatched = merge_counts(list(unmatched_parts)) if unmatched_parts and unmatched_parts[0] else {}

    violations = _violations(stats, monthly, contract, nulls)
    prepared_rows = sum(month["rows"] for month in stats)
    _stop_on_violations(violations, where, contract)

    splits = _split_counts(stats, contract)

    missing = total - sum(labelled_counts)
    dropped_words, warnings = without_target(total, missing, contract)
    sources = _sources(parts, profiles, evidence, related_sources)
    summary = {
        "dataset": contract.name,
        "sources": sources,
        "rows": {"source": total, "without_target": missing, "used": used},
        "unmatched_join_rows": unmatched,
        "violations": violations,
        "warnings": warnings,
        "splits": {
            name: {
                "rows": split["rows"],
                **_target_summary(split["sum"], split["rows"], contract),
                "first": split["first"].isoformat(),
                "last": split["last"].isoformat(),
            }
            for name, split in splits.items()
        },
    } | _target_summary(sum(month["sum"] for month in stats), prepared_rows, contract)
    prepared_columns = list(_finished(meta_labelled, meta_target, contract).columns)
    post = [column for column in prepared_columns if column in meta.columns and column not in (contract.target, contract.time)]
    post_outcome = post_outcome_from_counts(merge_counts([piece["post"] for piece in evidence]), post)
    rows_per_split = {window.name: [month["windows"][window.name]["rows"] for month in stats] for window in contract.splits}
    staged = {
        name: [_staged_part(staging, name, month) for month, count in zip(months, counts, strict=True) if count]
        for name, counts in rows_per_split.items()
    }
    schema = infer_schema(_train_rows(staged["train"], rows_per_split["train"], contract), contract, post_outcome)
    return Partitioned(
        staged=staged,
        rows=rows_per_split,
        summary=summary,
        schema=schema,
        violations=violations,
        warnings=warnings,
        dropped=dropped_words,
    )


def _labelled_target(table: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    return table.loc[table[contract.target_column].notna(), [contract.target_column]]


def per_part(chosen: np.ndarray | None, counts: Sequence[int]) -> list[np.ndarray | None]:
    """Sorted positions over consecutive parts of these row counts, cut into each part's own positions (None: all rows).

    Each part's task gets only its own: the whole array in every task cost its size in each task, and the mask
    `np.isin(part positions, chosen)` about 0.9 s of CPU per part for a million positions."""
    if chosen is None:
        return [None] * len(counts)
    ends = np.cumsum(counts, dtype=np.int64)
    return [chosen[(chosen >= end - count) & (chosen < end)] - (end - count) for count, end in zip(counts, ends, strict=True)]


def _train_part(path: Path, positions: np.ndarray | None) -> pd.DataFrame:
    """A month's staged train rows; with `positions`, only the rows at these (sorted) positions in the part."""
    train = pd.read_parquet(path, engine="pyarrow")
    return train if positions is None else train.iloc[positions]


def _train_rows(parts: Sequence[Path], counts: Sequence[int], contract: DataContract) -> pd.DataFrame:
    """The train split for schema inference, read back from its staged parts: whole up to SCHEMA_SAMPLE_ROWS rows,
    else a seeded sample of that many in time order."""
    import dask

    counts = [count for count in counts if count]
    total = sum(counts)
    chosen = None
    if total > SCHEMA_SAMPLE_ROWS:
        chosen = np.sort(np.random.RandomState(contract.sample_seed).choice(total, SCHEMA_SAMPLE_ROWS, replace=False))
    tasks = [dask.delayed(_train_part)(path, taken) for path, taken in zip(parts, per_part(chosen, counts), strict=True)]
    collected: pd.DataFrame = pd.concat(dask.compute(*tasks)).reset_index(drop=True)
    return collected
