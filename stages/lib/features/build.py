"""The fitted part of the features: one `ColumnTransformer` for the datetime, numeric and categorical families,
and what each of its outputs is made from (for the manifest and the spec's sources)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, QuantileTransformer

from stages.lib.config import FeaturesConfig
from stages.lib.features import CalendarFeatures, FrequencyEncoder, RareCategories, RatioFeatures, TextCategories, signed_log1p
from stages.lib.features.plan import Plan

QUANTILE_SUBSAMPLE = 100_000

# ColumnTransformer entry name prefix -> feature family
FAMILY_OF_ENTRY = {
    "numeric": "numeric",
    "missing": "numeric",
    "ratio": "numeric",
    "calendar": "datetime",
    "onehot": "categorical",
    "frequency": "categorical",
    "categories": "categorical",
}


def build_transformer(plan: Plan, schema: dict[str, Any], config: FeaturesConfig, train: pd.DataFrame) -> ColumnTransformer:
    """An unfitted ColumnTransformer for the datetime, numeric and categorical families (pandas output).

    Args:
        plan: the feature plan (`plan_features`).
        schema: data/schema.yaml (the time column and its time zone).
        config: the `features` section.
        train: the train split (which numeric columns have missing values, for the indicators).

    Returns:
        The transformer, to be fitted on train; it drops every column it does not name.
    """
    entries: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        steps: list[tuple[str, Any]] = []
        if config.numeric.impute != "none":
            steps.append(("impute", SimpleImputer(strategy=config.numeric.impute, keep_empty_features=True)))
        if config.numeric.transform == "log":
            steps.append(("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")))
        elif config.numeric.transform == "quantile":
            steps.append(
                ("quantile", QuantileTransformer(output_distribution="normal", subsample=QUANTILE_SUBSAMPLE, random_state=config.seed))
            )
        entries.append(("numeric", Pipeline(steps) if steps else "passthrough", plan.numeric))
        with_missing = [column for column in plan.numeric if train[column].isna().any()]
        if config.numeric.missing_indicators and with_missing:
            entries.append(("missing", MissingIndicator(features="all", sparse=False), with_missing))
        for index, (numerator, denominator) in enumerate(config.numeric.ratios):
            entries.append((f"ratio{index}", RatioFeatures(), [numerator, denominator]))
    if plan.calendar_parts or plan.holidays:
        country, subdivision = (plan.holidays["country"], plan.holidays["subdivision"]) if plan.holidays else (None, None)
        calendar = CalendarFeatures(schema.get("timezone"), tuple(plan.calendar_parts), config.datetime.cyclical, country, subdivision)
        entries.append(("calendar", calendar, [schema["time"]]))
    for column in plan.onehot:
        encoder = OneHotEncoder(
            min_frequency=config.categorical.min_count, handle_unknown="infrequent_if_exist", sparse_output=False, dtype=np.float64
        )
        entries.append((f"onehot_{column}", Pipeline([("text", TextCategories()), ("encode", encoder)]), [column]))
    categorical = [*plan.onehot, *plan.high_cardinality]
    if config.categorical.frequency and categorical:
        entries.append(("frequency", FrequencyEncoder(), categorical))
    if plan.high_cardinality:
        entries.append(("categories", RareCategories(config.categorical.min_count), plan.high_cardinality))
    transformer = ColumnTransformer(entries, remainder="drop", verbose_feature_names_out=False)
    return transformer.set_output(transform="pandas")


def describe_outputs(transformer: ColumnTransformer) -> dict[str, dict[str, Any]]:
    """For each output feature of a fitted transformer: its family, source columns and transform.

    Args:
        transformer: a transformer from `build_transformer`, fitted.

    Returns:
        {feature: {"family": ..., "sources": [input columns], "transform": "A -> B"}} in output order.
    """
    described = {}
    for name, fitted, columns in transformer.transformers_:
        if name == "remainder" or fitted == "drop":
            continue
        family = FAMILY_OF_ENTRY[name.split("_")[0].rstrip("0123456789")]
        outputs = list(transformer.named_transformers_[name].get_feature_names_out(columns)) if fitted != "passthrough" else list(columns)
        one_to_one = len(outputs) == len(columns) and name not in ("calendar",)
        for index, output in enumerate(outputs):
            sources = [columns[index]] if one_to_one else list(columns)
            described[output] = {"family": family, "sources": sources, "transform": _transform_name(fitted)}
    return described


def _transform_name(fitted: Any) -> str:
    if fitted == "passthrough":
        return "as is"
    if isinstance(fitted, Pipeline):
        return " -> ".join(type(step).__name__ for _, step in fitted.steps)
    return type(fitted).__name__
