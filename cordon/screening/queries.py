"""Scoped reads of the screening module: campaigns, coverage (应检尽检), turnaround, recall lists, summary.

Coverage runs set-based in SQL: the target is the registry's people under the campaign's regions, the
sampled are those with a registration in the campaign, and the untested are the anti-join of the two. No
list is ever built in Python from the whole registry; the untested list pages by key.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from cordon.core.policy import active_policy
from cordon.core.roles import has_capability
from cordon.core.scoping import jurisdiction_prefix, prefix_range, require, scope
from cordon.people.models import Person
from cordon.regions.models import LEVEL_ORDER, PREFIX_LENGTH, Level, Region
from cordon.screening import coverage as cov
from cordon.screening.models import (
    Campaign,
    CampaignArea,
    CoverageState,
    Hold,
    Lab,
    Registration,
    Result,
    Retest,
    Site,
    Tube,
    TubeResult,
)


def _ancestor_prefixes(code: str) -> list[str]:
    return [code[:n] for n in (2, 4, 6, 9, 12, 15) if n <= len(code)]


def campaigns_for(user: Any) -> QuerySet[Campaign]:
    """Campaigns with a covered region inside the user's jurisdiction, or covering the user's region."""
    require(user, "view_screening")
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Campaign.objects.none()
    inside = Q(**prefix_range("areas__region_id", prefix))
    covering = Q(areas__region__prefix__in=_ancestor_prefixes(user.region_id))
    return Campaign.objects.filter(pk__in=Campaign.objects.filter(inside | covering).values("pk")).select_related(
        "region"
    )


def get_campaign(user: Any, campaign_id: int) -> Campaign:
    try:
        return campaigns_for(user).get(pk=campaign_id)
    except (Campaign.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such campaign in your jurisdiction") from exc


def _area_ranges(user: Any, campaign: Campaign) -> list[tuple[str, str, CampaignArea]]:
    """(lo, hi) code ranges of the campaign's regions, narrowed to the user's jurisdiction."""
    prefix = jurisdiction_prefix(user) or ""
    out = []
    for a in campaign.areas.select_related("region").order_by("region_id"):
        p = a.region.prefix
        if p.startswith(prefix):
            eff = p
        elif prefix.startswith(p):
            eff = prefix
        else:
            continue
        r = prefix_range("x", eff)
        out.append((r["x__gte"], r["x__lt"], a))
    # A covered region inside another (a sealed township with its own pool size inside a county) is counted
    # with the region around it, never twice. Of equal ranges, the area that is exactly that region names it.
    out.sort(key=lambda r: (r[0], r[2].region.prefix != r[0]))
    kept: list[tuple[str, str, CampaignArea]] = []
    for lo, hi, a in out:
        if any(klo <= lo and hi <= khi for klo, khi, _k in kept):
            continue
        kept = [k for k in kept if not (lo <= k[0] and k[1] <= hi)]
        kept.append((lo, hi, a))
    return kept


def target_people(user: Any, campaign: Campaign) -> QuerySet[Person]:
    require(user, "view_screening")
    ranges = _area_ranges(user, campaign)
    if not ranges:
        return Person.objects.none()
    q = Q()
    for lo, hi, _a in ranges:
        q |= Q(region_id__gte=lo, region_id__lt=hi)
    return scope(Person.objects.filter(q), user)


def untested(user: Any, campaign: Campaign, region: str = "") -> QuerySet[Person]:
    """People in the round's regions with no registration in it: the list grid workers chase."""
    qs = target_people(user, campaign)
    if region:
        qs = qs.filter(**prefix_range("region_id", region))
    return qs.exclude(Exists(Registration.objects.filter(campaign=campaign, person_id=OuterRef("pk"))))


def carried_over(user: Any, campaign: Campaign) -> QuerySet[Person]:
    """Untested in the previous round: carried into this one."""
    if campaign.previous_id is None:
        return Person.objects.none()
    return untested(user, campaign.previous).filter(
        pk__in=target_people(user, campaign).values("pk")
    )


def _child_len(code: str) -> int:
    level = Region.objects.filter(code=code).values_list("level", flat=True).first()
    if level is None or level == Level.GRID:
        return 15
    return PREFIX_LENGTH[LEVEL_ORDER[LEVEL_ORDER.index(Level(level)) + 1]]


