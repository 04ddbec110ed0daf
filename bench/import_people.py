"""Benchmark: importing the person registry from CSV on PostgreSQL, against the physical floor.

A province sends its whole resident list (10^6 rows and more) as one file; the figure that matters is
rows per second end to end: parse, validate every field, look up who is already registered, write, audit,
flag likely duplicates. Measured in the same run, on the same rows and the same server:

* the floor: a binary COPY (psycopg 3, ``set_types`` + ``write_row``) of the already-validated tuples
  into an empty table with people_person's columns and indexes (``LIKE people_person INCLUDING ALL``:
  primary key, unique (document_type, document_number), region_id, (name, birth_date), import_run and
  the partial guardian_id index), and into an unindexed copy for context;
  for context too, the same COPY with the region foreign key the registry has (checked per row), and
  the COPY a first load can do (only the primary key and the unique document index, the other indexes
  created after the rows, as the importer does when the registry is much smaller than the file);
* the straight approach: Django's ``bulk_create`` of Person objects, timed on a subset (objects built
  before the clock starts) appended to a registry already holding half the rows, the import's average
  table size, and scaled to the whole file; the rate into the empty table is reported as well.

The re-import of the same file (every row unchanged: the idempotent path) is timed too, and the
resident set size is sampled during the import to show that memory does not grow with the file.

Usage: python bench/import_people.py --rows 1000000
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建国志海燕红梅玉俊子涵浩然欣怡思远雨轩梓萱宇航佳诗博文一鸣晨曦"
STREETS = ("人民路", "解放路", "五一大道", "芙蓉路", "韶山路", "建设路", "中山路", "朝阳路", "湘江路", "迎宾路")
HEADER = ("姓名", "证件类型", "证件号码", "性别", "出生日期", "联系电话", "住址", "所属区划")
BIRTH_BASE = date(1940, 1, 1)
BIRTH_SPAN = 29_000  # days: births from 1940 to 2019
TWIN_EVERY = 1000  # every 1000th row is a passport entry for the row before it (a likely duplicate)
FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region_id")
FLOOR_TYPES = ["varchar", "varchar", "varchar", "varchar", "date", "varchar", "varchar", "varchar", "varchar",
               "bool", "timestamptz", "timestamptz", "int8"]  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class RssSampler:
    """Current RSS every 50 ms in a background thread: the growth during a call, not just the peak."""

    def __init__(self) -> None:
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> RssSampler:
        self.start = self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def admin_conninfo(url: str) -> tuple[dict, str]:
    info = conninfo_to_dict(url)
    name = info.pop("dbname", None)
    if not name:
        raise SystemExit("--database-url must name a database")
    return {**info, "dbname": "postgres"}, name


def recreate_database(url: str) -> None:
    info, name = admin_conninfo(url)
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    info, name = admin_conninfo(url)
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_regions() -> tuple[list[str], dict[str, str]]:
    """Hunan's real province, cities and counties, and 4 townships x 3 communities x 3 grids per county."""
    from django.db import transaction

    from cordon.regions.models import Level, Region
    from cordon.regions.services import bulk_create_regions

    with resources.files("cordon.regions").joinpath("data/hunan.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    regions: list[Region] = []
    grids: list[str] = []
    names: dict[str, str] = {}
    for row in rows:
        regions.append(Region(code=row["code"], name=row["name"], name_en=row.get("name_en", ""), level=row["level"],
                              parent_id=row["parent_code"] or None))  # fmt: skip
        names[row["code"]] = row["name"]
        if row["level"] != "county":
            continue
        for t in range(1, 5):
            town = f"{row['code']}{t:03d}"
            names[town] = f"第{t}街道"
            regions.append(Region(code=town, name=names[town], level=Level.TOWNSHIP, parent_id=row["code"]))
            for c in range(1, 4):
                comm = f"{town}{c:03d}"
                names[comm] = f"第{c}社区"
                regions.append(Region(code=comm, name=names[comm], level=Level.COMMUNITY, parent_id=town))
                for g in range(1, 4):
                    grid = f"{comm}{g:03d}"
                    regions.append(Region(code=grid, name=f"第{g}网格", level=Level.GRID, parent_id=comm))
                    grids.append(grid)
    with transaction.atomic():
        bulk_create_regions(regions)
    return grids, names


def people(n: int, grids: list[str], names: dict[str, str], seed: int) -> Iterator[tuple]:
    """Seeded people as the importer stores them: (name, document_type, document_number, sex, birth_date,
    phone, address, region_id). Resident IDs are unique by construction: per county the k-th person gets
    birth day (k * 7919) mod BIRTH_SPAN (a bijection, 7919 being prime) and sequence k // BIRTH_SPAN."""
    from cordon.core.identity import make_resident_id

    rng = random.Random(seed)
    per_county: dict[str, int] = {}
    days = [BIRTH_BASE + timedelta(days=d) for d in range(BIRTH_SPAN)]
    phone_from = date(2014, 1, 1)  # children under about 12 have no phone of their own
    prev: tuple | None = None
    for i in range(n):
        if prev is not None and i % TWIN_EVERY == TWIN_EVERY - 1 and prev[5]:
            # Same name, birth date and phone under a passport: the registry must flag it, not merge it.
            prev = (prev[0], "passport", f"E{i:08d}", prev[3], prev[4], prev[5], prev[6], prev[7])
            yield prev
            continue
        grid = grids[rng.randrange(len(grids))]
        county = grid[:6]
        k = per_county.get(county, 0)
        per_county[county] = k + 1
        birth = days[(k * 7919) % BIRTH_SPAN]
        sex = "M" if rng.random() < 0.51 else "F"
        number = make_resident_id(county, birth, k // BIRTH_SPAN, sex)
        given = rng.choice(GIVEN) if rng.random() < 0.45 else rng.choice(GIVEN) + rng.choice(GIVEN)
        name = rng.choice(SURNAMES) + given
        phone = (
            f"1{rng.choice('35789')}{rng.randrange(10)}{rng.randrange(100_000_000):08d}" if birth < phone_from else ""
        )
        address = (f"{names[county[:4] + '00']}{names[county]}{names[grid[:9]]}{names[grid[:12]]}"
                   f"{rng.choice(STREETS)}{rng.randint(1, 300)}号{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元"
                   f"{rng.randint(1, 33)}{rng.randint(1, 4):02d}室")  # fmt: skip
        prev = (name, "resident_id", number, sex, birth, phone, address, grid)
        yield prev


def write_csv(path: Path, rows: Iterator[tuple]) -> None:
    doc_label = {"resident_id": "身份证", "passport": "护照"}
    sex_label = {"M": "男", "F": "女"}
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for name, doc_type, number, sex, birth, phone, address, region in rows:
            out.writerow([name, doc_label[doc_type], number, sex_label[sex], birth.isoformat(), phone, address, region])


def copy_floor(table: str, columns: tuple[str, ...], values: list[tuple]) -> float:
    """Binary COPY of ready tuples in one transaction; returns seconds (COPY and commit)."""
    from django.db import connection, transaction

    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        with cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(FLOOR_TYPES)
            for row in values:
                copy.write_row(row)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cordon_bench_import",
                        help="created fresh (dropped first if it exists) and dropped at the end")  # fmt: skip
    parser.add_argument("--bulk-create-rows", type=int, default=100_000, help="subset timed with bulk_create")
    parser.add_argument("--bulk-create-batch", type=int, default=1000, help="bulk_create batch_size")
    parser.add_argument("--seed", type=int, default=20220601)
    parser.add_argument("--keep", action="store_true", help="keep the database and the scratch directory")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="cordon-bench-import-"))
    os.environ["CORDON_DATA_DIR"] = str(scratch)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "cordon.settings"
    recreate_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections
    from django.utils import timezone

    from cordon.people.importer import INSERT_COLUMNS, import_people
    from cordon.people.models import Person

    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark measures PostgreSQL (COPY is the floor)")
    try:
        call_command("migrate", verbosity=0)
        grids, names = build_regions()
        path = scratch / "people.csv"
        start = time.perf_counter()
        write_csv(path, people(args.rows, grids, names, args.seed))
        print(f"generated {args.rows:,} people in {len(grids):,} grids: {path.stat().st_size / 2**20:,.0f} MB "
              f"CSV in {time.perf_counter() - start:.1f}s (not timed)")  # fmt: skip

        gc.collect()
        with connection.cursor() as cur:
            cur.execute("CHECKPOINT")
        with RssSampler() as rss:
            start = time.perf_counter()
            summary = import_people(path)
            seconds = time.perf_counter() - start
        import_peak = peak_rss_mb()
        rate = args.rows / seconds
        print(f"import: {seconds:.1f}s, {rate:,.0f} rows/s; {summary.as_json()}; "
              f"RSS {rss.start:.0f} -> peak {rss.peak:.0f} MB (ru_maxrss {import_peak:.0f} MB)")  # fmt: skip
        if summary.accepted != args.rows or summary.rejected:
            raise SystemExit(f"expected {args.rows} accepted rows, got {summary.as_json()}")

        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE people_person")
            cur.execute("CHECKPOINT")
        with RssSampler() as rss2:
            start = time.perf_counter()
            again = import_people(path)
            reimport_seconds = time.perf_counter() - start
        print(f"re-import (all unchanged): {reimport_seconds:.1f}s, {args.rows / reimport_seconds:,.0f} rows/s; "
              f"{again.as_json()}; RSS peak {rss2.peak:.0f} MB")  # fmt: skip
        if again.unchanged != args.rows or again.accepted or again.updated:
            raise SystemExit(f"re-import should change nothing, got {again.as_json()}")

        # The floor: the same rows, already validated, straight into an empty table with the same indexes.
        run_id, now = 1, timezone.now()
        values = [(*p, "CHN", True, now, now, run_id) for p in people(args.rows, grids, names, args.seed)]
        with connection.cursor() as cur:
            cur.execute("CREATE TABLE bench_floor (LIKE people_person INCLUDING ALL)")
            cur.execute("CREATE TABLE bench_floor_bare (LIKE people_person INCLUDING DEFAULTS INCLUDING IDENTITY)")
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'bench_floor' ORDER BY indexname")
            floor_indexes = [r[0].split(" USING ")[1] for r in cur.fetchall()]
        floor_seconds = copy_floor("bench_floor", INSERT_COLUMNS, values)
        floor_rate = args.rows / floor_seconds
        print(f"floor: binary COPY into a table with {len(floor_indexes)} indexes: {floor_seconds:.1f}s, "
              f"{floor_rate:,.0f} rows/s")  # fmt: skip
        bare_seconds = copy_floor("bench_floor_bare", INSERT_COLUMNS, values)
        bare_rate = args.rows / bare_seconds
        print(f"floor: binary COPY into an unindexed table: {bare_seconds:.1f}s, {bare_rate:,.0f} rows/s")
        # Context for a first load, which builds the secondary indexes after its rows (the importer's
        # _DeferredIndexes): COPY with only the primary key and the unique document index, then CREATE INDEX.
        with connection.cursor() as cur:
            cur.execute("TRUNCATE bench_floor")
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'bench_floor' "
                        "AND indexdef NOT LIKE 'CREATE UNIQUE%' AND indexdef NOT LIKE '% WHERE %'")  # fmt: skip
            secondary = cur.fetchall()
            for name, _ in secondary:
                cur.execute(f"DROP INDEX {name}")
        late_seconds = copy_floor("bench_floor", INSERT_COLUMNS, values)
        start = time.perf_counter()
        with connection.cursor() as cur:
            for _, definition in secondary:
                cur.execute(definition)
        late_seconds += time.perf_counter() - start
        late_rate = args.rows / late_seconds
        print(f"floor, indexes built after the rows (context): COPY with {len(floor_indexes) - len(secondary)} "
              f"indexes, then {len(secondary)} CREATE INDEX: {late_seconds:.1f}s, {late_rate:,.0f} rows/s")  # fmt: skip
        # Context, not the floor: the importer also pays the region foreign key, checked per row at commit.
        with connection.cursor() as cur:
            cur.execute("DROP TABLE bench_floor")
            cur.execute("CREATE TABLE bench_floor (LIKE people_person INCLUDING ALL)")
            cur.execute("ALTER TABLE bench_floor ADD FOREIGN KEY (region_id) REFERENCES regions_region (code) "
                        "DEFERRABLE INITIALLY DEFERRED")  # fmt: skip
        fk_seconds = copy_floor("bench_floor", INSERT_COLUMNS, values)
        fk_rate = args.rows / fk_seconds
        print(f"floor + region foreign key (context): {fk_seconds:.1f}s, {fk_rate:,.0f} rows/s")
        with connection.cursor() as cur:
            cur.execute("DROP TABLE bench_floor, bench_floor_bare")

        # The straight approach, on a subset: Person objects (built before the clock starts) through
        # bulk_create into people_person, once into the empty table and once appended to a registry that
        # already holds half the rows (loaded by COPY, not timed): the import's average table size, so
        # the rate scales to the whole file the way the import's own rate does.
        subset = min(args.bulk_create_rows, args.rows)
        prefill = max(0, min(args.rows // 2, args.rows - subset))
        bulk: dict[str, float] = {}
        for label, start_at in (("empty", 0), ("half", prefill)):
            with connection.cursor() as cur:
                cur.execute("TRUNCATE people_person CASCADE")
            if start_at:
                copy_floor("people_person", INSERT_COLUMNS, values[:start_at])
                with connection.cursor() as cur:
                    cur.execute("ANALYZE people_person")
            with connection.cursor() as cur:
                cur.execute("CHECKPOINT")
            objs = [Person(**dict(zip(FIELDS, v[:8], strict=True))) for v in values[start_at : start_at + subset]]
            start = time.perf_counter()
            Person.objects.bulk_create(objs, batch_size=args.bulk_create_batch)
            bulk[label] = subset / (time.perf_counter() - start)
            del objs
            print(f"bulk_create: {subset:,} rows (batch_size={args.bulk_create_batch}) into a table of "
                  f"{start_at:,} rows: {bulk[label]:,.0f} rows/s; scaled to {args.rows:,} rows: "
                  f"{args.rows / bulk[label]:.0f}s")  # fmt: skip
        bulk_rate = bulk["half"]
        del values
    finally:
        connections.close_all()
        if not args.keep:
            drop_database(args.database_url)
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept: {args.database_url} and {scratch}", file=sys.stderr)

    result = {
        "bench": "import_people",
        "rows": args.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rate),
        "floor_rows_per_s": round(floor_rate),
        "ratio_vs_copy": round(rate / floor_rate, 3),
        "floor_indexes": len(floor_indexes),
        "floor_unindexed_rows_per_s": round(bare_rate),
        "floor_indexes_built_after_rows_per_s": round(late_rate),
        "floor_with_region_fk_rows_per_s": round(fk_rate),
        "ratio_vs_copy_with_fk": round(rate / fk_rate, 3),
        "bulk_create_rows": subset,
        "bulk_create_batch_size": args.bulk_create_batch,
        "bulk_create_note": f"timed on {subset} rows appended to a table of {prefill} rows, scaled to {args.rows}",
        "bulk_create_rows_per_s": round(bulk_rate),
        "bulk_create_scaled_seconds": round(args.rows / bulk_rate, 1),
        "ratio_vs_bulk_create": round(rate / bulk_rate, 2),
        "bulk_create_empty_table_rows_per_s": round(bulk["empty"]),
        "ratio_vs_bulk_create_empty_table": round(rate / bulk["empty"], 2),
        "reimport_seconds": round(reimport_seconds, 2),
        "reimport_rows_per_s": round(args.rows / reimport_seconds),
        "duplicates_flagged": summary.extra.get("duplicates_flagged"),
        "peak_rss_mb": round(import_peak),
        "rss_import_start_mb": round(rss.start),
        "rss_import_peak_mb": round(rss.peak),
        "rss_growth_during_import_mb": round(rss.peak - rss.start),
        "rss_growth_during_reimport_mb": round(rss2.peak - rss2.start),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
