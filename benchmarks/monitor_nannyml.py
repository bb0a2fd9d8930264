"""Our performance estimation (stages/lib/monitor/estimation.py) against NannyML 0.13.1, side by side (issue 12, item 4).

Run from the repository root, after `dvc repro` (it reads the model, the feature transformer and the history
the pipeline built):

    .venv/bin/python benchmarks/monitor_nannyml.py
    .venv/bin/python benchmarks/monitor_nannyml.py --skip-nannyml     # ours only

What it does:
1. Builds four cases and writes each to Parquet in a temporary directory:
   - flights: the replayed default data. Reference: the test split (2013-09-01..2013-11-01) scored by the model;
     analysis: the rows of 2013-11-01..2014-01-01 (in no split) as calendar weeks (Monday-Sunday: NannyML's
     `chunk_period="W"`, and ours by the same weeks), their features built as scoring builds them
     (stages/lib/features/serving.py `apply_features` with the version's transformer and the full labelled
     history: this benchmark measures estimation, not scoring), scored by the model.
   - covariate shift (synthetic): P(late | x) fixed and known; the model's scores are miscalibrated (the
     calibrator must fix them); x1's spread shrinks chunk by chunk, so rows get harder to tell apart and
     ROC AUC really drops. Both estimators should follow it.
   - concept drift (synthetic): the inputs keep their distribution, P(late | x) flattens chunk by chunk.
     Realized ROC AUC drops; neither estimator can see it (both assume P(late | x) unchanged): they must miss.
   - regression (synthetic, not seattle_weather): y = 2 x1 + sin(3 x3) + noise whose size grows with |x2|;
     the model is a HistGradientBoostingRegressor fitted on its own train rows; x2's mean moves chunk by chunk,
     so MAE grows. DLE (ours: stages/lib/monitor/estimation.py; NannyML's DLE) estimates MAE.
2. Runs each tool in a child process reading the Parquet files: ours in this venv, NannyML in
   benchmarks/.venv-nannyml (created on first use: NannyML 0.13.1 needs pandas<3 and imports statsmodels
   without declaring it). Each child warms up on a small sample, then times fit (on the reference) and
   estimation (every chunk) of every case, `--repeats` times, keeping each phase's fastest run. Ours computes
   every estimate with its band (analytic: the spread of the realized metric under label draws, computed, not
   sampled); NannyML computes its own estimates and sampling errors for the same metrics, with its usage
   logging off (NML_DISABLE_USAGE_LOGGING: it would otherwise send events to segment.io from the benchmark).
3. Prints Markdown: per chunk the realized metric, ours, NannyML's; the mean absolute error of each against
   realized; wall time of each; the machine and its load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NANNYML_VENV = REPO / "benchmarks" / ".venv-nannyml"
NANNYML_REQUIREMENTS = ["nannyml==0.13.1", "pandas<3", "pyarrow", "statsmodels"]
REPLAY = ("2013-11-01", "2014-01-01")
SYNTHETIC_CHUNK = 5_000
LEVEL = 0.95
CLASSIFICATION_CASES = ("flights", "covariate_shift", "concept_drift")
REGRESSION_FEATURES = ["x1", "x2", "x3", "kind"]
CASES = (*CLASSIFICATION_CASES, "regression")


# --- the data ----------------------------------------------------------------------------------------------


def flights_case(directory: Path) -> None:
    """The replayed default data: reference = the test split scored, analysis = November-December scored."""
    sys.path.insert(0, str(REPO))
    import pandas as pd
    import yaml

    from stages.lib.catalog import HISTORY_EVENTS, MODEL_FILE, TRANSFORMER_FILE, load_features
    from stages.lib.config import parse_params
    from stages.lib.features.serving import apply_features
    from stages.lib.io import read_parquet, read_table
    from stages.lib.models import load_model, predict_scores
    from stages.prepare import prepare

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["splits"]["current"] = {"start": REPLAY[0], "end": REPLAY[1]}  # the replay: rows in no split of the pipeline
    params = parse_params(raw)
    contract = params.data
    paths = [contract.source.locate(), *(join.source.locate() for join in contract.joins)]
    tables = [read_table(path, "run dvc repro first", contract.missing_values) for path in paths]
    replay = prepare(tables[0], tables[1:], contract).splits["current"]
    spec, test = load_features("test")
    model, transformer = load_model(REPO / MODEL_FILE), load_model(REPO / TRANSFORMER_FILE)
    events = read_parquet(REPO / HISTORY_EVENTS, "run dvc repro first")
    threshold = params.evaluate.threshold
    for name, frame, features in (("reference", test, test), ("analysis", replay, apply_features(replay, transformer, events, spec))):
        scores = predict_scores(model, features[spec.features], spec.task)
        pd.DataFrame(
            {
                "time": frame[spec.time].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(),
                "score": scores,
                "predicted": (scores >= threshold).astype(np.int64),
                "actual": frame[spec.target].to_numpy().astype(np.int64),
            }
        ).to_parquet(directory / f"flights-{name}.parquet")
    (directory / "flights.json").write_text(json.dumps({"threshold": threshold}))


def _sigmoid(values: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-values))
    return result


def synthetic_classification(directory: Path, case: str, chunks: int, seed: int) -> None:
    """Reference of 20,000 rows; `chunks` analysis chunks of SYNTHETIC_CHUNK rows (see the module docstring)."""
    import pandas as pd

    rng = np.random.default_rng(seed)

    def rows(count: int, spread: float, slope: float) -> pd.DataFrame:
        x1, x2 = rng.normal(0.0, spread, count), rng.normal(0.0, 1.0, count)
        truth = _sigmoid(slope * x1 + 0.5 * x2 - 1.0)
        score = _sigmoid(0.6 * (1.5 * x1 + 0.5 * x2 - 1.0) - 0.3)  # ranks like the truth, calibrated badly
        return pd.DataFrame(
            {"score": score, "predicted": (score >= 0.35).astype(np.int64), "actual": (rng.random(count) < truth).astype(np.int64)}
        )

    reference = rows(20_000, 1.0, 1.5)
    steps = np.linspace(0.0, 1.0, chunks)
    if case == "covariate_shift":
        analysis = [rows(SYNTHETIC_CHUNK, 1.0 - 0.7 * step, 1.5) for step in steps]  # x1's spread 1 -> 0.3
    else:
        analysis = [rows(SYNTHETIC_CHUNK, 1.0, 1.5 * (1.0 - 0.9 * step)) for step in steps]  # P(late | x1) flattens
    for frame, name in ((reference, "reference"), (pd.concat(analysis, ignore_index=True), "analysis")):
        frame.assign(time=pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="min")).to_parquet(
            directory / f"{case}-{name}.parquet"
        )
    (directory / f"{case}.json").write_text(json.dumps({"threshold": 0.35}))


def synthetic_regression(directory: Path, chunks: int, seed: int) -> None:
    """A trained regressor, its reference and `chunks` analysis chunks where x2 (the noise's scale) moves."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)

    def rows(count: int, x2_mean: float) -> pd.DataFrame:
        x1, x2, x3 = rng.normal(0.0, 1.0, count), rng.normal(x2_mean, 1.0, count), rng.uniform(-1.0, 1.0, count)
        kind = pd.Categorical(rng.choice(["a", "b", "c"], count), categories=["a", "b", "c"])
        y = 2 * x1 + np.sin(3 * x3) + (kind == "b") + rng.normal(0.0, 0.5 + np.abs(x2), count)
        return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "kind": kind, "actual": y})

    train = rows(20_000, 0.0)
    features = REGRESSION_FEATURES
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed).fit(train[features], train["actual"])
    reference = rows(20_000, 0.0)
    analysis = pd.concat([rows(SYNTHETIC_CHUNK, mean) for mean in np.linspace(0.0, 1.5, chunks)], ignore_index=True)
    for frame, name in ((reference, "reference"), (analysis, "analysis")):
        frame.assign(prediction=model.predict(frame[features])).to_parquet(directory / f"regression-{name}.parquet")


