"""Drift statistics for a reference and a current sample, computed with NumPy.

Numeric columns: one sort of the current sample (the reference arrives sorted from featurize),
then one linear walk through both in merged order (compiled with numba, since NumPy has no
merge) gives both empirical CDFs at every point, hence the exact Kolmogorov-Smirnov statistic
and the exact Wasserstein-1 distance. PSI uses reference-quantile bins counted by binary search on
the sorted samples. Categorical columns: `bincount` over codes of the union of categories.
P-values come out as arrays at the end (no scipy call per column).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pandas as pd
from scipy import special, stats

from stages.lib.config import DriftThresholds
from stages.lib.profile import is_numeric

EPSILON_SHARE = 1e-4  # floor for empty bins in PSI and JS, as the widely used tools do
MIN_STD = 1e-3  # floor for the Wasserstein normalisation of a constant reference


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
    statistics: dict[str, float | int | None] = field(default_factory=dict)
    missing_reference: float = 0.0
    missing_current: float = 0.0
    missing_drifted: bool = False
    unseen_categories: list[str] = field(default_factory=list)
    note: str = ""
    histogram: dict[str, list] = field(default_factory=dict)  # for plots, not for the metrics file

    def to_json(self) -> dict[str, Any]:
        return {key: json_ready(value) for key, value in self.__dict__.items() if key != "histogram"}

    @property
    def severity(self) -> float:
        """How far past its threshold the column is: 1 at the threshold, above 1 when drifted."""
        if self.method == "none" or not math.isfinite(self.score):
            return 0.0
        if self.method.endswith("p_value"):
            return math.log(max(self.score, 1e-300)) / math.log(self.threshold)
        return self.score / self.threshold


def json_ready(value: Any) -> Any:
    """JSON-safe, rounded, with NaN and infinity as null."""
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


def sorted_profile(values: np.ndarray | pd.Series) -> np.ndarray:
    """A numeric column sorted with missing values dropped: what the reference keeps on disk."""
    array = _as_numeric(values) if isinstance(values, pd.Series) else np.array(values, dtype=np.float64)
    array.sort()  # in place; NaN sorts last
    if not len(array) or not np.isnan(array[-1]):
        return array
    return array[: len(array) - int(np.count_nonzero(np.isnan(array)))]


@numba.njit(cache=True, nogil=True)
def _merge_walk(reference: np.ndarray, current: np.ndarray) -> tuple[int, float]:
    """One linear walk through two sorted samples in merged order.

    At each distinct value both empirical CDFs are known exactly (ties in both samples are
    consumed together), so the largest gap is the exact KS statistic and the gap times the
    distance to the next value sums to the exact Wasserstein-1 distance. Gaps are scaled by
    n*m and kept as integers.
    """
    n, m = reference.shape[0], current.shape[0]
    i = j = 0
    largest, area = 0, 0.0
    while i < n or j < m:
        value = reference[i] if j >= m or (i < n and reference[i] <= current[j]) else current[j]
        while i < n and reference[i] == value:
            i += 1
        while j < m and current[j] == value:
            j += 1
        gap = abs(i * m - j * n)
        largest = max(largest, gap)
        if i < n and j < m:
            following = min(reference[i], current[j])
        elif i < n:
            following = reference[i]
        elif j < m:
            following = current[j]
        else:
            break
        area += gap * (following - value)
    return largest, area


def numeric_statistics(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int) -> dict[str, float | int]:
    """Exact KS statistic, Wasserstein-1 distance (raw and over the reference std) and quantile-bin PSI.

    Both inputs must be sorted and free of NaN.
    """
    n, m = len(reference_sorted), len(current_sorted)
    largest, area = _merge_walk(reference_sorted, current_sorted)
    wasserstein = area / (n * m)
    std = float(np.std(reference_sorted))
    psi, used_bins = _quantile_psi(reference_sorted, current_sorted, bins)
    return {
        "ks": largest / (n * m),
        "wasserstein": wasserstein,
        "wasserstein_norm": wasserstein / max(std, MIN_STD),
        "psi": psi,
        "psi_bins": used_bins,
        "reference_mean": float(np.mean(reference_sorted)),
        "current_mean": float(np.mean(current_sorted)),
        "reference_std": std,
    }


def _quantile_psi(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int) -> tuple[float, int]:
    """PSI over bins cut at reference quantiles, right-closed, so a heavily tied value gets a bin of its own."""
    n = len(reference_sorted)
    cuts = np.unique(reference_sorted[(np.arange(1, bins) * n) // bins])
    cuts = cuts[cuts < reference_sorted[-1]]
    edges = np.concatenate([cuts, [np.inf]])
    reference_counts = np.diff(np.searchsorted(reference_sorted, edges, side="right"), prepend=0)
    current_counts = np.diff(np.searchsorted(current_sorted, edges, side="right"), prepend=0)
    return _psi(reference_counts, current_counts), len(edges)


def _shares(counts: np.ndarray) -> np.ndarray:
    return np.maximum(counts / max(counts.sum(), 1), EPSILON_SHARE)


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    reference, current = _shares(reference_counts), _shares(current_counts)
    return float(np.sum((current - reference) * np.log(current / reference)))


def categorical_statistics(reference_counts: np.ndarray, current_counts: np.ndarray) -> dict[str, float | int]:
    """Chi-squared (2 x K contingency, no continuity correction), Cramér's V, Jensen-Shannon distance, PSI."""
    seen = (reference_counts + current_counts) > 0
    table = np.vstack([reference_counts[seen], current_counts[seen]]).astype(np.float64)
    total = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    categories = table.shape[1]
    chi2 = float(np.sum((table - expected) ** 2 / expected)) if categories > 1 else 0.0
    reference_share, current_share = table[0] / table[0].sum(), table[1] / table[1].sum()
    middle = (reference_share + current_share) / 2
    divergence = 0.5 * (special.rel_entr(reference_share, middle).sum() + special.rel_entr(current_share, middle).sum())
    return {
        "chi2": chi2,
        "chi2_dof": max(categories - 1, 0),
        "cramers_v": math.sqrt(chi2 / total) if categories > 1 else 0.0,
        "jensen_shannon": math.sqrt(max(float(divergence), 0.0)),
        "psi": _psi(table[0], table[1]),
        "categories": categories,
    }


