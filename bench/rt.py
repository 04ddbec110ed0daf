"""Benchmark: Rt for every region of a province at once, against the per-window loop.

The command centre re-estimates Rt for every county each morning, so the figure that matters
is the time for all regions x all days; the reference measured in the same run is the
straightforward window-by-window computation (EpiEstim's own structure), timed on a subset of
regions when it would take too long and scaled up per region. Both engines run on the same
synthetic incidence and their results are compared.

Usage: python bench/rt.py --regions 1000 --days 365
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cordon.analytics.rt import discr_si, estimate_r, estimate_r_loop


def synthetic_incidence(regions: int, days: int, si: np.ndarray, seed: int) -> np.ndarray:
    """Seeded renewal-process outbreaks: R wanders (mean-reverting on the log scale) and is
    damped by susceptible depletion, so counts stay in the range real counties see."""
    rng = np.random.default_rng(seed)
    population = rng.uniform(1e5, 5e6, size=regions)
    log_r = np.log(rng.uniform(0.8, 1.6, size=regions))
    inc = np.zeros((regions, days))
    inc[:, 0] = rng.integers(1, 30, size=regions)
    susceptible = population - inc[:, 0]
    w = si[1:][::-1]  # lags L..1
    lags = w.size
    for t in range(1, days):
        log_r = 0.97 * log_r + rng.normal(0.0, 0.05, size=regions)
        lo = max(0, t - lags)
        lam = inc[:, lo:t] @ w[lags - (t - lo) :]
        expected = np.exp(log_r) * lam * susceptible / population
        inc[:, t] = np.minimum(rng.poisson(expected + 0.05), susceptible)  # + sporadic imports
        susceptible -= inc[:, t]
    return inc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--si-mean", type=float, default=4.0)
    parser.add_argument("--si-sd", type=float, default=2.5)
    parser.add_argument(
        "--parametric",
        action="store_true",
        help="discretise the serial interval over the whole series (EpiEstim parametric_si) "
        "instead of a 0-20 day truncated distribution",
    )
    parser.add_argument("--loop-regions", type=int, default=20, help="regions timed with the loop")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the vectorised engine (best)")
    parser.add_argument("--seed", type=int, default=20220601)
    args = parser.parse_args()

    si_short = discr_si(np.arange(21), args.si_mean, args.si_sd)
    si_short = si_short / si_short.sum()
    incidence = synthetic_incidence(args.regions, args.days, si_short, args.seed)
    if args.parametric:
        si_kwargs: dict = {"mean_si": args.si_mean, "std_si": args.si_sd}
    else:
        si_kwargs = {"si_distr": si_short}
    region_days = args.regions * args.days
    print(
        f"synthetic incidence: {args.regions} regions x {args.days} days, "
        f"{int(incidence.sum()):,} cases, max {int(incidence.max()):,}/day"
    )

    estimate_r(incidence[:2], window=args.window, **si_kwargs)  # warm-up: imports, caches
    times = []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        fast = estimate_r(incidence, window=args.window, **si_kwargs)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    print(
        f"vectorised: {seconds:.3f} s for {region_days:,} region-days "
        f"({fast.n_windows} windows x {args.regions} regions), "
        f"{seconds / region_days * 1e6:.3f} us/region-day"
    )

    loop_regions = max(1, min(args.loop_regions, args.regions))
    start = time.perf_counter()
    slow = estimate_r_loop(incidence[:loop_regions], window=args.window, **si_kwargs)
    loop_seconds = time.perf_counter() - start
    per_region = loop_seconds / loop_regions
    loop_total = per_region * args.regions
    agreement = float(np.max(np.abs(fast.quantiles[:loop_regions] / slow.quantiles - 1)))
    scaled = loop_regions < args.regions
    print(
        f"loop: {loop_seconds:.2f} s for {loop_regions} regions, {per_region:.4f} s/region"
        + (f", scaled to {args.regions} regions: {loop_total:.1f} s" if scaled else "")
    )
    print(f"speedup vs loop: {loop_total / seconds:.0f}x; max relative difference {agreement:.1e}")
    print(
        json.dumps(
            {
                "bench": "rt",
                "regions": args.regions,
                "days": args.days,
                "window": args.window,
                "si": "parametric_full_series" if args.parametric else "truncated_0_20",
                "seconds": round(seconds, 4),
                "us_per_region_day": round(seconds / region_days * 1e6, 4),
                "loop_regions_timed": loop_regions,
                "loop_scaled_from_subset": scaled,
                "loop_seconds_per_region": round(per_region, 5),
                "loop_seconds_all_regions_est": round(loop_total, 2),
                "speedup_vs_loop": round(loop_total / seconds, 1),
                "max_rel_diff_vs_loop": agreement,
                "under_1s_target": seconds < 1.0,
            }
        )
    )


if __name__ == "__main__":
    main()
