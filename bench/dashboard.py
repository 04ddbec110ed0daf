"""Benchmark: the command dashboard's endpoints on a large province, over HTTP, against a trivial endpoint.

The wall screen of a provincial headquarters polls every 60 s, and dozens of laptops open it at once in the
morning meeting: the endpoints must answer from the pre-aggregated daily figures, whatever the size of the
case and contact tables. This builds a province in its own PostgreSQL database (default
``cordon_bench_dashboard``): Hunan's real tree, N people, cases and contacts over D days loaded with COPY,
tasks across every headquarters; then the daily figures are rebuilt (``cordon command aggregate``, timed),
a production server is started (gunicorn via ``cordon.web.server.run_server``, ``CORDON_ENV=production``)
and each endpoint is requested sequentially over one keep-alive connection with a commander's session.

Reference, measured in the same run on the same server and session: a trivial page (the public tip-off
status page, no query beyond the session's user), so ``ratio`` says how much the dashboard's own work adds
to the floor of the stack (WSGI, middleware, session, template/JSON rendering).

Usage: python bench/dashboard.py --people 1000000 --cases 50000 --contacts 500000 --days 60
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from pgscratch import recreate_db
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--cases", type=int, default=50_000)
    p.add_argument("--contacts", type=int, default=500_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    p.add_argument("--server", default=os.environ.get("CORDON_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--db", default="cordon_bench_dashboard")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reuse", action="store_true", help="measure again on the database a previous run built")
    return p.parse_args()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)




def copy_rows(model, rows, fields: list[str]) -> int:
    """COPY rows (tuples in ``fields`` order) into the model's table; other columns get their defaults."""
    from django.db import connection

    table = model._meta.db_table
    cols = [model._meta.get_field(f).column for f in fields]
    n = 0
    with connection.cursor() as cur:
        raw = cur.cursor
        with raw.copy(f'COPY "{table}" ({", ".join(cols)}) FROM STDIN') as cp:
            for row in rows:
                cp.write_row(row)
                n += 1
    return n


def defaults_for(model, given: list[str]) -> tuple[list[str], tuple]:
    """The NOT NULL columns without a database default that the generator does not set, with the
    model's default for each (new columns added by other modules keep the bench working)."""
    from django.db.models import NOT_PROVIDED

    extra, values = [], []
    for f in model._meta.concrete_fields:
        if f.name in given or f.primary_key or f.null:
            continue
        if f.default is not NOT_PROVIDED:
            v = f.get_default()
            values.append(json.dumps(v) if f.get_internal_type() == "JSONField" else v)
            extra.append(f.name)
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            extra.append(f.name)
            values.append(datetime.now().astimezone())
        elif f.get_internal_type() in ("CharField", "TextField"):
            extra.append(f.name)
            values.append("")
    return extra, tuple(values)


