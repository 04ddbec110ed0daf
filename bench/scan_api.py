"""Benchmark: registrations from sampling terminals over HTTP, against a trivial endpoint on the same server.

A scratch PostgreSQL database gets a district, a running round in 10:1 pools, one sampling site, a registry
of N people and a terminal's bearer token. ``cordon serve`` (the production server settings, with
``CORDON_ENV=production``) is started on a free port, and C client threads, each with its own keep-alive
connection, post the N scans as batches of B (default 100) to ``POST /api/v1/screening/scans``. The
reference, measured the same way in the same run: ``GET /api/v1/me`` with the same token (authentication,
routing, a JSON response: everything but the scans themselves). ``ratio`` = batch requests per second ÷
trivial requests per second.

The load generator runs on the same machine as the server and PostgreSQL, so it competes for the same
cores: the figures are a floor for what a separate client fleet would see.

Usage: python bench/scan_api.py --scans 100000 --batch 100 --clients 4
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from pgscratch import drop_db, recreate_db

ROOT = Path(__file__).resolve().parent.parent
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建国志海燕红梅玉俊子涵浩然欣怡思远雨轩梓萱宇航佳诗博文一鸣晨曦"
SITE = "S-API-1"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scans", type=int, default=100_000, help="scans posted in all")
    p.add_argument("--batch", type=int, default=100, help="scans per request")
    p.add_argument("--clients", type=int, default=4, help="concurrent client threads (one connection each)")
    p.add_argument("--trivial", type=int, default=0, help="trivial requests to time (default: 2,000)")
    p.add_argument("--server", default=os.environ.get("CORDON_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--db", default="bench_api_scans")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--serve-option", action="append", default=[], metavar="OPT",
                   help="extra option for `cordon serve` (e.g. --serve-option=--workers=3); default: its own")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S", time.gmtime()), msg, file=sys.stderr, flush=True)






def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(n_people: int, seed: int) -> tuple[str, list[tuple[str, str]]]:
    """Schema, a district with grids, a running round (10:1), one site, the registry, a terminal token."""
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from cordon.core.identity import make_resident_id
    from cordon.core.models import User
    from cordon.core.tokens import create_token
    from cordon.regions.models import Region
    from cordon.regions.services import bulk_create_regions
    from cordon.screening import services

    rng = random.Random(seed)
    call_command("migrate", verbosity=0)
    regions = [Region(code="430000", name="湖南省", level="province"),
               Region(code="430100", name="长沙市", level="city", parent_id="430000"),
               Region(code="430102", name="芙蓉区", level="county", parent_id="430100"),
               Region(code="430102001", name="街道1", level="township", parent_id="430102"),
               Region(code="430102001001", name="社区1", level="community", parent_id="430102001")]  # fmt: skip
    grids = [f"430102001001{g:03d}" for g in range(1, 11)]
    regions += [Region(code=g, name=f"第{i}网格", level="grid", parent_id="430102001001") for i, g in enumerate(grids)]
    with transaction.atomic():
        bulk_create_regions(regions)
    admin = User(username="bench", role="testing", region_id="430100")
    admin.set_unusable_password()
    admin.save()
    machine = User(username="terminal", role="machine", region_id="430100")
    machine.set_unusable_password()
    machine.save()
    _, token = create_token(machine, "bench", actor="bench")
    services.create_campaign(admin, name="全员核酸第1轮", start=True, starts_at=timezone.now() - timedelta(hours=2),
                             areas=[{"region_code": "430102", "area_kind": "medium", "pool_size": 10}])  # fmt: skip
    services.create_site(admin, code=SITE, name="采样点", region_code=grids[0])
    log(f"registry: {n_people:,} people…")
    now = timezone.now()
    base = date(1940, 1, 1)
    people: list[tuple[str, str]] = []
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(
            "COPY people_person (name, document_type, document_number, sex, birth_date, phone, address, region_id,"
            " nationality, verified, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(n_people):
                born = base + timedelta(days=i % 29_000)
                seq, sex = divmod(i // 29_000, 2)
                doc = make_resident_id("430102", born, seq, "M" if sex == 0 else "F")
                name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")
                people.append((doc, name))
                copy.write_row((name, "resident_id", doc, "M" if sex == 0 else "F", born, f"139{i:08d}", "",
                                grids[i % len(grids)], "CHN", True, now, now))  # fmt: skip
        conn.execute("VACUUM ANALYZE people_person")
    return token, people


def bodies_for(people: list[tuple[str, str]], n: int, batch: int) -> list[bytes]:
    """Batches as a terminal sends them: people queue at one site, ten to a tube."""
    now = datetime.now(UTC)
    out = []
    for b in range(0, n, batch):
        scans = []
        for i in range(b, min(n, b + batch)):
            doc, name = people[i % len(people)]
            scans.append({"scan_id": f"api-{i}", "tube": f"API-{i // 10:07d}", "document_type": "resident_id",
                          "document_number": doc, "name": name, "phone": f"139{i:08d}",
                          "collected_at": (now - timedelta(seconds=n - i)).isoformat(), "site": SITE})  # fmt: skip
        out.append(json.dumps({"scans": scans}, ensure_ascii=False).encode())
    return out


def start_server(env: dict, options: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cordon.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               *options], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("server did not start")


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return out


class CpuMeter:
    """CPU seconds spent by the server (gunicorn and its workers), by PostgreSQL (the backends serving
    this database) and by this load generator, so the cost per batch can be read apart from how busy
    the shared machine was (wall-clock rates here move with the other work on the same cores)."""

    def __init__(self, server_pid: int, url: str) -> None:
        self.server_pid, self.url = server_pid, url

    def _pg_pids(self) -> list[int]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                               " AND pid <> pg_backend_pid()")]  # fmt: skip

    def read(self) -> tuple[float, float, float]:
        server = [self.server_pid, *_children(self.server_pid)]
        t = os.times()
        return (sum(_cpu_s(p) for p in server), sum(_cpu_s(p) for p in self._pg_pids()), t.user + t.system)


class LockSampler:
    """Samples PostgreSQL's view of the server's connections while the scans are posted: how many are
    running a statement and how many are waiting on a lock (the audit chain's head row serialises the
    batches' commits), so the report says whether that lock is what limits the rate."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                row = conn.execute("""SELECT count(*) FILTER (WHERE state = 'active'),
                                             count(*) FILTER (WHERE wait_event_type = 'Lock')
                                      FROM pg_stat_activity
                                      WHERE datname = current_database() AND pid <> pg_backend_pid()""").fetchone()
                self.samples.append((row[0], row[1]))

    def __enter__(self) -> LockSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def figures(self) -> dict:
        n = max(1, len(self.samples))
        return {"pg_active_avg": round(sum(a for a, _ in self.samples) / n, 2),
                "pg_lock_waiting_avg": round(sum(w for _, w in self.samples) / n, 2),
                "pg_lock_waiting_share": round(sum(1 for _, w in self.samples if w) / n, 3)}


def fire(port: int, token: str, bodies: list[bytes], clients: int, trivial: int, url: str, meter: CpuMeter) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Host": "127.0.0.1"}
    local = threading.local()

    def conn() -> http.client.HTTPConnection:
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        return local.c

    def post(body: bytes) -> tuple[int, int, int]:
        c = conn()
        c.request("POST", "/api/v1/screening/scans", body=body, headers=headers)
        resp = c.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"scans: HTTP {resp.status}: {data[:300]!r}")
        out = json.loads(data)
        return out["accepted"], out["duplicate"], out["refused"]

    def get(_: int) -> int:
        c = conn()
        c.request("GET", "/api/v1/me", headers=headers)
        resp = c.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"me: HTTP {resp.status}")
        return 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(get, range(max(50, clients * 10))))  # warm-up: connections, caches, every worker
        t = time.perf_counter()
        list(pool.map(get, range(trivial)))
        trivial_rps = trivial / (time.perf_counter() - t)
        with LockSampler(url) as locks:
            cpu0 = meter.read()
            t = time.perf_counter()
            counts = list(pool.map(post, bodies))
            secs = time.perf_counter() - t
            cpu1 = meter.read()
    accepted = sum(c[0] for c in counts)
    batch_rps = len(bodies) / secs
    return {"batches": len(bodies), "accepted": accepted, "duplicate": sum(c[1] for c in counts),
            "refused": sum(c[2] for c in counts), "seconds": round(secs, 2),
            "scans_per_s": round(sum(map(sum, counts)) / secs), "batch_req_per_s": round(batch_rps, 1),
            "trivial_req_per_s": round(trivial_rps, 1), "ratio": round(batch_rps / trivial_rps, 3),
            **locks.figures(), **_cpu_figures(cpu0, cpu1, len(bodies), sum(map(sum, counts)))}  # fmt: skip


def _cpu_figures(before: tuple, after: tuple, batches: int, scans: int) -> dict:
    server, pg, client = (round((a - b) * 1000 / batches, 2) for a, b in zip(after, before, strict=True))
    total = server + pg + client
    cores = os.cpu_count() or 1
    return {"cpu_ms_per_batch": {"server": server, "postgres": pg, "client": client},
            # What the same work would reach with the machine's cores to itself (CPU-bound, no other load).
            "scans_per_s_if_cores_free": round(cores * 1000 / total * scans / batches) if total else None}


def run(args: argparse.Namespace, url: str | None = None) -> dict:
    """Build, serve, measure. With ``url`` (an existing, migrated database) the caller owns the database."""
    own = url is None
    if own:
        log(f"database {args.db}…")
        url = recreate_db(args.server, args.db)
    work = Path(os.environ.get("CORDON_BENCH_DATA", "/tmp/cordon-bench-scan-api"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "CORDON_DATA_DIR": str(work), "DJANGO_SETTINGS_MODULE": "cordon.settings",
           "CORDON_ENV": "production", "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connections

    try:
        t = time.perf_counter()
        token, people = build(args.scans, args.seed)
        bodies = bodies_for(people, args.scans, args.batch)
        del people
        connections.close_all()
        build_s = round(time.perf_counter() - t, 1)
        log(f"built in {build_s} s; serving…")
        server, port = start_server(env, args.serve_option)
        try:
            figures = fire(port, token, bodies, args.clients, args.trivial or 2000, url, CpuMeter(server.pid, url))
        finally:
            log("stopping the server…")
            server.terminate()
            server.wait(timeout=30)
            log("stopped")
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM screening_registration").fetchone()[0]
        if rows != figures["accepted"]:
            raise SystemExit(f"{figures['accepted']} accepted but {rows} registrations stored")
    finally:
        connections.close_all()
        if own and not args.keep:
            log("dropping the database…")
            drop_db(args.server, args.db)
    return {"bench": "scan_api", "scans": args.scans, "batch": args.batch, "clients": args.clients, **figures,
            "serve_options": args.serve_option, "build_s": build_s, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


def main() -> None:
    print(json.dumps(run(parse()), ensure_ascii=False))


if __name__ == "__main__":
    main()
