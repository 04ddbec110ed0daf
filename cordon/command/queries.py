"""Scoped reads of the command centre: tasks, the dashboard's figures, timeliness and the league table.

The dashboard reads only the pre-aggregated ``DailyFigure`` rows (dates × counties × metrics, a few
thousand rows for a province over two months) and indexed task counts: nothing on page load counts the
case or contact tables.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from cordon.command.models import (
    OPEN_STATUSES,
    Bulletin,
    DailyFigure,
    Headquarters,
    Inspection,
    Notification,
    RoundClock,
    Task,
    TaskKind,
    TipOff,
    WorkingGroup,
)
from cordon.core.policy import active_policy
from cordon.core.scoping import in_jurisdiction, jurisdiction_prefix, prefix_range, require, scope
from cordon.modules import optional
from cordon.regions.models import Level, Region

# --------------------------------------------------------------------------- tasks


def tasks_for(user: Any, *, status: str = "", overdue: bool = False, group: int | None = None,
              q: str = "") -> QuerySet[Task]:  # fmt: skip
    require(user, "view_command")
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Task.objects.none()
    # the jurisdiction's tasks, and those of the groups the user belongs to (a grid worker in a county group)
    mine = Q(**prefix_range("region_code", prefix)) | Q(assignee_group_id__in=user.working_groups.values("pk"))
    qs = Task.objects.filter(mine).select_related(
        "assignee_hq", "assignee_group__headquarters", "issuer_hq", "issuer_group__headquarters", "escalated_to"
    )
    if status == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif status:
        qs = qs.filter(status=status)
    if overdue:
        qs = qs.filter(status__in=OPEN_STATUSES, due_at__lt=timezone.now())
    if group:
        qs = qs.filter(assignee_group_id=group)
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(context_label__icontains=q))
    return qs


def get_task(user: Any, task_id: int) -> Task:
    require(user, "view_command")
    task = Task.objects.select_related("assignee_hq", "assignee_group", "issuer_hq", "issuer_group").filter(pk=task_id).first()
    member = task is not None and task.assignee_group_id and task.assignee_group.members.filter(pk=user.pk).exists()
    if task is None or not (in_jurisdiction(user, task.region_code) or in_jurisdiction(user, task.issuer_hq.region_id)
                            or member):
        raise Http404("no such task")
    return task


def assignable(user: Any) -> dict[str, Any]:
    """Where this user may dispatch to: the groups of their own headquarters and the headquarters (and
    their groups) one level down."""
    from cordon.command.services import hq_of_user

    hq = hq_of_user(user)
    children = list(Region.objects.filter(parent_id=hq.region_id, level__in=[Level.CITY, Level.COUNTY]))
    from cordon.command.services import ensure_headquarters

    child_hqs = [ensure_headquarters(r) for r in children]
    groups = list(WorkingGroup.objects.filter(headquarters__in=[hq, *child_hqs], active=True)
                  .select_related("headquarters"))  # fmt: skip
    return {"hq": hq, "child_hqs": child_hqs, "groups": groups}


def headquarters_for(user: Any) -> QuerySet[Headquarters]:
    require(user, "view_command")
    return scope(Headquarters.objects.select_related("region"), user, field="region_id")


def unread_count(user: Any) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notifications_for(user: Any, limit: int = 50) -> list[Notification]:
    return list(Notification.objects.filter(user=user).select_related("task")[:limit])


# --------------------------------------------------------------------------- dashboard


def _focus(user: Any, code: str | None) -> Region:
    """The region the dashboard shows: the user's own, or one inside it (drill-down)."""
    require(user, "view_command")
    own = user.region
    if own.level not in (Level.PROVINCE, Level.CITY, Level.COUNTY):
        own = Region.objects.get(code=own.code[:6])
    if not code or code == own.code:
        return own
    region = Region.objects.filter(code=code).first()
    if region is None or not region.code.startswith(own.prefix) or region.level not in (Level.PROVINCE, Level.CITY, Level.COUNTY):
        raise Http404("no such region in your jurisdiction")
    return region


