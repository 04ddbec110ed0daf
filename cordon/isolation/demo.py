"""Demo: isolation sites in 长沙市 and 株洲市, the tracing demo's contacts placed or on their way, a cohort due
for release today, and a floor restarted after a positive found in quarantine.

Runs after the tracing demo. Its contacts come from the database (or ``ctx.shared["contacts_to_place"]``);
when there are none, registry people stand in as inbound travellers so the module still shows itself.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone

from cordon.core.policy import active_policy
from cordon.core.scoping import prefix_range
from cordon.isolation import services
from cordon.isolation.models import SampleResult

SITES = [
    # code, name, kind, region, address, floors, rooms/floor, beds of a floor's rooms, staff, contact person
    ("CS-FR-01", "芙蓉华天隔离酒店", "hotel", "430102", "长沙市芙蓉区解放西路300号", 8, 10, [2, 2] + [1] * 8, 46, "刘建国"),
    ("CS-YL-02", "岳麓区集中隔离点", "purpose_built", "430104", "长沙市岳麓区桐梓坡路88号", 5, 12, [1] * 12, 38, "陈晓梅"),
    ("ZZ-HT-01", "株洲荷塘隔离酒店", "hotel", "430202", "株洲市荷塘区新华西路21号", 3, 6, [1] * 6, 15, "周志强"),
]


def _at(day: Any, hour: int = 9) -> datetime:
    """A time on a local day, never in the future."""
    return min(timezone.make_aware(datetime.combine(day, time(hour, 0))), timezone.now() - timedelta(minutes=5))


def _centralized_level() -> str | None:
    """A risk level whose travellers go to centralized quarantine under the active policy."""
    for code, lv in active_policy().risk_areas.levels.items():
        if lv.travellers.placement == services.CENTRALIZED:
            return code
    return None


def _home_level() -> str | None:
    for code, lv in active_policy().risk_areas.levels.items():
        if lv.travellers.placement not in (services.CENTRALIZED, "testing_only"):
            return code
    return None


def _people(ctx: Any, prefix: str, n: int, exclude: set[int]) -> list:
    from cordon.people.models import Person

    ids: list[int] = []
    for scope_prefix in (prefix, prefix[:2]):  # a small demo's outbreak may use up the city: widen to the province
        ids = list(Person.objects.filter(**prefix_range("region_id", scope_prefix)).exclude(pk__in=exclude)
                   .exclude(cases__isnull=False).values_list("pk", flat=True)[:5000])  # fmt: skip
        if len(ids) >= n:
            break
    chosen = ctx.rng.sample(ids, min(n, len(ids)))
    exclude.update(chosen)
    return list(Person.objects.filter(pk__in=chosen).order_by("pk"))


def _run_tests(placements: list, up_to: Any, negative_today: bool = True) -> None:
    """Negative results on every test day up to ``up_to`` (today only when asked)."""
    today = timezone.localdate()
    for p in placements:
        p.refresh_from_db()
        if p.status != "active":
            continue
        for t in list(p.tests.filter(status="pending", due_date__lte=up_to).order_by("due_date")):
            if t.due_date == today and not negative_today:
                continue
            services.record_test(None, p, positive=False, at=_at(t.due_date, 8))


def extend_demo(ctx: Any) -> None:
    from cordon.tracing.models import Contact

    today = ctx.today
    sites = {}
    for code, name, kind, region, address, floors, rooms, beds, staff, who in SITES:
        sites[code] = services.create_site(None, code=code, name=name, kind=kind, region_code=region, address=address,
                                           floors=floors, rooms_per_floor=rooms, beds_per_room=beds, staff_count=staff,
                                           contact_name=who, contact_phone=f"1390731{ctx.rng.randint(1000, 9999)}")  # fmt: skip
    used: set[int] = set(Contact.objects.values_list("person_id", flat=True))
    level = _centralized_level()
    summary = []
    if level is not None:
        days = active_policy().risk_areas.levels[level].travellers.days
        fr = sites["CS-FR-01"]
        # Cohort A: entered on day 1, last day today → the release list; most tested today, rooms swabbed.
        cohort_a = [services.Candidate.traveller(p, level, today - timedelta(days=days))
                    for p in _people(ctx, "4301", 24, used)]  # fmt: skip
        a = services.assign_beds(None, fr, cohort_a, at=_at(today - timedelta(days=days - 1), 15)).placements
        _run_tests(a[:18], today)
        _run_tests(a[18:], today, negative_today=False)
        for room_id in sorted({p.room_id for p in a[:20]}):
            services.record_environment_sample(None, fr, room=fr.rooms.get(pk=room_id), result=SampleResult.NEGATIVE,
                                               sampled_at=_at(today, 7))  # fmt: skip
        # Cohort B: entered 3 days ago; one of them tested positive yesterday → floors around restarted.
        cohort_b = [services.Candidate.traveller(p, level, today - timedelta(days=4))
                    for p in _people(ctx, "4301", 18, used)]  # fmt: skip
        b = services.assign_beds(None, fr, cohort_b, at=_at(today - timedelta(days=3), 16)).placements
        _run_tests(b, today - timedelta(days=2))
        if b:
            services.record_test(None, b[len(b) // 2], positive=True, at=_at(today - timedelta(days=1), 10))
        # 株洲: a small hotel nearly full → the capacity warning.
        zz = [services.Candidate.traveller(p, level, today - timedelta(days=2)) for p in _people(ctx, "4302", 17, used)]
        services.assign_beds(None, sites["ZZ-HT-01"], zz, at=_at(today - timedelta(days=1), 14))
        summary.append(f"{len(a)} due for release today, {len(b)} in a restarted cohort, {len(zz)} in 株洲")
    home = _home_level()
    if home is not None:
        cands = [services.Candidate.traveller(p, home, today - timedelta(days=2)) for p in _people(ctx, "4301", 6, used)]
        for c in cands:
            services.place_at_home(None, c, at=_at(today - timedelta(days=1), 11))
        summary.append(f"{len(cands)} at home")
    # The tracing demo's contacts: those already moving get beds; the others are requested and put on trips.
    # ctx.shared["contacts_to_place"] / ["contacts_quarantined"] name the same rows; the database is the truth.
    contacts = list(
        Contact.objects.filter(kind__in=["close", "secondary"],
                               status__in=["identified", "notified", "located", "transfer_requested", "quarantined"])
        .exclude(person__placements__status="active").select_related("person").order_by("identified_at", "pk"))  # fmt: skip
    moving = [c for c in contacts if c.status == "quarantined"]
    waiting = [c for c in contacts if c.status != "quarantined"]
    yl = sites["CS-YL-02"]
    if moving:
        cands = []
        for c in moving:
            try:
                cands.append(services.Candidate.from_contact(c))
            except services.FieldError:
                continue
        res = services.assign_beds(None, yl, cands, at=timezone.now() - timedelta(hours=2))
        summary.append(f"{len(res.placements)} contacts placed, {len(res.at_home)} at home")
    if waiting:
        created, _ = services.request_transfers(None, waiting[: len(waiting) * 2 // 3 or 1])
        trips = services.plan_trips(None, yl, created)
        for trip in trips[:2]:
            services.advance_trip(None, trip, "dispatched", vehicle=f"湘A{ctx.rng.randint(10000, 99999)}")
        summary.append(f"{len(created)} transfers requested on {len(trips)} trips")
    ctx.console.print("  isolation: " + "; ".join(summary))