def coverage(user: Any, campaign: Campaign, parent: str = "") -> list[dict[str, Any]]:
    """Target vs sampled, one row per campaign region (or per child of ``parent``), from the pre-aggregated
    counts (``coverage.py``) narrowed to the user's jurisdiction."""
    ranges = _area_ranges(user, campaign)
    if parent:
        if not any(lo <= parent < hi for lo, hi, _a in ranges):
            return []
        region = Region.objects.filter(code=parent).first()
        pr = prefix_range("x", region.prefix if region else parent)
        groups = [cov.Group(pr["x__gte"], pr["x__lt"], _child_len(parent))]
    else:
        groups = [cov.Group(lo, hi) for lo, hi, _a in ranges]
    rows = cov.counts(campaign, groups)
    if not parent:  # every covered region shows, even before anyone there is registered
        seen = {r["key"] for r in rows}
        rows += [{"key": g.lo, "target": 0, "sampled": 0, "households": 0} for g in groups if g.lo not in seen]
        rows.sort(key=lambda r: r["key"])
    codes = {r["key"] for r in rows}
    # Keys are codes (children) or range starts (areas): name them.
    by_prefix = {a.region.prefix: a.region for _lo, _hi, a in ranges}
    names = {r.code: r for r in Region.objects.filter(code__in=codes)}
    out = []
    for r in rows:
        region = names.get(r["key"]) or by_prefix.get(r["key"])
        if region is None:
            region = Region.objects.filter(prefix=r["key"]).order_by("code").first()
        out.append({
            "code": region.code if region else r["key"],
            "name": region.name if region else r["key"],
            "level": region.level if region else "",
            "target": r["target"],
            "sampled": r["sampled"],
            "untested": r["target"] - r["sampled"],
            "share": (r["sampled"] / r["target"]) if r["target"] else 0.0,
            "households": r["households"],
        })  # fmt: skip
    return out


def totals(user: Any, campaign: Campaign) -> dict[str, Any]:
    """Campaign-wide figures for the board and the coverage page, with the time the stored counts were
    last brought forward."""
    rows = coverage(user, campaign)
    target = sum(r["target"] for r in rows)
    sampled = sum(r["sampled"] for r in rows)
    state = CoverageState.objects.filter(campaign=campaign).only("refreshed_at").first()
    return {"target": target, "sampled": sampled, "untested": target - sampled,
            "share": sampled / target if target else 0.0, "households": sum(r["households"] for r in rows),
            "as_of": state.refreshed_at if state else None}  # fmt: skip


def tubes_for(user: Any, campaign: Campaign | None = None) -> QuerySet[Tube]:
    require(user, "view_screening")
    qs = scope(Tube.objects.all(), user)
    return qs.filter(campaign=campaign) if campaign is not None else qs


def sites_for(user: Any) -> QuerySet[Site]:
    require(user, "view_screening")
    return scope(Site.objects.all(), user)


