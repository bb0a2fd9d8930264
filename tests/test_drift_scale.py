"""Drift at scale (issue 13, item 6): categories counted over the union of both windows' levels without a text per
row, the merge walk exact against scipy on ties and missing values, and windows read column by column."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from stages.drift_check import read_windows
from stages.lib.catalog import FEATURES_DIR, PREPARED_DIR, FeatureSpec
from stages.lib.config import parse_params
from stages.lib.drift import columns as drift_columns
from stages.lib.drift.columns import SortedSample, column_drift, profiled_drift
from stages.lib.drift.detect import detect_drift
from stages.lib.drift.tables import read_columns, read_level_counts, read_profile, read_sorted, sorted_readable
from stages.lib.errors import UserError
from stages.lib.io import parquet_schema
from stages.lib.profile import sorted_columns, write_sorted_columns
from tests.conftest import project_params

THRESHOLDS = parse_params(project_params()).drift.thresholds  # conf/drift/default.yaml, as the tests compose it


def categorical(rng: np.random.Generator, rows: int, levels: list[str], declared: list[str]) -> pd.Series:
    """A Categorical of `rows` draws from `levels` (10% missing), its categories in the `declared` order."""
    values = rng.choice(np.array([*levels, None], dtype=object), rows, p=[0.9 / len(levels)] * len(levels) + [0.1])
    return pd.Series(pd.Categorical(values, categories=declared))


def expected_categorical(reference: pd.Series, current: pd.Series) -> dict:
    """The categorical statistics computed by hand: value_counts of each side's text, chi-squared and JS by scipy."""
    reference_counts = reference.dropna().astype(str).value_counts()
    current_counts = current.dropna().astype(str).value_counts()
    labels = sorted(set(reference_counts.index) | set(current_counts.index))
    table = np.array([[reference_counts.get(label, 0) for label in labels], [current_counts.get(label, 0) for label in labels]])
    chi2 = stats.chi2_contingency(table, correction=False).statistic
    return {
        "labels": labels,
        "unseen": [label for label in labels if reference_counts.get(label, 0) == 0],
        "rows": (int(table[0].sum()), int(table[1].sum())),
        "chi2": chi2,
        "cramers_v": math.sqrt(chi2 / table.sum()),
        "jensen_shannon": jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum()),
    }


CASES = {
    # (reference levels drawn, reference categories declared, current levels drawn, current categories declared)
    "level only in current": (["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c", "new"], ["new", "c", "b", "a"]),
    "level only in reference": (["a", "b", "c", "old"], ["old", "a", "b", "c"], ["a", "b", "c"], ["c", "a", "b"]),
    "both": (["a", "b", "old"], ["b", "old", "a"], ["a", "b", "new"], ["new", "a", "b"]),
    "declared but never drawn": (["a", "b"], ["a", "b", "unused"], ["a", "b", "new"], ["b", "new", "a", "unused2"]),
}


@pytest.mark.parametrize("case", CASES)
def test_levels_of_either_window_are_counted_as_value_counts_and_scipy_count_them(case):
    reference_levels, reference_declared, current_levels, current_declared = CASES[case]
    rng = np.random.default_rng(len(case))
    reference = categorical(rng, 3000, reference_levels, reference_declared)
    current = categorical(rng, 2000, current_levels, current_declared)
    found = column_drift("dest", reference, current, THRESHOLDS, "categorical")
    expected = expected_categorical(reference, current)
    assert (found.reference_rows, found.current_rows) == expected["rows"]
    assert found.unseen_categories == expected["unseen"]
    assert found.statistics["unseen_rows"] == int(current.isin(expected["unseen"]).sum())
    assert found.statistics["categories"] == len(expected["labels"])  # declared levels nobody holds are not categories
    assert found.statistics["chi2"] == pytest.approx(expected["chi2"], rel=1e-12)
    assert found.statistics["cramers_v"] == pytest.approx(expected["cramers_v"], rel=1e-12)
    assert found.statistics["jensen_shannon"] == pytest.approx(expected["jensen_shannon"], rel=1e-9)
    assert sorted(found.histogram["value"]) == expected["labels"]  # 12 or fewer: every label gets its bar
    # The same column stored as plain text gives the same finding.
    as_text = column_drift("dest", reference.astype(object), current.astype("str"), THRESHOLDS, "categorical")
    assert as_text.to_json() == found.to_json() and as_text.histogram == found.histogram


