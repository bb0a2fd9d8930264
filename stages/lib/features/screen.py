"""The screen featurize runs on the train split before building anything: inputs that should not be inputs.

- Suspected leaks (`features.screen.on_leak`: warn, drop or error): an input that predicts the target
  alone, out of fold, above `max_auc` (ROC AUC, classification) or `max_r2` (R^2, regression); an
  input prepare found (almost) always missing on the source rows without a target but present on the
  labelled ones (`post_outcome` in data/schema.yaml); a text input of dates mostly after the row's time.
- Identifiers (`identifier` in data/schema.yaml) and time proxies (|`time_spearman`| at least
  `time_proxy`): left out of the inputs unless data.types declares the column, always reported.

Each input is scored on its own, in sorted order, with folds drawn from `features.seed`: the result
depends on neither the column order nor anything but the train split and the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from stages.lib.config import FeaturesConfig
from stages.lib.contract import _parse_time_values  # the contract's own time formats, NaT where a value does not match
from stages.lib.errors import fail

LEAK_KINDS = ("leak", "post_outcome", "after_time")  # what features.screen.on_leak acts on
DATE_SHARE = 0.9  # a text input whose distinct values read as dates at least this often holds dates
AFTER_SHARE = 0.5  # dates after the row's time on at least this share of train rows: known only later
NUMBER = r"[+-]?\d+(\.\d*)?"  # plain numbers are codes, not ISO-8601 years


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str  # leak, post_outcome, after_time (suspected leaks), identifier or time_proxy
    message: str  # the warning, one line with the evidence and the fix
    reason: str  # why the column is left out, for the manifest's not_built (when it is)


@dataclass(frozen=True)
class Screen:
    metric: str  # how each input alone predicts the target, out of fold
    threshold: float
    scores: dict[str, float]  # input column -> score, sorted by column
    findings: list[Finding]  # sorted by column, then kind

    def leaks(self) -> dict[str, str]:
        """The suspected leaks, column -> why (first finding per column)."""
        leaks: dict[str, str] = {}
        for finding in self.findings:
            if finding.kind in LEAK_KINDS:
                leaks.setdefault(finding.column, finding.reason)
        return leaks

    def to_manifest(self, on_leak: str) -> dict[str, Any]:
        return {
            "on_leak": on_leak,
            "metric": self.metric,
            "threshold": self.threshold,
            "scores": {column: round(score, 6) for column, score in self.scores.items()},
            "findings": [{"column": item.column, "finding": item.kind, "evidence": item.message} for item in self.findings],
        }


def _contract_file(schema: dict[str, Any]) -> str:
    return f"conf/data/{schema.get('dataset')}.yaml"


def column_findings(schema: dict[str, Any], config: FeaturesConfig) -> tuple[dict[str, str], list[Finding]]:
    """Identifiers and time proxies from data/schema.yaml's evidence: what to leave out of the inputs (and why), and the findings.

    A column data.types declares keeps its declared type and stays (the user decided), but is reported.
    """
    columns, time, threshold = schema["columns"], schema["time"], config.screen.time_proxy
    conf = _contract_file(schema)
    leave_out: dict[str, str] = {}
    findings = []
    for name, entry in sorted(columns.items()):
        if "role" in entry or name in config.exclude:
            continue
        if "identifier" in entry and not (entry["declared"] and entry["type"] == "identifier"):
            evidence = f"looks like an identifier on train ({entry['identifier']})"
            if entry["declared"]:
                message = (
                    f"column '{name}' {evidence}, but data.types declares it {entry['type']}: kept as declared; "
                    f"if it names rows, list it in data.drop.identifiers in {conf}"
                )
            else:
                message = (
                    f"column '{name}' {evidence}: typed identifier, so it is left out of the inputs; list it in data.drop.identifiers "
                    f"in {conf}, or declare data.types.{name}: numeric if it is a measurement"
                )
            findings.append(Finding(name, "identifier", message, f"identifier: {entry['identifier']}"))
        correlation = entry.get("time_spearman")
        if entry["type"] == "numeric" and correlation is not None and abs(correlation) >= threshold:
            evidence = f"|Spearman| {abs(correlation):.4f} with the time column '{time}' on train (features.screen.time_proxy {threshold})"
            if entry["declared"]:
                message = (
                    f"column '{name}' follows the time, {evidence}, but data.types declares it {entry['type']}: kept as declared; "
                    f"a copy of the time only extrapolates under a time split (list it in data.drop.other in {conf})"
                )
            else:
                message = (
                    f"column '{name}' follows the time, {evidence}: a copy of the time only extrapolates under a time split, "
                    f"so it is left out of the inputs; list it in data.drop.other in {conf}, or declare data.types.{name}: numeric to keep it"
                )
                leave_out[name] = f"time proxy: {evidence}"
            findings.append(Finding(name, "time_proxy", message, f"time proxy: {evidence}"))
    return leave_out, findings


def fold_numbers(rows: int, folds: int, seed: int) -> np.ndarray:
    """Each row's held-out fold under a shuffled, seeded K-fold."""
    numbers = np.empty(rows, dtype=np.int64)
    for fold, (_, held_out) in enumerate(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.empty((rows, 1)))):
        numbers[held_out] = fold
    return numbers