def get_site(user: Any, site_id: int) -> Site:
    try:
        return sites_for(user).select_related("region").get(pk=site_id)
    except (Site.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such site in your jurisdiction") from exc


def labs_for(user: Any) -> QuerySet[Lab]:
    """Labs serve a whole city: visible to anyone whose jurisdiction overlaps the lab's region."""
    require(user, "view_screening")
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Lab.objects.none()
    return Lab.objects.filter(Q(**prefix_range("region_id", prefix)) |
                              Q(region_id__in=[c.ljust(6, "0") if len(c) < 6 else c
                                               for c in _ancestor_prefixes(user.region_id)]))  # fmt: skip


def get_lab(user: Any, code: str) -> Lab:
    lab = labs_for(user).filter(code=code).first()
    if lab is None:
        raise Http404("no such lab")
    return lab


def site_throughput(user: Any, campaign: Campaign | None = None) -> list[dict[str, Any]]:
    sites = list(sites_for(user).select_related("region"))
    regs = Registration.objects.filter(site__in=sites)
    if campaign is not None:
        regs = regs.filter(campaign=campaign)
    counts = {r["site_id"]: r for r in regs.values("site_id").annotate(n=Count("id"), first=Min("collected_at"),
                                                                       last=Max("collected_at"))}  # fmt: skip
    tubes = dict(Tube.objects.filter(site__in=sites, **({"campaign": campaign} if campaign else {}))
                 .values("site_id").annotate(n=Count("id")).values_list("site_id", "n"))  # fmt: skip
    out = []
    for s in sites:
        c = counts.get(s.pk, {})
        n, first, last = c.get("n", 0), c.get("first"), c.get("last")
        hours = max((last - first).total_seconds() / 3600, 0.25) if first and last else None
        out.append({"site": s, "swabs": n, "tubes": tubes.get(s.pk, 0), "per_hour": round(n / hours) if hours else 0,
                    "last": last})  # fmt: skip
    return out


def pace(user: Any, campaign: Campaign, now: datetime | None = None) -> dict[str, Any]:
    """Registrations per hour over the last hour and since the start; projected finish at the recent pace."""
    now = now or timezone.now()
    t = totals(user, campaign)
    regs = scope(Registration.objects.filter(campaign=campaign), user)
    last_hour = regs.filter(collected_at__gte=now - timedelta(hours=1), collected_at__lte=now).count()
    elapsed = max((now - campaign.starts_at).total_seconds() / 3600, 1 / 60)
    overall = t["sampled"] / elapsed
    rate = last_hour or overall
    remaining = t["untested"]
    finish = now + timedelta(hours=remaining / rate) if rate and remaining else (now if not remaining else None)
    from cordon.screening.services import plan

    return {**t, "per_hour_last": last_hour, "per_hour_overall": round(overall), "projected_finish": finish,
            "late": bool(finish and finish > campaign.deadline) or (finish is None and remaining > 0),
            "plan": plan(t["target"])}  # fmt: skip


def turnaround(user: Any, campaign: Campaign, now: datetime | None = None) -> dict[str, Any]:
    """collected → received → resulted per lab (median, 90th percentile, hours) and tubes past the clock."""
    now = now or timezone.now()
    ta = active_policy().screening.turnaround_hours
    tubes = tubes_for(user, campaign)
    labs: dict[Any, dict[str, list[float]]] = {}
    for lab_id, opened, received, resulted in tubes.filter(resulted_at__isnull=False).values_list(
        "lab_id", "opened_at", "received_at", "resulted_at"
    ).iterator(chunk_size=5000):
        d = labs.setdefault(lab_id, {"receive": [], "result": [], "total": []})
        if received:
            d["receive"].append((received - opened).total_seconds() / 3600)
            d["result"].append((resulted - received).total_seconds() / 3600)
        d["total"].append((resulted - opened).total_seconds() / 3600)
    names = {lab.pk: lab for lab in Lab.objects.filter(pk__in=[k for k in labs if k])}
    today = timezone.localdate(now)
    rows = []
    for lab_id, d in labs.items():
        lab = names.get(lab_id)
        used = (tubes.filter(lab_id=lab_id, resulted_at__date=today).count() if lab else 0)
        rows.append({"lab": lab, "tubes": len(d["total"]), **{f"{k}_median": _q(v, 0.5) for k, v in d.items()},
                     **{f"{k}_p90": _q(v, 0.9) for k, v in d.items()},
                     "capacity": lab.daily_capacity if lab else 0, "used_today": used,
                     "capacity_share": (used / lab.daily_capacity) if lab and lab.daily_capacity else None})  # fmt: skip
    pending = tubes.filter(resulted_at__isnull=True)
    overdue = pending.filter(
        Q(capacity__gt=1, opened_at__lt=now - timedelta(hours=float(ta.pooled)))
        | Q(capacity=1, opened_at__lt=now - timedelta(hours=float(ta.single)))
    )
    return {"labs": rows, "pending": pending.count(), "overdue_count": overdue.count(),
            "overdue": list(overdue.select_related("site", "lab").order_by("opened_at")[:100]),
            "pooled_hours": float(ta.pooled), "single_hours": float(ta.single)}  # fmt: skip


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 2)


def overdue_due(tube: Tube) -> datetime:
    ta = active_policy().screening.turnaround_hours
    return tube.opened_at + timedelta(hours=float(ta.pooled if tube.capacity > 1 else ta.single))


def retests_for(user: Any, campaign: Campaign | None = None, reason: str = "", open_only: bool = True) -> QuerySet:
    require(user, "view_screening")
    qs = scope(Retest.objects.all(), user).select_related("person", "source_tube", "retest_tube")
    if campaign is not None:
        qs = qs.filter(campaign=campaign)
    if reason:
        qs = qs.filter(reason=reason)
    if open_only:
        qs = qs.filter(status__in=[Retest.Status.PENDING, Retest.Status.SAMPLED])
    return qs


