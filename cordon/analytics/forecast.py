"""Short-term projections: cases, the beds they will need, and the doubling time.

The morning question is whether the beds and the lab will hold for the next few days, so the
forecast is a band, not a line: R is drawn from the latest posterior of :mod:`.rt` and cases
from the renewal equation with Poisson noise, over many sample paths, and every derived figure
(beds, totals) is computed per path before taking quantiles, so that the band of a sum is the
band of the sum and not a sum of bands.

Policy numbers (contacts per case, share placed in centralised quarantine, quarantine days) are
parameters: the caller reads them from the deployment's policy file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cordon.analytics.rt import RtEstimate

DEFAULT_BAND: tuple[float, float] = (0.05, 0.95)


def _check_band(band: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in band)
    if not 0 < lo < 0.5 < hi < 1:
        raise ValueError(f"band must be (lower, upper) quantiles around the median, got {band}")
    return lo, hi


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass(frozen=True)
class PathSummary:
    """Median, band and mean per forecast day of a set of sample paths (paths x days)."""

    band: tuple[float, float]
    mean: np.ndarray
    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def of(cls, paths: np.ndarray, band: tuple[float, float]) -> PathSummary:
        lo, med, hi = np.quantile(paths, [band[0], 0.5, band[1]], axis=0)
        return cls(band=band, mean=paths.mean(axis=0), median=med, lower=lo, upper=hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": list(self.band),
            "day": list(range(1, self.median.shape[0] + 1)),
            "mean": [float(x) for x in self.mean],
            "median": [float(x) for x in self.median],
            "lower": [float(x) for x in self.lower],
            "upper": [float(x) for x in self.upper],
        }


@dataclass(frozen=True)
class CaseForecast:
    """Daily case sample paths for the days after the last observed one, and their summary."""

    paths: np.ndarray
    r_samples: np.ndarray
    summary: PathSummary

    @property
    def horizon(self) -> int:
        return int(self.paths.shape[1])

    def total(self, days: int) -> dict[str, float]:
        """Cases expected over the first ``days`` forecast days (e.g. 7 and 14), with the band."""
        if not 1 <= days <= self.horizon:
            raise ValueError(f"days must be between 1 and the horizon {self.horizon}")
        sums = self.paths[:, :days].sum(axis=1)
        lo, med, hi = np.quantile(sums, [self.summary.band[0], 0.5, self.summary.band[1]])
        return {"days": days, "mean": float(sums.mean()), "median": float(med), "lower": float(lo),
                "upper": float(hi)}

    def to_dict(self) -> dict[str, Any]:
        out = self.summary.to_dict()
        out["totals"] = [self.total(d) for d in (7, 14) if d <= self.horizon]
        return out


def forecast_cases(
    incidence: ArrayLike,
    si_distr: ArrayLike,
    r_shape: float,
    r_scale: float,
    *,
    horizon: int = 14,
    n_paths: int = 2000,
    band: Sequence[float] = DEFAULT_BAND,
    seed: int | np.random.Generator | None = 0,
) -> CaseForecast:
    """Project daily cases by the renewal equation from the gamma posterior of R.

    ``incidence`` is the observed daily total (local + imported) up to the last day to trust;
    leave out the days the epidemic curve flags incomplete, or the projection starts from an
    artificial dip. Each path draws one R (held fixed over the horizon, as EpiEstim's companion
    ``projections`` package does by default), then day by day
    I(t) ~ Poisson(R * sum_s I(t-s) w(s)). All paths advance together, one day per step.
    """
    hist = np.asarray(incidence, dtype=float)
    if hist.ndim != 1 or hist.size == 0:
        raise ValueError("incidence must be a non-empty daily series")
    if not np.all(np.isfinite(hist)) or np.any(hist < 0):
        raise ValueError("incidence must be finite and non-negative")
    if horizon < 1 or n_paths < 1:
        raise ValueError("horizon and n_paths must be at least 1")
    if not (r_shape > 0 and r_scale > 0):
        raise ValueError("the R posterior needs shape > 0 and scale > 0")
    w = np.asarray(si_distr, dtype=float)
    if w.ndim != 1 or w.size < 2 or w[0] != 0 or np.any(w < 0):
        raise ValueError("si_distr must be probabilities from day 0 with w(0) = 0")
    lo_hi = _check_band(band)
    rng = _rng(seed)

    n_hist = hist.size
    nonzero = np.flatnonzero(w)
    support = min(int(nonzero[-1]) + 1 if nonzero.size else 1, n_hist + horizon)
    w = w[:support]
    r = rng.gamma(r_shape, r_scale, size=n_paths)
    series = np.empty((n_paths, n_hist + horizon))
    series[:, :n_hist] = hist
    for h in range(horizon):
        t = n_hist + h
        lags = min(support - 1, t)
        lam = series[:, t - lags : t] @ w[lags:0:-1] if lags else np.zeros(n_paths)
        series[:, t] = rng.poisson(r * lam)
    paths = series[:, n_hist:]
    return CaseForecast(paths=paths, r_samples=r, summary=PathSummary.of(paths, lo_hi))


def forecast_from_estimate(
    incidence: ArrayLike,
    si_distr: ArrayLike,
    estimate: RtEstimate,
    **kwargs: Any,
) -> CaseForecast:
    """:func:`forecast_cases` starting from the last window of a single-series Rt estimate."""
    shape, scale = estimate.latest_posterior()
    if np.ndim(shape) != 0:
        raise ValueError("the estimate covers several regions; forecast one region at a time")
    return forecast_cases(incidence, si_distr, float(shape), float(scale), **kwargs)


@dataclass(frozen=True)
class BedForecast:
    """Occupied beds per forecast day (summary over the case paths) and the risk of running out."""

    paths: np.ndarray
    summary: PathSummary
    capacity: int | None
    prob_over_capacity: np.ndarray | None

    def first_day_over_capacity(self, probability: float = 0.5) -> int | None:
        """First forecast day (1-based) when beds run out with at least this probability."""
        if self.prob_over_capacity is None:
            return None
        hit = np.flatnonzero(self.prob_over_capacity >= probability)
        return int(hit[0]) + 1 if hit.size else None

    def to_dict(self) -> dict[str, Any]:
        out = self.summary.to_dict()
        out["capacity"] = self.capacity
        out["prob_over_capacity"] = (
            None if self.prob_over_capacity is None else [float(x) for x in self.prob_over_capacity]
        )
        out["first_day_over_capacity"] = self.first_day_over_capacity()
        return out


def _trailing_window_sum(x: np.ndarray, width: int) -> np.ndarray:
    cs = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    idx = np.arange(1, x.shape[-1] + 1)
    return cs[..., idx] - cs[..., np.maximum(idx - width, 0)]


def forecast_beds(
    cases: CaseForecast | ArrayLike,
    *,
    contacts_per_case: float,
    share_placed: float,
    quarantine_days: int,
    placement_delay_days: int = 1,
    recent_cases: ArrayLike | None = None,
    case_stay_days: int = 0,
    occupied_by_current: ArrayLike | None = None,
    capacity: int | None = None,
    band: Sequence[float] = DEFAULT_BAND,
) -> BedForecast:
    """Centralised-quarantine beds occupied on each forecast day.

    Each case brings ``contacts_per_case`` contacts, of whom ``share_placed`` go to a site
    ``placement_delay_days`` after the case is reported (tracing and transfer take time) and
    stay ``quarantine_days``. Contacts already placed are the caller's ``occupied_by_current``
    (beds still taken on each forecast day by current placements, from their policy end dates),
    so only placements falling on forecast days are added here; with a delay, those include the
    contacts of the last observed cases, given as ``recent_cases``. If ``case_stay_days`` > 0 the
    new cases themselves also take a bed for that many days.
    """
    paths = cases.paths if isinstance(cases, CaseForecast) else np.asarray(cases, dtype=float)
    if paths.ndim == 1:
        paths = paths[None, :]
    if paths.ndim != 2 or paths.shape[1] == 0:
        raise ValueError("cases must be sample paths (paths x forecast days)")
    if contacts_per_case < 0 or not 0 <= share_placed <= 1:
        raise ValueError("contacts_per_case must be >= 0 and share_placed between 0 and 1")
    if quarantine_days < 1 or placement_delay_days < 0 or case_stay_days < 0:
        raise ValueError("quarantine_days must be >= 1; delays and stays must be >= 0")
    lo_hi = _check_band(band)
    n_paths, horizon = paths.shape

    recent = np.zeros(placement_delay_days)
    if placement_delay_days and recent_cases is not None:
        given = np.asarray(recent_cases, dtype=float)[-placement_delay_days:]
        recent[placement_delay_days - given.size :] = given
    # Cases driving placements on forecast days 1..H: the last `delay` observed days, then paths.
    driving = np.concatenate([np.broadcast_to(recent, (n_paths, recent.size)), paths], axis=1)[:, :horizon]
    placed = driving * (contacts_per_case * share_placed)
    beds = _trailing_window_sum(placed, quarantine_days)
    if case_stay_days:
        beds = beds + _trailing_window_sum(paths, case_stay_days)
    if occupied_by_current is not None:
        current = np.asarray(occupied_by_current, dtype=float)
        if current.shape != (horizon,):
            raise ValueError(f"occupied_by_current must give one value per forecast day ({horizon})")
        beds = beds + current
    prob = None if capacity is None else (beds > capacity).mean(axis=0)
    return BedForecast(paths=beds, summary=PathSummary.of(beds, lo_hi), capacity=capacity,
                       prob_over_capacity=prob)


@dataclass(frozen=True)
class GrowthEstimate:
    """Exponential growth rate over the last days, and the doubling (or halving) time it implies.

    ``doubling_time`` is None when the fitted rate is not positive: "doubling every -12 days"
    helps nobody. A confidence bound that is None is unbounded (the rate's interval reaches 0).
    ``growing`` is True only when the whole interval of the rate lies above 0, so that the
    dashboard does not call a flat curve with noise a growing one.
    """

    days_used: int
    level: float
    growth_rate: float | None
    growth_rate_ci: tuple[float, float] | None
    doubling_time: float | None
    doubling_time_ci: tuple[float, float | None] | None
    halving_time: float | None
    growing: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "days_used": self.days_used,
            "level": self.level,
            "growth_rate": self.growth_rate,
            "growth_rate_ci": list(self.growth_rate_ci) if self.growth_rate_ci else None,
            "doubling_time": self.doubling_time,
            "doubling_time_ci": list(self.doubling_time_ci) if self.doubling_time_ci else None,
            "halving_time": self.halving_time,
            "growing": self.growing,
        }


def doubling_time(counts: ArrayLike, *, last_days: int = 14, level: float = 0.95) -> GrowthEstimate:
    """Doubling time from a log-linear fit of the last ``last_days`` daily counts.

    The fit is a quasi-Poisson regression log E[y_t] = a + r t rather than least squares on
    log(y): small counts and zero days are common at the start and the tail of a wave, where
    log(0) would need an arbitrary offset. The interval on r uses the Student t with the
    estimated over-dispersion (never below Poisson), and maps to the doubling time as ln2 / r.
    """
    y_all = np.asarray(counts, dtype=float)
    if y_all.ndim != 1:
        raise ValueError("counts must be a daily series")
    if last_days < 3:
        raise ValueError("need at least 3 days for a growth rate with an interval")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if not np.all(np.isfinite(y_all)) or np.any(y_all < 0):
        raise ValueError("counts must be finite and non-negative")
    y = y_all[-last_days:]
    n = y.size
    none = GrowthEstimate(n, level, None, None, None, None, None, None)
    if n < 3 or np.count_nonzero(y) < 2:
        return none  # too few positive days: the slope is not identifiable

    t = np.arange(n, dtype=float) - (n - 1) / 2.0
    design = np.column_stack([np.ones(n), t])
    beta = np.array([math.log(y.mean()), 0.0])
    converged = False
    for _ in range(100):
        mu = np.exp(design @ beta)
        step = np.linalg.solve(design.T @ (design * mu[:, None]), design.T @ (y - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            converged = True
            break
    if not converged or not np.all(np.isfinite(beta)):
        return none
    mu = np.exp(design @ beta)
    dispersion = max(1.0, float(np.sum((y - mu) ** 2 / mu)) / (n - 2))
    cov = np.linalg.inv(design.T @ (design * mu[:, None])) * dispersion
    rate = float(beta[1])
    half_width = float(stats.t.ppf(0.5 + level / 2, df=n - 2)) * math.sqrt(cov[1, 1])
    r_lo, r_hi = rate - half_width, rate + half_width
    ln2 = math.log(2.0)
    doubling = ln2 / rate if rate > 0 else None
    doubling_ci: tuple[float, float | None] | None = None
    if rate > 0:
        doubling_ci = (ln2 / r_hi, ln2 / r_lo if r_lo > 0 else None)
    return GrowthEstimate(
        days_used=n,
        level=level,
        growth_rate=rate,
        growth_rate_ci=(r_lo, r_hi),
        doubling_time=doubling,
        doubling_time_ci=doubling_ci,
        halving_time=ln2 / -rate if rate < 0 else None,
        growing=r_lo > 0,
    )
