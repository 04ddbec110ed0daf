"""Scoped reads: sites by their region; placements and transfers by the person's region or the site's."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from cordon.core.policy import active_policy
from cordon.core.scoping import jurisdiction_prefix, prefix_range, require, scope
from cordon.isolation.models import (
    OPEN_TRANSFER,
    IsolationSite,
    Placement,
    PlacementStatus,
    PlacementTest,
    Restart,
    SiteStatus,
    TestStatus,
    Transfer,
    Trip,
)
from cordon.isolation.services import release_blockers


def _either(qs: QuerySet, user: Any, a: str, b: str) -> QuerySet:
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return qs.none()
    return qs.filter(Q(**prefix_range(a, prefix)) | Q(**prefix_range(b, prefix)))


def sites_for(user: Any) -> QuerySet[IsolationSite]:
    require(user, "view_isolation")
    return scope(IsolationSite.objects.all(), user)


def get_site(user: Any, site_id: int | str) -> IsolationSite:
    qs = sites_for(user)
    try:
        return qs.get(code=site_id) if isinstance(site_id, str) and not site_id.isdigit() else qs.get(pk=int(site_id))
    except (IsolationSite.DoesNotExist, ValueError) as exc:
        raise Http404("no such site in your jurisdiction") from exc


def placements_for(user: Any) -> QuerySet[Placement]:
    require(user, "view_isolation")
    return _either(Placement.objects.all(), user, "region_id", "site_region")


def get_placement(user: Any, pk: int) -> Placement:
    try:
        return placements_for(user).select_related("person", "site", "room", "contact").get(pk=pk)
    except (Placement.DoesNotExist, ValueError) as exc:
        raise Http404("no such placement in your jurisdiction") from exc


def transfers_for(user: Any) -> QuerySet[Transfer]:
    require(user, "view_isolation")
    return _either(Transfer.objects.all(), user, "region_id", "site_region")


def get_transfer(user: Any, pk: int) -> Transfer:
    try:
        return transfers_for(user).select_related("person", "contact", "site").get(pk=pk)
    except (Transfer.DoesNotExist, ValueError) as exc:
        raise Http404("no such transfer in your jurisdiction") from exc


def trips_for(user: Any) -> QuerySet[Trip]:
    require(user, "view_isolation")
    return scope(Trip.objects.all(), user, "site__region_id")


def get_trip(user: Any, pk: int) -> Trip:
    try:
        return trips_for(user).select_related("site").get(pk=pk)
    except (Trip.DoesNotExist, ValueError) as exc:
        raise Http404("no such trip in your jurisdiction") from exc


def restarts_for(user: Any) -> QuerySet[Restart]:
    require(user, "view_isolation")
    return scope(Restart.objects.all(), user, "site__region_id")


def contacts_due_for_transfer(user: Any) -> QuerySet:
    """Close and secondary contacts identified, notified or located (or marked transfer-requested by tracing),
    with no placement and no open request here, visible to the user (the person's region or the index case's)."""
    from cordon.tracing.models import Contact

    require(user, "view_isolation")
    busy = Placement.objects.filter(status=PlacementStatus.ACTIVE).values("person_id")
    moving = Transfer.objects.filter(status__in=OPEN_TRANSFER).values("person_id")
    qs = _either(Contact.objects.all(), user, "region_id", "index_region_id")
    return (qs.filter(status__in=["identified", "notified", "located", "transfer_requested"],
                      kind__in=["close", "secondary"])
            .exclude(person_id__in=busy).exclude(person_id__in=moving))  # fmt: skip


def contacts_awaiting_bed(user: Any) -> QuerySet:
    """Contacts with a transfer requested (or due) and no placement: the batch a site takes in."""
    from cordon.tracing.models import Contact

    require(user, "view_isolation")
    busy = Placement.objects.filter(status=PlacementStatus.ACTIVE).values("person_id")
    qs = _either(Contact.objects.all(), user, "region_id", "index_region_id")
    return (qs.filter(status__in=["identified", "notified", "located", "transfer_requested"],
                      kind__in=["close", "secondary"]).exclude(person_id__in=busy))  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Boards.
# ----------------------------------------------------------------------------------------------------------


def site_board(site: IsolationSite, today: date | None = None) -> list[dict]:
    """Floors (top first) × rooms, each room with its occupants, days left and today's tests."""
    today = today or timezone.localdate()
    active = list(Placement.objects.filter(site=site, status=PlacementStatus.ACTIVE).select_related("person"))
    tests_today = defaultdict(list)
    for t in PlacementTest.objects.filter(placement__in=[p.pk for p in active], due_date=today):
        tests_today[t.placement_id].append(t)
    by_room: dict[int, list[Placement]] = defaultdict(list)
    for p in active:
        by_room[p.room_id].append(p)
    restarted_floors = set()
    last = site.restarts.order_by("-at").first()
    if last is not None and last.clock_start >= today - timedelta(days=14):
        restarted_floors = set(last.floors)
    floors: dict[int, list[dict]] = defaultdict(list)
    for room in site.rooms.order_by("floor", "number"):
        occ = by_room.get(room.pk, [])
        floors[room.floor].append({
            "room": room,
            "occupants": [{"placement": p, "days_left": (p.end_date - today).days,
                           "tests": tests_today.get(p.pk, [])} for p in occ],
            "free": max(0, room.beds - len(occ)),
            "cohort": min((p.entry_date for p in occ), default=None),
        })  # fmt: skip
    return [{"floor": f, "rooms": floors[f], "people": sum(len(r["occupants"]) for r in floors[f]),
             "restarted": f in restarted_floors} for f in sorted(floors, reverse=True)]  # fmt: skip