def _figures(region: Region, *, day: date | None = None, since: date | None = None,
             metrics: list[str] | None = None) -> QuerySet:  # fmt: skip
    qs = DailyFigure.objects.filter(**prefix_range("region_code", region.prefix[:6]))
    if day is not None:
        qs = qs.filter(date=day)
    if since is not None:
        qs = qs.filter(date__gte=since)
    if metrics is not None:
        qs = qs.filter(metric__in=metrics)
    return qs


def _optional_summary(module: str, fn: str, user: Any) -> dict[str, Any] | None:
    mod = optional(module)
    func = getattr(mod, fn, None) if mod is not None else None
    if func is None:
        return None
    try:
        return dict(func(user))
    except Exception:  # a module that cannot answer must not take the whole wall screen down
        import logging

        logging.getLogger("cordon.command").exception("%s.%s failed", module, fn)
        return {"error": True}


def _cached(user: Any, name: str, region: Region, day: date, compute: Any) -> Any:
    """The dashboard's answers are shared for ``CORDON_DASHBOARD_CACHE_SECONDS`` (default 30; 0 turns it
    off) by everyone with the same jurisdiction and role looking at the same region and day: a wall screen
    and the laptops of a morning meeting polling every 60 s then cost one computation, not one each.
    The region was already checked against the user's jurisdiction by the caller."""
    from django.conf import settings
    from django.core.cache import cache

    ttl = getattr(settings, "CORDON_DASHBOARD_CACHE_SECONDS", None)
    ttl = int(os.environ.get("CORDON_DASHBOARD_CACHE_SECONDS", 30) if ttl is None else ttl)
    if ttl <= 0:
        return compute()
    key = f"cmd-dash:{name}:{user.region_id}:{user.role}:{region.code}:{day.isoformat()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, ttl)
    return value


def dashboard_summary(user: Any, code: str | None = None, day: date | None = None) -> dict[str, Any]:
    region = _focus(user, code)
    day = day or timezone.localdate()
    return _cached(user, "summary", region, day, lambda: _summary(user, region, day))


def _summary(user: Any, region: Region, day: date) -> dict[str, Any]:
    today = dict(_figures(region, day=day).values("metric").annotate(v=Sum("value")).values_list("metric", "v"))
    managed = dict(
        _figures(region, metrics=["managed_close", "managed_secondary", "managed_spacetime"])
        .values("metric").annotate(v=Sum("value")).values_list("metric", "v")
    )  # fmt: skip
    now = timezone.now()
    tasks = Task.objects.filter(**prefix_range("region_code", region.prefix))
    # grouped by ids on the task table alone (no join over every overdue task), names fetched for the top rows
    top = list(
        tasks.filter(status__in=OPEN_STATUSES, due_at__lt=now)
        .values("assignee_group_id", "assignee_hq_id").annotate(n=Count("id")).order_by("-n", "assignee_hq_id")[:12]
    )  # fmt: skip
    gnames = dict(WorkingGroup.objects.filter(pk__in=[r["assignee_group_id"] for r in top]).values_list("pk", "name"))
    hnames = dict(Headquarters.objects.filter(pk__in=[r["assignee_hq_id"] for r in top]).values_list("pk", "name"))
    overdue_by_group = [{"assignee_group__name": gnames.get(r["assignee_group_id"]), "assignee_hq__name": hnames.get(r["assignee_hq_id"]),
                         "n": r["n"]} for r in top]  # fmt: skip
    open_tasks = tasks.filter(status__in=OPEN_STATUSES).aggregate(
        open=Count("id"), overdue=Count("id", filter=Q(due_at__lt=now)), escalated=Count("id", filter=Q(escalation_level__gt=0))
    )  # fmt: skip
    cases = {}
    for cls in ("confirmed", "asymptomatic", "suspected"):
        cases[cls] = {
            "new": today.get(f"new_{cls}", 0),
            "local": today.get(f"new_{cls}_local", 0),
            "imported": today.get(f"new_{cls}_imported", 0),
            "under_control": today.get(f"new_{cls}_under_control", 0),
            "community": today.get(f"new_{cls}_community", 0),
        }
    return {
        "region": {"code": region.code, "name": region.name, "level": region.level},
        "date": day.isoformat(),
        "cases": cases,
        "converted": today.get("converted", 0),
        "contacts": {
            "close_managed": managed.get("managed_close", 0),
            "secondary_managed": managed.get("managed_secondary", 0),
            "new_close": today.get("new_contacts_close", 0),
            "new_secondary": today.get("new_contacts_secondary", 0),
        },
        "tasks": {**open_tasks, "overdue_by_group": [
            {"group": r["assignee_group__name"] or "—", "hq": r["assignee_hq__name"], "n": r["n"]} for r in overdue_by_group
        ]},
        "beds": _optional_summary("isolation.queries", "bed_summary", user),
        "screening": _optional_summary("screening.queries", "screening_summary", user),
    }


