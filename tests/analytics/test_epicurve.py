"""Epidemic curve: zero-filled days, groups, date kinds, the incomplete tail."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from cordon.analytics.epicurve import build_epicurve, epicurve_from_records

D = dt.date


def _records() -> list[dict]:
    asym = "asymptomatic"
    return [
        {"onset_date": D(2022, 4, 1), "report_date": D(2022, 4, 3), "region": "430102", "cls": "confirmed"},
        {"onset_date": D(2022, 4, 1), "report_date": D(2022, 4, 2), "region": "430103", "cls": "confirmed"},
        {"onset_date": D(2022, 4, 4), "report_date": D(2022, 4, 5), "region": "430102", "cls": asym},
        {"onset_date": None, "report_date": D(2022, 4, 5), "region": "430102", "cls": asym},
        {"onset_date": D(2022, 4, 6), "report_date": D(2022, 4, 6), "region": "430102", "cls": "confirmed"},
    ]


def test_days_without_cases_are_zero_filled() -> None:
    curve = epicurve_from_records(_records(), date_kind="onset")
    assert curve.iso_dates() == [f"2022-04-0{d}" for d in range(1, 7)]
    assert list(curve.total) == [2, 0, 0, 1, 0, 1]
    assert curve.undated == 1  # no onset: not on the onset curve, but counted as left out
    assert curve.outside_range == 0


def test_report_date_curve_from_the_same_records() -> None:
    curve = epicurve_from_records(_records(), date_kind="report")
    assert curve.iso_dates()[0] == "2022-04-02"
    assert list(curve.total) == [1, 1, 0, 2, 1]
    assert curve.undated == 0


def test_groups_by_region_and_classification() -> None:
    curve = epicurve_from_records(_records(), group_by=("region", "cls"))
    assert curve.groups == [
        ("430102", "asymptomatic"),
        ("430102", "confirmed"),
        ("430103", "confirmed"),
    ]
    assert curve.counts.shape == (3, 6)
    assert list(curve.select(region="430102")) == [1, 0, 0, 1, 0, 1]
    assert list(curve.select(cls="confirmed")) == [2, 0, 0, 0, 0, 1]
    by_region = curve.collapse("region")
    assert by_region.groups == [("430102",), ("430103",)]
    np.testing.assert_array_equal(by_region.counts.sum(axis=0), curve.total)
    np.testing.assert_array_equal(curve.collapse().counts[0], curve.total)


def test_incomplete_tail_is_flagged_relative_to_extraction_day() -> None:
    curve = epicurve_from_records(_records(), as_of=D(2022, 4, 8), incomplete_days=3)
    assert curve.iso_dates()[-1] == "2022-04-08"  # range runs to the extraction day
    assert [bool(x) for x in curve.incomplete] == [False] * 5 + [True] * 3
    no_delay = epicurve_from_records(_records(), incomplete_days=0)
    assert not no_delay.incomplete.any()


def test_explicit_range_counts_what_falls_outside() -> None:
    curve = epicurve_from_records(_records(), start=D(2022, 4, 2), end=D(2022, 4, 5))
    assert list(curve.total) == [0, 0, 1, 0]
    assert curve.outside_range == 3


def test_outputs_are_json_serialisable() -> None:
    curve = epicurve_from_records(_records(), group_by=("region",), incomplete_days=2)
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["series"][0]["group"] == {"region": "430102"}
    assert data["total"] == [2, 0, 0, 1, 0, 1]
    assert data["incomplete"][-2:] == [True, True]
    records = json.loads(json.dumps(curve.to_records()))
    assert records[0] == {"date": "2022-04-01", "region": "430102", "count": 1, "incomplete": False}
    assert len(records) == 2 * 6


def test_arrays_input_and_none_group_values() -> None:
    dates = np.array(["2022-05-01", "2022-05-03", "2022-05-03", "NaT"], dtype="datetime64[D]")
    curve = build_epicurve(dates, {"region": ["a", None, "a", "b"]})
    assert curve.groups == [("a",), (None,)]  # None sorts last; "b" had no date
    assert curve.counts.tolist() == [[1, 0, 1], [0, 0, 1]]
    assert curve.undated == 1


def test_empty_input_gives_an_empty_curve() -> None:
    curve = epicurve_from_records([], group_by=("region",))
    assert curve.n_days == 0 and curve.groups == [] and curve.counts.shape == (0, 0)
    ranged = build_epicurve([], start=D(2022, 1, 1), end=D(2022, 1, 3))
    assert list(ranged.total) == [0, 0, 0]


def test_refuses_datetimes_and_bad_parameters() -> None:
    with pytest.raises(TypeError, match="calendar date"):
        build_epicurve([dt.datetime(2022, 4, 1, 23, 0, tzinfo=dt.UTC)])
    with pytest.raises(ValueError, match="date_kind"):
        build_epicurve([D(2022, 4, 1)], date_kind="sampling")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="incomplete_days"):
        build_epicurve([D(2022, 4, 1)], incomplete_days=-1)
    with pytest.raises(ValueError, match="before it starts"):
        build_epicurve([D(2022, 4, 1)], start=D(2022, 4, 5), end=D(2022, 4, 1))
    with pytest.raises(KeyError, match="record 2"):
        epicurve_from_records([{"onset_date": D(2022, 4, 1)}, {"report_date": D(2022, 4, 1)}])