def release_list(user: Any, on: date | None = None) -> list[dict]:
    """Placements whose last day is ``on`` or earlier and still under management, with what blocks them."""
    on = on or timezone.localdate()
    policy = active_policy()
    qs = (placements_for(user).filter(status=PlacementStatus.ACTIVE, end_date__lte=on)
          .select_related("person", "site", "room").prefetch_related("tests").order_by("end_date", "site_id", "pk"))  # fmt: skip
    return [{"placement": p, "late": p.end_date < on, "blockers": release_blockers(p, on, policy)} for p in qs]


# ----------------------------------------------------------------------------------------------------------
# Capacity.
# ----------------------------------------------------------------------------------------------------------


def _bed_totals(sites: list[IsolationSite]) -> dict[int, int]:
    from django.db.models import Sum

    rows = (IsolationSite.objects.filter(pk__in=[s.pk for s in sites], rooms__in_service=True)
            .values("pk").annotate(beds=Sum("rooms__beds")))  # fmt: skip
    return {r["pk"]: r["beds"] or 0 for r in rows}


def capacity(user: Any, today: date | None = None, days: int = 7) -> dict:
    """Per site and per region (the site's county): beds, occupied, free now; for each of the next ``days``
    days the arrivals expected (open transfer requests, counted on the day they are due), the releases
    scheduled (placements whose last day is the day before) and the projected free beds at the start of
    the day. A region whose projection falls below ``capacity_warning_free_share`` of its beds is flagged."""
    today = today or timezone.localdate()
    policy = active_policy()
    share = policy.quarantine_site.capacity_warning_free_share
    sites = list(sites_for(user).exclude(status=SiteStatus.CLOSED).order_by("region_id", "code"))
    beds = _bed_totals(sites)
    occ: dict[int, int] = defaultdict(int)
    ends: dict[tuple[int, date], int] = defaultdict(int)
    for site_id, end in Placement.objects.filter(site__in=sites, status=PlacementStatus.ACTIVE).values_list(
        "site_id", "end_date"
    ):
        occ[site_id] += 1
        ends[(site_id, max(end, today - timedelta(days=1)))] += 1
    dates = [today + timedelta(days=i) for i in range(days)]
    site_region = {s.pk: s.region_id for s in sites}
    # Arrivals: open transfers bound for a site in view, or not yet on a trip, in the region of the person's
    # county (where a bed will be needed).
    arrivals: dict[tuple[str, date], int] = defaultdict(int)
    for sid, reg, due in transfers_for(user).filter(status__in=OPEN_TRANSFER).values_list("site_id", "region_id", "due_at"):
        region = site_region.get(sid) if sid else reg[:6]
        arrivals[(region, max(timezone.localdate(due), today))] += 1
    site_rows = []
    regions: dict[str, dict] = {}
    for s in sites:
        total = beds.get(s.pk, 0) if s.status != SiteStatus.DISINFECTING else 0
        free = max(0, total - occ[s.pk])
        proj, cur = [], free
        for d in dates:
            cur += ends.get((s.pk, d - timedelta(days=1)), 0)
            proj.append(cur)
        site_rows.append({"site": s, "beds": total, "occupied": occ[s.pk], "free": free,
                          "releases": [ends.get((s.pk, d - timedelta(days=1)), 0) for d in dates],
                          "projected_free_before_arrivals": proj})  # fmt: skip
        r = regions.setdefault(s.region_id, {"region": s.region_id, "beds": 0, "occupied": 0, "free": 0,
                                             "releases": [0] * days, "sites": 0})  # fmt: skip
        r["beds"] += total
        r["occupied"] += occ[s.pk]
        r["free"] += free
        r["sites"] += 1
        for i, d in enumerate(dates):
            r["releases"][i] += ends.get((s.pk, d - timedelta(days=1)), 0)
    for r in regions.values():
        r["arrivals"] = [sum(n for (reg, d2), n in arrivals.items() if reg == r["region"] and d2 == d) for d in dates]
        cur, proj = r["free"], []
        for i in range(days):
            cur += r["releases"][i] - r["arrivals"][i]
            proj.append(cur)
        r["projected_free"] = proj
        r["flows"] = list(zip(r["releases"], r["arrivals"], strict=True))
        r["warning"] = any(p < share * r["beds"] for p in proj)
    from cordon.regions.models import Region

    names = dict(Region.objects.filter(code__in=list(regions)).values_list("code", "name"))
    for r in regions.values():
        r["name"] = names.get(r["region"], r["region"])
    return {"dates": dates, "sites": site_rows, "regions": list(regions.values()), "warning_share": share,
            "unassigned_arrivals": [sum(n for (reg, d2), n in arrivals.items() if reg not in regions and d2 == d)
                                    for d in dates]}  # fmt: skip


