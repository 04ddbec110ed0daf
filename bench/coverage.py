"""Benchmark: the coverage (应检尽检) figures of a screening round, pre-aggregated vs counted per request.

A board refreshed by every county during a city round asks "target vs sampled" for a region and its
children many times a minute; counting that from the registry on each request is an anti-join over
every person in the region. Cordon keeps the counts per campaign and leaf region past a watermark
(``cordon.screening.coverage``) and adds only what arrived since. Measured in the same run, in a scratch
PostgreSQL database, at N people of which 90% are sampled:

* the straight recount a user would write (registry LEFT JOIN the campaign's distinct swabbed people),
* the full rebuild of the stored counts, a read of the totals and of one level of children,
* a read with up to 10,000 new swabs not yet folded in (counted live above the watermark), then the fold.

Both reads are checked against the straight recount. Usage: python bench/coverage.py --people 1000000
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from pgscratch import drop_db, recreate_db

ROOT = Path(__file__).resolve().parent.parent
SHARE = 0.9


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--server", default=os.environ.get("CORDON_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--db", default="cordon_bench_coverage")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return p.parse_args()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)






def build(n: int) -> tuple[object, object, float]:
    """A county of 5 townships × 10 communities × 8 grids, n people in households of three, 90% swabbed."""
    from django.db import connection
    from django.utils import timezone

    from cordon.core.models import User
    from cordon.regions.models import Region
    from cordon.screening import services

    rows = [Region(code="430000", name="湖南省", level="province"),
            Region(code="430100", name="长沙市", level="city", parent_id="430000"),
            Region(code="430102", name="芙蓉区", level="county", parent_id="430100")]  # fmt: skip
    grids = []
    for t in range(1, 6):
        tw = f"430102{t:03d}"
        rows.append(Region(code=tw, name=f"街道{t}", level="township", parent_id="430102"))
        for c in range(1, 11):
            cm = f"{tw}{c:03d}"
            rows.append(Region(code=cm, name=f"社区{c}", level="community", parent_id=tw))
            for g in range(1, 9):
                grids.append(f"{cm}{g:03d}")
                rows.append(Region(code=grids[-1], name=f"第{g}网格", level="grid", parent_id=cm))
    for region in rows:  # save() fills the code prefix that jurisdiction scoping reads
        region.save()
    user = User.objects.create(username="bench", role="testing", region_id="430100")
    campaign = services.create_campaign(user, name="bench", start=True, starts_at=timezone.now() - timedelta(hours=5),
                                        areas=[{"region_code": "430102", "area_kind": "medium"}])  # fmt: skip
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE g AS SELECT row_number() OVER () - 1 AS i, code FROM unnest(%s::text[]) code",
                    [grids])  # fmt: skip
        cur.execute(f"""INSERT INTO people_person (name, document_type, document_number, sex, phone, address, region_id,
                            nationality, verified, created_at, updated_at)
                        SELECT 'p' || s, 'resident_id', 'D' || s, 'U', '', 'addr ' || (s / 3), g.code, 'CHN', true,
                               now(), now()
                        FROM generate_series(1, {int(n)}) s JOIN g ON g.i = (s / 3) % {len(grids)}""")  # fmt: skip
        cur.execute("""INSERT INTO screening_registration (scan_id, campaign_id, tube_id, person_id, site_id, region_id,
                           collected_at, digest, created_at)
                       SELECT 'S' || p.id, %s, p.id / 10, p.id, NULL, p.region_id, now(), '', now()
                       FROM people_person p WHERE p.id %% 10 <> 0""", [campaign.pk])  # fmt: skip
        cur.execute("ANALYZE people_person")
        cur.execute("ANALYZE screening_registration")
    return user, campaign, time.perf_counter() - t0


def run(n: int) -> dict:
    from django.db import connection

    from cordon.screening import coverage as cov
    from cordon.screening import queries
    from cordon.screening.models import CoverageState

    user, campaign, load = build(n)
    with connection.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute("""SELECT COUNT(*), COUNT(r.person_id) FROM people_person p
                       LEFT JOIN (SELECT DISTINCT person_id FROM screening_registration WHERE campaign_id = %s) r
                         ON r.person_id = p.id
                       WHERE p.region_id >= '430102' AND p.region_id < '430103'""", [campaign.pk])  # fmt: skip
        target, sampled = cur.fetchone()
        straight = time.perf_counter() - t0
    t0 = time.perf_counter()
    cov.refresh(campaign, rebuild=True)
    rebuild = time.perf_counter() - t0
    t0 = time.perf_counter()
    totals = queries.totals(user, campaign)
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    queries.coverage(user, campaign, parent="430102")
    read_children = time.perf_counter() - t0
    assert (totals["target"], totals["sampled"]) == (target, sampled), (totals, target, sampled)
    fresh = min(10_000, target - sampled)
    with connection.cursor() as cur:
        cur.execute("""INSERT INTO screening_registration (scan_id, campaign_id, tube_id, person_id, site_id, region_id,
                           collected_at, digest, created_at)
                       SELECT 'N' || p.id, %s, 900000000 + p.id / 10, p.id, NULL, p.region_id, now(), '', now()
                       FROM people_person p WHERE p.id %% 10 = 0 ORDER BY p.id LIMIT %s""", [campaign.pk, fresh])  # fmt: skip
    state = CoverageState.objects.get(campaign=campaign)
    t0 = time.perf_counter()
    live = cov.counts(campaign, [cov.Group("430102", "430103")], state)
    read_live = time.perf_counter() - t0
    t0 = time.perf_counter()
    cov.refresh(campaign)
    fold = time.perf_counter() - t0
    after = queries.totals(user, campaign)
    assert live[0]["sampled"] == after["sampled"] == sampled + fresh, (live, after, sampled)
    return {"bench": "coverage_read", "people": n, "registrations": sampled + fresh, "new_swabs": fresh, "load_s": round(load, 1),
            "straight_recount_s": round(straight, 3), "rebuild_s": round(rebuild, 3), "read_s": round(read, 4),
            "read_children_s": round(read_children, 4), "read_with_new_live_s": round(read_live, 4),
            "fold_new_s": round(fold, 3), "speedup_read_vs_straight": round(straight / read, 1),
            "speedup_live_read_vs_straight": round(straight / read_live, 1), "checked_equal": True}  # fmt: skip


def main() -> None:
    args = parse()
    url = recreate_db(args.server, args.db)
    os.environ.update({"DATABASE_URL": url, "CORDON_DATA_DIR": tempfile.mkdtemp(prefix="cordon-bench-coverage-"),
                       "DJANGO_SETTINGS_MODULE": "cordon.settings"})  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        log(f"building {args.people:,} people")
        figures = run(args.people)
    finally:
        connection.close()
        if not args.keep:
            drop_db(args.server, args.db)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
