"""Benchmark: a city screening round on PostgreSQL, against the physical floor.

A city of N people (default 1,000,000) is swabbed in 10:1 pools at a prevalence of 1 in 10,000, against a
registry holding the same people. Timed stages, end to end through Cordon's own paths:

* registrations: ``cordon.screening.ingest.import_registrations`` on a CSV of N swabs (parse, validate
  every document, stage with COPY into a temp table, resolve people and tubes by join, check the pooling
  rules set-based, insert; two workers on two connections, one staging the next batch while the other
  writes, unless ``--workers 1``; a file much larger than the stored registrations, as here, builds the
  secondary indexes of registrations and tubes after the load: ``ingest.deferred_indexes``);
* results: ``cordon.screening.results.import_results`` on the lab file (one row per tube; the positive
  pools go through the cascade: holds, single-tube retests, ``pool.positive``);
* recall: the open recall list (members of positive pools), fully read;
* coverage: target vs sampled for the round (the anti-join), counted.

The floor, in the same run on the same server: a binary COPY (psycopg 3, typed ``write_row``) of the same
registration and result rows into unindexed tables. ``ratio_vs_floor`` = floor seconds / round seconds.

Then the scan API, by ``bench/scan_api.py``: a production server (``cordon serve``, ``CORDON_ENV=production``)
on its own scratch database; batches of 100 scans posted with a bearer token from 4 client threads, against
a trivial endpoint (``GET /api/v1/me``, same token, same concurrency): scans/s and the request-rate ratio.

Usage: python bench/screening.py --people 1000000
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from cityround import site_count, swab_queue
from pgscratch import drop_db, recreate_db

ROOT = Path(__file__).resolve().parent.parent
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建国志海燕红梅玉俊子涵浩然欣怡思远雨轩梓萱宇航佳诗博文一鸣晨曦"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--pool", type=int, default=10)
    p.add_argument("--prevalence", type=float, default=1 / 10_000)
    p.add_argument("--api-batches", type=int, default=300, help="batches of 100 scans posted to the API (0: skip)")
    p.add_argument("--api-clients", type=int, default=4)
    p.add_argument("--server", default=os.environ.get("CORDON_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--db", default="cordon_bench_screening")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch", type=int, default=0, help="rows per registration transaction (default: the engine's)")
    p.add_argument("--workers", type=int, default=2, help="registration import workers (1: one connection)")
    return p.parse_args()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()






def build(args: argparse.Namespace, work: Path) -> dict:
    """Regions, registry (COPY), campaign, sites, lab, users; the registration and result files."""
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from cordon.core.identity import make_resident_id
    from cordon.core.models import User
    from cordon.core.tokens import create_token
    from cordon.people.importer import insert_people_rows
    from cordon.regions.models import Region
    from cordon.regions.services import bulk_create_regions
    from cordon.screening import services

    rng = random.Random(args.seed)
    call_command("migrate", verbosity=0)
    regions = [Region(code="430000", name="湖南省", level="province"),
               Region(code="430100", name="长沙市", level="city", parent_id="430000"),
               Region(code="430102", name="芙蓉区", level="county", parent_id="430100")]  # fmt: skip
    grids = []
    for t in range(1, 11):
        tc = f"430102{t:03d}"
        regions.append(Region(code=tc, name=f"街道{t}", level="township", parent_id="430102"))
        for c in range(1, 11):
            cc = f"{tc}{c:03d}"
            regions.append(Region(code=cc, name=f"社区{t}-{c}", level="community", parent_id=tc))
            for g in range(1, 11):
                gc = f"{cc}{g:03d}"
                regions.append(Region(code=gc, name=f"第{g}网格", level="grid", parent_id=cc))
                grids.append(gc)
    with transaction.atomic():
        bulk_create_regions(regions)
    admin = User(username="bench", role="testing", region_id="430100")
    admin.set_password("bench-pass-123")
    admin.save()
    machine = User(username="terminal", role="machine", region_id="430100")
    machine.set_unusable_password()
    machine.save()
    _, token = create_token(machine, "bench", actor="bench")
    log(f"registry: {args.people:,} people…")
    n = args.people
    base = date(1940, 1, 1)
    people = []  # (doc, name, grid)
    now = timezone.now()
    batch = []
    for i in range(n):
        born = base + timedelta(days=i % 29_000)
        seq, sex = divmod(i // 29_000, 2)
        doc = make_resident_id("430102", born, seq, "M" if sex == 0 else "F")
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")
        grid = grids[i % len(grids)]
        people.append((doc, name, grid))
        batch.append({"name": name, "document_type": "resident_id", "document_number": doc, "sex": "M" if sex == 0
                      else "F", "birth_date": born, "phone": f"139{i:08d}", "address": "", "region_id": grid})  # fmt: skip
        if len(batch) == 100_000:
            with transaction.atomic():
                insert_people_rows(batch, None, now)
            batch = []
    if batch:
        with transaction.atomic():
            insert_people_rows(batch, None, now)
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE people_person")
    start = now - timedelta(hours=20)
    campaign = services.create_campaign(admin, name="全员核酸第1轮", start=True, starts_at=start,
                                        areas=[{"region_code": "430102", "area_kind": "medium",
                                                "pool_size": args.pool}])  # fmt: skip
    n_sites = site_count(n)
    for s in range(n_sites):
        services.create_site(admin, code=f"S{s:05d}", name=f"采样点{s}", region_code=grids[s % len(grids)])
    lab = services.create_lab(admin, code="LAB", name="检测基地", region_code="430100", daily_capacity=n)
    log("files…")
    # Registrations: people by site, 10 to a tube, in the order they queue.
    reg_path = work / "registrations.csv"
    res_path = work / "results.csv"
    positives = set(rng.sample(range(n), max(1, round(n * args.prevalence))))
    tube_positive: dict[str, bool] = {}
    with reg_path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scan_id", "tube_barcode", "document_type", "document_number", "name", "phone", "collected_at",
                    "site"])  # fmt: skip
        for i, s, tube, offset in swab_queue(n, args.pool):
            tube_positive[tube] = tube_positive.get(tube, False) or i in positives
            at = start + timedelta(seconds=offset)
            doc, name, _grid = people[i]
            w.writerow([f"scan-{i}", tube, "resident_id", doc, name, f"139{i:08d}",
                        at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"), f"S{s:05d}"])  # fmt: skip
    tested = (now - timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    with res_path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["试管编码", "检测结果", "ORF1ab基因Ct值", "N基因Ct值", "检测时间"])
        for tube, pos in tube_positive.items():
            w.writerow([tube, "阳性", 28.4, 29.1, tested] if pos else [tube, "阴性", "", "", tested])
    del people
    return {"campaign": campaign, "lab": lab, "admin": admin, "token": token, "reg_path": reg_path,
            "res_path": res_path, "tubes": len(tube_positive), "positive_pools": sum(tube_positive.values()),
            "positive_people": len(positives), "sites": n_sites}  # fmt: skip


def round_stages(ctx: dict, args: argparse.Namespace) -> dict:
    from cordon.screening import queries
    from cordon.screening.ingest import import_registrations
    from cordon.screening.models import Retest
    from cordon.screening.results import import_results

    out: dict = {}
    admin, campaign = ctx["admin"], ctx["campaign"]
    with RssSampler() as rss:
        t = time.perf_counter()
        opts = {"batch_size": args.batch} if args.batch else {}
        s = import_registrations(ctx["reg_path"], campaign=campaign, user=admin, errors_path=None,
                                 workers=args.workers, **opts)  # fmt: skip
        out["registrations_s"] = round(time.perf_counter() - t, 2)
        out["registrations_accepted"] = s.accepted
        out["registrations_rejected"] = s.rejected
        log(f"registrations: {s.accepted:,} in {out['registrations_s']} s")
        t = time.perf_counter()
        r = import_results(ctx["res_path"], lab=ctx["lab"], user=admin)
        out["results_s"] = round(time.perf_counter() - t, 2)
        out["results_accepted"] = r.accepted
        out["results_positive"] = r.extra["positive"]
        log(f"results: {r.accepted:,} in {out['results_s']} s")
        t = time.perf_counter()
        recall = list(queries.retests_for(admin, campaign, Retest.Reason.POSITIVE_POOL)
                      .values_list("person_id", "person__name", "person__phone", "source_tube__barcode", "due_at"))
        out["recall_s"] = round(time.perf_counter() - t, 3)
        out["recall_list"] = len(recall)
        t = time.perf_counter()
        tot = queries.totals(admin, campaign)
        out["coverage_s"] = round(time.perf_counter() - t, 2)
        out["coverage_sampled"] = tot["sampled"]
        out["coverage_target"] = tot["target"]
    out["round_s"] = round(out["registrations_s"] + out["results_s"] + out["recall_s"] + out["coverage_s"], 2)
    out["round_peak_rss_mb"] = round(rss.peak)
    # The idempotent path: the same registration file again changes nothing.
    t = time.perf_counter()
    again = import_registrations(ctx["reg_path"], campaign=campaign, user=admin)
    out["registrations_reimport_s"] = round(time.perf_counter() - t, 2)
    out["registrations_reimport_unchanged"] = again.unchanged
    return out


def floor(ctx: dict) -> dict:
    """Binary COPY of the same rows into unindexed tables (rows parsed before the clock starts)."""
    reg_rows = []
    with ctx["reg_path"].open(encoding="utf-8", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        for row in r:
            reg_rows.append((row[0], row[1], row[2], row[3], row[4], row[5], datetime.fromisoformat(row[6]), row[7]))
    res_rows = []
    with ctx["res_path"].open(encoding="utf-8", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        for row in r:
            res_rows.append((row[0], row[1], float(row[2]) if row[2] else None, float(row[3]) if row[3] else None,
                             datetime.fromisoformat(row[4])))  # fmt: skip
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS floor_reg; DROP TABLE IF EXISTS floor_res")
        conn.execute("""CREATE UNLOGGED TABLE floor_reg (scan_id varchar(64), barcode varchar(40), doc_type varchar(32),
                        doc_number varchar(32), name varchar(100), phone varchar(20), collected_at timestamptz,
                        site varchar(32))""")
        conn.execute("""CREATE UNLOGGED TABLE floor_res (barcode varchar(40), result varchar(10), ct1 float8,
                        ct2 float8, tested_at timestamptz)""")
        conn.execute("ALTER TABLE floor_reg SET LOGGED; ALTER TABLE floor_res SET LOGGED")
        t = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY floor_reg FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["varchar"] * 6 + ["timestamptz", "varchar"])
                for row in reg_rows:
                    copy.write_row(row)
            with cur.copy("COPY floor_res FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["varchar", "varchar", "float8", "float8", "timestamptz"])
                for row in res_rows:
                    copy.write_row(row)
        secs = time.perf_counter() - t
        conn.execute("DROP TABLE floor_reg; DROP TABLE floor_res")
    return {"floor_s": round(secs, 2), "floor_rows": len(reg_rows) + len(res_rows)}


def api_bench(args: argparse.Namespace, ctx: dict, env: dict) -> dict:
    """The scan API, measured by ``bench/scan_api.py`` (the production server on its own scratch database)."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "scan_api.py"), "--scans", str(args.api_batches * 100),
                          "--clients", str(args.api_clients), "--server", args.server],
                         cwd=str(ROOT), env=env, stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
    api = json.loads(run.stdout.strip().splitlines()[-1])
    return {"api_batches": api["batches"], "api_scans_accepted": api["accepted"], "api_scans_per_s": api["scans_per_s"],
            "api_batch_req_per_s": api["batch_req_per_s"], "api_trivial_req_per_s": api["trivial_req_per_s"],
            "api_ratio_vs_trivial": api["ratio"], "api_cpu_ms_per_batch": api["cpu_ms_per_batch"],
            "api_scans_per_s_if_cores_free": api["scans_per_s_if_cores_free"]}  # fmt: skip


