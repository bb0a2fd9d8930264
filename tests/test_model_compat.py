"""Model files saved before a code move still load and score the same, and new ones name the same classes.

tests/fixtures/compat/ was written by the code at commit 17e0415 (before stages/lib/features.py became a
package): featurize on the synthetic frames of tests/conftest.py (min_count 2, max_onehot 3, log transform,
the ratio distance/temp, no history) and train (HGB, 20 iterations, target encoding, max_selected 10), then
model_writer. rows.parquet is the test split, transformed.parquet the transformer's output on it,
features.parquet the model's inputs and scores.json its scores. skops names every class by module path, so
a class that moves (or is only re-exported from its old path) breaks these tests before it breaks a user's file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from stages.lib.models import TRUSTED_TYPES, load_model, model_writer, predict_scores

FIXTURES = Path(__file__).parent / "fixtures" / "compat"
PROJECT_TYPES = sorted(name for name in TRUSTED_TYPES if name.startswith("stages."))


def project_types(data: bytes) -> set[str]:
    return {name for name in sio.get_untrusted_types(data=data) if name.startswith("stages.")}


def test_a_transformer_saved_before_the_split_loads_and_transforms_identically():
    transformer = load_model(FIXTURES / "transformer.skops")
    rows = pd.read_parquet(FIXTURES / "rows.parquet")
    expected = pd.read_parquet(FIXTURES / "transformed.parquet")
    transformed = transformer.transform(rows).reset_index(drop=True)
    pd.testing.assert_frame_equal(transformed, expected, check_exact=True)


def test_a_model_saved_before_the_split_loads_and_scores_identically():
    model = load_model(FIXTURES / "model.skops")
    features = pd.read_parquet(FIXTURES / "features.parquet")
    expected = json.loads((FIXTURES / "scores.json").read_text(encoding="utf-8"))
    np.testing.assert_array_equal(predict_scores(model, features, "classification"), np.asarray(expected))


@pytest.mark.parametrize("name", ["transformer.skops", "model.skops"])
def test_saving_again_names_the_classes_at_the_same_module_paths(name, tmp_path):
    """A class whose real module changed (even if re-exported from the old one) would be saved under the new path."""
    saved = (FIXTURES / name).read_bytes()
    model_writer(load_model(FIXTURES / name))(tmp_path / name)
    assert project_types((tmp_path / name).read_bytes()) == project_types(saved)
    assert project_types(saved) <= set(PROJECT_TYPES)


def test_the_fixtures_cover_every_project_class_of_the_allow_list():
    covered = set().union(*(project_types((FIXTURES / name).read_bytes()) for name in ("transformer.skops", "model.skops")))
    assert covered == set(PROJECT_TYPES) - {"stages.lib.models.f_regression_filled"}  # a classifier fixture: no regression F-test


@pytest.mark.parametrize("name", PROJECT_TYPES)
def test_every_allow_listed_project_name_is_where_it_is_defined(name):
    module, _, attribute = name.rpartition(".")
    defined = getattr(importlib.import_module(module), attribute)
    assert f"{defined.__module__}.{defined.__qualname__}" == name
