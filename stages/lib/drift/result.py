"""What a drift check finds: one `ColumnDrift` per column, gathered in a `DriftResult`, and their JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.lib.config import DriftThresholds
from stages.lib.drift.methods import METHODS_BY_NAME


@dataclass
class ColumnDrift:
    column: str
    kind: str  # "numeric" or "categorical": how the values were compared
    method: str  # the statistic that decides the verdict ("none" when one side has no values)
    score: float  # its value: a p-value for small references, a distance otherwise
    threshold: float
    drifted: bool  # the values' distribution drifted (the missing share is judged on its own)
    reference_rows: int  # non-missing values compared
    current_rows: int
    statistics: dict[str, float | int] = field(default_factory=dict)
    missing_reference: float = 0.0
    missing_current: float = 0.0
    missing_drifted: bool = False
    unseen_categories: list[str] = field(default_factory=list)
    note: str = ""
    histogram: dict[str, list[Any]] = field(default_factory=dict)  # for plots, not for the metrics file

    def to_json(self) -> dict[str, Any]:
        return {key: json_ready(value) for key, value in self.__dict__.items() if key != "histogram"}

    @property
    def severity(self) -> float:
        """How far past its threshold the column is: 1 at the threshold, above 1 when drifted (0 when not tested)."""
        method = METHODS_BY_NAME.get(self.method)
        if method is None or not math.isfinite(self.score):
            return 0.0
        return method.severity(self.score, self.threshold)


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    thresholds: DriftThresholds

    @property
    def drifted(self) -> list[str]:
        """Columns whose values or whose missing share drifted."""
        return [column.column for column in self.columns if column.drifted or column.missing_drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drift_share >= self.thresholds.drift_share


def json_ready(value: Any) -> Any:
    """JSON-safe, rounded, with NaN and infinity as null.

    Args:
        value: numbers, NumPy scalars, and dicts and lists of them.

    Returns:
        The same structure with plain Python values, floats at 6 significant digits.
    """
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    return value
