"""Time-varying reproduction number, Cori et al. (2013), as R package EpiEstim computes it.

Headquarters compare our figures with those of the CDC and of published analyses, which are made
with EpiEstim; so this module reproduces EpiEstim's choices exactly rather than improving on
them: the shifted-gamma discretisation of the serial interval, the first day's cases counted as
imported, windows that start on day 2, windows ending before the mean serial interval dropped,
and a gamma prior of mean 5 and sd 5.

Two engines share one validation: :func:`estimate_r` computes every region and window at once
(the command centre estimates Rt for every county each morning), and :func:`estimate_r_loop`
follows EpiEstim's loops one window at a time, as the reference the fast engine is checked and
benchmarked against.

Days are numbered from 1 in ``t_start``/``t_end`` (as in EpiEstim and in its published outputs);
arrays are indexed from 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

DEFAULT_QUANTILES: tuple[float, ...] = (0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975)

# EpiEstim refuses a serial-interval distribution whose sum is further than this from 1.
SI_SUM_TOLERANCE = 0.01

# Above this many serial-interval lags the infectivity is computed as a (blocked) Toeplitz
# matrix product instead of one shifted add per lag: a parametric serial interval discretised
# over the whole series has as many lags as days, and BLAS handles that far better.
_SHIFTED_ADD_MAX_LAGS = 64
_TOEPLITZ_BLOCK = 512


def discr_si(k: ArrayLike, mu: float, sigma: float) -> np.ndarray:
    """Discretised serial interval, EpiEstim's ``discr_si``.

    The serial interval is taken as 1 + Gamma(mean mu - 1, sd sigma), with the infector's
    symptom onset uniform within its day (Cori et al. 2013, web appendix 11). The shift makes
    w(0) = 0: a case cannot infect someone who falls ill the same day, which the renewal equation
    needs so that today's cases are not explained by themselves. Negative values from rounding
    are clamped to 0 as EpiEstim does; no renormalisation is applied (EpiEstim applies none),
    so a distribution cut at a finite ``k`` sums to slightly less than 1.
    """
    if not sigma > 0:
        raise ValueError(f"the serial interval sd must be > 0, got {sigma}")
    if not mu > 1:
        raise ValueError(f"the serial interval mean must be > 1 day (it is shifted by one), got {mu}")
    kk = np.asarray(k, dtype=float)
    if np.any(kk < 0):
        raise ValueError("all values of k must be >= 0")
    a = ((mu - 1.0) / sigma) ** 2
    b = sigma**2 / (mu - 1.0)

    def cdf(x: np.ndarray, shape: float) -> np.ndarray:
        # R's pgamma is 0 below 0; scipy.special.gammainc is undefined there.
        return np.where(x > 0, special.gammainc(shape, np.maximum(x, 0.0) / b), 0.0)

    res = kk * cdf(kk, a) + (kk - 2) * cdf(kk - 2, a) - 2 * (kk - 1) * cdf(kk - 1, a)
    res = res + a * b * (2 * cdf(kk - 1, a + 1) - cdf(kk - 2, a + 1) - cdf(kk, a + 1))
    return np.maximum(res, 0.0)


def split_first_day_imported(incidence: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Split a plain incidence series into (local, imported) the way EpiEstim does.

    Nobody observed infected the first day's cases, so EpiEstim counts them as imported: they
    seed the infectivity but never count as offspring. Works along the last axis, so a
    regions x days array is split region by region.
    """
    total = _as_counts(incidence, "incidence")
    local = total.copy()
    imported = np.zeros_like(total)
    imported[..., 0] = total[..., 0]
    local[..., 0] = 0.0
    return local, imported