def main() -> None:
    args = parse()
    url = recreate_db(args.server, args.db)
    work = Path(os.environ.get("CORDON_BENCH_DATA", "/tmp/cordon-bench-screening"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "CORDON_DATA_DIR": str(work), "DJANGO_SETTINGS_MODULE": "cordon.settings",
           "CORDON_ENV": "production", "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    try:
        t = time.perf_counter()
        ctx = build(args, work)
        figures: dict = {"bench": "screening_round", "people": args.people, "pool_size": args.pool,
                         "prevalence": args.prevalence, "tubes": ctx["tubes"], "sites": ctx["sites"],
                         "positive_people": ctx["positive_people"], "positive_pools": ctx["positive_pools"],
                         "build_s": round(time.perf_counter() - t, 1)}  # fmt: skip
        figures.update(round_stages(ctx, args))
        from cordon.core.importing import TabularFile
        from cordon.screening.ingest import REGISTRATION_COLUMNS, file_batch_size

        figures["registration_batch"] = args.batch or file_batch_size(TabularFile(ctx["reg_path"],
                                                                                  REGISTRATION_COLUMNS))
        figures["registration_workers"] = args.workers
        figures.update(floor(ctx))
        figures["round_rows_per_s"] = round((args.people + ctx["tubes"]) / figures["round_s"])
        figures["ratio_vs_floor"] = round(figures["floor_s"] / figures["round_s"], 3)
        if args.api_batches:
            log("scan API…")
            figures.update(api_bench(args, ctx, env))
        figures["cpus"] = os.cpu_count()
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_db(args.server, args.db)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