def tiles(user: Any, code: str | None = None, day: date | None = None) -> dict[str, Any]:
    """The jurisdiction's child regions as a grid of squares coloured by today's new cases."""
    region = _focus(user, code)
    day = day or timezone.localdate()
    return _cached(user, "tiles", region, day, lambda: _tiles(user, region, day))


def _tiles(user: Any, region: Region, day: date) -> dict[str, Any]:
    children = list(Region.objects.filter(parent_id=region.code, level__in=[Level.CITY, Level.COUNTY]).order_by("code"))
    width = 4 if region.level == Level.PROVINCE else 6
    counts: dict[str, int] = defaultdict(int)
    rows = _figures(region, day=day, metrics=["new_confirmed", "new_asymptomatic"]).values("region_code").annotate(
        v=Sum("value")
    )
    for r in rows:
        counts[r["region_code"][:width]] += r["v"]
    top = max(counts.values(), default=0)
    out = []
    for child in children:
        n = counts.get(child.code[:width], 0)
        heat = 0 if n == 0 else 1 + min(4, int(4 * n / top)) if top else 0
        out.append({"code": child.code, "name": child.name, "new": n, "heat": heat,
                    "drill": child.level != Level.COUNTY})  # fmt: skip
    parent = region.parent if region.parent_id and in_jurisdiction(user, region.parent_id) else None
    return {"region": {"code": region.code, "name": region.name}, "up": getattr(parent, "code", None), "tiles": out}


def epicurve(user: Any, code: str | None = None, days: int = 60, day: date | None = None) -> dict[str, Any]:
    """Daily new cases by report date (from the daily figures), with R and its band."""
    region = _focus(user, code)
    day = day or timezone.localdate()
    return _cached(user, f"epicurve{days}", region, day, lambda: _epicurve(region, day, days))


def _epicurve(region: Region, day: date, days: int) -> dict[str, Any]:
    from cordon.analytics.epicurve import build_epicurve

    start = day - timedelta(days=days - 1)
    rows = (_figures(region, since=start, metrics=["new_confirmed_local", "new_confirmed_imported",
                                                   "new_asymptomatic_local", "new_asymptomatic_imported"])
            .filter(date__lte=day).values("date", "metric").annotate(v=Sum("value")))  # fmt: skip
    # The figures are already counts per day: each series is expanded as day arrays (numpy, no Python loop
    # per case) so the analytics module's curve gives the zero-filled axis and the incompleteness flags.
    per: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r in rows:
        if r["v"] > 0:
            per[r["metric"].replace("new_", "")][0].append(np.datetime64(r["date"], "D"))
            per[r["metric"].replace("new_", "")][1].append(r["v"])
    names = ["confirmed_local", "confirmed_imported", "asymptomatic_local", "asymptomatic_imported"]
    out: dict[str, Any] = {"series": {}}
    for name in names:
        days_, counts = per[name]
        expanded = np.repeat(np.array(days_, dtype="datetime64[D]"), np.array(counts, dtype=np.int64))
        curve = build_epicurve(expanded, date_kind="report", start=start, end=day, as_of=day)
        out["dates"] = curve.iso_dates()
        out["series"][name] = [int(x) for x in curve.total]
    local = np.array(out["series"]["confirmed_local"]) + np.array(out["series"]["asymptomatic_local"])
    imported = np.array(out["series"]["confirmed_imported"]) + np.array(out["series"]["asymptomatic_imported"])
    out["rt"] = _rt(local, imported)
    return out


