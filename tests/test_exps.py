"""`make exps`: `dvc exp show` narrowed to the main metrics and the params that differ, in a real git + DVC repository."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from commands import exps
from stages.lib.catalog import DRIFT_FILE, METRICS_FILE, TRAIN_SUMMARY
from stages.lib.errors import UserError
from tests.conftest import tool_env

COMMITS = [  # (params, test metrics, cross-validated mean) of two revisions: only model.max_iter changes
    ({"model": {"max_iter": 300, "seed": 0}, "evaluate": {"threshold": 0.35}}, {"roc_auc": 0.688, "log_loss": 0.405, "f1": 0.31}, 0.72),
    ({"model": {"max_iter": 30, "seed": 0}, "evaluate": {"threshold": 0.35}}, {"roc_auc": 0.679, "log_loss": 0.409, "f1": 0.30}, 0.71),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("exps")
    env = tool_env()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    Repo.init(root).close()
    (root / "dvc.yaml").write_text(yaml.safe_dump({"metrics": [str(METRICS_FILE), str(TRAIN_SUMMARY), str(DRIFT_FILE)]}))
    (root / "reports").mkdir()
    for params, metrics, cv_mean in COMMITS:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        (root / METRICS_FILE).write_text(json.dumps({**metrics, "rows": 1000, "threshold": 0.35}))
        (root / TRAIN_SUMMARY).write_text(json.dumps({"cv": {"mean": cv_mean, "std": 0.01, "metric": "roc_auc"}, "rows": 5000}))
        (root / DRIFT_FILE).write_text(json.dumps({"drift_share": 0.5, "dataset_drift": True, "gate": {"passed": False}}))
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", f"max_iter {params['model']['max_iter']}"], cwd=root, check=True, env=env)
    return root


def shown(repo: Path, monkeypatch, capsys, *args: str) -> list[dict[str, str]]:
    """The rows `python -m commands.exps` prints (as CSV, so the test reads every column DVC keeps)."""
    monkeypatch.chdir(repo)
    capsys.readouterr()
    exps.main(["-n", "2", "--csv", *args])
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_the_default_view_shows_the_main_metrics_and_only_the_changed_param(repo, monkeypatch, capsys):
    rows = shown(repo, monkeypatch, capsys)
    assert list(rows[0]) == ["Experiment", "roc_auc", "log_loss", "cv.mean", "model.max_iter"]  # in the files' key order
    assert [(row["roc_auc"], row["model.max_iter"]) for row in rows] == [("0.679", "30"), ("0.679", "30"), ("0.688", "300")]


def test_keep_widens_and_drop_narrows_the_view(repo, monkeypatch, capsys):
    columns = list(
        shown(repo, monkeypatch, capsys, "--keep", "f1", "--keep", "drift_share", "--keep", r"model\.seed", "--drop", "log_loss")[0]
    )
    assert columns == ["Experiment", "roc_auc", "f1", "cv.mean", "drift_share", "model.max_iter", "model.seed"]


def test_a_missing_params_file_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"params\.yaml: file not found; run `make params` first"):
        exps.main([])
