"""The target rule (`data.target` in conf/data/): how the target comes from its source column.

One function turns a source column's values into the target wherever outcomes arrive: prepare (the
source table), `make add-labels` (outcomes for the production store) and scoring's `--outcomes` (with
the rule of the model version being scored). The rules:

- `greater_than: x` (classification): 1 where the number is above x, else 0. The column must hold numbers.
- `positive: <label>` (classification, one class against the rest): 1 where the value equals the label.
  A true/false or number label compares by value (true == 1 == 1.0, so a 0/1 column read as floats
  because of missing cells still matches) and needs a column of at most two values; a text label
  compares as text, exactly (case and spaces count), with any number of classes.
- neither (regression): the number itself.

A text column with no positive label is a multi-class target, which is not supported: the message
names the column and its classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.lib.config.data import Target, label_text
from stages.lib.contract import NUMBERS_WITH_TEXT_SHARE
from stages.lib.errors import fail

MAX_SHOWN_VALUES = 8  # a message lists this many of a column's values (most frequent first)


def _kind(values: pd.Series) -> str:
    """boolean, number or text (anything else, e.g. text mixed with numbers), from the values present."""
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return "boolean"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    return "text" if len(values) else "empty"


def _listed(values: pd.Series) -> str:
    """The distinct values, most frequent first (ties by text), the first few shown as the contract writes them."""
    counts = values.value_counts(sort=False)
    order = sorted(counts.index, key=lambda value: (-int(counts[value]), str(value)))
    shown = ", ".join(label_text(value) for value in order[:MAX_SHOWN_VALUES])
    return shown + (f", ... ({len(order)} in all)" if len(order) > MAX_SHOWN_VALUES else "")


def _classes(values: pd.Series, target: Target, where: str) -> str:
    """The one-line refusal of a text column used without a positive label."""
    count = values.nunique()
    instead = "instead of data.target.greater_than" if target.greater_than is not None else "with task: classification"
    if count > 2:
        return (
            f"{where}: column '{target.column}' has {count} classes ({_listed(values)}): multi-class targets are not supported; "
            f"declare data.target.positive to predict one class against the rest ({instead}, in conf/data/)"
        )
    return (
        f"{where}: column '{target.column}' holds text ({_listed(values)}): a text target needs data.target.positive, "
        f"the label to predict ({instead}, in conf/data/)"
    )


def _numbers(values: pd.Series, target: Target, where: str) -> pd.Series:
    """The values as float64 for a threshold or a regression; booleans and classes are refused with the fix."""
    kind = _kind(values)
    column = target.column
    if kind == "boolean":
        instead = "instead of data.target.greater_than" if target.greater_than is not None else "with task: classification"
        fail(f"{where}: column '{column}' holds true/false values: declare data.target.positive: true ({instead}, in conf/data/)")
    if kind == "text":
        numbers = pd.to_numeric(values.astype("string"), errors="coerce")
        if float(numbers.notna().mean()) < NUMBERS_WITH_TEXT_SHARE:
            fail(_classes(values.astype("string"), target, where))
        text = values[numbers.isna()]
        fail(
            f"{where}: column '{column}' must hold numbers (the target: {target.rule}), got {label_text(text.iloc[0])} in "
            f"{len(text):,} row(s); if that means missing, add it to data.missing_values in conf/data/, else fix those rows"
        )
    numbers = values.astype(np.float64)
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        fail(f"{where}: column '{column}' holds infinite values in {int(infinite.sum()):,} row(s); a target must be a finite number")
    return numbers


def _meant(label: bool | int | float, texts: pd.Series) -> str:
    """The text a true/false or number label was most likely meant as (`yes` that YAML read as true), else the most frequent."""
    spellings = {True: ("yes", "on", "true", "y"), False: ("no", "off", "false", "n")}.get(label, ()) if isinstance(label, bool) else ()
    counts = texts.value_counts()
    for text in counts.index:
        if text.strip().lower() in spellings or text.strip() == label_text(label):
            return str(text)
    return str(counts.index[0])


def _label_numbers(values: pd.Series, label: bool | int | float, target: Target, where: str) -> pd.Series:
    """The values as float64 (true as 1) for a true/false or number label; text is refused with the quoted label to write."""
    kind = _kind(values)
    if kind == "text":
        what = "a boolean: YAML reads an unquoted yes or on as true" if isinstance(label, bool) else "a number"
        example = _meant(label, values.astype("string"))
        fail(
            f"{where}: data.target.positive is {label_text(label)} ({what}) but column '{target.column}' holds text "
            f"({_listed(values.astype('string'))}); write the label as the column does, quoted: positive: {label_text(example)}"
        )
    numbers = values.astype(np.float64)
    distinct = numbers.nunique()
    if distinct > 2:
        fail(
            f"{where}: column '{target.column}' holds {distinct} distinct values ({_listed(values)}), but a true/false or number "
            f"data.target.positive needs a column of two values; for a threshold use data.target.greater_than instead (in conf/data/)"
        )
    return numbers


def _unquoted(label: str, values: pd.Series) -> str:
    """The value of a true/false or number column a text label most likely means ('1' -> 1), else its most frequent."""
    present = {label_text(value) for value in values.unique()}
    for candidate in (label.strip().lower(), label_text(pd.to_numeric(label, errors="coerce"))):
        if candidate in present:
            return candidate
    return label_text(values.value_counts().index[0])


def target_values(values: pd.Series, target: Target, where: str, whole_column: bool = False) -> pd.Series:
    """The target from its source column's values, by the rule of `target` (module docstring).

    Args:
        values: the source column's values, none missing (the callers leave rows without an outcome out first).
        target: the contract's data.target (of the model version, when scoring).
        where: how to name the file in messages.
        whole_column: the values are a whole table's (prepare): a positive label that never occurs among them
            is a mistake (a misspelt label) and stops; a batch of outcomes may well hold no positive.

    Returns:
        int8 0/1 (classification) or float64 (regression), indexed like `values`.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if target.greater_than is not None:
        return (_numbers(values, target, where) > target.greater_than).astype(np.int8)
    if target.positive is None:
        return _numbers(values, target, where)
    positive = target.positive
    if isinstance(positive, str):
        kind = _kind(values)
        if kind in ("boolean", "number"):
            fail(
                f"{where}: data.target.positive is {label_text(positive)} (a text) but column '{target.column}' holds "
                f"{'true/false values' if kind == 'boolean' else 'numbers'} ({_listed(values)}); write the label unquoted, "
                f"e.g. positive: {_unquoted(positive, values)}"
            )
        labels = values.astype("string")
        hit = labels == positive
    else:
        numbers = _label_numbers(values, positive, target, where)
        labels, hit = values, numbers == float(positive)
    if whole_column and len(values) and not hit.any():
        fail(
            f"{where}: column '{target.column}' never holds {label_text(positive)} (data.target.positive); its values: "
            f"{_listed(labels)}; set positive to one of them exactly as written (case and spaces count)"
        )
    return hit.astype(np.int8)