def build(args: argparse.Namespace) -> dict:
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from cordon.cases.models import Case
    from cordon.command.aggregate import rebuild
    from cordon.command.models import OPEN_STATUSES, Task, TaskStatus, WorkingGroup
    from cordon.command.services import ensure_headquarters
    from cordon.core.models import User
    from cordon.demo.build import hunan_rows
    from cordon.people.models import Person
    from cordon.regions.models import Region
    from cordon.regions.services import bulk_create_regions
    from cordon.tracing.models import Contact

    rng = random.Random(args.seed)
    figures: dict = {}
    t = time.perf_counter()
    call_command("migrate", verbosity=0)
    figures["migrate_s"] = round(time.perf_counter() - t, 1)
    rows = hunan_rows()
    regions = [Region(code=r["code"], name=r["name"], level=r["level"], parent_id=r["parent_code"] or None,
                      population=int(r["population"]) if r.get("population") else None) for r in rows]  # fmt: skip
    with transaction.atomic():
        bulk_create_regions(regions)
    counties = [r.code for r in regions if r.level == "county"]
    weights = [r.population or 300_000 for r in regions if r.level == "county"]

    log(f"people: {args.people:,} by COPY…")
    t = time.perf_counter()
    now = timezone.now()
    pf = ["name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region", "verified",
          "created_at", "updated_at"]  # fmt: skip
    extra, extra_v = defaults_for(Person, pf)
    person_region = rng.choices(counties, weights, k=args.people)

    def people():
        for i in range(args.people):
            yield ("张某", "passport", f"B{i:09d}", "M", date(1980, 1, 1) + timedelta(days=i % 15000), "",
                   "", person_region[i], True, now, now, *extra_v)  # fmt: skip

    with transaction.atomic():
        copy_rows(Person, people(), pf + extra)
    figures["people_copy_s"] = round(time.perf_counter() - t, 1)
    first_person = Person.objects.order_by("pk").values_list("pk", flat=True).first()

    log(f"cases: {args.cases:,} over {args.days} days, contacts: {args.contacts:,}…")
    t = time.perf_counter()
    today = timezone.localdate()
    start = timezone.make_aware(datetime.combine(today - timedelta(days=args.days - 1), datetime.min.time()))
    span = args.days * 86400
    cf = ["number", "person", "classification", "severity", "origin", "found_by", "found_under_control",
          "reported_at", "region", "status", "created_at", "updated_at"]  # fmt: skip
    extra, extra_v = defaults_for(Case, cf)
    # an epidemic curve that grows and falls: reports weighted towards the middle of the period
    case_region = rng.choices(counties[:40], k=args.cases)

    def cases():
        for i in range(args.cases):
            off = min(span - 1, max(0, int(rng.triangular(0, span, span * 0.6))))
            yield (f"B{i:07d}", first_person + i, rng.choice(["confirmed", "confirmed", "asymptomatic"]),
                   rng.choice(["mild", "moderate", "severe"]), "imported_abroad" if i % 50 == 0 else "local",
                   "screening", i % 3 != 0, start + timedelta(seconds=off), case_region[i], "in_hospital", now, now,
                   *extra_v)  # fmt: skip

    with transaction.atomic():
        copy_rows(Case, cases(), cf + extra)
    case_rows = list(Case.objects.values_list("pk", "region_id", "reported_at"))
    kf = ["index_case", "person", "kind", "status", "identified_how", "last_exposure_at", "last_exposure_date",
          "identified_at", "quarantined_at", "transfer_due_at", "region", "index_region"]  # fmt: skip
    extra, extra_v = defaults_for(Contact, kf)

    def contacts():
        for i in range(args.contacts):
            cid, region, rep = case_rows[i % len(case_rows)]
            ident = rep + timedelta(hours=rng.uniform(1, 20))
            kind = "close" if i % 3 else "secondary"
            status = rng.choice(["identified", "quarantined", "quarantined", "released"])
            yield (cid, first_person + args.cases + i, kind, status, "interview", ident - timedelta(days=1),
                   (ident - timedelta(days=1)).date(), ident,
                   ident + timedelta(hours=6) if status != "identified" else None,
                   ident + timedelta(hours=8 if kind == "close" else 12), region, region, *extra_v)  # fmt: skip

    with transaction.atomic():
        copy_rows(Contact, contacts(), kf + extra)
    figures["cases_contacts_copy_s"] = round(time.perf_counter() - t, 1)

    log("headquarters and tasks…")
    hqs = [ensure_headquarters(r) for r in regions if r.level in ("province", "city", "county")]
    groups: dict[int, list] = {}
    for g in WorkingGroup.objects.all():
        groups.setdefault(g.headquarters_id, []).append(g)
    tasks = []
    for i in range(args.tasks):
        hq = hqs[rng.randrange(len(hqs))]
        issued = now - timedelta(hours=rng.uniform(0, 24 * 14))
        due = issued + timedelta(hours=rng.choice([4, 8, 12, 24]))
        st = rng.choice(OPEN_STATUSES + [TaskStatus.DONE] * 3)
        tasks.append(Task(title=f"bench {i}", issuer_hq=hq, assignee_hq=hq, assignee_group=rng.choice(groups[hq.pk]),
                          region_code=hq.region_id, issued_at=issued, due_at=due, status=st,
                          closed_at=due if st == TaskStatus.DONE else None))  # fmt: skip
    Task.objects.bulk_create(tasks, batch_size=5000)
    t = time.perf_counter()
    figures["daily_figure_rows"] = rebuild()
    figures["aggregate_s"] = round(time.perf_counter() - t, 1)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    User.objects.create(username="bench-commander", role="commander", region_id="430000")
    figures["session"] = session_for("bench-commander")
    return figures


