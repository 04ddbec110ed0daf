"""Scoped reads of cases and investigations: a case is visible to the jurisdiction managing it (Case.region)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from cordon.cases.models import Case, CaseStatus, Classification, Investigation, Reclassification
from cordon.core.scoping import prefix_range, require, scope
from cordon.people.validation import FieldError


def cases_for(user: Any) -> QuerySet[Case]:
    require(user, "view_cases")
    return scope(Case.objects.all(), user)


def _day_bounds(d: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(d, time.min))
    return start, start + timedelta(days=1)


def search_cases(user: Any, *, classification: str = "", status: str = "", region: str = "",
                 date_from: date | None = None, date_to: date | None = None, q: str = "") -> QuerySet[Case]:  # fmt: skip
    """Filters of the case list; dates are report dates in the deployment's zone."""
    qs = cases_for(user)
    if classification:
        if classification not in Classification.values:
            raise FieldError("classification", classification, f"expected one of {', '.join(Classification.values)}")
        qs = qs.filter(classification=classification)
    if status:
        if status not in CaseStatus.values:
            raise FieldError("status", status, f"expected one of {', '.join(CaseStatus.values)}")
        qs = qs.filter(status=status)
    if region:
        if not region.isdigit():
            raise FieldError("region", region, "not a region code")
        from cordon.regions.models import Region

        reg = Region.objects.filter(code=region).first()
        if reg is None:
            raise FieldError("region", region, "unknown region code")
        qs = qs.filter(**prefix_range("region_id", reg.prefix))
    if date_from:
        qs = qs.filter(reported_at__gte=_day_bounds(date_from)[0])
    if date_to:
        qs = qs.filter(reported_at__lt=_day_bounds(date_to)[1])
    q = (q or "").strip()
    if q:
        qs = qs.filter(number__startswith=q)
    return qs


def get_case(user: Any, case_id: int) -> Case:
    try:
        return cases_for(user).select_related("person", "region", "investigation", "source_case").get(pk=case_id)
    except (Case.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such case in your jurisdiction") from exc


def investigations_for(user: Any, *, open_only: bool = True) -> QuerySet[Investigation]:
    require(user, "view_cases")
    qs = scope(Investigation.objects.select_related("case", "investigator"), user)
    if open_only:
        qs = qs.filter(status=Investigation.Status.OPEN)
    return qs.order_by("complete_due_at")


def overdue(inv: Investigation, now: datetime | None = None) -> list[str]:
    """Which of the investigation's clocks are past due and not done."""
    now = now or timezone.now()
    late = []
    for name, due, done in (("trajectory", inv.trajectory_due_at, inv.trajectory_published_at),
                            ("preliminary", inv.preliminary_due_at, inv.preliminary_report_at),
                            ("contacts", inv.contacts_due_at, inv.contacts_done_at),
                            ("complete", inv.complete_due_at, inv.closed_at)):  # fmt: skip
        if (done is None and due < now) or (done is not None and done > due):
            late.append(name)
    return late


def daily_figures(user: Any, day: date, region: str = "") -> dict[str, int]:
    """Figures of one day (0–24 h local) for the bulletin: new cases are people newly reported; a conversion
    (asymptomatic → confirmed) counts among confirmed of the day and as a conversion, never as a new case."""
    start, end = _day_bounds(day)
    cases = cases_for(user)
    if region:
        cases = cases.filter(**prefix_range("region_id", region))
    reported = cases.filter(reported_at__gte=start, reported_at__lt=end)
    rec = Reclassification.objects.filter(case__in=cases, at__gte=start, at__lt=end)
    conv = rec.filter(from_classification=Classification.ASYMPTOMATIC, to_classification=Classification.CONFIRMED)
    return {
        "new_cases": reported.count(),
        "new_confirmed": rec.filter(to_classification=Classification.CONFIRMED).exclude(
            from_classification=Classification.CONFIRMED).count(),
        "new_confirmed_converted": conv.count(),
        "new_asymptomatic": reported.filter(Q(reclassifications__from_classification="",
                                              reclassifications__to_classification=Classification.ASYMPTOMATIC)).count(),
        "found_under_control": reported.filter(found_under_control=True).count(),
        "imported": reported.exclude(origin="local").count(),
        "discharged": cases.filter(discharged_at__gte=start, discharged_at__lt=end).count(),
    }  # fmt: skip


def chain_case_ids(case: Case, limit: int = 20000) -> set[int]:
    """Every case linked to this one through source links, in either direction (the transmission chain)."""
    seen = {case.pk}
    frontier = {case.pk}
    while frontier and len(seen) < limit:
        ups = set(Case.objects.filter(pk__in=frontier, source_case__isnull=False).values_list("source_case_id", flat=True))
        downs = set(Case.objects.filter(source_case_id__in=frontier).values_list("pk", flat=True))
        frontier = (ups | downs) - seen
        seen |= frontier
    return seen