# --- the children ----------------------------------------------------------------------------------------------


def _chunk_keys(case: str, analysis: Any) -> np.ndarray:
    """Each analysis row's chunk: the calendar week (Monday-Sunday, NannyML's "W") for flights, else SYNTHETIC_CHUNK rows."""
    if case == "flights":
        return np.asarray(analysis["time"].dt.to_period("W").astype(str))
    return np.arange(len(analysis)) // SYNTHETIC_CHUNK


def _load(data: Path, case: str) -> tuple[Any, Any, dict[str, Any]]:
    import pandas as pd

    settings = json.loads((data / f"{case}.json").read_text()) if case != "regression" else {}
    return pd.read_parquet(data / f"{case}-reference.parquet"), pd.read_parquet(data / f"{case}-analysis.parquet"), settings


def _best_of(repeats: int, run: Any) -> dict[str, Any]:
    """Run `run()` (returning fit_seconds, estimate_seconds, estimates) `repeats` times; keep each phase's fastest time.

    The machine is shared: the fastest of a few runs is the least disturbed one (what timeit reports), the same rule
    for both tools. The estimates are deterministic, the same in every run."""
    runs = [run() for _ in range(repeats)]
    return {
        "fit_seconds": min(fit for fit, _, _ in runs),
        "estimate_seconds": min(estimate for _, estimate, _ in runs),
        "estimates": runs[-1][2],
    }


