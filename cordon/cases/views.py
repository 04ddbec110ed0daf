"""Thin views of the cases app: parse, call one query or service, render."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cordon.cases import forms, queries, services
from cordon.cases.models import CaseStatus, Classification, Exposure, FoundBy, Origin, Severity
from cordon.core.pagination import BadCursor, paginate
from cordon.core.policy import active_policy
from cordon.core.roles import has_capability
from cordon.core.scoping import require
from cordon.people import queries as people_q
from cordon.people.validation import FieldError
from cordon.tracing import graph
from cordon.tracing import queries as tracing_q
from cordon.tracing.models import ContactKind, ContactStatus
from cordon.tracing.services import schedule_for


def action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A POST action: on a refused input, say which field and why, and go back to the page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except FieldError as exc:
            messages.error(request, _("%(field)s: %(reason)s") % {"field": exc.field, "reason": _(exc.reason)})
        except PermissionDenied as exc:
            messages.error(request, _("Not allowed: %(reason)s") % {"reason": str(exc) or _("permission denied")})
        return redirect(request.META.get("HTTP_REFERER") or reverse("cases:list"))

    return login_required(require_POST(wrapper))


@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    g = request.GET
    filters = {k: g.get(k, "").strip() for k in ("classification", "status", "region", "date_from", "date_to", "q")}
    error = ""
    try:
        qs = queries.search_cases(request.user, classification=filters["classification"], status=filters["status"],
                                  region=filters["region"], date_from=forms.day(g, "date_from"),
                                  date_to=forms.day(g, "date_to"), q=filters["q"])  # fmt: skip
        qs = qs.select_related("person", "region", "investigation")
        rows, nxt = paginate(qs, g.get("cursor"), 50, newest_first=True)
    except (FieldError, BadCursor) as exc:
        rows, nxt, error = [], None, str(exc)
    context = {
        "rows": [{"case": c, "person": people_q.masked(c.person)} for c in rows],
        "next_cursor": nxt,
        "filters": filters,
        "query": "&".join(f"{k}={v}" for k, v in filters.items() if v),
        "error": error,
        "classifications": Classification.choices,
        "statuses": CaseStatus.choices,
        "can_write": has_capability(request.user, "write_cases"),
    }
    template = "cases/case_rows.html" if request.headers.get("HX-Request") else "cases/case_list.html"
    return render(request, template, context)


@login_required
def board(request: HttpRequest) -> HttpResponse:
    invs = list(queries.investigations_for(request.user).select_related("case__person")[:500])
    now = timezone.now()
    rows = [{"inv": i, "late": queries.overdue(i, now), "person": people_q.masked(i.case.person),
             "clocks": [(i.trajectory_due_at, i.trajectory_published_at), (i.contacts_due_at, i.contacts_done_at),
                        (i.preliminary_due_at, i.preliminary_report_at), (i.complete_due_at, i.closed_at)]}
            for i in invs]  # fmt: skip
    return render(request, "cases/board.html", {"rows": rows, "late_count": sum(1 for r in rows if r["late"])})


def _report_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    q = request.GET.get("q", "").strip()
    people = [people_q.masked(p) for p in people_q.search_people(request.user, q)[:20]] if q else []
    return {"q": q, "people": people, "classifications": [c for c in Classification.choices if c[0] != "excluded"],
            "found_by": FoundBy.choices, "origins": Origin.choices, "severities": Severity.choices,
            "default_region": request.user.region_id, "now": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "picked": request.GET.get("person", ""), **extra}  # fmt: skip


@login_required
def report(request: HttpRequest) -> HttpResponse:
    require(request.user, "write_cases")
    if request.method != "POST":
        return render(request, "cases/report.html", _report_context(request))
    p = request.POST
    try:
        pid = forms.integer(p, "person_id")
        if pid:
            person = people_q.get_person(request.user, pid)
        else:
            from cordon.tracing.services import match_or_create_person

            person, _created = match_or_create_person(request.user, forms.person_data(p, "new_"),
                                                      default_region=request.user.region_id)  # fmt: skip
        case = services.report_case(
            request.user, person, classification=forms.text(p, "classification", required=True),
            region_code=forms.text(p, "region_code", required=True), found_by=forms.text(p, "found_by", required=True),
            found_under_control=p.get("found_under_control") == "on", origin=forms.text(p, "origin") or "local",
            origin_detail=forms.text(p, "origin_detail"), onset_date=forms.day(p, "onset_date"),
            sampled_at=forms.when(p, "sampled_at"), first_positive_at=forms.when(p, "first_positive_at"),
            reported_at=forms.when(p, "reported_at"), diagnosed_at=forms.when(p, "diagnosed_at"),
            severity=forms.text(p, "severity") or None, hospital=forms.text(p, "hospital", max_len=100))  # fmt: skip
    except FieldError as exc:
        messages.error(request, _("%(field)s: %(reason)s") % {"field": exc.field, "reason": _(exc.reason)})
        return render(request, "cases/report.html", _report_context(request, posted=p), status=422)
    messages.success(request, _("Case %(number)s reported; its investigation is open.") % {"number": case.number})
    return redirect("cases:detail", case.pk)


def _timeline(case: Any, contacts: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"at": case.reported_at, "what": _("Reported"), "detail": case.get_found_by_display()}]
    if case.onset_date:
        onset = timezone.make_aware(datetime.combine(case.onset_date, time.min))
        items.append({"at": onset, "what": _("Symptom onset"), "detail": ""})
    if case.sampled_at:
        items.append({"at": case.sampled_at, "what": _("Sampled"), "detail": ""})
    for r in case.reclassifications.all():
        if r.from_classification:
            items.append({"at": r.at, "what": _("Reclassified"), "detail": f"{r.from_classification} → {r.to_classification} ({r.reason})",
                          "conversion": r.is_conversion})  # fmt: skip
    for t in case.tests.all():
        items.append({"at": t.sampled_at, "what": _("Test"), "detail": (_("positive") if t.positive else _("negative"))
                      + (f" Ct N {t.ct_n} / ORF1ab {t.ct_orf1ab}" if t.ct_n or t.ct_orf1ab else "")})  # fmt: skip
    for e in case.exposures.all():
        items.append({"at": e.start, "what": _("Exposure"), "detail": e.place})
    inv = case.investigation
    for label, value in ((_("Trajectory published"), inv.trajectory_published_at),
                         (_("Preliminary report"), inv.preliminary_report_at),
                         (_("Contacts transferred"), inv.contacts_done_at), (_("Investigation closed"), inv.closed_at)):  # fmt: skip
        if value:
            items.append({"at": value, "what": label, "detail": ""})
    if case.discharged_at:
        items.append({"at": case.discharged_at, "what": _("Discharged"), "detail": ""})
    if contacts:
        items.append({"at": min(c.identified_at for c in contacts), "what": _("First contact identified"),
                      "detail": _("%(n)d contacts in all") % {"n": len(contacts)}})  # fmt: skip
    return sorted(items, key=lambda i: i["at"])


@login_required
def detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    inv = case.investigation
    policy = active_policy()
    contacts = list(tracing_q.contacts_for(request.user).filter(index_case=case).select_related("person", "via")
                    .order_by("kind", "pk")[:1000])  # fmt: skip
    ok, why = services.discharge_check(case, policy)
    labels = {s.code: (s.zh if request.LANGUAGE_CODE == "zh-hans" else s.en) for s in policy.contacts.settings}
    chain = graph.chain_data(request.user, queries.chain_case_ids(case), focus=case.pk)
    context = {
        "case": case,
        "inv": inv,
        "person": people_q.masked(case.person),
        "late": queries.overdue(inv),
        "clocks": [(_("Trajectory published"), inv.trajectory_due_at, inv.trajectory_published_at, "trajectory"),
                   (_("Contacts transferred"), inv.contacts_due_at, inv.contacts_done_at, "contacts"),
                   (_("Preliminary report"), inv.preliminary_due_at, inv.preliminary_report_at, "preliminary"),
                   (_("Investigation complete"), inv.complete_due_at, inv.closed_at, None)],
        "exposures": list(case.exposures.all()),
        "contacts": [{"c": c, "person": people_q.masked(c.person), "setting": labels.get(c.setting, c.setting),
                      "schedule": schedule_for(c, policy)} for c in contacts],
        "close_contacts": [c for c in contacts if c.kind == ContactKind.CLOSE and c.status not in
                           (ContactStatus.DISMISSED, ContactStatus.PROPOSED)],
        "settings_list": [(s.code, labels[s.code]) for s in policy.contacts.settings],
        "secondary_enabled": policy.contacts.secondary.enabled,
        "secondary_settings": [(code, labels.get(code, code)) for code in policy.contacts.secondary.settings],
        "transports": Exposure.Transport.choices,
        "classifications": [c for c in Classification.choices if c[0] != case.classification],
        "discharge_ok": ok,
        "discharge_why": why,
        "timeline": _timeline(case, contacts),
        "chain": chain,
        "run": tracing_q.latest_run(case),
        "can_write": has_capability(request.user, "write_cases") and case.status != CaseStatus.CLOSED,
        "policy": policy,
        "lookback_days": policy.contacts.close.lookback_days,
        "now": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "reclassifications": list(case.reclassifications.all()),
        "tests": list(case.tests.all()),
    }
    return render(request, "cases/detail.html", context)


@action
def reclassify(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    services.reclassify(request.user, case, forms.text(request.POST, "to", required=True),
                        forms.text(request.POST, "reason", required=True))  # fmt: skip
    return redirect("cases:detail", case.pk)


@action
def add_test(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    p = request.POST
    services.record_case_test(request.user, case, sampled_at=forms.when(p, "sampled_at", required=True),
                              positive=p.get("positive") == "on", ct_n=forms.number(p, "ct_n"),
                              ct_orf1ab=forms.number(p, "ct_orf1ab"))  # fmt: skip
    return redirect("cases:detail", case.pk)


@action
def discharge(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    services.discharge(request.user, case)
    messages.success(request, _("Discharged; home health monitoring is scheduled."))
    return redirect("cases:detail", case.pk)


@action
def set_status(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    services.set_status(request.user, case, forms.text(request.POST, "status", required=True))
    return redirect("cases:detail", case.pk)


@action
def investigation(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    inv = case.investigation
    op = request.POST.get("op", "")
    if op == "assign_me":
        services.assign_investigator(request.user, inv, request.user)
    elif op in services.MILESTONES:
        services.mark_milestone(request.user, inv, op)
    elif op == "notes":
        services.save_notes(request.user, inv, forms.text(request.POST, "notes", max_len=10000))
    elif op == "close":
        services.close_investigation(request.user, inv)
    else:
        raise FieldError("op", op, "unknown action")
    return redirect(reverse("cases:detail", args=[case.pk]) + "#investigation")


@action
def add_exposure(request: HttpRequest, case_id: int) -> HttpResponse:
    case = queries.get_case(request.user, case_id)
    p = request.POST
    services.add_exposure(request.user, case, place=forms.text(p, "place"), venue_code=forms.text(p, "venue_code", max_len=64),
                          address=forms.text(p, "address"), start=forms.when(p, "start", required=True),
                          end=forms.when(p, "end", required=True), transport=forms.text(p, "transport"),
                          transport_number=forms.text(p, "transport_number", max_len=32),
                          carriage=forms.text(p, "carriage", max_len=8), seat=forms.text(p, "seat", max_len=8),
                          notes=forms.text(p, "notes", max_len=2000))  # fmt: skip
    return redirect(reverse("cases:detail", args=[case.pk]) + "#trajectory")