def bed_forecast(user: Any, code: str | None = None, day: date | None = None, horizon: int = 7) -> dict[str, Any]:
    """Cases and centralised-quarantine beds for the next days, as a band, against bed capacity.

    R comes from the curve's last window; each new case brings the recent number of close contacts per
    case (close contacts go to centralised quarantine under the policy) for the policy's quarantine days;
    beds already taken are the isolation module's own projection of its current placements."""
    region = _focus(user, code)
    day = day or timezone.localdate()
    return _cached(user, f"forecast{horizon}", region, day, lambda: _bed_forecast(user, region, day, horizon))


def _bed_forecast(user: Any, region: Region, day: date, horizon: int) -> dict[str, Any]:
    from cordon.analytics.forecast import forecast_beds, forecast_from_estimate
    from cordon.analytics.rt import discr_si, estimate_r

    curve = _epicurve(region, day, 60)
    local = np.array(curve["series"]["confirmed_local"]) + np.array(curve["series"]["asymptomatic_local"])
    imported = np.array(curve["series"]["confirmed_imported"]) + np.array(curve["series"]["asymptomatic_imported"])
    policy = active_policy()
    mean_si, sd_si = policy.get("cases.serial_interval_mean_days", None), policy.get("cases.serial_interval_sd_days", None)
    dates = [(day + timedelta(days=i + 1)).isoformat() for i in range(horizon)]
    if mean_si is None or local[-14:].sum() < MIN_CASES_FOR_R:
        return {"available": False, "reason": "too few recent local cases for a projection", "dates": dates}
    est = estimate_r(local, imported, mean_si=float(mean_si), std_si=float(sd_si))
    si = discr_si(np.arange(0, 31), float(mean_si), float(sd_si))
    cases = forecast_from_estimate(local + imported, si, est, horizon=horizon, n_paths=1000, seed=0)
    recent = dict(_figures(region, since=day - timedelta(days=13), metrics=["new_contacts_close", "new_confirmed",
                                                                            "new_asymptomatic"])
                  .filter(date__lte=day).values("metric").annotate(v=Sum("value")).values_list("metric", "v"))  # fmt: skip
    n_cases = (recent.get("new_confirmed", 0) or 0) + (recent.get("new_asymptomatic", 0) or 0)
    per_case = (recent.get("new_contacts_close", 0) or 0) / n_cases if n_cases else 0.0
    beds = _optional_summary("isolation.queries", "bed_summary", user)
    capacity = occupied = None
    if beds and not beds.get("error") and beds.get("beds_total"):
        capacity = int(beds["beds_total"])
        proj = [capacity - int(p["free"]) for p in beds.get("projected_free", [])][:horizon]
        occupied = proj + [proj[-1] if proj else 0] * (horizon - len(proj))
    bf = forecast_beds(cases, contacts_per_case=per_case, share_placed=1.0,
                       quarantine_days=int(policy.get("contacts.close.centralized_days")), placement_delay_days=1,
                       recent_cases=(local + imported)[-1:], occupied_by_current=occupied, capacity=capacity)  # fmt: skip
    return {"available": True, "dates": dates, "contacts_per_case": round(per_case, 2), "cases": cases.to_dict(),
            "beds": bf.to_dict(), "r_mean": round(float(est.mean[-1]), 3)}


MIN_CASES_FOR_R = 5  # local cases in a 7-day window below which R is not drawn (display rule, not policy)


