"""Rt engine: EpiEstim's serial interval and posterior, reference outputs, both engines agree."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from cordon.analytics.rt import (
    DEFAULT_QUANTILES,
    check_si_distr,
    default_windows,
    discr_si,
    estimate_r,
    estimate_r_loop,
    overall_infectivity,
    quantile_column,
    split_first_day_imported,
)

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "rt"
needs_reference = pytest.mark.skipif(
    not REF.is_dir(), reason=f"EpiEstim reference data not found at {REF} (shared/ beside the checkout)"
)


def _read(name: str) -> list[dict[str, str]]:
    with (REF / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def flu() -> tuple[np.ndarray, np.ndarray]:
    if not REF.is_dir():
        pytest.skip(f"EpiEstim reference data not found at {REF}")
    incidence = np.array([int(r["cases"]) for r in _read("flu2009_incidence.csv")], dtype=float)
    si = np.array([float(r["probability"]) for r in _read("flu2009_si_distr.csv")])
    return incidence, si


# ------------------------------------------------------------------------------- serial interval


def _triangle_si(k: int, mu: float, sigma: float) -> float:
    """w_k from its definition: the gamma (mean mu-1) density under a triangle kernel at k-1.

    The onset of the infector is uniform within its day and so is the infectee's, and the
    serial interval is shifted by one day: integrating that directly is an independent check
    on the closed form with gamma CDFs.
    """
    a = ((mu - 1) / sigma) ** 2
    b = sigma**2 / (mu - 1)
    lo, hi = max(k - 2.0, 0.0), max(k * 1.0, 0.0)
    if hi <= lo:
        return 0.0
    value, _ = integrate.quad(
        lambda x: stats.gamma.pdf(x, a, scale=b) * (1 - abs(x - (k - 1))),
        lo,
        hi,
        points=[max(k - 1.0, 0.0)],
        epsabs=1e-14,
        epsrel=1e-12,
    )
    return value


@pytest.mark.parametrize(("mu", "sigma"), [(2.6, 1.5), (4.7, 2.9), (6.48, 3.83)])
def test_discr_si_matches_definition(mu: float, sigma: float) -> None:
    k = np.arange(0, 15)
    w = discr_si(k, mu, sigma)
    expected = np.array([_triangle_si(int(i), mu, sigma) for i in k])
    np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-13)


def test_discr_si_is_a_distribution_with_nothing_on_day_zero() -> None:
    w = discr_si(np.arange(0, 200), 4.7, 2.9)
    assert w[0] == 0.0
    assert np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    # the mean of the shifted, day-censored gamma is mu
    assert np.sum(np.arange(200) * w) == pytest.approx(4.7, rel=1e-6)


def test_discr_si_against_flu2009_rounded_values(flu: tuple[np.ndarray, np.ndarray]) -> None:
    # EpiEstim's Flu2009$si_distr is discr_si(0:12, 2.6, 1.5) rounded to 3 decimals.
    _, si = flu
    np.testing.assert_allclose(discr_si(np.arange(13), 2.6, 1.5), si, atol=5e-4 + 1e-12)


@pytest.mark.parametrize(("mu", "sigma", "k"), [(1.0, 1.0, [1]), (2.0, 0.0, [1]), (2.0, 1.0, [-1])])
def test_discr_si_rejects_bad_parameters(mu: float, sigma: float, k: list[int]) -> None:
    with pytest.raises(ValueError):
        discr_si(k, mu, sigma)


# ------------------------------------------------------------------------- EpiEstim reference


def _check_against(rows: list[dict[str, str]], est) -> None:
    ours = est.to_rows()
    assert len(ours) == len(rows)
    for mine, theirs in zip(ours, rows, strict=True):
        assert mine["t_start"] == int(theirs["t_start"])
        assert mine["t_end"] == int(theirs["t_end"])
        for column, value in theirs.items():
            if column in ("t_start", "t_end"):
                continue
            assert mine[column] == pytest.approx(float(value), rel=1e-6), (theirs["t_start"], column)


@needs_reference
@pytest.mark.parametrize("engine", [estimate_r, estimate_r_loop])
def test_example1_non_parametric_si(engine, flu: tuple[np.ndarray, np.ndarray]) -> None:
    incidence, si = flu
    rows = _read("flu2009_example1_nonparametric_si.csv")
    assert set(rows[0]) == {"t_start", "t_end", "mean_r", "std_r"} | {
        quantile_column(p) for p in DEFAULT_QUANTILES
    }
    est = engine(incidence, si_distr=si, t_start=np.arange(2, 27), t_end=np.arange(8, 33))
    _check_against(rows, est)


@needs_reference
@pytest.mark.parametrize("engine", [estimate_r, estimate_r_loop])
def test_example3_parametric_si(engine, flu: tuple[np.ndarray, np.ndarray]) -> None:
    incidence, _ = flu
    rows = _read("flu2009_example3_parametric_si.csv")
    est = engine(incidence, mean_si=2.6, std_si=1.5)  # default weekly windows = 2:26 / 8:32
    _check_against(rows, est)


@needs_reference
def test_reference_through_explicit_local_and_imported(flu: tuple[np.ndarray, np.ndarray]) -> None:
    incidence, si = flu
    local, imported = split_first_day_imported(incidence)
    _check_against(_read("flu2009_example1_nonparametric_si.csv"), estimate_r(local, imported, si))


# ------------------------------------------------------------------------- engines agree


def _synthetic(regions: int, days: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = rng.uniform(1, 80, size=(regions, 1))
    trend = np.exp(np.cumsum(rng.normal(0, 0.08, size=(regions, days)), axis=1))
    return rng.poisson(level * trend).astype(float)


def _assert_same(a, b, rtol: float = 1e-10) -> None:
    np.testing.assert_array_equal(a.t_start, b.t_start)
    np.testing.assert_array_equal(a.t_end, b.t_end)
    for name in ("shape", "scale", "mean", "std", "quantiles"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, err_msg=name)


def test_vectorised_equals_loop_non_parametric() -> None:
    inc = _synthetic(6, 120, seed=1)
    si = discr_si(np.arange(15), 4.0, 2.0)
    si = si / si.sum()
    _assert_same(estimate_r(inc, si_distr=si), estimate_r_loop(inc, si_distr=si))


def test_vectorised_equals_loop_parametric_long_kernel() -> None:
    # A parametric serial interval has one lag per day: exercises the Toeplitz path.
    inc = _synthetic(4, 200, seed=2)
    _assert_same(
        estimate_r(inc, mean_si=5.2, std_si=2.8, window=10),
        estimate_r_loop(inc, mean_si=5.2, std_si=2.8, window=10),
    )


def test_vectorised_equals_loop_with_imports_and_uneven_windows() -> None:
    rng = np.random.default_rng(3)
    local = _synthetic(3, 60, seed=4)
    imported = rng.poisson(2.0, size=local.shape).astype(float)
    ts = np.array([2, 5, 5, 10, 30, 41])
    te = np.array([2, 9, 20, 40, 60, 60])
    kw = {"mean_si": 3.0, "std_si": 1.2, "t_start": ts, "t_end": te}
    _assert_same(estimate_r(local, imported, **kw), estimate_r_loop(local, imported, **kw))


def test_two_dimensional_input_equals_each_region_alone() -> None:
    inc = _synthetic(5, 90, seed=5)
    all_at_once = estimate_r(inc, mean_si=4.0, std_si=2.0)
    assert all_at_once.mean.shape == (5, all_at_once.n_windows)
    for r in range(5):
        alone = estimate_r(inc[r], mean_si=4.0, std_si=2.0)
        np.testing.assert_allclose(all_at_once.mean[r], alone.mean, rtol=1e-12)
        np.testing.assert_allclose(all_at_once.quantiles[r], alone.quantiles, rtol=1e-12)
        for mine, single in zip(all_at_once.to_rows(region=r), alone.to_rows(), strict=True):
            assert mine == pytest.approx(single, rel=1e-12)


def test_overall_infectivity_paths_agree() -> None:
    rng = np.random.default_rng(6)
    inc = rng.poisson(30, size=(3, 700)).astype(float)
    w = discr_si(np.arange(700), 6.0, 3.0)  # long kernel: blocked Toeplitz
    lam = overall_infectivity(inc, w)
    t = 650
    assert lam[1, t] == pytest.approx(float(np.sum(w[1 : t + 1] * inc[1, t - 1 :: -1])), rel=1e-12)
    assert np.all(lam[:, 0] == 0)
    short = np.where(np.arange(700) < 30, w, 0.0)  # same first 30 lags, shifted-add path
    np.testing.assert_allclose(overall_infectivity(inc, short)[:, :30], lam[:, :30], rtol=1e-12)


# ------------------------------------------------------------------------- imported cases


def test_split_first_day_imported() -> None:
    local, imported = split_first_day_imported([4, 2, 0, 7])
    np.testing.assert_array_equal(local, [0, 2, 0, 7])
    np.testing.assert_array_equal(imported, [4, 0, 0, 0])
    local2, imported2 = split_first_day_imported([[1, 2], [3, 4]])
    np.testing.assert_array_equal(local2, [[0, 2], [0, 4]])
    np.testing.assert_array_equal(imported2, [[1, 0], [3, 0]])


def test_imported_cases_infect_but_are_not_counted_as_offspring() -> None:
    si = np.array([0.0, 0.5, 0.5])
    local = np.array([0, 0, 3, 3, 4, 4, 5, 5], dtype=float)
    imported = np.array([10, 5, 0, 0, 0, 6, 0, 0], dtype=float)
    est = estimate_r(local, imported, si, t_start=[3], t_end=[8], mean_prior=5, std_prior=5)
    total = local + imported
    lam = [0.5 * total[t - 1] + 0.5 * total[t - 2] for t in range(2, 8)]
    a = 1.0 + local[2:8].sum()  # prior mean 5, sd 5 -> shape 1, scale 5
    b = 1.0 / (1.0 / 5.0 + sum(lam))
    assert est.shape[0] == pytest.approx(a)
    assert est.scale[0] == pytest.approx(b)
    assert est.mean[0] == pytest.approx(a * b)
    # the same local cases without the imports: less infectivity, so a higher R
    assert estimate_r(local, np.zeros_like(local), si, t_start=[3], t_end=[8]).mean[0] > est.mean[0]


def test_local_cases_on_day_one_count_as_imported() -> None:
    si = np.array([0.0, 0.6, 0.4])
    as_local = estimate_r([5, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0], si, window=3)
    as_imported = estimate_r([0, 1, 2, 3, 4, 5], [5, 0, 0, 0, 0, 0], si, window=3)
    plain = estimate_r([5, 1, 2, 3, 4, 5], si_distr=si, window=3)
    np.testing.assert_allclose(as_local.quantiles, as_imported.quantiles)
    np.testing.assert_allclose(plain.quantiles, as_imported.quantiles)


# ------------------------------------------------------------------------- windows and output


def test_default_windows_start_on_day_two() -> None:
    ts, te = default_windows(32, 7)
    assert ts[0] == 2 and te[0] == 8 and ts[-1] == 26 and te[-1] == 32


def test_windows_ending_before_the_mean_serial_interval_are_dropped() -> None:
    si = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.5])  # mean 5.5 days
    est = estimate_r(np.full(30, 5.0), si_distr=si, t_start=[2, 2, 2, 2], t_end=[4, 5, 6, 7])
    assert est.mean_si == pytest.approx(5.5)
    assert list(est.t_end) == [6, 7]


def test_rows_are_json_ready_and_named_as_the_export() -> None:
    est = estimate_r(np.arange(1, 20, dtype=float), mean_si=3.0, std_si=1.0)
    row = est.to_rows()[0]
    assert list(row) == est.columns()
    assert est.columns()[-7:] == ["q025", "q05", "q25", "median", "q75", "q95", "q975"]
    assert all(isinstance(v, int | float) for v in row.values())
    np.testing.assert_allclose(est.quantile(0.5), est.quantiles[:, 3])
    shape, scale = est.latest_posterior()
    assert shape == est.shape[-1] and scale == est.scale[-1]


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"local": [3, -1, 2, 4, 5, 6, 7, 8, 9]}, "non-negative"),
        ({"local": [3, np.nan, 2, 4, 5, 6, 7, 8, 9]}, "finite"),
        ({"local": [1, 2, 3, 4, 5], "window": 5}, "too long"),
        ({"local": [1, 2, 3, 4, 5], "window": 0}, "at least 1 day"),
        ({"local": [], "window": 1}, "empty"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "si": [0.0, 0.5, 0.3]}, "sum to 1"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "si": [0.2, 0.5, 0.3]}, "day 0"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "si": [0.0, 1.2, -0.2]}, "non-negative"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "si": None}, "mean_si"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "t_start": [1], "t_end": [5]}, "between 2"),
        ({"local": [1, 2, 3, 4, 5, 6, 7, 8, 9], "t_start": [6], "t_end": [5]}, "<="),
        ({"local": [1, 2, 3], "imported": [1, 2]}, "shape"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    kwargs = dict(kwargs)
    si = kwargs.pop("si", [0.0, 0.5, 0.5])
    local = kwargs.pop("local")
    for engine in (estimate_r, estimate_r_loop):
        with pytest.raises(ValueError, match=message):
            engine(local, si_distr=si, **kwargs)


def test_check_si_distr_tolerates_epiestim_rounding() -> None:
    check_si_distr([0.0, 0.5, 0.505])  # within EpiEstim's 0.01
    with pytest.raises(ValueError, match="sum to 1"):
        check_si_distr([0.0, 0.5, 0.52])
