"""Renewal-equation forecast, bed demand and doubling time: behaviour that must hold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cordon.analytics.forecast import (
    doubling_time,
    forecast_beds,
    forecast_cases,
    forecast_from_estimate,
)
from cordon.analytics.rt import discr_si, estimate_r

SI = discr_si(np.arange(0, 30), 3.0, 1.5)
SI = SI / SI.sum()
FIXED = {"r_shape": 1e8, "r_scale": 1e-8}  # R = 1 for every path


def test_r_equal_one_keeps_expected_cases_flat() -> None:
    fc = forecast_cases(np.full(40, 200.0), SI, **FIXED, horizon=14, n_paths=4000, seed=1)
    assert fc.paths.shape == (4000, 14)
    np.testing.assert_allclose(fc.summary.mean, 200.0, rtol=0.02)
    np.testing.assert_allclose(fc.summary.median, 200.0, rtol=0.03)


def test_growth_and_decline_follow_r() -> None:
    hist = np.full(40, 50.0)
    up = forecast_cases(hist, SI, r_shape=400.0, r_scale=1.5 / 400.0, seed=2)
    down = forecast_cases(hist, SI, r_shape=400.0, r_scale=0.6 / 400.0, seed=2)
    assert up.summary.median[-1] > up.summary.median[6] > up.summary.median[0] > 50
    assert down.summary.median[-1] < down.summary.median[0] < 50
    assert np.all(np.diff(up.summary.mean) > 0)


def test_band_is_ordered_and_seeded() -> None:
    hist = np.linspace(5, 60, 30).round()
    a = forecast_cases(hist, SI, r_shape=30.0, r_scale=1.2 / 30.0, n_paths=500, seed=7)
    b = forecast_cases(hist, SI, r_shape=30.0, r_scale=1.2 / 30.0, n_paths=500, seed=7)
    np.testing.assert_array_equal(a.paths, b.paths)
    s = a.summary
    assert np.all(s.lower <= s.median) and np.all(s.median <= s.upper)
    week, fortnight = a.total(7), a.total(14)
    assert week["lower"] <= week["median"] <= week["upper"] < fortnight["median"]
    data = json.loads(json.dumps(a.to_dict()))
    assert [t["days"] for t in data["totals"]] == [7, 14]
    assert data["day"] == list(range(1, 15))


def test_forecast_from_latest_rt_window() -> None:
    hist = np.round(20 * 1.05 ** np.arange(35))
    est = estimate_r(hist, si_distr=SI)
    fc = forecast_from_estimate(hist, SI, est, horizon=7, n_paths=2000, seed=3)
    assert fc.horizon == 7
    assert fc.r_samples.mean() == pytest.approx(float(est.mean[-1]), rel=0.03)
    assert fc.summary.median[-1] > hist[-1]
    with pytest.raises(ValueError, match="one region at a time"):
        forecast_from_estimate(hist, SI, estimate_r(np.vstack([hist, hist]), si_distr=SI))


def test_forecast_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        forecast_cases([1, -2, 3], SI, **FIXED)
    with pytest.raises(ValueError):
        forecast_cases([1, 2, 3], [0.5, 0.5], **FIXED)
    with pytest.raises(ValueError):
        forecast_cases([1, 2, 3], SI, r_shape=0.0, r_scale=1.0)
    with pytest.raises(ValueError, match="band"):
        forecast_cases([1, 2, 3], SI, **FIXED, band=(0.6, 0.9))


def test_bed_pipeline_from_fixed_cases() -> None:
    cases = np.full((1, 10), 10.0)
    beds = forecast_beds(
        cases,
        contacts_per_case=5,
        share_placed=0.8,
        quarantine_days=7,
        placement_delay_days=1,
        recent_cases=[3, 10],
    )
    # 40 contacts placed a day (the last observed day's contacts arrive on forecast day 1),
    # each staying 7 days: occupancy climbs by 40 a day to a plateau of 280.
    np.testing.assert_allclose(beds.summary.median, [40, 80, 120, 160, 200, 240, 280, 280, 280, 280])


def test_beds_add_current_placements_case_beds_and_capacity() -> None:
    cases = np.array([[0.0, 10, 10, 10], [0.0, 20, 20, 20]])
    beds = forecast_beds(
        cases,
        contacts_per_case=2,
        share_placed=0.5,
        quarantine_days=2,
        placement_delay_days=0,
        case_stay_days=1,
        occupied_by_current=[100, 50, 0, 0],
        capacity=60,
        band=(0.25, 0.75),
    )
    np.testing.assert_allclose(beds.paths[0], [100, 50 + 10 + 10, 20 + 10, 20 + 10])
    np.testing.assert_allclose(beds.paths[1], [100, 50 + 20 + 20, 40 + 20, 40 + 20])
    np.testing.assert_allclose(beds.prob_over_capacity, [1.0, 1.0, 0.0, 0.0])
    assert beds.first_day_over_capacity() == 1
    json.dumps(beds.to_dict())


def test_beds_from_a_case_forecast_keep_the_band() -> None:
    fc = forecast_cases(np.full(30, 40.0), SI, r_shape=50.0, r_scale=1.1 / 50.0, n_paths=1000, seed=4)
    beds = forecast_beds(fc, contacts_per_case=8, share_placed=0.9, quarantine_days=7, recent_cases=[40])
    s = beds.summary
    assert np.all(s.lower <= s.median) and np.all(s.median <= s.upper)
    assert s.median[-1] > s.median[0]


def test_bed_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        forecast_beds(np.ones((2, 3)), contacts_per_case=1, share_placed=1.5, quarantine_days=7)
    with pytest.raises(ValueError):
        forecast_beds(np.ones((2, 3)), contacts_per_case=1, share_placed=0.5, quarantine_days=0)
    with pytest.raises(ValueError, match="per forecast day"):
        forecast_beds(
            np.ones((2, 3)), contacts_per_case=1, share_placed=0.5, quarantine_days=7, occupied_by_current=[1]
        )


def test_doubling_time_of_an_exact_exponential() -> None:
    y = 10 * 2 ** (np.arange(14) / 4.0)
    g = doubling_time(y, last_days=14)
    assert g.doubling_time == pytest.approx(4.0, rel=1e-6)
    assert g.growth_rate == pytest.approx(math.log(2) / 4, rel=1e-6)
    lo, hi = g.doubling_time_ci
    assert lo <= 4.0 <= hi
    assert g.growing is True and g.halving_time is None


def test_doubling_time_uses_only_the_last_days_and_handles_zeros() -> None:
    rng = np.random.default_rng(5)
    y = np.concatenate([np.full(30, 500.0), rng.poisson(3 * 1.25 ** np.arange(10))])
    g = doubling_time(y, last_days=10)
    assert g.days_used == 10
    assert g.doubling_time == pytest.approx(math.log(2) / math.log(1.25), rel=0.35)


def test_no_doubling_time_when_not_growing() -> None:
    down = doubling_time(200 * 0.9 ** np.arange(14))
    assert down.doubling_time is None and down.doubling_time_ci is None
    assert down.halving_time == pytest.approx(math.log(2) / -math.log(0.9), rel=1e-6)
    assert down.growing is False
    flat = doubling_time(np.random.default_rng(6).poisson(50, size=14))
    assert flat.growing is False
    if flat.doubling_time is not None:
        assert flat.doubling_time_ci[1] is None  # interval reaches zero growth: unbounded
    assert doubling_time(np.zeros(14)).growth_rate is None
    assert doubling_time([0] * 13 + [5]).doubling_time is None
    json.dumps(flat.to_dict())
    with pytest.raises(ValueError):
        doubling_time([1, 2, -3, 4])