def _rt(local: np.ndarray, imported: np.ndarray) -> dict[str, Any] | None:
    """R over 7-day windows with its 95 % band, from the policy's serial interval."""
    from cordon.analytics.rt import estimate_r

    policy = active_policy()
    mean_si, sd_si = policy.get("cases.serial_interval_mean_days", None), policy.get("cases.serial_interval_sd_days", None)
    if mean_si is None or sd_si is None or local.sum() + imported.sum() == 0 or local.size < 8:
        return None
    est = estimate_r(local, imported, mean_si=float(mean_si), std_si=float(sd_si))
    # A window with few cases shows only the prior (mean 5, wide): leave it out rather than draw it.
    cs = np.concatenate([[0], np.cumsum(local)])
    keep = [i for i in range(est.n_windows) if cs[est.t_end[i]] - cs[est.t_start[i] - 1] >= MIN_CASES_FOR_R]
    lo, hi = est.quantile(0.025), est.quantile(0.975)
    return {"t_end": [int(est.t_end[i]) for i in keep], "mean": [round(float(est.mean[i]), 3) for i in keep],
            "lower": [round(float(lo[i]), 3) for i in keep], "upper": [round(float(hi[i]), 3) for i in keep]}


# --------------------------------------------------------------------------- timeliness


CLOCKS = [
    ("report_to_investigation", "Report → investigation opened"),
    ("case_to_contacts", "Case → contacts identified"),
    ("identified_to_quarantine", "Identified → in quarantine"),
    ("pool_to_retested", "Positive pool → retested"),
    ("round_to_finished", "Screening round → area finished"),
]


def _clock_items(user: Any, region: Region, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """For each clock: one item per measured thing — region, label, start, end (or None), due."""
    from cordon.cases.models import Case
    from cordon.tracing.models import Contact

    policy = active_policy()
    pr = region.prefix
    out: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in CLOCKS}
    verify = timedelta(hours=float(policy.get("deadlines.cdc_verification_hours")))
    now = timezone.now()
    for cid, number, reg, reported, opened, cdue, cdone in (
        Case.objects.filter(reported_at__gte=since, **prefix_range("region_id", pr))
        .values_list("id", "number", "region_id", "reported_at", "investigation__opened_at",
                     "investigation__contacts_due_at", "investigation__contacts_done_at")
    ):  # fmt: skip
        out["report_to_investigation"].append({"region": reg, "label": number, "start": reported, "end": opened,
                                               "due": reported + verify, "ref": f"case:{cid}"})  # fmt: skip
        if cdue is not None:
            out["case_to_contacts"].append({"region": reg, "label": number, "start": reported, "end": cdone,
                                            "due": cdue, "ref": f"case:{cid}"})  # fmt: skip
    for pk, kind, reg, ident, quar, due, number in (
        Contact.objects.filter(identified_at__gte=since, kind__in=["close", "secondary"], **prefix_range("region_id", pr))
        .exclude(status__in=["proposed", "dismissed"])
        .values_list("id", "kind", "region_id", "identified_at", "quarantined_at", "transfer_due_at", "index_case__number")
    ):  # fmt: skip
        out["identified_to_quarantine"].append({"region": reg, "label": f"{kind} #{pk} ← {number}", "start": ident,
                                                "end": quar, "due": due, "ref": f"contact:{pk}"})  # fmt: skip
    for t in Task.objects.filter(kind=TaskKind.RETEST, issued_at__gte=since, **prefix_range("region_code", pr)):
        out["pool_to_retested"].append({"region": t.region_code, "label": t.context_label, "start": t.issued_at,
                                        "end": t.closed_at if t.status == "done" else None, "due": t.due_at,
                                        "ref": f"task:{t.pk}"})  # fmt: skip
    for rc in RoundClock.objects.filter(started_at__gte=since, **prefix_range("region_code", pr)):
        out["round_to_finished"].append({"region": rc.region_code, "label": rc.campaign_label, "start": rc.started_at,
                                         "end": rc.finished_at, "due": rc.due_at, "ref": f"round:{rc.pk}"})  # fmt: skip
    for items in out.values():
        for it in items:
            it["late"] = (it["end"] or now) > it["due"]
            it["open"] = it["end"] is None
    return out


def _summarise(items: list[dict[str, Any]]) -> dict[str, Any]:
    done = [(it["end"] - it["start"]).total_seconds() / 3600 for it in items if it["end"] is not None]
    decided = [it for it in items if it["end"] is not None or it["late"]]
    within = sum(1 for it in decided if not it["late"])
    return {
        "n": len(items),
        "median_hours": round(statistics.median(done), 2) if done else None,
        "share_within": round(within / len(decided), 4) if decided else None,
        "late": [{"label": it["label"], "region": it["region"], "open": it["open"], "ref": it["ref"],
                  "hours_late": round(((it["end"] or timezone.now()) - it["due"]).total_seconds() / 3600, 1)}
                 for it in items if it["late"]],
    }


