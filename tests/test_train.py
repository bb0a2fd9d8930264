"""train: the model group, safe and byte-stable model files, and the model card."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from stages.featurize import featurize
from stages.lib.catalog import FeatureSpec
from stages.lib.config import ModelConfig, TrainConfig, parse_params
from stages.lib.errors import UserError
from stages.lib.models import build_model, load_model, model_writer
from stages.prepare import prepare
from stages.train import cross_validate, model_card, train_model
from tests.conftest import PROJECT, model_config

REGRESSOR = "sklearn.ensemble.HistGradientBoostingRegressor"
LOGREG = "sklearn.linear_model.LogisticRegression"


def train_config(seed: int = 0, **changes) -> TrainConfig:
    return TrainConfig(seed=seed, cv_folds=0, encoding_folds=5, max_selected=None, sample_rows=None).model_copy(update=changes)


@pytest.fixture
def features(flights, weather, contract, params) -> tuple[FeatureSpec, dict[str, pd.DataFrame]]:
    base = parse_params(params).features
    config = base.model_copy(update={"categorical": base.categorical.model_copy(update={"min_count": 2, "max_onehot": 3})})
    prepared = prepare(flights, [weather], contract)
    result = featurize(prepared.splits, prepared.schema, config, contract.splits)
    return result.spec, result.frames


def yaml_model(name: str) -> dict:
    import yaml

    return yaml.safe_load((PROJECT / "conf/model" / f"{name}.yaml").read_text())


def conf_models(task: str | None = None) -> list[str]:
    names = sorted(path.stem for path in (PROJECT / "conf/model").glob("*.yaml"))
    return [name for name in names if task is None or ModelConfig.parse(yaml_model(name), ["model"]).task == task]


@pytest.mark.parametrize("name", conf_models("classification"))
def test_each_classifier_in_the_group_trains_and_predicts(features, name, params):
    spec, splits = features
    config = ModelConfig.parse(yaml_model(name), ["model"])
    model = train_model(splits["train"], spec, config, train_config(1)).model
    scores = model.predict_proba(splits["test"][spec.features])[:, 1]
    assert scores.shape == (len(splits["test"]),)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_every_model_file_in_conf_is_buildable():
    names = conf_models()
    assert {"hgb", "hgb_regressor", "logreg"} <= set(names)
    for name in names:
        build_model(ModelConfig.parse(yaml_model(name), ["model"]), seed=0)


def test_hyperparameters_from_conf_reach_the_estimator():
    model = build_model(model_config(learning_rate=0.2, max_iter=7), seed=5)
    assert model.get_params()["learning_rate"] == 0.2
    assert model.get_params()["max_iter"] == 7
    assert model.get_params()["random_state"] == 5


def test_an_estimator_without_random_state_gets_none():
    model = build_model(model_config("sklearn.neighbors.KNeighborsClassifier", "impute_scale_onehot", n_neighbors=3), seed=5)
    assert model.named_steps["classifier"].get_params()["n_neighbors"] == 3
    assert "random_state" not in model.named_steps["classifier"].get_params()


@pytest.mark.parametrize(
    "target", ["os.system", "subprocess.Popen", "sklearn.ensemble._hist_gradient_boosting", "sklearn.base.BaseEstimator"]
)
def test_a_target_outside_the_allow_list_is_refused_before_import(target):
    with pytest.raises(UserError) as raised:
        ModelConfig.parse({"name": "evil", "_target_": target, "preprocessing": "none"}, ["model"])
    assert str(raised.value) == (
        f"params.yaml: 'model._target_' must name an estimator class of sklearn.ensemble, sklearn.linear_model, "
        f"sklearn.naive_bayes, sklearn.neighbors, sklearn.svm, sklearn.tree, got {target!r}"
    )


def test_a_name_of_an_allowed_module_that_is_no_estimator_is_refused():
    with pytest.raises(UserError, match="'model._target_' 'sklearn.ensemble.BaseEnsemble' is not a classifier or regressor"):
        ModelConfig.parse({"name": "x", "_target_": "sklearn.ensemble.BaseEnsemble", "preprocessing": "none"}, ["model"])


@pytest.mark.parametrize("key", ["learning_rte", "random_state"])
def test_unknown_or_reserved_hyperparameter_is_named_with_the_valid_ones(key):
    valid = sorted(set(HistGradientBoostingClassifier().get_params()) - {"random_state"})
    with pytest.raises(UserError) as raised:
        ModelConfig.parse({**yaml_model("hgb"), key: 1}, ["model"])
    assert str(raised.value).startswith(
        f"params.yaml: 'model.{key}' (from conf/model/hgb.yaml or a -S override) is not a keyword argument of HistGradientBoostingClassifier"
    )
    assert str(raised.value).endswith(f"; valid: {', '.join(valid)}")


def test_one_class_target_is_refused(features):
    spec, splits = features
    with pytest.raises(UserError, match="target 'late' has one class only"):
        train_model(splits["train"].assign(late=0), spec, model_config(), train_config())


def test_same_seed_same_model_different_seed_different_model(features):
    spec, splits = features
    config = model_config(max_iter=20, max_features=0.5)
    first, again, other = (train_model(splits["train"], spec, config, train_config(seed)).model for seed in (1, 1, 2))
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


def test_model_file_does_not_depend_on_the_thread_count(tmp_path):
    # HistGradientBoosting's fitted bin mapper keeps the OpenMP thread count it ran with: a model trained on a
    # 2-CPU laptop and one from a 4-CPU runner would differ in bytes (and in dvc.lock) for nothing.
    paths = {threads: tmp_path / f"model-{threads}-threads.skops" for threads in ("1", "2")}
    for threads, path in paths.items():
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", DUMP_IN_FRESH_PROCESS, str(path)], check=True, cwd=PROJECT, env=env)
    assert paths["1"].read_bytes() == paths["2"].read_bytes()


@pytest.mark.parametrize("name", conf_models("classification"))
def test_model_file_round_trips(features, tmp_path, name):
    spec, splits = features
    model = train_model(splits["train"], spec, ModelConfig.parse(yaml_model(name), ["model"]), train_config()).model
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
    config = ModelConfig.parse(yaml_model("hgb"), ["model"])
    card = model_card(
        spec,
        config,
        train_config(seed=1),
        {"data/features/train.parquet": "ab" * 32},
        {"rows": 10},
        {"rows_used": 10, "rows_available": 40},
    )
    assert card["model"] == yaml_model("hgb")  # the typed section, written as conf/ has it
    assert card["model"]["_target_"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert card["train"] == {"seed": 1, "cv_folds": 0, "encoding_folds": 5, "max_selected": None, "sample_rows": None}
    assert card["sample"] == {"rows_used": 10, "rows_available": 40}
    assert card["features"] == spec.features
    assert card["inputs_sha256"] == {"data/features/train.parquet": "ab" * 32}
    assert set(card["libraries"]) >= {"scikit-learn", "pandas", "numpy", "skops"}


def high_cardinality_frame(rows: int, seed: int, shuffled: bool) -> pd.DataFrame:
    """`late` follows `signal`; `route` has many small levels and, unshuffled, a per-level rate."""
    rng = np.random.default_rng(seed)
    route = rng.integers(0, rows // 8, rows)
    signal = rng.normal(size=rows)
    late = (signal + (route % 7 == 0) * 1.5 + rng.normal(0, 1, rows) > 1).astype(np.int8)
    if shuffled:
        late = rng.permutation(late)
    return pd.DataFrame(
        {
            "signal": signal,
            "route": pd.Categorical([f"r{value}" for value in route]),
            "late": late,
            "time_hour": pd.date_range("2013-01-01", periods=rows, freq="h", tz="UTC"),
        }
    )


TE_SPEC = FeatureSpec(
    features=["signal", "route"],
    categorical=["route"],
    target_encoded=True,
    inputs={"route": "categorical", "signal": "numeric"},
    sources={"signal": ["signal"], "route": ["route"]},
)


def test_target_encoding_is_out_of_fold_so_a_shuffled_target_gives_chance():
    train, test = high_cardinality_frame(4000, 0, shuffled=True), high_cardinality_frame(2000, 1, shuffled=True)
    model = train_model(train, TE_SPEC, model_config(max_iter=50), train_config()).model
    # The encodings the model was fitted on: in-sample encoding of ~8 rows per level would
    # memorise the shuffled labels (AUC far above 0.5); out of fold they carry nothing.
    encoded = model[:-1].fit_transform(train[TE_SPEC.features], train["late"])
    assert abs(roc_auc_score(train["late"], encoded["route"]) - 0.5) < 0.05
    test_auc = roc_auc_score(test["late"], model.predict_proba(test[TE_SPEC.features])[:, 1])
    assert abs(test_auc - 0.5) < 0.05


def test_target_encoding_learns_a_real_per_level_rate():
    train, test = high_cardinality_frame(4000, 0, shuffled=False), high_cardinality_frame(4000, 1, shuffled=False)
    test = test.assign(route=pd.Categorical(test["route"].astype(str), categories=train["route"].cat.categories))
    model = train_model(train, TE_SPEC, model_config(max_iter=50), train_config()).model
    signal_only = dataclasses.replace(TE_SPEC, features=["signal"], categorical=[], inputs={"signal": "numeric"})
    baseline = train_model(train, signal_only, model_config(max_iter=50), train_config()).model
    with_route = roc_auc_score(test["late"], model.predict_proba(test[TE_SPEC.features])[:, 1])
    without = roc_auc_score(test["late"], baseline.predict_proba(test[["signal"]])[:, 1])
    assert with_route > without + 0.02


def test_cross_validation_reports_each_fold_and_their_mean(features):
    spec, splits = features
    trained = train_model(splits["train"], spec, model_config(max_iter=20), train_config(cv_folds=3))
    cv = trained.summary["cv"]
    assert cv["metric"] == "roc_auc" and len(cv["folds"]) == 3
    assert cv["mean"] == pytest.approx(np.nanmean(cv["folds"]), abs=1e-6)


FOLDS_SEEN: list[tuple[np.ndarray, np.ndarray]] = []  # (rows fitted on, rows scored) per fold, in order


class FoldRecorder(ClassifierMixin, BaseEstimator):
    """A stand-in model that records which rows (by index) each fold fits on and scores."""

    def fit(self, features: pd.DataFrame, target: pd.Series) -> FoldRecorder:
        self.fitted_rows_ = features.index.to_numpy()
        self.classes_ = np.unique(target)
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        FOLDS_SEEN.append((self.fitted_rows_, features.index.to_numpy()))
        return np.full((len(features), 2), 0.5)


def assert_folds_follow_time(times: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]], count: int) -> None:
    """Expected from the timestamps alone: each fold fits on every row strictly earlier than all the rows it
    scores, and no other; the scored blocks are disjoint, follow one another and run to the end of train."""
    assert len(folds) == count
    previous_end = None
    for fitted, scored in folds:
        assert len(fitted) and len(scored)
        first_scored = times[scored].min()
        assert times[fitted].max() < first_scored  # strictly after its training rows
        assert sorted(fitted) == sorted(times.index[times < first_scored])  # and every earlier row is used
        if previous_end is not None:
            assert first_scored > previous_end
        previous_end = times[scored].max()
    assert previous_end == times.max()
    scored_rows = np.concatenate([scored for _, scored in folds])
    assert sorted(scored_rows) == sorted(times.index[times >= times[folds[0][1]].min()])


def test_cross_validation_fits_each_fold_on_rows_strictly_before_the_ones_it_scores(features):
    spec, splits = features
    train = splits["train"]
    FOLDS_SEEN.clear()
    cross_validate(train, spec, Pipeline([("model", FoldRecorder())]), folds=3)
    assert_folds_follow_time(train[spec.time], FOLDS_SEEN, 3)


def test_cross_validation_says_each_fold_as_it_finishes(features, capsys):
    """A full-data fold takes minutes: train prints one line per fold rather than nothing until the end."""
    spec, splits = features
    summary = cross_validate(splits["train"], spec, Pipeline([("model", FoldRecorder())]), folds=3)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" scored,")[0] for line in lines] == [f"train: fold {index} of 3" for index in (1, 2, 3)]
    assert [float(line.split()[7]) for line in lines] == pytest.approx(summary["folds"], abs=1e-4)


def test_cross_validation_folds_do_not_split_rows_that_share_a_timestamp():
    # 30 hours, 7 rows each: a cut by row count lands inside an hour.
    times = pd.Series(np.repeat(pd.date_range("2013-01-01", periods=30, freq="h", tz="UTC"), 7))
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=len(times)), "late": np.resize([0, 1], len(times)).astype(np.int8), "time_hour": times})
    spec = FeatureSpec.plain(["x"], [], target="late", time="time_hour", task="classification")
    FOLDS_SEEN.clear()
    cross_validate(train, spec, Pipeline([("model", FoldRecorder())]), folds=3)
    assert_folds_follow_time(train["time_hour"], FOLDS_SEEN, 3)


def test_target_based_selection_keeps_at_most_the_cap(features):
    spec, splits = features
    trained = train_model(splits["train"], spec, model_config(max_iter=20), train_config(max_selected=5))
    assert len(trained.summary["selected"]) == 5
    assert set(trained.summary["selected"]) <= set(spec.features)
    scores = trained.model.predict_proba(splits["test"][spec.features])[:, 1]
    assert scores.shape == (len(splits["test"]),)


def test_regression_task_trains_a_regressor():
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    frame = pd.DataFrame(
        {"x": x, "y": 3 * x + rng.normal(0, 0.1, 600), "date": pd.date_range("2015-01-01", periods=600, freq="D", tz="UTC")}
    )
    spec = FeatureSpec.plain(["x"], [], target="y", time="date", task="regression")
    trained = train_model(frame, spec, model_config(REGRESSOR, max_iter=50), train_config(cv_folds=2))
    assert trained.summary["cv"]["metric"] == "rmse" and trained.summary["cv"]["mean"] < 1.0
    assert np.corrcoef(trained.model.predict(frame[["x"]]), frame["y"])[0, 1] > 0.95
    with pytest.raises(
        UserError, match=r"model 'LogisticRegression' \(sklearn.linear_model.LogisticRegression\) does not fit the regression task"
    ):
        train_model(frame, spec, model_config(LOGREG, "impute_scale_onehot"), train_config())


def test_cross_validation_refuses_folds_that_cannot_be_cut_between_distinct_times():
    # Two distinct hours cannot give three folds that each fit on strictly earlier rows.
    times = pd.Series(np.repeat(pd.date_range("2013-01-01", periods=2, freq="h", tz="UTC"), 20), name="time_hour")
    train = pd.DataFrame(
        {"x": np.arange(len(times), dtype=float), "late": np.resize([0, 1], len(times)).astype(np.int8), "time_hour": times}
    )
    spec = FeatureSpec.plain(["x"], [], target="late", time="time_hour", task="classification")
    with pytest.raises(UserError, match=r"2 distinct times in 'time_hour' are too few for train.cv_folds = 3"):
        cross_validate(train, spec, Pipeline([("model", FoldRecorder())]), folds=3)


def test_a_new_estimator_needs_only_a_yaml_file(features, tmp_path):
    """A RandomForestClassifier from a file in a copy of conf/: composed, validated, trained, saved and loaded, no Python."""
    from commands.compose import compose
    from tests.conftest import choice_overrides

    conf = shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    (conf / "model/forest.yaml").write_text(
        "name: forest\n_target_: sklearn.ensemble.RandomForestClassifier\npreprocessing: impute_scale_onehot\n"
        "n_estimators: 7\nmin_samples_leaf: 3\n"
    )
    params = parse_params(yaml.safe_load(compose(conf, [*choice_overrides(), "model=forest"])))
    spec, splits = features
    model = train_model(splits["train"], spec, params.model, train_config(seed=3)).model
    forest = model.named_steps["model"].named_steps["classifier"]
    assert type(forest).__name__ == "RandomForestClassifier"
    assert (forest.n_estimators, forest.min_samples_leaf, forest.random_state) == (7, 3, 3)
    path = tmp_path / "model.skops"
    model_writer(model)(path)
    test = splits["test"][spec.features]
    assert np.array_equal(load_model(path).predict_proba(test), model.predict_proba(test))


def test_a_classifier_for_a_regression_contract_names_the_model_file_to_choose(params):
    regression = yaml.safe_load((PROJECT / "conf/data/seattle_weather.yaml").read_text())
    with pytest.raises(UserError) as raised:
        parse_params({**params, "data": regression}, conf=PROJECT / "conf")
    assert str(raised.value) == (
        "params.yaml: 'model._target_' sklearn.ensemble.HistGradientBoostingClassifier (conf/model/hgb.yaml) is a classifier, "
        f"but data.task is regression; choose model=hgb_regressor ({PROJECT / 'conf/model/hgb_regressor'}.yaml)"
    )