def child_ours(data: Path, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from stages.lib.monitor.estimation import estimate_classification, estimate_regression, fit_calibrator, fit_loss_model

    results: dict[str, Any] = {}
    warm = _load(data, "covariate_shift")[0].head(2000)
    estimate_classification(warm["score"].to_numpy(), fit_calibrator(warm["score"], warm["actual"]).apply(warm["score"]), 0.35, LEVEL)
    warm = _load(data, "regression")[0].head(2000)
    warm_model = fit_loss_model(warm[REGRESSION_FEATURES], warm["prediction"].to_numpy(), warm["actual"].to_numpy(), seed=0)
    estimate_regression(warm_model, warm[REGRESSION_FEATURES], warm["prediction"].to_numpy(), LEVEL)

    def run(case: str, reference: Any, analysis: Any, settings: dict[str, Any]) -> tuple[float, float, list[Any]]:
        keys = _chunk_keys(case, analysis)
        groups = [np.flatnonzero(keys == key) for key in dict.fromkeys(keys)]
        start = time.perf_counter()
        if case == "regression":
            features = REGRESSION_FEATURES
            loss_model = fit_loss_model(reference[features], reference["prediction"].to_numpy(), reference["actual"].to_numpy(), seed=0)
            fitted = time.perf_counter()
            estimates = [
                estimate_regression(loss_model, analysis[features].iloc[rows], analysis["prediction"].to_numpy()[rows], LEVEL)
                for rows in groups
            ]
        else:
            calibrator = fit_calibrator(reference["score"].to_numpy(), reference["actual"].to_numpy())
            fitted = time.perf_counter()
            scores = analysis["score"].to_numpy()
            estimates = [
                estimate_classification(scores[rows], calibrator.apply(scores[rows]), settings["threshold"], LEVEL)["roc_auc"]
                for rows in groups
            ]
        done = time.perf_counter()
        return fitted - start, done - fitted, estimates

    for case in CASES:
        loaded = _load(data, case)
        results[case] = _best_of(repeats, lambda case=case, loaded=loaded: run(case, *loaded))
    return results


def child_nannyml(data: Path, repeats: int) -> dict[str, Any]:
    import nannyml as nml

    def cbpe(case: str) -> Any:
        common = {"y_pred_proba": "score", "y_pred": "predicted", "y_true": "actual", "problem_type": "classification_binary"}
        # The same metrics ours estimates (confusion matrix, ROC AUC, accuracy, F1), on the same chunks.
        metrics = ["roc_auc", "f1", "accuracy", "confusion_matrix"]
        if case == "flights":
            return nml.CBPE(**common, metrics=metrics, timestamp_column_name="time", chunk_period="W")
        return nml.CBPE(**common, metrics=metrics, chunk_size=SYNTHETIC_CHUNK)

    def dle() -> Any:
        return nml.DLE(
            feature_column_names=REGRESSION_FEATURES,
            y_pred="prediction",
            y_true="actual",
            metrics=["mae"],
            chunk_size=SYNTHETIC_CHUNK,
        )

    warm = _load(data, "covariate_shift")[0].head(2000)
    cbpe("covariate_shift").fit(warm).estimate(warm)  # lazy imports
    warm = _load(data, "regression")[0].head(2000)
    dle().fit(warm).estimate(warm.drop(columns="actual"))

    def run(case: str, reference: Any, analysis: Any) -> tuple[float, float, list[Any]]:
        estimator = dle() if case == "regression" else cbpe(case)
        metric = "mae" if case == "regression" else "roc_auc"
        start = time.perf_counter()
        estimator.fit(reference)
        fitted = time.perf_counter()
        frame = estimator.estimate(analysis.drop(columns="actual")).filter(period="analysis").to_df()
        done = time.perf_counter()
        values = frame[(metric, "value")].to_list()
        errors = frame[(metric, "sampling_error")].to_list()
        return (
            fitted - start,
            done - fitted,
            [{"estimate": value, "sampling_error": error} for value, error in zip(values, errors, strict=True)],
        )

    results: dict[str, Any] = {}
    for case in CASES:
        reference, analysis, _ = _load(data, case)
        results[case] = _best_of(repeats, lambda case=case, reference=reference, analysis=analysis: run(case, reference, analysis))
    return results


# --- the parent ---------------------------------------------------------------------------------------------------


def nannyml_python() -> Path:
    """The NannyML venv's interpreter, created on first use."""
    python = NANNYML_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {NANNYML_VENV.relative_to(REPO)} (first use) ...", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(NANNYML_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *NANNYML_REQUIREMENTS], check=True)
    return python


def run_child(python: Path, tool: str, data: Path, repeats: int) -> dict[str, Any]:
    environment = dict(os.environ, PYTHONPATH=str(REPO) if tool == "ours" else "", NML_DISABLE_USAGE_LOGGING="1")
    completed = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--child", tool, "--data", str(data), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        env=environment,
    )
    if completed.returncode:
        raise SystemExit(f"the {tool} child failed:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def realized(data: Path) -> dict[str, list[float]]:
    """Each case's realized metric per chunk: ROC AUC (sklearn) or MAE."""
    from sklearn.metrics import roc_auc_score

    found: dict[str, list[float]] = {}
    for case in CASES:
        _, analysis, _ = _load(data, case)
        keys = _chunk_keys(case, analysis)
        found[case] = []
        for key in dict.fromkeys(keys):
            rows = analysis[keys == key]
            if case == "regression":
                found[case].append(float(np.mean(np.abs(rows["actual"] - rows["prediction"]))))
            else:
                found[case].append(float(roc_auc_score(rows["actual"], rows["score"])))
    return found


def chunk_labels(data: Path, case: str) -> list[str]:
    _, analysis, _ = _load(data, case)
    keys = _chunk_keys(case, analysis)
    labels = []
    for key in dict.fromkeys(keys):
        rows = analysis[keys == key]
        labels.append(
            f"{rows['time'].min():%Y-%m-%d}..{rows['time'].max():%m-%d} ({len(rows):,} rows)"
            if case == "flights"
            else f"{key} ({len(rows):,} rows)"
        )
    return labels


def report(data: Path, truth: dict[str, list[float]], ours: dict[str, Any], theirs: dict[str, Any] | None) -> str:
    lines = []
    for case in CASES:
        metric = "MAE" if case == "regression" else "ROC AUC"
        lines += [
            f"### {case}",
            "",
            f"| chunk | realized {metric} | ours (band {LEVEL:.0%}) | NannyML (± 3 sampling errors) |",
            "|---|---:|---:|---:|",
        ]
        mine = ours[case]["estimates"]
        other = theirs[case]["estimates"] if theirs else [None] * len(mine)
        for label, value, estimate, nanny in zip(chunk_labels(data, case), truth[case], mine, other, strict=True):
            nanny_text = f"{nanny['estimate']:.4f} ± {3 * nanny['sampling_error']:.4f}" if nanny else ""
            lines.append(
                f"| {label} | {value:.4f} | {estimate['estimate']:.4f} [{estimate['low']:.4f}, {estimate['high']:.4f}] | {nanny_text} |"
            )
        error_ours = np.mean(np.abs(np.array([estimate["estimate"] for estimate in mine]) - truth[case]))
        covered = np.mean([estimate["low"] <= value <= estimate["high"] for estimate, value in zip(mine, truth[case], strict=True)])
        lines += ["", f"- mean absolute error against realized: ours {error_ours:.4f} (band covers realized in {covered:.0%} of chunks)"]
        if theirs:
            error_theirs = np.mean(np.abs(np.array([estimate["estimate"] for estimate in theirs[case]["estimates"]]) - truth[case]))
            lines[-1] += f", NannyML {error_theirs:.4f}"
        mine_time, chunks = ours[case], len(mine)
        seconds = mine_time["fit_seconds"] + mine_time["estimate_seconds"]
        timing = f"- wall time (fit + every chunk): ours {mine_time['fit_seconds']:.3f} + {mine_time['estimate_seconds']:.3f} s"
        if theirs:
            other_time = theirs[case]
            nanny_seconds = other_time["fit_seconds"] + other_time["estimate_seconds"]
            timing += (
                f", NannyML {other_time['fit_seconds']:.3f} + {other_time['estimate_seconds']:.3f} s. NannyML / ours:"
                f" total {nanny_seconds / seconds:.1f}x, fit {other_time['fit_seconds'] / mine_time['fit_seconds']:.1f}x,"
                f" per chunk {other_time['estimate_seconds'] / mine_time['estimate_seconds']:.1f}x"
                f" ({1000 * other_time['estimate_seconds'] / chunks:.1f} vs {1000 * mine_time['estimate_seconds'] / chunks:.1f} ms)"
            )
        lines += [timing, ""]
    return "\n".join(lines)


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def machine() -> str:
    today = datetime.date.today().isoformat()
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), Python {platform.python_version()}, {today}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-nannyml", action="store_true", help="run ours only")
    parser.add_argument("--chunks", type=int, default=10, help="analysis chunks of each synthetic case (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of each case per tool; the fastest counts (default: %(default)s)"
    )
    parser.add_argument("--child", choices=["ours", "nannyml"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_ours(args.data, args.repeats) if args.child == "ours" else child_nannyml(args.data, args.repeats)))
        return
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="monitor-benchmark-") as directory:
        data = Path(directory)
        print("building the cases ...", file=sys.stderr, flush=True)
        flights_case(data)
        for index, case in enumerate(("covariate_shift", "concept_drift")):
            synthetic_classification(data, case, args.chunks, args.seed + index)
        synthetic_regression(data, args.chunks, args.seed + 2)
        truth = realized(data)
        print("ours ...", file=sys.stderr, flush=True)
        ours = run_child(Path(sys.executable), "ours", data, args.repeats)
        theirs = None
        if not args.skip_nannyml:
            print("NannyML ...", file=sys.stderr, flush=True)
            theirs = run_child(nannyml_python(), "nannyml", data, args.repeats)
        print(f"Machine: {machine()}. Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}.\n")
        print(report(data, truth, ours, theirs))


if __name__ == "__main__":
    main()