def timeliness(user: Any, code: str | None = None, days: int = 30) -> dict[str, Any]:
    """Per clock: median time, share within the deadline, and the late items by label (case numbers and
    contact ids — never names); per child region, and per working group for the task clocks."""
    require(user, "view_command")
    region = _focus(user, code)
    since = timezone.now() - timedelta(days=days)
    items = _clock_items(user, region, since)
    children = list(Region.objects.filter(parent_id=region.code, level__in=[Level.CITY, Level.COUNTY]).order_by("code"))
    clocks = []
    for key, label in CLOCKS:
        row = {"key": key, "label": label, **_summarise(items[key]), "by_region": []}
        for child in children:
            sub = [it for it in items[key] if it["region"].startswith(child.prefix)]
            if sub:
                row["by_region"].append({"code": child.code, "name": child.name, **_summarise(sub)})
        clocks.append(row)
    # Per working group: the task clocks (every task's due time is a policy deadline or a dispatcher's).
    by_group = []
    gq = (Task.objects.filter(issued_at__gte=since, **prefix_range("region_code", region.prefix))
          .values("assignee_group__code", "assignee_group__name")
          .annotate(n=Count("id"), done=Count("id", filter=Q(status="done")),
                    late=Count("id", filter=Q(status="done", closed_at__gt=F_due()) | Q(status__in=OPEN_STATUSES, due_at__lt=timezone.now())))
          .order_by("assignee_group__code"))  # fmt: skip
    for r in gq:
        by_group.append({"group": r["assignee_group__name"] or "—", "code": r["assignee_group__code"] or "",
                         "n": r["n"], "done": r["done"], "late": r["late"],
                         "share_within": round(1 - r["late"] / r["n"], 4) if r["n"] else None})  # fmt: skip
    return {"region": {"code": region.code, "name": region.name}, "days": days, "clocks": clocks,
            "by_group": by_group, "league": league(items, children)}  # fmt: skip


def F_due():
    from django.db.models import F

    return F("due_at")


def league(items: dict[str, list[dict[str, Any]]], children: list[Region]) -> list[dict[str, Any]]:
    """Regions ranked by the share of all clocked items done within their deadline (then by fewest late)."""
    rows = []
    for child in children:
        sub = [it for k in items for it in items[k] if it["region"].startswith(child.prefix)]
        s = _summarise(sub)
        rows.append({"code": child.code, "name": child.name, "n": s["n"], "share_within": s["share_within"],
                     "late": len(s["late"])})  # fmt: skip
    rows.sort(key=lambda r: (-(r["share_within"] if r["share_within"] is not None else 1.0), r["late"], r["code"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


# --------------------------------------------------------------------------- inspections, bulletins, tip-offs


def inspections_for(user: Any) -> QuerySet[Inspection]:
    require(user, "view_command")
    return scope(Inspection.objects.prefetch_related("actions__tasks"), user, field="region_code")


def bulletins_for(user: Any) -> QuerySet[Bulletin]:
    require(user, "view_command")
    prefix = jurisdiction_prefix(user) or ""
    return Bulletin.objects.filter(**prefix_range("region_code", prefix[:6] or "x"))


def published_bulletins() -> QuerySet[Bulletin]:
    return Bulletin.objects.filter(status__in=[Bulletin.Status.PUBLISHED, Bulletin.Status.SUPERSEDED])


def tipoffs_for(user: Any) -> QuerySet[TipOff]:
    require(user, "triage_tipoffs")
    return scope(TipOff.objects.select_related("task"), user, field="region_code")


def public_risk_areas() -> list[dict[str, Any]] | None:
    """The control module's public list of current risk areas, if a module provides one."""
    mod = optional("control.queries")
    func = getattr(mod, "public_risk_areas", None) if mod is not None else None
    return list(func()) if func is not None else None