def get_retest(user: Any, retest_id: int) -> Retest:
    try:
        return retests_for(user, open_only=False).get(pk=retest_id)
    except (Retest.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such retest in your jurisdiction") from exc


def positive_pools(user: Any, campaign: Campaign) -> list[dict[str, Any]]:
    """Positive pools with their members' state and the clock of the slowest open retest."""
    out = []
    # Found through their positive result versions (a partial index of a handful of rows); the tube's current
    # result then leaves out a pool corrected to negative since. No index of the tube covers its result.
    ever = TubeResult.objects.filter(result=Result.POSITIVE).values("tube_id")
    pools = tubes_for(user, campaign).filter(pk__in=ever, result=Result.POSITIVE, capacity__gt=1)
    for t in pools.select_related("site", "lab"):
        retests = list(Retest.objects.filter(source_tube=t, reason=Retest.Reason.POSITIVE_POOL))
        open_ = [r for r in retests if r.status in (Retest.Status.PENDING, Retest.Status.SAMPLED)]
        out.append({
            "tube": t, "members": len(retests), "open": len(open_),
            "negative": sum(r.status == Retest.Status.NEGATIVE for r in retests),
            "positive": sum(r.status == Retest.Status.POSITIVE for r in retests),
            "held": Hold.objects.filter(tube=t, status=Hold.Status.ACTIVE).count(),
            "due": min((r.due_at for r in open_), default=None),
        })  # fmt: skip
    out.sort(key=lambda d: (d["open"] == 0, d["due"] or timezone.now()))
    return out


def latest_campaign(user: Any) -> Campaign | None:
    return campaigns_for(user).filter(status=Campaign.Status.RUNNING).order_by("-starts_at", "-pk").first()


def screening_summary(user: Any) -> dict[str, Any]:
    """For the command dashboard: the latest running campaign in the user's jurisdiction."""
    empty = {"campaign_id": None, "campaign_name": None, "target": None, "sampled": None, "share": None,
             "tubes_pending": None, "positive_pools_open": None, "retests_overdue": None, "deadline": None}  # fmt: skip
    if not has_capability(user, "view_screening"):
        return empty
    c = latest_campaign(user)
    if c is None:
        return empty
    t = totals(user, c)
    now = timezone.now()
    open_retests = retests_for(user, c, reason=Retest.Reason.POSITIVE_POOL)
    return {
        "campaign_id": c.pk,
        "campaign_name": str(c),
        "target": t["target"],
        "sampled": t["sampled"],
        "share": t["share"],
        "tubes_pending": tubes_for(user, c).filter(resulted_at__isnull=True).count(),
        "positive_pools_open": open_retests.values("source_tube_id").distinct().count(),
        "retests_overdue": retests_for(user, c).filter(due_at__lt=now).count(),
        "deadline": c.deadline,
    }


def get_tube(user: Any, barcode: str) -> Tube:
    try:
        return tubes_for(user).select_related("site", "lab", "campaign").get(barcode=barcode)
    except (Tube.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such tube in your jurisdiction") from exc


def household_key(person: Person) -> tuple[str, str]:
    """One household: the same address in the same grid. Someone with no address is a household alone."""
    return (person.region_id, person.address.strip() or f"#{person.pk}")


def tube_households(user: Any, tubes: list[Tube]) -> dict[int, dict[str, Any]]:
    """Each tube's members grouped by household, masked; members living outside the user's jurisdiction are
    counted but not listed."""
    from cordon.people.queries import masked

    require(user, "view_people")
    prefix = jurisdiction_prefix(user) or "\x00"
    out: dict[int, dict[str, Any]] = {t.pk: {"households": [], "hidden": 0, "count": 0} for t in tubes}
    groups: dict[int, dict[tuple[str, str], list[Person]]] = {t.pk: {} for t in tubes}
    regs = (Registration.objects.filter(tube__in=[t.pk for t in tubes]).select_related("person", "person__region")
            .order_by("tube_id", "collected_at", "pk"))  # fmt: skip
    for r in regs:
        p = r.person
        key = household_key(p)
        groups[r.tube_id].setdefault(key, []).append(p)
    for tube_id, by_household in groups.items():
        d = out[tube_id]
        d["count"] = len(by_household)
        for key, members in by_household.items():
            visible = [m for m in members if m.region_id.startswith(prefix)]
            d["hidden"] += len(members) - len(visible)
            if visible:
                d["households"].append({"region": visible[0].region, "address": masked(visible[0])["address"],
                                        "members": [masked(m) for m in visible], "key": key})  # fmt: skip
    return out


def household_registry(user: Any, campaign: Campaign, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """For the households in a tube: how many people the registry holds at that address and grid, and how many
    of them have been sampled in the round (a household tube should carry them all)."""
    prefix = jurisdiction_prefix(user) or "\x00"
    wanted = [(r, a) for r, a in keys if not a.startswith("#") and r.startswith(prefix)]
    if not wanted:
        return {}
    at = Q()
    for region_id, address in wanted:
        at |= Q(region_id=region_id, address=address)
    swabbed = Exists(Registration.objects.filter(campaign=campaign, person_id=OuterRef("pk")))
    rows = (Person.objects.filter(at).values("region_id", "address")
            .annotate(registry=Count("id"), sampled=Count("id", filter=Q(swabbed))))  # fmt: skip
    counts = {(r["region_id"], r["address"]): {"registry": r["registry"], "sampled": r["sampled"]} for r in rows}
    return {k: counts.get(k, {"registry": 0, "sampled": 0}) for k in wanted}