def default_windows(n_days: int, window: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """EpiEstim's default sliding windows: t_start = 2..T-window+1, t_end = t_start+window-1.

    The first window starts on day 2 because day 1 has no infectivity before it.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 day, got {window}")
    if n_days - window + 1 < 2:
        raise ValueError(
            f"window of {window} days is too long for a series of {n_days} days: "
            f"need at least {window + 1} days, since day 1 only seeds the infectivity"
        )
    t_start = np.arange(2, n_days - window + 2, dtype=np.int64)
    return t_start, t_start + (window - 1)


def check_si_distr(si_distr: ArrayLike) -> np.ndarray:
    """Validate a discrete serial-interval distribution with EpiEstim's rules.

    EpiEstim stops when w(0) != 0, when a value is negative, or when the sum is more than 0.01
    from 1: a distribution that does not sum to 1 silently scales every R estimate.
    """
    w = np.asarray(si_distr, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError("si_distr must be a non-empty 1-D sequence of probabilities from day 0")
    if not np.all(np.isfinite(w)):
        raise ValueError("si_distr must contain only finite numbers")
    if w[0] != 0:
        raise ValueError(f"si_distr must have probability 0 on day 0, got {w[0]}")
    if np.any(w < 0):
        day = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"si_distr must be non-negative, day {day} has {w[day]}")
    total = float(w.sum())
    if abs(total - 1.0) > SI_SUM_TOLERANCE:
        raise ValueError(f"si_distr must sum to 1 (within {SI_SUM_TOLERANCE}), it sums to {total:.6g}")
    return w


def overall_infectivity(total: ArrayLike, si_distr: ArrayLike) -> np.ndarray:
    """Lambda_t = sum_{s>=1} I(t-s) w(s) for every series at once (along the last axis).

    Computed exactly, term by term, rather than by FFT: an FFT's absolute rounding error is
    relative to the largest value, which would swamp the small infectivity at the tail of a
    wave, where Rt matters most. Day 1 has no past, and gets 0 (EpiEstim leaves it NA; no
    window uses it).
    """
    inc = np.asarray(total, dtype=float)
    w = np.asarray(si_distr, dtype=float)
    n_days = inc.shape[-1]
    w = w[:n_days]
    nonzero = np.flatnonzero(w[1:])
    lags = int(nonzero[-1]) + 2 if nonzero.size else 1  # w[0] is 0 by construction
    lam = np.zeros_like(inc)
    if lags <= _SHIFTED_ADD_MAX_LAGS:
        for s in range(1, lags):
            if w[s] != 0.0:
                lam[..., s:] += w[s] * inc[..., : n_days - s]
        return lam
    # Toeplitz product in column blocks: lam[:, t] = inc[:, :t] @ w[t - j], j < t.
    flat = inc.reshape(-1, n_days)
    out = lam.reshape(-1, n_days)
    w_full = np.zeros(n_days)
    w_full[:lags] = w[:lags]
    for lo in range(1, n_days, _TOEPLITZ_BLOCK):
        hi = min(lo + _TOEPLITZ_BLOCK, n_days)
        first = max(0, lo - lags + 1)  # older days carry zero weight
        diff = np.arange(lo, hi)[None, :] - np.arange(first, hi - 1)[:, None]
        kernel = np.where(diff >= 1, w_full[np.clip(diff, 0, n_days - 1)], 0.0)
        out[:, lo:hi] = flat[:, first : hi - 1] @ kernel
    return out.reshape(inc.shape)


def quantile_column(p: float) -> str:
    """Column name for a posterior quantile, as in the exported CSV (0.025 -> q025, 0.5 -> median)."""
    if p == 0.5:
        return "median"
    digits = format(p, ".10g").split(".")[-1]
    return "q" + digits.ljust(2, "0")


@dataclass(frozen=True)
class RtEstimate:
    """Posterior of R per window (and per region when the input had one row per region).

    The gamma posterior parameters are kept so that forecasts can draw R from exactly the
    distribution the dashboard shows. Arrays are (windows,) for one series, (regions, windows)
    for several; ``quantiles`` adds a last axis matching ``quantile_probs``.
    """

    t_start: np.ndarray
    t_end: np.ndarray
    shape: np.ndarray
    scale: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    quantile_probs: tuple[float, ...]
    quantiles: np.ndarray
    mean_si: float

    @property
    def n_windows(self) -> int:
        return int(self.t_start.shape[0])

    def quantile(self, p: float) -> np.ndarray:
        """The posterior quantile ``p`` for every window (it must be one of ``quantile_probs``)."""
        for i, q in enumerate(self.quantile_probs):
            if abs(q - p) < 1e-12:
                return self.quantiles[..., i]
        raise KeyError(f"quantile {p} was not computed; have {self.quantile_probs}")

    def columns(self) -> list[str]:
        return ["t_start", "t_end", "mean_r", "std_r", *(quantile_column(p) for p in self.quantile_probs)]

    def to_rows(self, region: int | None = None) -> list[dict[str, int | float]]:
        """One JSON-ready dict per window, for one region (``region`` may be omitted for 1-D input)."""
        if self.shape.ndim == 1:
            if region not in (None, 0):
                raise IndexError("this estimate has a single series")
            sel: tuple = (...,)
        else:
            if region is None:
                raise ValueError("pass region= for an estimate over several regions")
            sel = (region,)
        mean, std, qs = self.mean[sel], self.std[sel], self.quantiles[sel]
        names = [quantile_column(p) for p in self.quantile_probs]
        rows: list[dict[str, int | float]] = []
        for i in range(self.n_windows):
            row: dict[str, int | float] = {
                "t_start": int(self.t_start[i]),
                "t_end": int(self.t_end[i]),
                "mean_r": float(mean[i]),
                "std_r": float(std[i]),
            }
            row.update({name: float(qs[i, j]) for j, name in enumerate(names)})
            rows.append(row)
        return rows

    def latest_posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(shape, scale) of the last window: the R a short-term forecast should start from."""
        if self.n_windows == 0:
            raise ValueError("no window to take the latest posterior from")
        return self.shape[..., -1], self.scale[..., -1]


# --------------------------------------------------------------------------- shared validation


def _as_counts(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.array(values, dtype=float)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be a series (days) or a 2-D array (regions x days)")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite numbers (fill missing days explicitly)")
    if np.any(arr < 0):
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name} must be non-negative, found {arr[idx]} at index {idx}")
    return arr