def test_numbers_typed_categorical_match_as_their_integer_text_across_dtypes():
    # Codes stored as floats where a cell is missing, as integers elsewhere: 3.0 and 3 are the same category.
    reference = pd.Series([1.0, 1.0, 2.0, np.nan, 3.0, 2.5])
    current = pd.Series(pd.array([1, 3, 3, 4, None], dtype="Int64"))
    found = column_drift("code", reference, current, THRESHOLDS, "categorical")
    assert sorted(found.histogram["value"]) == ["1", "2", "2.5", "3", "4"]
    shares = dict(zip(found.histogram["value"], zip(found.histogram["reference"], found.histogram["current"], strict=True), strict=True))
    assert shares == {"1": (0.4, 0.25), "2": (0.2, 0.0), "2.5": (0.2, 0.0), "3": (0.2, 0.5), "4": (0.0, 0.25)}
    assert found.unseen_categories == ["4"] and (found.reference_rows, found.current_rows) == (5, 4)


def test_a_new_level_costs_no_text_per_row(monkeypatch):
    """A 10M-row Categorical with a level the reference never saw took 6 s as one text per row; only the levels
    may be turned into text."""
    converted: list[int] = []
    original = drift_columns.category_strings

    def recording(series: pd.Series) -> pd.Series:
        converted.append(len(series))
        return original(series)

    monkeypatch.setattr(drift_columns, "category_strings", recording)
    rng = np.random.default_rng(7)
    reference = categorical(rng, 50_000, ["a", "b", "c"], ["a", "b", "c"])
    current = categorical(rng, 50_000, ["a", "b", "c", "new"], ["new", "c", "b", "a"])
    found = column_drift("dest", reference, current, THRESHOLDS, "categorical")
    assert found.unseen_categories == ["new"]
    assert converted and max(converted) <= 4, f"rows turned into text: {converted}"


def with_missing_and_ties(rng: np.random.Generator, rows: int, shift: float) -> np.ndarray:
    """Half continuous, a third tied at a few values, 10% missing."""
    values = rng.normal(shift, 1, rows)
    tied = rng.random(rows) < 0.33
    values[tied] = rng.integers(-2, 3, int(tied.sum()))
    values[rng.random(rows) < 0.1] = np.nan
    return values


@pytest.mark.parametrize("seed", range(6))
def test_exact_ks_and_wasserstein_with_ties_and_missing_values_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    reference = with_missing_and_ties(rng, int(rng.integers(50, 5000)), 0.0)
    current = with_missing_and_ties(rng, int(rng.integers(50, 5000)), float(rng.normal(0, 0.5)))
    if seed % 3 == 2:  # disjoint supports: one sample is used up long before the other
        current = current + 10
    found = column_drift("x", pd.Series(reference), pd.Series(current), THRESHOLDS, "numeric")
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    assert found.statistics["ks"] == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)
    assert found.statistics["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("reference", "current"), [([1.0], [1.0]), ([1.0], [2.0]), ([2.0, 2.0], [1.0, 2.0, 2.0, 3.0]), ([0.0, 1.0], [1.0, 1.0])]
)
def test_few_tied_values_compared_as_numbers_equal_scipy(reference, current):
    reference, current = np.tile(reference, 10), np.tile(current, 7)  # every value tied, within and across the samples
    as_numbers = THRESHOLDS.model_copy(update={"few_values": 0})  # not counted as categories, however few the values
    found = column_drift("x", pd.Series(reference), pd.Series(current), as_numbers, "numeric")
    assert found.kind == "numeric"
    assert found.statistics["ks"] == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)
    assert found.statistics["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), abs=1e-12)


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "distance": np.arange(6, dtype=np.float64),
            "pressure": [1010.0, np.nan, 1012.5, 1013.0, np.nan, 1001.0],
            "dest": pd.Categorical(["ATL", "ORD", "ATL", None, "SEA", "ORD"]),
            "carrier": pd.array(["UA", "AA", None, "DL", "UA", "B6"], dtype="str"),
            "late": np.array([0, 1, 0, 0, 1, 1], dtype=np.int8),
            "unread": ["x" * 10] * 6,
        }
    )


