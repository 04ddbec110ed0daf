"""The queue of a city's screening round, shared by the benchmarks that must see the same rows in the same order
(``screening.py`` registers them; ``registration_ceiling.py`` stores them already resolved)."""

from __future__ import annotations

from collections.abc import Iterator

PEOPLE_PER_SITE = 2500
DAY_S = 72_000  # the 20 hours the sites are open


def site_count(people: int) -> int:
    return max(1, people // PEOPLE_PER_SITE)


def swab_queue(people: int, pool: int) -> Iterator[tuple[int, int, str, int]]:
    """(person index, site index, tube barcode, seconds after the round opened) for every swab, in file order:
    each site's people in turn, ``pool`` to a tube, spread over the day."""
    sites = site_count(people)
    counters = [0] * sites
    per_site = max(1, people // sites + 1)
    for i in sorted(range(people), key=lambda i: i % sites):
        s = i % sites
        k = counters[s]
        counters[s] += 1
        yield i, s, f"S{s:05d}-{k // pool:06d}", (k * DAY_S) // per_site