@dataclass(frozen=True)
class _Prepared:
    local: np.ndarray
    total: np.ndarray
    si: np.ndarray
    mean_si: float
    t_start: np.ndarray
    t_end: np.ndarray
    a_prior: float
    b_prior: float
    probs: tuple[float, ...]


def _prepare(
    local: ArrayLike,
    imported: ArrayLike | None,
    si_distr: ArrayLike | None,
    mean_si: float | None,
    std_si: float | None,
    t_start: ArrayLike | None,
    t_end: ArrayLike | None,
    window: int,
    mean_prior: float,
    std_prior: float,
    quantiles: Sequence[float],
) -> _Prepared:
    if imported is None:
        loc, imp = split_first_day_imported(local)
    else:
        loc = _as_counts(local, "local incidence")
        imp = _as_counts(imported, "imported incidence")
        if imp.shape != loc.shape:
            raise ValueError(f"imported incidence has shape {imp.shape}, local has {loc.shape}")
        # EpiEstim moves any local case of day 1 to imported (nothing observed infected them).
        imp = imp.copy()
        imp[..., 0] += loc[..., 0]
        loc = loc.copy()
        loc[..., 0] = 0.0
    n_days = loc.shape[-1]
    if n_days < 2:
        raise ValueError("incidence needs at least 2 days: day 1 only seeds the infectivity")

    if si_distr is not None:
        if mean_si is not None or std_si is not None:
            raise ValueError("give either si_distr or mean_si/std_si, not both")
        si = check_si_distr(si_distr)
    else:
        if mean_si is None or std_si is None:
            raise ValueError("give si_distr, or both mean_si and std_si for a parametric serial interval")
        # EpiEstim's parametric_si: discretised over days 0..T-1, not renormalised.
        si = discr_si(np.arange(n_days), mean_si, std_si)
    # EpiEstim's mean serial interval, over the whole distribution as given.
    mean_si_value = float(np.sum(si * np.arange(si.size)))
    if si.size < n_days:
        si = np.concatenate([si, np.zeros(n_days - si.size)])

    if t_start is None and t_end is None:
        ts, te = default_windows(n_days, window)
    elif t_start is None or t_end is None:
        raise ValueError("give both t_start and t_end, or neither for the default sliding windows")
    else:
        ts = np.atleast_1d(np.asarray(t_start))
        te = np.atleast_1d(np.asarray(t_end))
        if ts.ndim != 1 or ts.shape != te.shape:
            raise ValueError("t_start and t_end must be 1-D and of the same length")
        if ts.size and (np.any(ts % 1 != 0) or np.any(te % 1 != 0)):
            raise ValueError("t_start and t_end must be whole day numbers")
        ts, te = ts.astype(np.int64), te.astype(np.int64)
        if np.any(ts > te):
            raise ValueError("every t_start must be <= its t_end")
        if np.any((ts < 2) | (ts > n_days)) or np.any((te < 2) | (te > n_days)):
            raise ValueError(f"t_start and t_end must be day numbers between 2 and {n_days}")
    # EpiEstim drops windows ending at or before the mean serial interval: too little of the
    # infectivity that produced those cases has been observed yet.
    keep = te > mean_si_value
    ts, te = ts[keep], te[keep]

    if not (mean_prior > 0 and std_prior > 0):
        raise ValueError("mean_prior and std_prior must be > 0")
    probs = tuple(float(p) for p in quantiles)
    if any(not 0 < p < 1 for p in probs):
        raise ValueError("quantiles must lie strictly between 0 and 1")
    return _Prepared(
        local=loc,
        total=loc + imp,
        si=si,
        mean_si=mean_si_value,
        t_start=ts,
        t_end=te,
        a_prior=(mean_prior / std_prior) ** 2,
        b_prior=std_prior**2 / mean_prior,
        probs=probs,
    )