def test_read_columns_reads_only_the_columns_asked_for_as_pandas_would(table, tmp_path):
    path = tmp_path / "current.parquet"
    table.to_parquet(path, index=False, row_group_size=2)  # three chunks per column, each with its own dictionary
    wanted = ["late", "dest", "pressure", "carrier", "not-in-the-file"]
    frame = read_columns(path, wanted, "run `dvc repro prepare` first")
    assert list(frame.columns) == ["late", "dest", "pressure", "carrier"]
    pd.testing.assert_frame_equal(frame, pd.read_parquet(path, columns=["late", "dest", "pressure", "carrier"]))
    pd.testing.assert_frame_equal(frame, table[["late", "dest", "pressure", "carrier"]])


def test_read_columns_reads_a_folder_of_parts_in_order(table, tmp_path):
    folder = tmp_path / "current.parquet"
    folder.mkdir()
    table.iloc[:4].to_parquet(folder / "part-00000.parquet", index=False)
    table.iloc[4:].to_parquet(folder / "part-00001.parquet", index=False)
    frame = read_columns(folder, ["distance", "carrier"], "run `dvc repro prepare` first")
    pd.testing.assert_frame_equal(frame, table[["distance", "carrier"]])
    assert parquet_schema(folder, "")["distance"] == "double"


def test_read_columns_errors_name_the_file_and_what_to_run(tmp_path):
    with pytest.raises(UserError, match=r"missing\.parquet: file not found; run `dvc repro prepare` first"):
        read_columns(tmp_path / "missing.parquet", ["a"], "run `dvc repro prepare` first")
    with pytest.raises(UserError, match=r"missing\.parquet: file not found; run `dvc repro prepare` first"):
        read_level_counts(tmp_path / "missing.parquet", "a", "run `dvc repro prepare` first")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet", encoding="utf-8")
    with pytest.raises(UserError, match=r"broken\.parquet: cannot read it as Parquet") as raised:
        read_columns(broken, ["a"], "")
    assert "\n" not in str(raised.value)


def test_drift_check_reads_only_the_inputs_target_and_features(table, tmp_path):
    spec = FeatureSpec.plain(["distance", "pressure"], ["dest"], target="late")
    (tmp_path / PREPARED_DIR).mkdir(parents=True)
    (tmp_path / FEATURES_DIR).mkdir(parents=True)
    for name in ("reference", "current"):
        table.to_parquet(tmp_path / PREPARED_DIR / f"{name}.parquet", index=False)
        table.assign(hour_sin=0.5).to_parquet(tmp_path / FEATURES_DIR / f"{name}.parquet", index=False)
    (reference, current), (reference_features, current_features) = read_windows(spec, tmp_path)
    for frame in (reference, current):
        assert sorted(frame.columns) == ["dest", "distance", "late", "pressure"]
    for frame in (reference_features, current_features):
        assert list(frame.columns) == ["distance", "pressure", "dest"]
    result = detect_drift(reference, current, spec.inputs, THRESHOLDS)
    assert [column.column for column in result.columns] == list(spec.inputs) and not result.drifted