def _dense_codes(values: pd.Series, categorical: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes for the distinct values, missing included: (codes, the sorted distinct numbers, number of codes).

    Numbers get codes 0..U-1 in increasing order and missing values U; levels get codes in order of appearance.
    """
    if categorical:
        codes, levels = pd.factorize(values, use_na_sentinel=False)  # missing is a level of its own
        return codes, np.empty(0), len(levels)
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, distinct = pd.factorize(numbers, sort=True)  # -1 where missing
    return np.where(codes < 0, len(distinct), codes), np.asarray(distinct, dtype=np.float64), len(distinct) + 1


def quantile_bins(distinct: np.ndarray, counts: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each distinct number (sorted) among quantile bins of the values they stand for (`counts` of each).

    The edges are the order statistics at 0-based positions floor(j (n - 1) / bins), j = 1..bins-1, of the
    n values, kept once each; bins are right-closed: a value equal to an edge goes below it.
    """
    cumulative = np.cumsum(counts)
    rows = int(cumulative[-1]) if len(cumulative) else 0
    if rows == 0:
        return np.zeros(len(distinct), dtype=np.int64)
    positions = ((rows - 1) * np.arange(1, bins)) // bins
    edges = np.unique(distinct[np.searchsorted(cumulative, positions, side="right")])
    return np.searchsorted(edges, distinct, side="left")


@dataclass(frozen=True)
class Groups:
    """Out-of-fold predictions by group: held-out rows of fold k whose code c falls in group g = group_of[k, c]
    are predicted means[k, g]; a group is a level (categorical) or one of the fold's bins (numeric)."""

    group_of: np.ndarray  # (folds, codes)
    means: np.ndarray  # (folds, groups): the in-fold target mean of the group
    counts: np.ndarray  # (folds, groups): held-out rows
    sums: np.ndarray  # (folds, groups): their target sum


def out_of_fold_groups(values: pd.Series, categorical: bool, target: np.ndarray, folds: np.ndarray, bins: int) -> Groups:
    """One input alone predicting the target: each held-out row gets the in-fold target mean of its level
    (categorical) or of its quantile bin fitted on the in-fold values (numeric); missing values form a
    level or bin of their own; a level or bin with no in-fold rows gets the in-fold mean."""
    codes, distinct, size = _dense_codes(values, categorical)
    count = int(folds.max()) + 1
    cells = folds * size + codes
    held_counts = np.bincount(cells, minlength=count * size).reshape(count, size).astype(np.float64)
    held_sums = np.bincount(cells, weights=target, minlength=count * size).reshape(count, size)
    fit_counts, fit_sums = held_counts.sum(axis=0) - held_counts, held_sums.sum(axis=0) - held_sums
    width = size if categorical else bins + 1  # bins 0..bins-1 at most, then the missing values'
    group_of = np.empty((count, size), dtype=np.int64)
    means, counts, sums = (np.zeros((count, width)) for _ in range(3))
    for fold in range(count):
        # Levels are their own groups; numbers go to the fold's bins, the last code (missing values) after them.
        groups = np.arange(size) if categorical else np.append(quantile_bins(distinct, fit_counts[fold, :-1], bins), bins)
        group_counts = np.bincount(groups, weights=fit_counts[fold], minlength=width)
        group_sums = np.bincount(groups, weights=fit_sums[fold], minlength=width)
        prior = fit_sums[fold].sum() / fit_counts[fold].sum()
        group_of[fold] = groups
        means[fold] = np.where(group_counts > 0, group_sums / np.maximum(group_counts, 1), prior)
        counts[fold] = np.bincount(groups, weights=held_counts[fold], minlength=width)
        sums[fold] = np.bincount(groups, weights=held_sums[fold], minlength=width)
    return Groups(group_of=group_of, means=means, counts=counts, sums=sums)


def grouped_auc(groups: Groups) -> float:
    """ROC AUC of the out-of-fold predictions for a 0/1 target (ties count half), from the groups' counts."""
    predictions, group = np.unique(groups.means.ravel(), return_inverse=True)
    positives = np.bincount(group, weights=groups.sums.ravel(), minlength=len(predictions))
    negatives = np.bincount(group, weights=groups.counts.ravel() - groups.sums.ravel(), minlength=len(predictions))
    below = np.cumsum(negatives) - negatives  # negatives predicted strictly lower
    return float((positives * (below + negatives / 2)).sum() / (positives.sum() * negatives.sum()))


def single_input_score(values: pd.Series, categorical: bool, target: np.ndarray, folds: np.ndarray, bins: int, task: str) -> float:
    """Out-of-fold ROC AUC as max(auc, 1 - auc) (a relation either way) for classification, R^2 for regression."""
    groups = out_of_fold_groups(values, categorical, target, folds, bins)
    if task == "classification":
        auc = grouped_auc(groups)
        return max(auc, 1.0 - auc)
    codes = _dense_codes(values, categorical)[0]
    prediction = groups.means[folds, groups.group_of[folds, codes]]
    return float(1.0 - ((target - prediction) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def input_scores(train: pd.DataFrame, inputs: dict[str, str], target: str, task: str, config: FeaturesConfig) -> dict[str, float]:
    """Every input's out-of-fold single-column score on train, sorted by column.

    Args:
        train: the prepared train split.
        inputs: input column -> its schema type (categorical inputs are grouped by level, the rest binned).
        target: the target column.
        task: classification or regression.
        config: the `features` section (`screen.folds`, `screen.bins`, `seed`).

    Raises:
        UserError: too few train rows for the folds, or a target the scores cannot be computed on.
    """
    screen = config.screen
    if len(train) < screen.folds:
        fail(f"split 'train' has {len(train)} rows, fewer than features.screen.folds = {screen.folds}; lower it in conf/features/")
    outcome = train[target].to_numpy(dtype=np.float64)
    if np.unique(outcome).size < 2:  # fail closed: nothing can be scored against a constant
        fail(f"split 'train': target '{target}' is constant ({outcome[0]}); the leak screen cannot score inputs against it")
    folds = fold_numbers(len(train), screen.folds, config.seed)
    categorical = {column: inputs[column] == "categorical" for column in inputs}
    return {column: single_input_score(train[column], categorical[column], outcome, folds, screen.bins, task) for column in sorted(inputs)}


def share_of_dates_after(values: pd.Series, times: pd.Series, time_format: str) -> float | None:
    """The share of rows with a value whose value, read as a date, lies after the row's time; None when the
    column does not hold dates (in the contract's format, or ISO-8601)."""
    text = values.dropna().astype(str)
    if text.empty:
        return None
    distinct = pd.Series(text.unique())
    formats = [time_format, "iso8601"] if "%" in time_format else ["iso8601"]
    for candidate in formats:
        dates = _parse_time_values(distinct, candidate)
        if candidate == "iso8601":
            dates = dates.where(~distinct.str.fullmatch(NUMBER))
        if dates.notna().mean() >= DATE_SHARE:
            break
    else:
        return None
    read = text.map(pd.Series(dates.array, index=distinct.to_numpy()))
    return float((read > times.loc[text.index]).sum() / len(values))


def leak_findings(
    train: pd.DataFrame, inputs: dict[str, str], scores: dict[str, float], schema: dict[str, Any], config: FeaturesConfig
) -> list[Finding]:
    """Suspected leaks among the inputs: too predictive alone, present only with an outcome, or dated after the row."""
    screen, columns, time = config.screen, schema["columns"], schema["time"]
    classification = schema["task"] == "classification"
    metric, key, threshold = ("ROC AUC", "max_auc", screen.max_auc) if classification else ("R^2", "max_r2", screen.max_r2)
    conf = _contract_file(schema)
    action = {
        "warn": f"declare it in data.drop.leaks in {conf}",
        "drop": f"left out of the inputs (features.screen.on_leak: drop); declare it in data.drop.leaks in {conf}",
        "error": f"declare it in data.drop.leaks in {conf}, or set features.screen.on_leak to warn or drop",
    }[screen.on_leak]
    findings = []
    for column in sorted(inputs):
        score = scores[column]
        if score > threshold:
            evidence = f"out-of-fold {metric} {score:.3f} on train alone (features.screen.{key} {threshold})"
            message = f"column '{column}' predicts the target alone with out-of-fold {metric} {score:.3f} on train (features.screen.{key} {threshold}): a leak? {action}"
            findings.append(Finding(column, "leak", message, f"suspected leak: {evidence}"))
        presence = columns[column].get("post_outcome")
        if presence:
            evidence = (
                f"missing on {presence['missing_without_target']:.1%} of the {presence['rows_without_target']:,} source rows "
                f"without a target, present on {presence['present_with_target']:.1%} of the labelled ones"
            )
            message = f"column '{column}' is {evidence}: known only once the outcome is? {action}"
            findings.append(Finding(column, "post_outcome", message, f"suspected leak: {evidence}"))
        if inputs[column] == "categorical" and not pd.api.types.is_numeric_dtype(train[column]):
            after = share_of_dates_after(train[column], train[time], schema["time_format"])
            if after is not None and after >= AFTER_SHARE:
                evidence = f"holds dates after the row's time ('{time}') on {after:.1%} of train rows"
                message = f"column '{column}' {evidence}: known only after the row's time? {action}"
                findings.append(Finding(column, "after_time", message, f"suspected leak: {evidence}"))
    return findings


def screen_inputs(
    train: pd.DataFrame, inputs: Sequence[str], schema: dict[str, Any], config: FeaturesConfig, column_results: Sequence[Finding] = ()
) -> Screen:
    """Score every input alone out of fold and collect the findings (with `column_results` from `column_findings`)."""
    typed = {column: schema["columns"][column]["type"] for column in inputs}
    scores = input_scores(train, typed, schema["target"], schema["task"], config)
    findings = sorted([*column_results, *leak_findings(train, typed, scores, schema, config)], key=lambda item: (item.column, item.kind))
    classification = schema["task"] == "classification"
    folds = f"{config.screen.folds} folds, seed {config.seed}"
    metric = (
        f"out-of-fold ROC AUC of each input alone (max of AUC and 1 - AUC), {folds}"
        if classification
        else f"out-of-fold R^2 of each input alone, {folds}"
    )
    threshold = config.screen.max_auc if classification else config.screen.max_r2
    return Screen(metric=metric, threshold=threshold, scores=scores, findings=findings)