def bed_summary(user: Any) -> dict:
    """The command dashboard's isolation tile: totals, today's releases, overdue transfers, and projected
    free beds for the next 7 days (all regions in view together)."""
    today = timezone.localdate()
    cap = capacity(user, today)
    pl = placements_for(user).filter(status=PlacementStatus.ACTIVE)
    total = sum(r["beds"] for r in cap["regions"])
    occupied = sum(r["occupied"] for r in cap["regions"])
    free = sum(r["free"] for r in cap["regions"])
    proj = [0] * 7
    for r in cap["regions"]:
        for i in range(7):
            proj[i] += r["projected_free"][i]
    for i in range(7):
        proj[i] -= sum(cap["unassigned_arrivals"][: i + 1])
    return {
        "beds_total": total,
        "beds_occupied": occupied,
        "beds_free": free,
        "placed_centralized": pl.filter(site__isnull=False).count(),
        "placed_home": pl.filter(site__isnull=True).count(),
        "releases_today": pl.filter(end_date__lte=today).count(),
        "transfers_overdue": transfers_for(user).filter(status__in=OPEN_TRANSFER, due_at__lt=timezone.now()).count(),
        "projected_free": [{"date": d.isoformat(), "free": proj[i]} for i, d in enumerate(cap["dates"])],
    }


def open_transfers(user: Any) -> QuerySet[Transfer]:
    return (transfers_for(user).filter(status__in=OPEN_TRANSFER)
            .select_related("person", "site", "trip", "contact").order_by("due_at", "pk"))  # fmt: skip


def tests_due(placement: Placement) -> list[PlacementTest]:
    return list(placement.tests.exclude(status=TestStatus.CANCELLED).order_by("due_date", "pk"))

