"""The demo province: Hunan's real prefecture and county divisions (codes and names are facts), with
synthetic townships, communities, grids and people below them. Seeded, so the same seed builds the same
province, and fast enough that a newcomer sees it working within a minute."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from typing import Any

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from rich.console import Console

from cordon.core import audit
from cordon.core.identity import make_resident_id
from cordon.core.models import ImportRun, User
from cordon.core.tokens import create_token
from cordon.modules import each
from cordon.people.importer import flag_duplicates, insert_people_rows
from cordon.regions.models import Level, Region
from cordon.regions.services import bulk_create_regions

DEMO_PASSWORD = "cordon-demo"
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
            "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")  # fmt: skip
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强海燕红梅玉兰俊杰子涵浩然欣怡思远雨轩"
         "梓萱宇航佳怡诗涵博文一鸣嘉懿晨曦若曦天佑文博晓东春生秋菊冬梅湘君岳峰湘妹望舒")  # fmt: skip
TOWNSHIP_NAMES = ["城关街道", "东塘街道", "西湖街道", "南门街道", "北站街道", "新河街道", "解放街道", "金星镇", "白沙镇",
                  "黄花镇", "石门乡", "桃花镇", "青山镇", "龙泉街道", "永安镇", "和平街道", "望月湖街道", "洞井街道"]  # fmt: skip
COMMUNITY_NAMES = ["幸福社区", "光明社区", "新民社区", "红星村", "团结村", "建设社区", "胜利村", "友谊社区", "文化社区",
                   "花园社区", "长青村", "向阳社区", "枫林社区", "桂花村", "湘江社区"]  # fmt: skip
STREETS = ["人民路", "解放路", "五一大道", "芙蓉路", "韶山路", "建设路", "中山路", "朝阳路", "湘江路", "迎宾路"]

DEMO_USERS = [
    # role, username, region code, display name
    ("commander", "commander", "430000", "省指挥部值班长"),
    ("investigator", "investigator", "430102", "芙蓉区流调员"),
    ("investigator", "investigator2", "430104", "岳麓区流调员"),
    ("testing", "testing", "430100", "长沙市核酸检测组"),
    ("isolation", "isolation", "430100", "长沙市转运隔离组"),
    ("grid_worker", "gridworker", "430102001001", "芙蓉区网格员"),
    ("supervisor", "supervisor", "430000", "省督导组"),
    ("analyst", "analyst", "430000", "省数据分析"),
    ("admin", "admin", "430000", "系统管理员"),
]


@dataclass
class DemoContext:
    """What each module's ``extend_demo(ctx)`` gets: a seeded RNG of its own, the demo's clock and users.
    Modules run in dependency order (cases before tracing before screening…), and may leave data for the
    ones after them in ``shared``."""

    rng: random.Random
    seed: int
    today: date
    now: Any
    console: Console
    users: dict[str, User]
    shared: dict[str, Any] = field(default_factory=dict)


def hunan_rows() -> list[dict[str, str]]:
    with resources.files("cordon.regions").joinpath("data/hunan.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _synthetic_tree(rng: random.Random, counties: list[Region]) -> tuple[list[Region], list[Region]]:
    """Townships, communities and grids below each county; returns (all new regions, grids)."""
    new: list[Region] = []
    grids: list[Region] = []
    for county in counties:
        n_town = rng.randint(3, 5)
        for t, tname in enumerate(rng.sample(TOWNSHIP_NAMES, n_town), start=1):
            town = Region(code=f"{county.code}{t:03d}", name=tname, level=Level.TOWNSHIP, parent_id=county.code)
            new.append(town)
            for c, cname in enumerate(rng.sample(COMMUNITY_NAMES, rng.randint(2, 4)), start=1):
                comm = Region(code=f"{town.code}{c:03d}", name=cname, level=Level.COMMUNITY, parent_id=town.code)
                new.append(comm)
                for g in range(1, rng.randint(2, 4) + 1):
                    grid = Region(code=f"{comm.code}{g:03d}", name=f"第{g}网格", name_en=f"Grid {g}",
                                  level=Level.GRID, parent_id=comm.code)  # fmt: skip
                    new.append(grid)
                    grids.append(grid)
    return new, grids


def _people(rng: random.Random, n: int, grids: list[Region], weights: list[float], names: dict[str, str],
            today: date) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    used: set[tuple[str, date, int, str]] = set()
    picks = rng.choices(range(len(grids)), weights=weights, k=n)
    for i in range(n):
        grid = grids[picks[i]]
        county = grid.code[:6]
        sex = "M" if rng.random() < 0.51 else "F"
        age_days = int(rng.triangular(0, 95, 38) * 365.25)
        birth = today - timedelta(days=age_days + rng.randint(0, 364))
        seq = rng.randint(0, 499)
        while (county, birth, seq, sex) in used:
            seq = (seq + 1) % 500
        used.add((county, birth, seq, sex))
        given = rng.choice(GIVEN) if rng.random() < 0.45 else rng.choice(GIVEN) + rng.choice(GIVEN)
        name = (rng.choice(SURNAMES) + given)[:4]
        phone = (
            f"1{rng.choice('35789')}{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}" if age_days > 12 * 365 else ""
        )
        address = (f"{names[county[:4] + '00']}{names[county]}{names[grid.code[:9]]}{names[grid.code[:12]]}"
                   f"{rng.choice(STREETS)}{rng.randint(1, 300)}号{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元"
                   f"{rng.randint(1, 33)}{rng.randint(1, 4):02d}室")  # fmt: skip
        rows.append({"name": name, "document_type": "resident_id",
                     "document_number": make_resident_id(county, birth, seq, sex), "sex": sex, "birth_date": birth,
                     "phone": phone, "address": address[:200], "region_id": grid.code})  # fmt: skip
    return rows


def build_demo(*, people: int = 100_000, seed: int = 20220601, reset: bool = True,
               console: Console | None = None) -> list[tuple[str, str, str, str]]:  # fmt: skip
    console = console or Console(stderr=True)
    rng = random.Random(seed)
    today = timezone.localdate()
    if reset:
        console.print("resetting the database…")
        call_command("flush", interactive=False, verbosity=0)
    console.print("building the region tree (Hunan: 14 cities, real county codes)…")
    provinces, cities, counties = [], [], []
    for row in hunan_rows():
        r = Region(code=row["code"], name=row["name"], name_en=row.get("name_en", ""), level=row["level"],
                   parent_id=row["parent_code"] or None,
                   population=int(row["population"]) if row.get("population") else None)  # fmt: skip
        {"province": provinces, "city": cities, "county": counties}[row["level"]].append(r)
    synthetic, grids = _synthetic_tree(rng, counties)
    with transaction.atomic():
        bulk_create_regions(provinces + cities + counties + synthetic)
    names = {r.code: r.name for r in provinces + cities + counties + synthetic}
    pop = {c.code: (c.population or 300_000) for c in counties}
    per_county: dict[str, int] = {}
    for g in grids:
        per_county[g.code[:6]] = per_county.get(g.code[:6], 0) + 1
    weights = [pop[g.code[:6]] / per_county[g.code[:6]] for g in grids]
    console.print(f"generating {people:,} people…")
    rows = _people(rng, people, grids, weights, names, today)
    # A few entries that look like one person under two documents: the registry must flag, not merge.
    for i in range(min(12, len(rows) // 1000)):
        src = rows[i * 97]
        if src["phone"]:
            rows.append({**src, "document_type": "passport", "document_number": f"E{rng.randint(10**7, 10**8 - 1)}"})
    run = ImportRun.objects.create(kind="demo", file_name="demo", file_sha256=str(seed), status="running")
    now = timezone.now()
    batch = 20_000
    for start in range(0, len(rows), batch):
        with transaction.atomic():
            insert_people_rows(rows[start : start + batch], run.pk, now)
    flagged = flag_duplicates(run.pk)
    _set_populations(grids, rows)
    logins = _users(rng)
    ctx = DemoContext(rng=random.Random(seed + 1), seed=seed, today=today, now=timezone.now(), console=console,
                      users={u.username: u for u in User.objects.all()})  # fmt: skip
    for name, module in each("demo"):
        console.print(f"demo: {name}…")
        module.extend_demo(ctx)
    with transaction.atomic():
        audit.record("demo", "demo.build", object_type="demo", object_id=str(seed),
                     changes={"people": len(rows), "regions": len(names), "duplicates_flagged": flagged})  # fmt: skip
    ImportRun.objects.filter(pk=run.pk).update(accepted=len(rows), status="done", finished_at=timezone.now())
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    return logins


def _set_populations(grids: list[Region], rows: list[dict[str, Any]]) -> None:
    """Synthetic levels get the demo's resident counts; real counties keep their census figures."""
    counts: dict[str, int] = {}
    for r in rows:
        code = r["region_id"]
        for n in (9, 12, 15):
            counts[code[:n]] = counts.get(code[:n], 0) + 1
    codes = Region.objects.filter(level__in=[Level.TOWNSHIP, Level.COMMUNITY, Level.GRID]).values_list("code", flat=True)
    table = connection.ops.quote_name(Region._meta.db_table)
    population = connection.ops.quote_name(Region._meta.get_field("population").column)
    code_col = connection.ops.quote_name(Region._meta.get_field("code").column)
    # One prepared UPDATE run per row: bulk_update's CASE over thousands of codes costs seconds.
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(f"UPDATE {table} SET {population} = %s WHERE {code_col} = %s",
                        [(counts.get(code, 0), code) for code in codes])


def _users(rng: random.Random) -> list[tuple[str, str, str, str]]:
    from django.contrib.auth.hashers import make_password

    hashed = make_password(DEMO_PASSWORD)
    out = []
    with transaction.atomic():
        for role, username, code, display in DEMO_USERS:
            user = User.objects.create(username=username, role=role, region_id=code, display_name=display,
                                       password=hashed, is_staff=role == "admin")  # fmt: skip
            audit.record("demo", "user.create", user, region_code=code, changes={"role": role})
            out.append((role, username, DEMO_PASSWORD, f"{Region.objects.get(code=code).name} {code}"))
        machine = User.objects.create(username="lab-terminal", role="machine", region_id="430100",
                                      display_name="长沙市检测实验室终端")  # fmt: skip
        machine.set_unusable_password()
        machine.save()
        audit.record("demo", "user.create", machine, region_code="430100", changes={"role": "machine"})
    _, secret = create_token(machine, "demo lab terminal", actor="demo")
    out.append(("machine", "lab-terminal", f"token: {secret}", "长沙市 430100"))
    return out
