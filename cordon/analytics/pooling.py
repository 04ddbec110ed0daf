"""Pool-size planner for mass screening under two-stage (Dorfman) pooling.

A screening round is planned the evening before: how many tubes to send to the sites, how many
single-tube retests the lab must keep room for, and how many days of lab work the round is.
Under Dorfman pooling every pool is tested once and every member of a positive pool is retested
alone, so with prevalence p and pools of k the expected tests per person are
1/k + 1 - (1 - p)^k (exactly 1 for single tubes). The allowed sizes are the policy's (5, 10 and
20 are validated; larger pools are refused), passed in by the caller.

The figures assume a perfect assay and independent infections, as the closed form does;
clustering within households makes positive pools rarer, so the plan errs towards more retests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def _check_prevalence(prevalence: float) -> float:
    p = float(prevalence)
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"prevalence must be a proportion between 0 and 1, got {prevalence}")
    return p


def _check_size(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"pool sizes must be whole numbers >= 1, got {k!r}")
    return int(k)


def _p_pool_positive(p: float, k: int) -> float:
    # 1 - (1-p)^k without losing the small prevalences screening works at.
    return -math.expm1(k * math.log1p(-p)) if p < 1 else 1.0


def expected_tests_per_person(prevalence: float, pool_size: int) -> float:
    """Expected lab tests per person screened with pools of ``pool_size`` (Dorfman)."""
    p = _check_prevalence(prevalence)
    k = _check_size(pool_size)
    if k == 1:
        return 1.0  # a single tube is never retested
    return 1.0 / k + _p_pool_positive(p, k)


def recommend_pool_size(prevalence: float, sizes: Sequence[int]) -> int:
    """The allowed size with the fewest expected tests per person; ties go to the smaller pool,
    which dilutes each swab less and recalls fewer people per positive pool."""
    checked = sorted({_check_size(k) for k in sizes})
    if not checked:
        raise ValueError("give at least one allowed pool size")
    return min(checked, key=lambda k: (expected_tests_per_person(prevalence, k), k))


@dataclass(frozen=True)
class PoolOption:
    """What one round costs the lab with one pool size."""

    pool_size: int
    tests_per_person: float
    tubes: int
    expected_positive_pools: float
    expected_retests: float
    expected_total_tests: float
    lab_days: float | None


@dataclass(frozen=True)
class PoolPlan:
    """Every allowed size side by side, and the recommended one."""

    prevalence: float
    population: int
    lab_capacity: float | None
    options: list[PoolOption]
    recommended: PoolOption

    def to_dict(self) -> dict[str, Any]:
        return {
            "prevalence": self.prevalence,
            "population": self.population,
            "lab_capacity": self.lab_capacity,
            "recommended_pool_size": self.recommended.pool_size,
            "options": [asdict(o) for o in self.options],
        }


def _option(p: float, population: int, k: int, lab_capacity: float | None) -> PoolOption:
    full, rest = divmod(population, k)
    tubes = full + (1 if rest else 0)
    if k == 1:
        # Single tubes: a positive tube is a result, not a recall.
        positive = population * p
        retests = 0.0
    else:
        # The last pool may be short; it is positive with its own, smaller probability.
        pos_full, pos_rest = _p_pool_positive(p, k), (_p_pool_positive(p, rest) if rest else 0.0)
        positive = full * pos_full + pos_rest
        retests = full * k * pos_full + rest * pos_rest
    total = tubes + retests
    return PoolOption(
        pool_size=k,
        tests_per_person=expected_tests_per_person(p, k),
        tubes=tubes,
        expected_positive_pools=positive,
        expected_retests=retests,
        expected_total_tests=total,
        lab_days=None if lab_capacity is None else total / lab_capacity,
    )


def plan_pools(
    prevalence: float,
    population: int,
    sizes: Sequence[int],
    lab_capacity: float | None = None,
) -> PoolPlan:
    """Tubes, expected positive pools, retests, total tests and lab days for each allowed size.

    ``lab_capacity`` is tubes the labs can run per day (pooled and retest tubes alike).
    """
    p = _check_prevalence(prevalence)
    if isinstance(population, bool) or int(population) != population or population < 0:
        raise ValueError(f"population must be a whole number >= 0, got {population!r}")
    if lab_capacity is not None and not lab_capacity > 0:
        raise ValueError(f"lab capacity must be > 0 tubes per day, got {lab_capacity}")
    checked = sorted({_check_size(k) for k in sizes})
    if not checked:
        raise ValueError("give at least one allowed pool size")
    options = [_option(p, int(population), k, lab_capacity) for k in checked]
    best = recommend_pool_size(p, checked)
    return PoolPlan(
        prevalence=p,
        population=int(population),
        lab_capacity=lab_capacity,
        options=options,
        recommended=next(o for o in options if o.pool_size == best),
    )