def profiled_frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Both windows with each kind of column the stored profile and `read_sorted` meet: floats with missing values,
    nullable integers, a few tied values, 0/1 flags typed boolean, and a categorical column they leave alone."""
    rng = np.random.default_rng(seed)
    frames = []
    for shift in (0.0, 0.4):
        floats = rng.normal(shift, 1, rows)
        floats[rng.random(rows) < 0.1 + shift / 4] = np.nan
        counts = pd.array(rng.poisson(30 + 10 * shift, rows), dtype="Int64")
        counts[rng.random(rows) < 0.05] = pd.NA
        frames.append(
            pd.DataFrame(
                {
                    "temp": floats,
                    "count": counts,
                    "few": rng.integers(0, 3, rows).astype(np.float64),
                    "flag": (rng.random(rows) < 0.3 + shift / 2).astype(np.int8),
                    "city": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
                }
            )
        )
    return frames[0], frames[1], {"temp": "numeric", "count": "numeric", "few": "numeric", "flag": "boolean", "city": "categorical"}


def test_stored_profile_and_sorted_reads_give_what_the_whole_frames_give(tmp_path):
    reference, current, types = profiled_frames(3000, 21)
    write_sorted_columns(sorted_columns(reference, types), tmp_path / "profile.arrow")
    current.to_parquet(tmp_path / "current.parquet", index=False, row_group_size=700)  # several chunks per column
    profile = read_profile(tmp_path / "profile.arrow", types, "run `dvc repro featurize` first")
    assert sorted(profile) == ["count", "few", "flag", "temp"]
    numbers = sorted_readable(tmp_path / "current.parquet", list(profile), "")
    assert numbers == ["temp", "count", "few", "flag"]
    stored = detect_drift(
        reference.drop(columns=list(profile)), current.drop(columns=numbers), types, THRESHOLDS, profile, 2,
        {name: partial(read_sorted, tmp_path / "current.parquet", name) for name in numbers},
    )  # fmt: skip
    whole = detect_drift(reference, current, types, THRESHOLDS)
    assert [column.to_json() for column in stored.columns] == [column.to_json() for column in whole.columns]
    assert [column.column for column in whole.columns if column.missing_drifted] == ["temp"]  # 10% -> 20% missing
    assert whole.columns[0].statistics["ks"] == pytest.approx(
        stats.ks_2samp(reference["temp"].dropna(), current["temp"].dropna()).statistic
    )


def test_the_stored_profile_holds_the_sorted_values_row_count_and_exact_moments(tmp_path):
    reference, _, types = profiled_frames(500, 22)
    frame = sorted_columns(reference, types)
    for copy in ("one.arrow", "two.arrow"):
        write_sorted_columns(frame, tmp_path / copy)
    assert (tmp_path / "one.arrow").read_bytes() == (tmp_path / "two.arrow").read_bytes()
    profile = read_profile(tmp_path / "one.arrow", ["temp", "count", "absent"], "")
    for name in ("temp", "count"):
        values = np.sort(reference[name].dropna().to_numpy(dtype=np.float64))
        np.testing.assert_array_equal(profile[name].values, values)
        assert profile[name].rows == 500 and profile[name].missing_share == float(reference[name].isna().mean())
        assert profile[name].moments == (float(np.mean(values)), float(np.std(values)))
    with pytest.raises(UserError, match=r"missing\.arrow: file not found; run `dvc repro featurize` first"):
        read_profile(tmp_path / "missing.arrow", ["temp"], "run `dvc repro featurize` first")


def test_a_flag_stored_as_numbers_in_the_profile_and_as_labels_now_is_counted_by_its_labels():
    reference = pd.Series(np.array([0, 1, 1, 0, 1], dtype=np.int8))
    current = pd.Series([True, False, None, True, True], dtype=object)
    sample = SortedSample(np.sort(reference.to_numpy(dtype=np.float64)), len(reference))
    found = profiled_drift("flag", sample, current, THRESHOLDS, "boolean")
    assert found.to_json() == column_drift("flag", reference, current, THRESHOLDS, "boolean").to_json()
    assert found.kind == "categorical" and found.reference_rows == 5 and found.current_rows == 4


def dictionary_file(path, row_groups: list[tuple[list[str | None], list[str]]], index_type=None) -> None:
    """A Parquet file of one dictionary column `city`, one row group per (values, dictionary) pair: each row group
    holds its own dictionary, in its own order, as a file written in pieces (or by another tool) may."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index_type = index_type or pa.int8()
    tables = []
    for values, dictionary in row_groups:
        indices = pa.array([None if value is None else dictionary.index(value) for value in values], type=index_type)
        tables.append(pa.table({"city": pa.DictionaryArray.from_arrays(indices, pa.array(dictionary, type=pa.string()))}))
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for piece in tables:
            writer.write_table(piece)


