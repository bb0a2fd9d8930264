"""History features (stages/lib/features/history.py): what a row may see, keys, windows and the lag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.lib.features.history import HistoryLookup, history_features, history_name

# ---------------------------------------------------------------- history helpers

START = pd.Timestamp("2013-03-01T00:00:00Z")


def at(hours: float) -> pd.Timestamp:
    return START + pd.Timedelta(hours=hours)


def events_frame(records) -> pd.DataFrame:
    """Labelled rows from (hours after START, origin, late) triples."""
    return pd.DataFrame(
        {
            "time": [at(hours) for hours, _, _ in records],
            "origin": [origin for _, origin, _ in records],
            "late": np.asarray([late for _, _, late in records], dtype=np.int8),
        }
    )


def rows_frame(records) -> pd.DataFrame:
    """Rows to featurize from (hours after START, origin) pairs."""
    return pd.DataFrame({"time": [at(hours) for hours, _ in records], "origin": [origin for _, origin in records]})


def history(rows, events, keys=(("origin",),), windows=("30D",), smoothing=0.0, prior=0.5, known_after="2h"):
    lookup = HistoryLookup(tuple(map(tuple, keys)), tuple(pd.Timedelta(w) for w in windows), smoothing, prior, pd.Timedelta(known_after))
    return history_features(rows, events, lookup, "time", "late")


def mean_of(key=("origin",), window="30D"):
    return history_name(key, pd.Timedelta(window), "late", "mean")


def rows_of(key=("origin",), window="30D"):
    return history_name(key, pd.Timedelta(window), "late", "rows")


# Events of one key, deliberately not in time order: (hour, origin, late)
ONE_KEY_EVENTS = [(5, "A", 1), (0, "A", 1), (2, "A", 1), (1, "A", 0)]
# With known_after = 2h, a row at hour t sees the events at hours <= t - 2.
QUERY_HOURS = [1, 2, 4, 6.5, 7]
EXPECTED_COUNTS = [0, 1, 3, 3, 4]
EXPECTED_SUMS = [0, 1, 2, 2, 3]


# ---------------------------------------------------------------- history: what a row may see


def test_history_counts_only_outcomes_known_by_the_row_time():
    rows = rows_frame([(hours, "A") for hours in QUERY_HOURS])
    features = history(rows, events_frame(ONE_KEY_EVENTS), smoothing=0.0)
    assert features[rows_of()].tolist() == EXPECTED_COUNTS
    expected_means = [np.nan, 1.0, 2 / 3, 2 / 3, 3 / 4]
    np.testing.assert_allclose(features[mean_of()].to_numpy(), expected_means)


def test_history_mean_is_smoothed_towards_the_prior():
    rows = rows_frame([(hours, "A") for hours in QUERY_HOURS])
    smoothing, prior = 2.0, 0.1
    features = history(rows, events_frame(ONE_KEY_EVENTS), smoothing=smoothing, prior=prior)
    expected = [(total + smoothing * prior) / (count + smoothing) for total, count in zip(EXPECTED_SUMS, EXPECTED_COUNTS, strict=True)]
    np.testing.assert_allclose(features[mean_of()].to_numpy(), expected)
    assert features[mean_of()].iloc[0] == pytest.approx(prior)  # nothing known yet: the prior itself
    assert features[rows_of()].tolist() == EXPECTED_COUNTS


def test_history_keeps_the_index_and_order_of_unsorted_rows():
    rows = rows_frame([(7, "A"), (1, "A"), (4, "A")]).set_axis([30, 10, 20])
    features = history(rows, events_frame(ONE_KEY_EVENTS))
    assert features.index.tolist() == [30, 10, 20]
    assert features[rows_of()].tolist() == [4, 0, 3]


def random_history_data(seed=0):
    rng = np.random.default_rng(seed)
    count = 300
    events = pd.DataFrame(
        {
            # whole hours over ten days, so several events share a time
            "time": START + pd.to_timedelta(rng.integers(0, 240, count), unit="h"),
            "origin": rng.choice(["A", "B", "C"], count),
            "late": rng.integers(0, 2, count).astype(np.int8),
        }
    )
    hours = np.arange(0, 264, 1.5)
    rows = pd.DataFrame({"time": START + pd.to_timedelta(hours, unit="h"), "origin": np.resize(["A", "B", "C", "D"], len(hours))})
    return rows, events


def test_history_never_changes_when_outcomes_known_later_change():
    rows, events = random_history_data()
    known_after = pd.Timedelta("13h")
    cutoff = at(120)
    flipped = events.copy()
    later = flipped["time"] >= cutoff
    flipped.loc[later, "late"] = 1 - flipped.loc[later, "late"]
    arguments = {"keys": (("origin",), ()), "windows": ("1D", "3D"), "smoothing": 5.0, "prior": 0.4, "known_after": "13h"}
    before, after = history(rows, events, **arguments), history(rows, flipped, **arguments)

    unaffected = (rows["time"] < cutoff + known_after).to_numpy()
    pd.testing.assert_frame_equal(before[unaffected], after[unaffected])
    # The check has teeth: rows once the flipped outcomes are known do see them.
    assert not before[~unaffected].equals(after[~unaffected])


def test_history_matches_a_direct_count_over_random_events():
    rows, events = random_history_data(seed=3)
    lag, window, smoothing, prior = pd.Timedelta("13h"), pd.Timedelta("2D"), 4.0, 0.3
    features = history(rows, events, windows=("2D",), smoothing=smoothing, prior=prior, known_after="13h")
    for index, row in rows.iterrows():
        seen = events[
            (events["origin"] == row["origin"]) & (events["time"] <= row["time"] - lag) & (events["time"] > row["time"] - lag - window)
        ]
        assert features.at[index, rows_of(window="2D")] == len(seen)
        expected = (seen["late"].sum() + smoothing * prior) / (len(seen) + smoothing)
        assert features.at[index, mean_of(window="2D")] == pytest.approx(expected)


def test_a_row_never_sees_its_own_outcome_nor_simultaneous_ones():
    labelled = events_frame([(0, "A", 1), (0, "A", 1), (10, "A", 0)])
    features = history(labelled, labelled)  # the rows are the events themselves
    assert features[rows_of()].tolist() == [0, 0, 2]
    assert features[mean_of()].iloc[2] == 1.0


# ---------------------------------------------------------------- history: keys


def test_history_keys_do_not_mix():
    events = events_frame([(0, "A", 1), (1, "A", 1), (0, "B", 0), (1, "B", 0), (2, "B", 0)])
    features = history(rows_frame([(10, "A"), (10, "B")]), events)
    assert features[rows_of()].tolist() == [2, 3]
    assert features[mean_of()].tolist() == [1.0, 0.0]


def test_an_unseen_key_gets_no_rows_and_the_prior():
    events = events_frame([(0, "A", 1), (1, "A", 1)])
    rows = rows_frame([(10, "NEW")])
    smoothed = history(rows, events, smoothing=3.0, prior=0.25)
    assert smoothed[rows_of()].tolist() == [0]
    assert smoothed[mean_of()].tolist() == [0.25]
    unsmoothed = history(rows, events, smoothing=0.0)
    assert unsmoothed[rows_of()].tolist() == [0]
    assert np.isnan(unsmoothed[mean_of()].iloc[0])


def test_multi_column_keys_match_on_every_column():
    events = events_frame([(0, "A", 1), (1, "A", 0), (2, "B", 0), (3, "A", 1)]).assign(dest=["X", "Y", "X", "X"])
    rows = rows_frame([(10, "A"), (10, "B"), (10, "B")]).assign(dest=["X", "X", "Y"])
    key = ("origin", "dest")
    features = history(rows, events, keys=(key,))
    assert mean_of(key) == "history_origin_dest_30d_late_mean"
    assert features[rows_of(key)].tolist() == [2, 1, 0]  # (B, Y): both parts seen, never together
    assert features[mean_of(key)].iloc[:2].tolist() == [1.0, 0.0]


def test_the_empty_key_aggregates_all_rows():
    events = events_frame([(0, "A", 1), (1, "B", 0), (2, "C", 0), (3, "A", 1), (9, "B", 1)])
    features = history(rows_frame([(10, "Z"), (10, "A")]), events, keys=((),))
    assert mean_of(()) == "history_all_30d_late_mean"
    assert features[rows_of(())].tolist() == [4, 4]  # the event at hour 9 is not known before hour 11
    assert features[mean_of(())].tolist() == [0.5, 0.5]


# ---------------------------------------------------------------- history: windows and lag


def test_window_ends_known_after_before_the_row_and_excludes_older_events():
    row_time = 100.0
    edge = row_time - 2 - 24  # exactly window + known_after before the row
    events = events_frame(
        [
            (edge - 1, "A", 1),  # too old for 1D
            (edge, "A", 1),  # on the window's open edge: excluded from 1D
            (edge + 1 / 3600, "A", 0),  # one second inside
            (row_time - 2, "A", 0),  # known exactly at the row's time
            (row_time - 1, "A", 1),  # not known yet
        ]
    )
    features = history(rows_frame([(row_time, "A")]), events, windows=("1D", "3D"), known_after="2h")
    assert features[rows_of(window="1D")].tolist() == [2]
    assert features[mean_of(window="1D")].tolist() == [0.0]
    assert features[rows_of(window="3D")].tolist() == [4]
    assert features[mean_of(window="3D")].tolist() == [0.5]


@pytest.mark.parametrize("known_after", ["0h", "-1h"])
def test_known_after_must_be_positive(known_after):
    events = events_frame(ONE_KEY_EVENTS)
    with pytest.raises(ValueError, match="known_after"):
        history(rows_frame([(10, "A")]), events, known_after=known_after)


def test_every_window_gets_its_own_columns_even_below_an_hour():
    events = events_frame([(0, "A", 1), (9.5, "A", 0)])
    features = history(rows_frame([(10, "A")]), events, windows=("30min", "45min"), known_after="1min")
    assert features.shape[1] == 4  # mean and rows for each of the two windows
    names = [history_name(("origin",), pd.Timedelta(span), "late", "rows") for span in ("30min", "45min", "90min", "1h", "7D")]
    assert names == [f"history_origin_{label}_late_rows" for label in ("30min", "45min", "90min", "1h", "7d")]
