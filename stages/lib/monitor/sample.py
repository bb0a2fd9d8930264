"""The reference rows DLE's loss model is fitted on (monitor.estimator_rows): a seeded bottom-k sample by position.

Each row of the reference (the test split) gets a 64-bit hash of its position in the table and the seed (splitmix64's
finalizer, a bijection of 64-bit words: distinct positions never tie); the sample is the `limit` rows of smallest hash,
kept in table order. The hash depends on the position only, never on the parts or row groups the table is stored in,
so the pandas engine (one table in memory) and the dask engine (each row group on a worker, given its first row's
position) pick the same rows. The `limit`-th smallest hash, the threshold, needs no read: it is computed from the row
count alone, in blocks of positions, in memory of `limit` hashes. With `limit` None, or at least the table's rows,
every row is kept in order: the loss model is then the one fitted on the whole reference.
"""

from __future__ import annotations

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
BLOCK = 1 << 20  # positions hashed at once while the threshold is sought


def _seed_key(seed: int) -> int:
    """The seed (any integer) as a 64-bit word spread over all bits (splitmix64 of it, in Python integers)."""
    z = (seed + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * MIX[0]) & MASK
    z = ((z ^ (z >> 27)) * MIX[1]) & MASK
    return z ^ (z >> 31)


def position_hashes(positions: np.ndarray, seed: int) -> np.ndarray:
    """Each position's hash (uint64): splitmix64's finalizer of position XOR the seed's key (NumPy's uint64 products wrap)."""
    z = np.asarray(positions, dtype=np.uint64) ^ np.uint64(_seed_key(seed))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX[0])
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX[1])
    hashes: np.ndarray = z ^ (z >> np.uint64(31))
    return hashes


def hash_threshold(rows: int, limit: int | None, seed: int) -> int | None:
    """The largest hash of the sample of a table of `rows` rows (None: every row is kept)."""
    if limit is None or limit >= rows:
        return None
    kept = np.zeros(0, dtype=np.uint64)
    for start in range(0, rows, BLOCK):
        candidates = np.concatenate([kept, position_hashes(np.arange(start, min(start + BLOCK, rows), dtype=np.uint64), seed)])
        kept = np.partition(candidates, limit - 1)[:limit] if len(candidates) > limit else candidates
    return int(kept.max())


def sample_mask(positions: np.ndarray, threshold: int | None, seed: int) -> np.ndarray:
    """Which of these rows (their positions in the table) are in the sample of `threshold` (None: all)."""
    if threshold is None:
        return np.ones(len(positions), dtype=bool)
    mask: np.ndarray = position_hashes(positions, seed) <= np.uint64(threshold)
    return mask


def sample_positions(rows: int, limit: int | None, seed: int) -> np.ndarray:
    """The positions of the sample of a table of `rows` rows, ascending (the pandas engine's pick)."""
    positions = np.arange(rows, dtype=np.int64)
    picked: np.ndarray = positions[sample_mask(positions, hash_threshold(rows, limit, seed), seed)]
    return picked