def session_for(username: str) -> str:
    """A logged-in session for the user, as the browser would hold after signing in."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from cordon.core.models import User

    user = User.objects.get(username=username)
    s = SessionStore()
    s[SESSION_KEY], s[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    return s.session_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(port: int, path: str, cookie: str, n: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": f"sessionid={cookie}", "Host": "127.0.0.1"}
    times = []
    for i in range(n + 5):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        dt = (time.perf_counter() - t) * 1000
        if resp.status != 200:
            raise SystemExit(f"{path}: HTTP {resp.status}: {body[:300]!r}")
        if i >= 5:  # warm-up
            times.append(dt)
    conn.close()
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "bytes": len(body)}  # fmt: skip


def main() -> None:
    args = parse()
    if args.people < args.cases + args.contacts:
        raise SystemExit("--people must be at least --cases + --contacts (each case and contact is a distinct person)")
    url = recreate_db(args.server, args.db) if not args.reuse else None
    if url is None:
        params = conninfo_to_dict(args.server)
        url = f"postgres://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{args.db}"
    data_dir = Path(os.environ.get("CORDON_BENCH_DATA", "/tmp/cordon-bench-dashboard"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "CORDON_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "cordon.settings",
           "CORDON_ENV": "production", "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    t0 = time.perf_counter()
    if args.reuse:
        figures = {"session": session_for("bench-commander"), "reused": True}
    else:
        figures = build(args)
        figures["build_s"] = round(time.perf_counter() - t0, 1)
    cookie = figures.pop("session")
    endpoints = {
        "summary": "/api/v1/command/dashboard/summary",
        "tiles": "/api/v1/command/dashboard/tiles",
        "epicurve": "/api/v1/command/dashboard/epicurve",
        "forecast": "/api/v1/command/dashboard/forecast",
        "panel": "/command/panel",
        "city_summary": "/api/v1/command/dashboard/summary?region=430100",
    }

    def run(cache_seconds: int) -> tuple[dict, dict, dict]:
        port = args.port or free_port()
        log(f"server on :{port} (gunicorn, production settings, dashboard cache {cache_seconds} s)…")
        server = subprocess.Popen(
            [sys.executable, "-c", f"from cordon.web.server import run_server; run_server('127.0.0.1', {port}, quiet=True)"],
            env={**env, "CORDON_DASHBOARD_CACHE_SECONDS": str(cache_seconds)}, cwd=str(ROOT),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.2)
            ref = measure(port, "/command/public/tipoff/status", cookie, args.requests)
            res = {name: measure(port, path, cookie, args.requests) for name, path in endpoints.items()}
            ref2 = measure(port, "/command/public/tipoff/status", cookie, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
        return ref, res, ref2

    cold_ref, cold, cold_ref2 = run(0)
    ref, results, ref2 = run(30)
    figures["uncached"] = {name: {"p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"]} for name, r in cold.items()}
    figures["uncached_worst_p95_ms"] = max(r["p95_ms"] for r in cold.values())
    figures["uncached_trivial_p95_ms"] = max(cold_ref["p95_ms"], cold_ref2["p95_ms"])
    trivial_p95 = max(ref["p95_ms"], ref2["p95_ms"])
    trivial_p50 = min(ref["p50_ms"], ref2["p50_ms"])
    worst = max(r["p95_ms"] for r in results.values())
    for r in results.values():
        r["ratio_p50_vs_trivial"] = round(r["p50_ms"] / trivial_p50, 2) if trivial_p50 else None
    figures["cache_seconds"] = 30  # the endpoints' figures below; "uncached" above: the same with the cache off
    out = {"bench": "dashboard", "people": args.people, "cases": args.cases, "contacts": args.contacts,
           "days": args.days, "tasks": args.tasks, "requests": args.requests, **figures,
           "trivial_p50_ms": trivial_p50, "trivial_p95_ms": trivial_p95, "endpoints": results,
           "worst_p95_ms": worst, "ratio_worst_p95_vs_trivial": round(worst / trivial_p95, 2) if trivial_p95 else None,
           "target_p95_ms": 300, "target_met": worst < 300}  # fmt: skip
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
