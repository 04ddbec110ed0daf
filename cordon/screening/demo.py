"""Demo: a running screening round over 芙蓉区 (430102) and 岳麓区 (430104), mid-way.

Sites in every community, 10:1 pools (one tube per household in a sealed township), most tubes resulted negative, three positive pools in recall (some
members re-sampled, one positive retest opening a case), invalid tubes on the resample list, tubes still at
the lab, and people not yet sampled. Everything goes through the same paths as production: the set-based
registration engine, the lab-file importer and the retest services.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db.models import Q

from cordon.core.scoping import prefix_range
from cordon.people.models import Person
from cordon.regions.models import Level, Region

COUNTIES = ("430102", "430104")
SAMPLED_SHARE = 0.86
RESULTED_SHARE = 0.9
HOUSEHOLD_SIZES = (1, 2, 2, 3, 3, 4)


def extend_demo(ctx: Any) -> None:
    import time

    from cordon.screening import coverage, ingest, services
    from cordon.screening.models import Retest, Tube
    from cordon.screening.results import import_results

    t0 = time.monotonic()
    rng = ctx.rng
    user = ctx.users.get("testing") or next(iter(ctx.users.values()))
    lab_user = ctx.users.get("lab-terminal") or user
    now = ctx.now
    start = now - timedelta(hours=10)
    # One township of 芙蓉区 is sealed (high risk): its sites swab one tube per household.
    sealed = Region.objects.filter(level=Level.TOWNSHIP, parent_id=COUNTIES[0]).order_by("code").first()
    areas = [{"region_code": c, "area_kind": "medium"} for c in COUNTIES]
    if sealed is not None:
        areas.append({"region_code": sealed.code, "area_kind": "high", "household_tubes": True})
    campaign = services.create_campaign(user, name="长沙市芙蓉区、岳麓区第1轮全员核酸", starts_at=start, start=True,
                                        areas=areas)  # fmt: skip
    sites = []
    for comm in Region.objects.filter(level=Level.COMMUNITY, code__regex=r"^(430102|430104)").order_by("code"):
        grid = Region.objects.filter(parent=comm).order_by("code").first()
        if grid is None:
            continue
        sites.append(services.create_site(user, code=f"CY{comm.code[-9:]}", name=f"{comm.name}采样点",
                                          region_code=grid.code, hours="07:00-22:00", staff=rng.randint(4, 12)))
    lab = services.create_lab(user, code="CSJC01", name="长沙市核酸检测基地", region_code="430100",
                              daily_capacity=120_000)  # fmt: skip
    site_by_community = {s.region_id[:12]: s for s in sites}
    in_counties = Q()
    for c in COUNTIES:
        in_counties |= Q(**prefix_range("region_id", c))
    people = list(Person.objects.filter(in_counties).order_by("region_id", "id")
                  .values_list("id", "document_type", "document_number", "name", "phone", "region_id", "address"))  # fmt: skip
    households = _households(people, rng)
    rng.shuffle(households)
    # Households come to the site together, so their swabs sit side by side in a tube.
    came = households[: int(len(households) * SAMPLED_SHARE)]
    sampled = [p for h in came for p in h]
    # Group by site, fill tubes of 10 in order of arrival (in the sealed township, one tube per household).
    by_site: dict[str, list[list[tuple]]] = {}
    for h in came:
        site = site_by_community.get(h[0][5][:12]) or sites[0]
        by_site.setdefault(site.code, []).append(h)
    site_grid = {s.code: s.region_id for s in sites}
    rows = []
    line = 1
    for code, site_households in sorted(by_site.items()):
        per_household = sealed is not None and site_grid[code].startswith(sealed.code)
        members = [(k, p) for k, h in enumerate(site_households) for p in h]
        for i, (k, p) in enumerate(members):
            tube = f"{code}-H{k:05d}" if per_household else f"{code}-{i // 10:05d}"
            at = start + timedelta(minutes=20 + (i * 540) // max(len(members), 1) + rng.randint(0, 5) * (not per_household))
            line += 1
            rows.append((line, {"scan_id": f"demo-{p[0]}", "tube": tube, "document_type": p[1],
                                "document_number": p[2], "name": p[3], "phone": p[4], "site": code,
                                "collected_at": at.isoformat()}))  # fmt: skip
    ingest.import_rows(rows, campaign=campaign, user=user, batch_size=20_000)
    tubes = list(Tube.objects.filter(campaign=campaign).order_by("opened_at").values_list("barcode", "opened_at"))
    # The last tubes of the day are still at the lab.
    resulted = tubes[: int(len(tubes) * RESULTED_SHARE)]
    positives = set(rng.sample([b for b, _ in resulted[: len(resulted) // 2]], 3))
    invalid = set(rng.sample([b for b, _ in resulted if b not in positives], 4))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lab.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["试管编码", "检测结果", "ORF1ab基因Ct值", "N基因Ct值", "检测时间"])
            for b, opened in resulted:
                at = (opened + timedelta(hours=rng.uniform(3, 9))).isoformat()
                if b in positives:
                    w.writerow([b, "阳性", round(rng.uniform(24, 33), 1), round(rng.uniform(24, 33), 1), at])
                else:
                    w.writerow([b, "无效" if b in invalid else "阴性", "", "", at])
        Tube.objects.filter(campaign=campaign, barcode__in=[b for b, _ in resulted]).update(lab=lab)
        import_results(path, lab=lab, user=lab_user)
    # Recall in progress: the first pool fully re-sampled with one positive member, the second half-way.
    pools = sorted(positives)
    first = list(Retest.objects.filter(source_tube__barcode=pools[0]).order_by("pk"))
    for i, r in enumerate(first):
        _retest_result(services, user, lab_user, lab, r, f"RT-{pools[0]}-{i}", "positive" if i == 0 else "negative")
    second = list(Retest.objects.filter(source_tube__barcode=pools[1]).order_by("pk"))
    for i, r in enumerate(second[: len(second) // 2]):
        _retest_result(services, user, lab_user, lab, r, f"RT-{pools[1]}-{i}", "negative" if i % 2 == 0 else "")
    state = coverage.refresh(campaign, rebuild=True)
    ctx.shared["screening_campaign"] = campaign.pk
    ctx.console.print(f"  screening: {len(sampled):,} of {len(people):,} sampled in {len(tubes):,} tubes, "
                      f"{len(sites)} sites, 3 positive pools in recall, coverage counted to registration "
                      f"{state.reg_watermark if state else 0} ({time.monotonic() - t0:.1f} s)")  # fmt: skip


def _households(people: list[tuple], rng: Any) -> list[list[tuple]]:
    """Group the registry's people (ordered by grid) into households of one to four sharing an address, so
    that household counts and tubes grouped by household show something real."""
    from django.db import connection, transaction

    out: list[list[tuple]] = []
    moves: list[tuple[str, int]] = []
    i = 0
    while i < len(people):
        size = rng.choice(HOUSEHOLD_SIZES)
        members = [p for p in people[i : i + size] if p[5] == people[i][5]]
        head = members[0]
        out.append(members)
        moves += [(head[6], p[0]) for p in members[1:] if p[6] != head[6]]
        i += len(members)
    table = connection.ops.quote_name(Person._meta.db_table)
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(f"UPDATE {table} SET address = %s WHERE id = %s", moves)
    return out


def _retest_result(services: Any, user: Any, lab_user: Any, lab: Any, retest: Any, barcode: str, result: str) -> None:
    """Sampled by the emergency team; resulted (when ``result``) through the lab's own path."""
    from django.db import transaction

    services.sample_retest(user, retest, barcode)
    if result:
        retest.refresh_from_db()
        with transaction.atomic():
            services.record_result(lab_user, retest.retest_tube, result, lab=lab)
