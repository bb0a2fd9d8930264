"""The monitor's chunk cache: each chunk's findings under a key that hashes everything they depend on.

A chunk's key covers its place on the grid, its batches' and outcome files' sha256, and a salt (the settings,
the model's md5, the reference's fingerprint and the monitor's code): when none of them changed, the chunk's
findings are read back and its batches are not read at all, so adding a batch costs time in proportion to
that batch. The folder is a working cache (git-ignored, not a DVC output): deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.lib.io import json_text


def digest(payload: Any) -> str:
    """sha256 of a JSON-able payload (keys sorted)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def frame_fingerprint(frame: pd.DataFrame, *arrays: np.ndarray) -> str:
    """sha256 of a frame's column names, types and values (and of extra arrays): equal data, equal fingerprint."""
    hasher = hashlib.sha256(json.dumps([[str(name), str(frame[name].dtype)] for name in frame.columns]).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    for array in arrays:
        hasher.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return hasher.hexdigest()


def code_fingerprint(files: list[Path]) -> str:
    """sha256 of source files' bytes, in the given order."""
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(path.as_posix().encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


class ChunkCache:
    """JSON findings per chunk key in one folder; None disables caching (every chunk is computed)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.used: set[str] = set()

    def get(self, key: str) -> dict[str, Any] | None:
        self.used.add(key)
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or damaged: computed again
        return found if isinstance(found, dict) else None

    def put(self, key: str, findings: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".chunk.", suffix=".tmp", dir=self.folder)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json_text(findings))
        os.replace(temporary, self.folder / f"{key}.json")

    def prune(self) -> None:
        """Remove entries no chunk of this run used (the store or the settings moved on)."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in self.folder.glob("*.json"):
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