COUNTED_CASES = {
    # name: (reference row groups, current row groups); each row group: (values, its dictionary in stored order)
    "the same dictionary everywhere": (
        [(["b", "a", None, "b"], ["b", "a", "c"])],
        [(["c", "c", "a"], ["b", "a", "c"]), (["b", None], ["b", "a", "c"])],
    ),
    "dictionaries differing between row groups, a new level": (
        [(["q", "p", "q"], ["q", "p"]), (["r", None, "p"], ["r", "p", "unused"])],
        [(["new", "q"], ["new", "q"]), (["p", "p", None, "r"], ["r", "p", "q"])],
    ),
    "the same levels in another order per window": (
        [(["x", "y", "z", "y"], ["z", "y", "x"])],
        [(["y", "y", "x"], ["x", "y", "z"]), (["z"], ["z", "x"])],
    ),
}


@pytest.mark.parametrize("case", COUNTED_CASES)
def test_categories_counted_from_the_files_equal_those_of_the_frames_read(case, tmp_path):
    from stages.lib.drift.columns import category_counts, counted_drift, level_counts

    for side, row_groups in zip(("reference", "current"), COUNTED_CASES[case], strict=True):
        dictionary_file(tmp_path / f"{side}.parquet", row_groups)
    counted, read = {}, {}
    for side in ("reference", "current"):
        counted[side] = read_level_counts(tmp_path / f"{side}.parquet", "city", "")
        read[side] = read_columns(tmp_path / f"{side}.parquet", ["city"], "")["city"]
        expected = level_counts(read[side])
        assert list(counted[side].categories) == list(read[side].cat.categories)  # to_pandas' order of the categories
        assert counted[side].levels.dtype == read[side].dtype and counted[side].categorical
        np.testing.assert_array_equal(counted[side].counts, expected.counts)
        assert (counted[side].rows, counted[side].missing) == (len(read[side]), int(read[side].isna().sum()))
    ours, frames = category_counts(counted["reference"], counted["current"]), category_counts(*map(level_counts, read.values()))
    for mine, theirs in zip(ours, frames, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    found = counted_drift("city", counted["reference"], counted["current"], THRESHOLDS)
    whole = column_drift("city", read["reference"], read["current"], THRESHOLDS, "categorical")
    assert (found.to_json(), found.histogram) == (whole.to_json(), whole.histogram)


def test_categories_stored_as_text_or_with_unsigned_codes_are_counted_as_the_frame_read(tmp_path):
    """Text stored plainly is counted from the frame read, as before; unsigned codes are counted as they are."""
    import pyarrow as pa

    from stages.lib.drift.columns import level_counts
    from stages.lib.drift.tables import read_level_counts

    pd.DataFrame({"city": pd.array(["b", None, "a", "b"], dtype="str")}).to_parquet(tmp_path / "text.parquet", index=False)
    dictionary_file(tmp_path / "unsigned.parquet", [(["a", None, "b", "b"], ["b", "a"])], pa.uint8())
    for name in ("text", "unsigned"):
        counted = read_level_counts(tmp_path / f"{name}.parquet", "city", "")
        expected = level_counts(read_columns(tmp_path / f"{name}.parquet", ["city"], "")["city"])
        np.testing.assert_array_equal(counted.counts, expected.counts)
        assert list(counted.levels) == list(expected.levels) and (counted.rows, counted.missing) == (expected.rows, expected.missing)
        assert counted.levels.dtype == expected.levels.dtype
    assert not read_level_counts(tmp_path / "text.parquet", "city", "").categorical


def test_sorted_reads_into_a_reused_scratch_give_each_column_whole(tmp_path):
    """One thread's scratch serves a long column, then a shorter one from a folder of parts where one part stores the
    column as nulls only (Arrow's null type) and another in two row groups: each read is the column's own values."""
    from stages.lib.drift.columns import Scratch

    rng = np.random.default_rng(5)
    long = pd.DataFrame({"temp": rng.normal(0, 1, 900)})
    long.to_parquet(tmp_path / "long.parquet", index=False, row_group_size=400)
    folder = tmp_path / "current.parquet"
    folder.mkdir()
    parts = [pd.DataFrame({"temp": rng.normal(5, 1, 50)}), pd.DataFrame({"temp": [None] * 7}), pd.DataFrame({"temp": [3.0, np.nan, 1.0]})]
    for number, part in enumerate(parts):
        part.to_parquet(folder / f"part-{number:05d}.parquet", index=False, row_group_size=30)
    scratch = Scratch()
    first = read_sorted(tmp_path / "long.parquet", "temp", scratch)
    np.testing.assert_array_equal(first.values, np.sort(long["temp"].to_numpy()))
    second = read_sorted(folder, "temp", scratch)
    present = np.concatenate([parts[0]["temp"].to_numpy(), [1.0, 3.0]])
    np.testing.assert_array_equal(second.values, np.sort(present))
    assert second.rows == 60 and second.missing_share == 8 / 60


def test_columns_read_in_tasks_give_the_whole_frames_result_with_one_or_two_threads(tmp_path):
    """Sorted numbers and counted categories read inside the tasks, with one and with two threads: bit for bit the
    whole frames' result (the scratch each thread reuses carries nothing from one column to the next)."""
    from stages.lib.drift.tables import read_level_counts

    reference, current, types = profiled_frames(4000, 23)
    reference["town"], current["town"] = (
        categorical(np.random.default_rng(1), 4000, ["a", "b"], ["b", "a"]),
        categorical(np.random.default_rng(2), 4000, ["a", "b", "new"], ["new", "a", "b"]),
    )
    types |= {"town": "categorical", "temp2": "numeric"}
    reference["temp2"], current["temp2"] = reference["temp"] * 3, current["temp"].iloc[::-1].to_numpy() * 2  # other lengths of values
    write_sorted_columns(sorted_columns(reference, types), tmp_path / "profile.arrow")
    for name, frame in (("reference", reference), ("current", current)):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False, row_group_size=900)
    profile = read_profile(tmp_path / "profile.arrow", types, "")
    numbers = sorted_readable(tmp_path / "current.parquet", list(profile), "")
    counted = {
        name: tuple(partial(read_level_counts, tmp_path / f"{side}.parquet", name, "") for side in ("reference", "current"))
        for name in ("city", "town")
    }
    readers = {name: partial(read_sorted, tmp_path / "current.parquet", name) for name in numbers}
    whole = [(column.to_json(), column.histogram) for column in detect_drift(reference, current, types, THRESHOLDS).columns]
    for threads in (1, 2):
        found = detect_drift(reference[[]], current[[]], types, THRESHOLDS, profile, threads, readers, counted)
        assert [(column.to_json(), column.histogram) for column in found.columns] == whole
