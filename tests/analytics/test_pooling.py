"""Dorfman pool planner against the closed form."""

from __future__ import annotations

import json

import pytest

from cordon.analytics.pooling import expected_tests_per_person, plan_pools, recommend_pool_size


@pytest.mark.parametrize("p", [0.0, 0.0001, 0.001, 0.01, 0.05, 0.2, 1.0])
@pytest.mark.parametrize("k", [2, 5, 10, 20])
def test_tests_per_person_is_dorfman_closed_form(p: float, k: int) -> None:
    assert expected_tests_per_person(p, k) == pytest.approx(1 / k + 1 - (1 - p) ** k, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("p", [0.0, 0.01, 0.5, 1.0])
def test_single_tube_is_exactly_one_test(p: float) -> None:
    assert expected_tests_per_person(p, 1) == 1.0


def test_plan_figures_for_a_population_divisible_by_every_size() -> None:
    p, n = 0.002, 1_000_000
    plan = plan_pools(p, n, [1, 5, 10, 20], lab_capacity=100_000)
    for o in plan.options:
        k = o.pool_size
        assert o.tubes == n // k
        assert o.expected_total_tests == pytest.approx(n * (1 / k + 1 - (1 - p) ** k) if k > 1 else n)
        assert o.lab_days == pytest.approx(o.expected_total_tests / 100_000)
        if k > 1:
            assert o.expected_positive_pools == pytest.approx(n / k * (1 - (1 - p) ** k))
            assert o.expected_retests == pytest.approx(o.expected_positive_pools * k)
        else:
            assert o.expected_retests == 0 and o.expected_positive_pools == pytest.approx(n * p)
    assert plan.recommended.pool_size == 20


def test_short_last_pool() -> None:
    p = 0.01
    o = plan_pools(p, 23, [10]).options[0]
    assert o.tubes == 3
    assert o.expected_positive_pools == pytest.approx(2 * (1 - 0.99**10) + (1 - 0.99**3))
    assert o.expected_retests == pytest.approx(20 * (1 - 0.99**10) + 3 * (1 - 0.99**3))
    assert o.expected_total_tests == pytest.approx(o.tubes + o.expected_retests)
    assert o.lab_days is None


def test_recommendation_follows_prevalence() -> None:
    sizes = [1, 5, 10, 20]
    assert recommend_pool_size(0.0005, sizes) == 20
    assert recommend_pool_size(0.01, sizes) == 10  # 0.1956 tests per person vs 0.2321 with pools of 20
    assert recommend_pool_size(0.05, sizes) == 5
    assert recommend_pool_size(0.4, sizes) == 1  # pooling costs more than single tubes
    assert recommend_pool_size(0.0, [10, 5]) == 10
    json.dumps(plan_pools(0.01, 1000, sizes, 500).to_dict())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-0.1, 100, [5]), "prevalence"),
        ((1.5, 100, [5]), "prevalence"),
        ((0.1, -1, [5]), "population"),
        ((0.1, 100, []), "at least one"),
        ((0.1, 100, [0]), "pool sizes"),
        ((0.1, 100, [2.5]), "pool sizes"),
        ((0.1, 100, [5], 0), "lab capacity"),
    ],
)
def test_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_pools(*args)
