"""Benchmark: a city's lab-result file through ``import_results`` on PostgreSQL, against a bare COPY.

Tubes and registrations are written straight into the tables (COPY), as the registration stage leaves
them: T tubes (default 100,000) of 10 swabs, P of them positive (default 100) and a few invalid, so the
import runs both the set-based first-time negatives and the cascade of every positive pool (holds,
single-tube retests, ``pool.positive`` and its task) and invalid tube (resample list). The reference is a
binary COPY of the same parsed result rows into an unindexed table, in the same run on the same server.

Also timed: the same file imported again (idempotent: nothing changes), and the audit chain verified.

Usage: python bench/results.py --tubes 100000 --positive 100
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from pgscratch import drop_db, recreate_db

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tubes", type=int, default=100_000)
    p.add_argument("--pool", type=int, default=10)
    p.add_argument("--positive", type=int, default=100)
    p.add_argument("--invalid", type=int, default=20)
    p.add_argument("--server", default=os.environ.get("CORDON_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--db", default="cordon_bench_results")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(args: argparse.Namespace, work: Path) -> dict:
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from cordon.core.identity import make_resident_id
    from cordon.core.models import User
    from cordon.people.importer import insert_people_rows
    from cordon.people.models import Person
    from cordon.regions.models import Region
    from cordon.regions.services import bulk_create_regions
    from cordon.screening import services
    from cordon.screening.models import Registration, Tube

    rng = random.Random(args.seed)
    call_command("migrate", verbosity=0)
    regions = [Region(code="430000", name="湖南省", level="province"),
               Region(code="430100", name="长沙市", level="city", parent_id="430000"),
               Region(code="430102", name="芙蓉区", level="county", parent_id="430100"),
               Region(code="430102001", name="街道1", level="township", parent_id="430102")]  # fmt: skip
    grids = []
    for c in range(1, 11):
        cc = f"430102001{c:03d}"
        regions.append(Region(code=cc, name=f"社区{c}", level="community", parent_id="430102001"))
        for g in range(1, 11):
            regions.append(Region(code=f"{cc}{g:03d}", name=f"第{g}网格", level="grid", parent_id=cc))
            grids.append(f"{cc}{g:03d}")
    with transaction.atomic():
        bulk_create_regions(regions)
    admin = User(username="bench", role="testing", region_id="430100")
    admin.set_password("bench-pass-123")
    admin.save()
    now = timezone.now()
    n_people = max(args.pool * 10, 20_000)
    rows = []
    for i in range(n_people):
        born = date(1940, 1, 1) + timedelta(days=i % 29_000)
        seq, sex = divmod(i // 29_000, 2)
        rows.append({"name": "王五", "document_type": "resident_id", "sex": "M" if sex == 0 else "F",
                     "document_number": make_resident_id("430102", born, seq, "M" if sex == 0 else "F"),
                     "birth_date": born, "phone": f"139{i:08d}", "address": "", "region_id": grids[i % len(grids)]})  # fmt: skip
    with transaction.atomic():
        insert_people_rows(rows, None, now)
    pids = list(Person.objects.order_by("pk").values_list("pk", flat=True))
    start = now - timedelta(hours=20)
    campaign = services.create_campaign(admin, name="全员核酸第1轮", start=True, starts_at=start,
                                        areas=[{"region_code": "430102", "area_kind": "medium",
                                                "pool_size": args.pool}])  # fmt: skip
    sites = [services.create_site(admin, code=f"S{s:03d}", name=f"采样点{s}", region_code=grids[s]) for s in range(40)]
    lab = services.create_lab(admin, code="LAB", name="检测基地", region_code="430100", daily_capacity=10**7)
    log(f"tubes: {args.tubes:,}, registrations: {args.tubes * args.pool:,}…")
    tube_cols = ["barcode", "campaign_id", "site_id", "region_id", "capacity", "members", "collector", "opened_at",
                 "sealed_at", "is_retest", "result"]  # fmt: skip
    reg_cols = ["scan_id", "campaign_id", "tube_id", "person_id", "site_id", "region_id", "collected_at", "digest",
                "created_at"]  # fmt: skip
    with connection.cursor() as cur, transaction.atomic():
        with cur.cursor.copy(f"COPY {Tube._meta.db_table} ({', '.join(tube_cols)}) FROM STDIN") as copy:
            for k in range(args.tubes):
                site = sites[k % len(sites)]
                copy.write_row((f"T{k:07d}", campaign.pk, site.pk, site.region_id, args.pool, args.pool, "bench",
                                start, start + timedelta(hours=1), False, ""))  # fmt: skip
        cur.execute(f"SELECT id, barcode FROM {Tube._meta.db_table} ORDER BY barcode")
        ids = [r[0] for r in cur.fetchall()]
        with cur.cursor.copy(f"COPY {Registration._meta.db_table} ({', '.join(reg_cols)}) FROM STDIN") as copy:
            for k, tid in enumerate(ids):
                site = sites[k % len(sites)]
                for j in range(args.pool):
                    pid = pids[(k * args.pool + j) % len(pids)]
                    copy.write_row((f"scan-{k}-{j}", campaign.pk, tid, pid, site.pk, grids[pid % len(grids)],
                                    start, "bench", now))  # fmt: skip
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE screening_tube")
        conn.execute("VACUUM ANALYZE screening_registration")
    special = rng.sample(range(args.tubes), args.positive + args.invalid)
    positive, invalid = set(special[: args.positive]), set(special[args.positive :])
    path = work / "results.csv"
    tested = (now - timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["试管编码", "检测结果", "ORF1ab基因Ct值", "N基因Ct值", "检测时间"])
        for k in range(args.tubes):
            if k in positive:
                w.writerow([f"T{k:07d}", "阳性", 28.4, 29.1, tested])
            elif k in invalid:
                w.writerow([f"T{k:07d}", "无效", "", "", tested])
            else:
                w.writerow([f"T{k:07d}", "阴性", "", "", tested])
    return {"lab": lab, "admin": admin, "path": path}


def reference(path: Path) -> float:
    """Binary COPY of the same rows (parsed before the clock starts) into an unindexed table."""
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        for row in r:
            rows.append((row[0], row[1], float(row[2]) if row[2] else None, float(row[3]) if row[3] else None,
                         datetime.fromisoformat(row[4])))  # fmt: skip
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("""CREATE TABLE ref_res (barcode varchar(40), result varchar(10), ct1 float8, ct2 float8,
                        tested_at timestamptz)""")
        t = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY ref_res FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["varchar", "varchar", "float8", "float8", "timestamptz"])
                for row in rows:
                    copy.write_row(row)
        secs = time.perf_counter() - t
        conn.execute("DROP TABLE ref_res")
    return secs


def main() -> None:
    args = parse()
    url = recreate_db(args.server, args.db)
    work = Path(os.environ.get("CORDON_BENCH_DATA", "/tmp/cordon-bench-results"))
    work.mkdir(parents=True, exist_ok=True)
    env = {"DATABASE_URL": url, "CORDON_DATA_DIR": str(work), "DJANGO_SETTINGS_MODULE": "cordon.settings",
           "CORDON_ENV": "production", "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from cordon.core.audit import verify_chain
    from cordon.screening.models import Hold, Retest
    from cordon.screening.results import import_results

    try:
        ctx = build(args, work)
        log("import…")
        counted = [0]

        def count(execute, sql, params, many, context):
            counted[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            t = time.perf_counter()
            s = import_results(ctx["path"], lab=ctx["lab"], user=ctx["admin"])
            secs = time.perf_counter() - t
        t = time.perf_counter()
        again = import_results(ctx["path"], lab=ctx["lab"], user=ctx["admin"])
        again_s = time.perf_counter() - t
        ref = reference(ctx["path"])
        problem = None
        for _checked, problem in verify_chain():
            if problem is not None:
                break
        figures = {"bench": "lab_results", "tubes": args.tubes, "pool_size": args.pool, "positive_pools": args.positive,
                   "invalid_tubes": args.invalid, "results_s": round(secs, 3), "django_queries": counted[0],
                   "accepted": s.accepted, "positive": s.extra["positive"], "invalid": s.extra["invalid"],
                   "holds": Hold.objects.count(), "retests": Retest.objects.count(),
                   "reimport_s": round(again_s, 3), "reimport_unchanged": again.unchanged,
                   "reference_copy_s": round(ref, 3), "ratio_vs_reference": round(ref / secs, 3),
                   "audit_chain_ok": problem is None, "cpus": os.cpu_count(),
                   "load_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_db(args.server, args.db)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
