"""train: the model group, safe and byte-stable model files, and the model card."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from stages.featurize import featurize
from stages.lib.catalog import FeatureSpec
from stages.lib.config import FeaturizeConfig, ModelConfig, TrainConfig
from stages.lib.errors import UserError
from stages.lib.models import MODELS, build_model, load_model, model_writer
from stages.prepare import prepare
from stages.train import model_card, train_model
from tests.conftest import PROJECT


@pytest.fixture
def features(flights, weather, contract, params) -> tuple[FeatureSpec, dict[str, pd.DataFrame]]:
    config = dataclasses.replace(FeaturizeConfig.from_params(params), min_category_count=2)
    prepared = prepare(flights, [weather], contract)
    return featurize(prepared.splits, prepared.schema, config)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_in_the_group_trains_and_predicts(features, name, params):
    spec, splits = features
    model_config = ModelConfig.from_params({"model": yaml_model(name)})
    model = train_model(splits["train"], spec, model_config, TrainConfig(seed=1))
    scores = model.predict_proba(splits["test"][spec.features])[:, 1]
    assert scores.shape == (len(splits["test"]),)
    assert ((scores >= 0) & (scores <= 1)).all()


def yaml_model(name: str) -> dict:
    import yaml

    return yaml.safe_load((PROJECT / "conf/model" / f"{name}.yaml").read_text())


def test_every_model_file_in_conf_is_buildable():
    names = sorted(path.stem for path in (PROJECT / "conf/model").glob("*.yaml"))
    assert names == sorted(MODELS)
    for name in names:
        config = ModelConfig.from_params({"model": yaml_model(name)})
        build_model(config, ["distance"], ["carrier"], seed=0)


def test_hyperparameters_from_conf_reach_the_estimator():
    model = build_model(ModelConfig("hgb", {"learning_rate": 0.2, "max_iter": 7}), ["a"], [], seed=5)
    assert model.get_params()["learning_rate"] == 0.2
    assert model.get_params()["max_iter"] == 7
    assert model.get_params()["random_state"] == 5


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(UserError, match="unknown model 'xgb'; choose one of hgb, logreg"):
        build_model(ModelConfig("xgb", {}), ["a"], [], seed=0)


@pytest.mark.parametrize("key", ["learning_rte", "random_state"])
def test_unknown_or_reserved_hyperparameter_is_named(key):
    with pytest.raises(
        UserError,
        match=f"'model.{key}' \\(from conf/model/hgb.yaml or a -S override\\) is not a hyperparameter of HistGradientBoostingClassifier",
    ):
        build_model(ModelConfig("hgb", {key: 1}), ["a"], [], seed=0)


def test_one_class_target_is_refused(features):
    spec, splits = features
    with pytest.raises(UserError, match="target 'late' has one class only"):
        train_model(splits["train"].assign(late=0), spec, ModelConfig("hgb", {}), TrainConfig(seed=0))


def test_same_seed_same_model_different_seed_different_model(features):
    spec, splits = features
    config = ModelConfig("hgb", {"max_iter": 20, "max_features": 0.5})
    first, again, other = (train_model(splits["train"], spec, config, TrainConfig(seed=seed)) for seed in (1, 1, 2))
    test = splits["test"][spec.features]
    assert np.array_equal(first.predict_proba(test), again.predict_proba(test))
    assert not np.array_equal(first.predict_proba(test), other.predict_proba(test))


DUMP_IN_FRESH_PROCESS = """
import sys
import numpy as np, pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from stages.lib.models import model_writer
from pathlib import Path
rng = np.random.default_rng(0)
X = pd.DataFrame({"a": rng.normal(size=500), "b": pd.Categorical(rng.choice(["x", "y"], 500))})
model = HistGradientBoostingClassifier(max_iter=5, random_state=0, categorical_features="from_dtype").fit(X, X["a"] > 0)
model_writer(model)(Path(sys.argv[1]))
"""


def test_model_file_is_byte_identical_across_processes(tmp_path):
    # skops names arrays after memory addresses; fresh processes get fresh addresses.
    paths = [tmp_path / f"model{index}.skops" for index in range(2)]
    for path in paths:
        subprocess.run([sys.executable, "-c", DUMP_IN_FRESH_PROCESS, str(path)], check=True, cwd=PROJECT)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_file_round_trips(features, tmp_path, name):
    spec, splits = features
    model = train_model(splits["train"], spec, ModelConfig(name, {}), TrainConfig(seed=0))
    path = tmp_path / "model.skops"
    model_writer(model)(path)
    loaded = load_model(path)
    test = splits["test"][spec.features]
    assert np.array_equal(model.predict_proba(test), loaded.predict_proba(test))


def test_model_with_untrusted_types_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    sio.dump(FunctionTransformer(func=print), path)
    with pytest.raises(UserError, match="refusing to load untrusted types builtins.print"):
        load_model(path)


def test_missing_model_file_says_how_to_make_it(tmp_path):
    with pytest.raises(UserError, match="model file not found; run `dvc repro train`"):
        load_model(tmp_path / "absent.skops")


def test_model_card_records_params_inputs_features_and_versions(features):
    spec, _splits = features
    card = model_card(spec, {"model": {"name": "hgb"}, "train": {"seed": 1}}, {"data/features/train.parquet": "ab" * 32}, rows=10)
    assert card["model"] == {"name": "hgb"} and card["train"] == {"seed": 1}
    assert card["features"] == spec.features
    assert card["inputs_sha256"] == {"data/features/train.parquet": "ab" * 32}
    assert set(card["libraries"]) >= {"scikit-learn", "pandas", "numpy", "skops"}