def ks_p_values(statistics: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Two-sided KS p-values: exact-n distribution for small effective n, asymptotic Kolmogorov beyond."""
    effective = n * m / (n + m)
    small = effective <= 10_000  # scipy's kstwo gets slow (and no more exact in practice) above this
    p = special.kolmogorov(np.sqrt(effective) * statistics)
    if small.any():
        p[small] = stats.kstwo.sf(statistics[small], np.round(effective[small]))
    return np.clip(p, 0.0, 1.0)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """False-discovery-rate adjusted p-values (missing p-values stay missing)."""
    adjusted = np.full(len(p_values), np.nan)
    valid = ~np.isnan(p_values)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p_values[valid], method="bh")
    return adjusted


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


def _as_numeric(series: pd.Series) -> np.ndarray:
    """A float64 copy of the column, missing values as NaN (the copy may be sorted in place)."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


def _category_codes(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of both samples over the sorted union of their categories (-1 for missing)."""
    same_categories = (
        isinstance(reference.dtype, pd.CategoricalDtype)
        and isinstance(current.dtype, pd.CategoricalDtype)
        and list(reference.cat.categories) == list(current.cat.categories)
    )
    if same_categories:
        return reference.cat.codes.to_numpy(), current.cat.codes.to_numpy(), np.asarray(reference.cat.categories, dtype=object)
    both = pd.concat([reference.astype("string"), current.astype("string")], ignore_index=True)
    codes, uniques = pd.factorize(both, sort=True, use_na_sentinel=True)
    return codes[: len(reference)], codes[len(reference) :], np.asarray(uniques, dtype=object)


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _sorted_counts(sorted_values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """How often each of `categories` (sorted, covering every value) occurs: binary search, no pass over the values."""
    return np.diff(np.searchsorted(sorted_values, categories, side="right"), prepend=0)


def _few_values(reference_sorted: np.ndarray, current_sorted: np.ndarray, limit: int) -> bool:
    """At most `limit` distinct values in the two samples together."""
    for values in (reference_sorted, current_sorted):
        # A strided look finds most many-valued columns without a pass over every value.
        if len(_distinct_sorted(values[:: max(1, len(values) // 4096)])) > limit:
            return False
    reference_distinct = _distinct_sorted(reference_sorted)
    if len(reference_distinct) > limit:
        return False
    current_distinct = _distinct_sorted(current_sorted)
    return len(current_distinct) <= limit and len(np.union1d(reference_distinct, current_distinct)) <= limit


HISTOGRAM_BINS = 20
HISTOGRAM_CATEGORIES = 12


def _numeric_histogram(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> dict[str, list]:
    low, high = min(reference_sorted[0], current_sorted[0]), max(reference_sorted[-1], current_sorted[-1])
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, low])
    inner = edges[1:-1]

    def shares(values: np.ndarray) -> list[float]:
        counts = np.diff(np.searchsorted(values, inner, side="left"), prepend=0, append=len(values))
        return (counts / len(values)).round(6).tolist()

    centres = ((edges[:-1] + edges[1:]) / 2).round(6).tolist() if high > low else [float(low)]
    return {"value": centres, "reference": shares(reference_sorted), "current": shares(current_sorted)}


def _categorical_histogram(categories: np.ndarray, reference_counts: np.ndarray, current_counts: np.ndarray) -> dict[str, list]:
    reference_share = reference_counts / max(reference_counts.sum(), 1)
    current_share = current_counts / max(current_counts.sum(), 1)
    order = np.lexsort((np.arange(len(categories)), -np.maximum(reference_share, current_share)))
    top, rest = order[:HISTOGRAM_CATEGORIES], order[HISTOGRAM_CATEGORIES:]
    labels = [str(category) for category in categories[top]]
    reference_values, current_values = reference_share[top].tolist(), current_share[top].tolist()
    if len(rest):
        labels.append(f"({len(rest)} others)")
        reference_values.append(float(reference_share[rest].sum()))
        current_values.append(float(current_share[rest].sum()))
    return {"value": labels, "reference": np.round(reference_values, 6).tolist(), "current": np.round(current_values, 6).tolist()}


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    thresholds: DriftThresholds,
    reference_sorted: np.ndarray | None = None,
) -> ColumnDrift:
    """Every statistic for one column; verdicts come later, once p-values are adjusted together."""
    missing_reference = float(reference.isna().mean()) if len(reference) else 0.0
    missing_current = float(current.isna().mean()) if len(current) else 0.0
    common = {
        "column": name,
        "missing_reference": missing_reference,
        "missing_current": missing_current,
        # A change in how often a value is missing is drift of its own: the usual tools drop NaN and miss it.
        "missing_drifted": abs(missing_current - missing_reference) >= thresholds.missing_share,
        "method": "",
        "score": math.nan,
        "threshold": math.nan,
        "drifted": False,
    }
    if is_numeric(reference) and is_numeric(current):
        reference_values = reference_sorted if reference_sorted is not None else sorted_profile(reference)
        current_values = sorted_profile(current)
        if len(reference_values) and len(current_values) and not _few_values(reference_values, current_values, thresholds.few_values):
            statistics = numeric_statistics(reference_values, current_values, thresholds.psi_bins)
            collapsed = statistics["psi_bins"] < thresholds.psi_bins
            return ColumnDrift(
                kind="numeric", reference_rows=len(reference_values), current_rows=len(current_values), statistics=statistics,
                note=f"PSI on {statistics['psi_bins']} of {thresholds.psi_bins} bins: tied reference quantiles" if collapsed else "",
                histogram=_numeric_histogram(reference_values, current_values), **common,
            )  # fmt: skip
        # Few distinct values (or an empty side): compare them as categories, counted on the sorted values.
        categories = np.union1d(_distinct_sorted(reference_values), _distinct_sorted(current_values))
        reference_counts = _sorted_counts(reference_values, categories)
        current_counts = _sorted_counts(current_values, categories)
    else:
        reference_codes, current_codes, categories = _category_codes(reference, current)
        reference_counts = np.bincount(reference_codes[reference_codes >= 0], minlength=len(categories))
        current_counts = np.bincount(current_codes[current_codes >= 0], minlength=len(categories))
    reference_rows, current_rows = int(reference_counts.sum()), int(current_counts.sum())
    if not reference_rows or not current_rows:
        common |= {"method": "none"}
        side = "reference" if not reference_rows else "current"
        return ColumnDrift(
            kind="categorical", reference_rows=reference_rows, current_rows=current_rows,
            note=f"no values in the {side} window: only the missing share is compared", **common,
        )  # fmt: skip
    unseen = (reference_counts == 0) & (current_counts > 0)
    statistics = categorical_statistics(reference_counts, current_counts)
    statistics["unseen_rows"] = int(current_counts[unseen].sum())
    return ColumnDrift(
        kind="categorical", reference_rows=reference_rows, current_rows=current_rows, statistics=statistics,
        unseen_categories=[str(category) for category in categories[unseen]],
        histogram=_categorical_histogram(categories, reference_counts, current_counts), **common,
    )  # fmt: skip


def _decide(columns: list[ColumnDrift], thresholds: DriftThresholds) -> None:
    """Fill p-values (BH-adjusted over all columns) and apply the verdict rule."""
    tested = [column for column in columns if column.method != "none"]
    numeric = [column for column in tested if column.kind == "numeric"]
    categorical = [column for column in tested if column.kind == "categorical"]
    p_values = {}
    if numeric:
        ks = np.array([column.statistics["ks"] for column in numeric])
        n = np.array([column.reference_rows for column in numeric], dtype=np.float64)
        m = np.array([column.current_rows for column in numeric], dtype=np.float64)
        p_values |= dict(zip((column.column for column in numeric), ks_p_values(ks, n, m), strict=True))
    if categorical:
        chi2 = np.array([column.statistics["chi2"] for column in categorical])
        dof = np.array([column.statistics["chi2_dof"] for column in categorical])
        p = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)
        p_values |= dict(zip((column.column for column in categorical), p, strict=True))
    names = list(p_values)
    adjusted = dict(zip(names, benjamini_hochberg(np.array([p_values[name] for name in names])), strict=True))
    for column in tested:
        column.statistics["p_value"] = float(p_values[column.column])
        column.statistics["p_value_adjusted"] = float(adjusted[column.column])
        small = column.reference_rows <= thresholds.small_reference_rows
        if small:
            column.method = "ks_p_value" if column.kind == "numeric" else "chi2_p_value"
            column.score, column.threshold = column.statistics["p_value_adjusted"], thresholds.p_value
            column.drifted = column.score < thresholds.p_value
        elif column.kind == "numeric":
            column.method, column.score, column.threshold = (
                "wasserstein_norm",
                column.statistics["wasserstein_norm"],
                thresholds.wasserstein,
            )
            column.drifted = column.score >= thresholds.wasserstein
        else:
            column.method, column.score, column.threshold = "jensen_shannon", column.statistics["jensen_shannon"], thresholds.jensen_shannon
            column.drifted = column.score >= thresholds.jensen_shannon


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    thresholds: DriftThresholds,
    reference_sorted: Mapping[str, np.ndarray] | None = None,
    threads: int | None = None,
) -> DriftResult:
    """Compare `current` with `reference` on `columns` (present in both). Deterministic for any thread count."""
    reference_sorted = reference_sorted or {}

    def one(name: str) -> ColumnDrift:
        return column_drift(name, reference[name], current[name], thresholds, reference_sorted.get(name))

    # NumPy sorts release the GIL, so columns run in parallel; results keep column order.
    with ThreadPoolExecutor(max_workers=threads or 1) as pool:
        results = list(pool.map(one, columns))
    _decide(results, thresholds)
    return DriftResult(columns=results, thresholds=thresholds)