# --------------------------------------------------------------------------------- the engines


def estimate_r(
    local: ArrayLike,
    imported: ArrayLike | None = None,
    si_distr: ArrayLike | None = None,
    *,
    mean_si: float | None = None,
    std_si: float | None = None,
    t_start: ArrayLike | None = None,
    t_end: ArrayLike | None = None,
    window: int = 7,
    mean_prior: float = 5.0,
    std_prior: float = 5.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> RtEstimate:
    """Posterior of R over sliding windows, for one series or for every region at once.

    ``local`` is a days-long series or a regions x days array. Without ``imported`` it is the
    total incidence and day 1 counts as imported (EpiEstim's rule); with it, imported cases add
    to the infectivity but are never counted as locally infected. The serial interval is either
    ``si_distr`` (probabilities from day 0) or ``mean_si``/``std_si`` (EpiEstim's
    ``parametric_si``). Posterior: Gamma(shape = a_prior + local cases in the window,
    scale = 1 / (1/b_prior + infectivity in the window)).

    Everything is array arithmetic: infectivity by shifted adds, window sums by cumulative sums,
    and gamma quantiles evaluated once per distinct posterior shape (shapes are the prior plus a
    whole number of cases, so across many regions they repeat a great deal) and rescaled, since
    a gamma quantile is ``scale * gammaincinv(shape, p)``.
    """
    prep = _prepare(
        local, imported, si_distr, mean_si, std_si, t_start, t_end, window, mean_prior, std_prior, quantiles
    )
    lam = overall_infectivity(prep.total, prep.si)
    lead = prep.local.shape[:-1]
    zero = np.zeros((*lead, 1))
    cs_local = np.concatenate([zero, np.cumsum(prep.local, axis=-1)], axis=-1)
    cs_lam = np.concatenate([zero, np.cumsum(lam, axis=-1)], axis=-1)
    ts, te = prep.t_start, prep.t_end
    local_sum = cs_local[..., te] - cs_local[..., ts - 1]
    lam_sum = cs_lam[..., te] - cs_lam[..., ts - 1]
    shape = prep.a_prior + local_sum
    scale = 1.0 / (1.0 / prep.b_prior + lam_sum)
    return RtEstimate(
        t_start=ts,
        t_end=te,
        shape=shape,
        scale=scale,
        mean=shape * scale,
        std=np.sqrt(shape) * scale,
        quantile_probs=prep.probs,
        quantiles=gamma_quantiles(shape, scale, prep.probs),
        mean_si=prep.mean_si,
    )


def gamma_quantiles(shape: ArrayLike, scale: ArrayLike, probs: Sequence[float]) -> np.ndarray:
    """Gamma quantiles for many (shape, scale) pairs; last axis follows ``probs``.

    The inverse incomplete gamma function is the expensive part of the whole estimate, so it is
    evaluated once per distinct shape and rescaled.
    """
    a = np.asarray(shape, dtype=float)
    b = np.asarray(scale, dtype=float)
    p = np.asarray(probs, dtype=float)
    if a.size == 0:
        return np.zeros((*a.shape, p.size))
    uniq, inverse = np.unique(a, return_inverse=True)
    std_q = special.gammaincinv(uniq[:, None], p[None, :])
    return std_q[inverse.reshape(a.shape)] * b[..., None]


def estimate_r_loop(
    local: ArrayLike,
    imported: ArrayLike | None = None,
    si_distr: ArrayLike | None = None,
    *,
    mean_si: float | None = None,
    std_si: float | None = None,
    t_start: ArrayLike | None = None,
    t_end: ArrayLike | None = None,
    window: int = 7,
    mean_prior: float = 5.0,
    std_prior: float = 5.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> RtEstimate:
    """The same estimate computed window by window, as EpiEstim's R code does.

    Kept as the straightforward reference: the tests check :func:`estimate_r` against it and
    ``bench/rt.py`` measures the vectorised engine against it. Same arguments and result.
    """
    prep = _prepare(
        local, imported, si_distr, mean_si, std_si, t_start, t_end, window, mean_prior, std_prior, quantiles
    )
    loc2 = prep.local.reshape(-1, prep.local.shape[-1])
    tot2 = prep.total.reshape(-1, prep.total.shape[-1])
    n_series, n_days = loc2.shape
    n_win = prep.t_start.size
    shape = np.empty((n_series, n_win))
    scale = np.empty((n_series, n_win))
    qs = np.empty((n_series, n_win, len(prep.probs)))
    for r in range(n_series):
        lam = np.zeros(n_days)
        for t in range(1, n_days):  # lambda[t] = sum(si[1..t] * I[t-1..0])
            lam[t] = float(np.sum(prep.si[1 : t + 1] * tot2[r, t - 1 :: -1][:t]))
        for i in range(n_win):
            s, e = int(prep.t_start[i]) - 1, int(prep.t_end[i])
            a = prep.a_prior + float(np.sum(loc2[r, s:e]))
            b = 1.0 / (1.0 / prep.b_prior + float(np.sum(lam[s:e])))
            shape[r, i], scale[r, i] = a, b
            qs[r, i] = stats.gamma.ppf(prep.probs, a, scale=b)
    lead = prep.local.shape[:-1]
    shape = shape.reshape(*lead, n_win)
    scale = scale.reshape(*lead, n_win)
    return RtEstimate(
        t_start=prep.t_start,
        t_end=prep.t_end,
        shape=shape,
        scale=scale,
        mean=shape * scale,
        std=np.sqrt(shape) * scale,
        quantile_probs=prep.probs,
        quantiles=qs.reshape(*lead, n_win, len(prep.probs)),
        mean_si=prep.mean_si,
    )
