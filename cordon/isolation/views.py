"""Thin views: the site list and board, a placement, the dispatch board, the release list, capacity."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cordon.core.roles import has_capability
from cordon.core.scoping import require
from cordon.isolation import queries, services
from cordon.isolation.models import SiteStatus, TestStatus
from cordon.people.queries import masked
from cordon.people.validation import FieldError


def _fail(request: HttpRequest, e: FieldError) -> None:
    messages.error(request, f"{e.field}: {e.reason}")


@login_required
def sites(request: HttpRequest) -> HttpResponse:
    require(request.user, "view_isolation")
    cap = queries.capacity(request.user)
    return render(request, "isolation/sites.html", {
        "cap": cap, "summary": queries.bed_summary(request.user),
        "awaiting": queries.contacts_awaiting_bed(request.user).count(),
        "can_write": has_capability(request.user, "write_isolation"),
    })  # fmt: skip


@login_required
def site_board(request: HttpRequest, site_id: int) -> HttpResponse:
    site = queries.get_site(request.user, site_id)
    board = queries.site_board(site)
    for f in board:
        for r in f["rooms"]:
            for o in r["occupants"]:
                o["person"] = masked(o["placement"].person)
    return render(request, "isolation/site_board.html", {
        "site": site, "board": board, "restarts": site.restarts.all()[:10],
        "awaiting": queries.contacts_awaiting_bed(request.user).count(),
        "samples": site.environment_samples.select_related("room").order_by("-sampled_at")[:10],
        "statuses": SiteStatus.choices, "can_write": has_capability(request.user, "write_isolation"),
        "rooms": site.rooms.order_by("floor", "number"),
    })  # fmt: skip


@login_required
@require_POST
def site_assign(request: HttpRequest, site_id: int) -> HttpResponse:
    site = queries.get_site(request.user, site_id)
    contacts = list(queries.contacts_awaiting_bed(request.user).select_related("person").order_by("identified_at", "pk"))
    try:
        res = services.assign_beds(request.user, site, [services.Candidate.from_contact(c) for c in contacts])
    except FieldError as e:
        _fail(request, e)
        return redirect("isolation:site", site_id=site.pk)
    messages.info(request, _("Placed %(placed)d in rooms, %(home)d at home, %(left)d without a bed. "
                             "Restart exposure %(cost)d (first-fit would be %(base)d).")
                  % {"placed": len(res.placements), "home": len(res.at_home), "left": len(res.unplaced),
                     "cost": res.cost, "base": res.baseline_cost})  # fmt: skip
    for n, reason in res.errors:
        messages.error(request, f"#{contacts[n].pk}: {reason}")
    return redirect("isolation:site", site_id=site.pk)


@login_required
@require_POST
def site_status(request: HttpRequest, site_id: int) -> HttpResponse:
    site = queries.get_site(request.user, site_id)
    try:
        services.set_site_status(request.user, site, request.POST.get("status", ""))
    except FieldError as e:
        _fail(request, e)
    return redirect("isolation:site", site_id=site.pk)


@login_required
@require_POST
def site_sample(request: HttpRequest, site_id: int) -> HttpResponse:
    site = queries.get_site(request.user, site_id)
    number = request.POST.get("room", "").strip()
    room = site.rooms.filter(number=number).first() if number else None
    try:
        if number and room is None:
            raise FieldError("room", number, _("no such room in this site"))
        s = services.record_environment_sample(request.user, site, room=room, result=request.POST.get("result", ""))
    except FieldError as e:
        _fail(request, e)
    else:
        r = site.restarts.filter(source_sample=s).first()
        if r is not None:
            messages.error(request, _("Positive environment sample: %(n)d people restarted.") % {"n": r.people_affected})
    return redirect("isolation:site", site_id=site.pk)


@login_required
def placement_detail(request: HttpRequest, pk: int) -> HttpResponse:
    p = queries.get_placement(request.user, pk)
    today = timezone.localdate()
    return render(request, "isolation/placement.html", {
        "p": p, "person": masked(p.person), "tests": queries.tests_due(p), "today": today,
        "blockers": services.release_blockers(p, today) if p.status == "active" else [],
        "can_write": has_capability(request.user, "write_isolation"), "pending": TestStatus.PENDING,
        "restarts": p.restart_events.all(),
    })  # fmt: skip


@login_required
@require_POST
def placement_test(request: HttpRequest, pk: int) -> HttpResponse:
    p = queries.get_placement(request.user, pk)
    positive = request.POST.get("result") == "positive"
    try:
        services.record_test(request.user, p, positive=positive)
    except FieldError as e:
        _fail(request, e)
        return redirect("isolation:placement", pk=p.pk)
    if positive:
        p.refresh_from_db()
        r = p.site.restarts.filter(source_placement=p).first() if p.site_id else None
        messages.error(request, _("Positive: reported as case, transferred to hospital.")
                       + (" " + _("%(n)d people on floors %(floors)s restarted.")
                          % {"n": r.people_affected, "floors": ", ".join(map(str, r.floors))} if r else ""))  # fmt: skip
        if p.site_id:
            return redirect("isolation:site", site_id=p.site_id)
    return redirect("isolation:placement", pk=p.pk)


@login_required
@require_POST
def placement_missed(request: HttpRequest, pk: int, test_id: int) -> HttpResponse:
    p = queries.get_placement(request.user, pk)
    t = p.tests.filter(pk=test_id).first()
    try:
        if t is None:
            raise FieldError("test", str(test_id), _("no such test"))
        services.mark_missed(request.user, t)
    except FieldError as e:
        _fail(request, e)
    return redirect("isolation:placement", pk=p.pk)


@login_required
@require_POST
def placement_release(request: HttpRequest, pk: int) -> HttpResponse:
    p = queries.get_placement(request.user, pk)
    nxt = request.POST.get("next", "")
    back = nxt if nxt.startswith("/isolation/") else None
    try:
        out = services.release(request.user, p, reason=request.POST.get("reason", ""))
    except FieldError as e:
        _fail(request, e)
        return redirect(back or "isolation:placement", **({} if back else {"pk": p.pk}))
    messages.info(request, _("Released.") if out.pk == p.pk else _("Released; home phase scheduled until %(d)s.")
                  % {"d": out.end_date})  # fmt: skip
    return redirect(back or "isolation:placement", **({} if back else {"pk": out.pk}))


@login_required
def releases(request: HttpRequest) -> HttpResponse:
    try:
        day = date.fromisoformat(request.GET.get("date", "")) if request.GET.get("date") else timezone.localdate()
    except ValueError:
        day = timezone.localdate()
    rows = queries.release_list(request.user, day)
    for r in rows:
        r["person"] = masked(r["placement"].person)
    return render(request, "isolation/releases.html", {
        "rows": rows, "day": day, "today": timezone.localdate(),
        "can_write": has_capability(request.user, "write_isolation"),
    })  # fmt: skip


@login_required
def transfers(request: HttpRequest) -> HttpResponse:
    require(request.user, "view_isolation")
    due = list(queries.contacts_due_for_transfer(request.user).select_related("person").order_by("identified_at")[:200])
    policy_hours = {c.pk: services.transfer_hours(services.active_policy(), c.kind) for c in due}
    rows = [{"contact": c, "person": masked(c.person),
             "due": c.identified_at + timedelta(hours=policy_hours[c.pk])} for c in due]  # fmt: skip
    open_rows = [{"t": t, "person": masked(t.person)} for t in queries.open_transfers(request.user)[:500]]
    trips = queries.trips_for(request.user).exclude(status="arrived").select_related("site", "pickup_area")[:100]
    return render(request, "isolation/transfers.html", {
        "due": rows, "open": open_rows, "trips": trips, "now": timezone.now(),
        "sites": queries.sites_for(request.user).exclude(status__in=["closed", "disinfecting"]),
        "seats": services.active_policy().quarantine_site.transfer_vehicle_seats,
        "can_write": has_capability(request.user, "write_isolation"),
    })  # fmt: skip


@login_required
@require_POST
def transfers_request(request: HttpRequest) -> HttpResponse:
    require(request.user, "write_isolation")
    contacts = list(queries.contacts_due_for_transfer(request.user).select_related("person"))
    created, skipped = services.request_transfers(request.user, contacts)
    messages.info(request, _("%(n)d transfers requested, %(s)d skipped.") % {"n": len(created), "s": len(skipped)})
    return redirect("isolation:transfers")


@login_required
@require_POST
def trips_plan(request: HttpRequest) -> HttpResponse:
    try:
        site = queries.get_site(request.user, int(request.POST.get("site", "0")))
        seats = int(request.POST.get("seats") or 0) or None
        qs = queries.transfers_for(request.user).filter(status="requested", trip__isnull=True)
        trips = services.plan_trips(request.user, site, list(qs.select_related("person", "contact")), seats=seats)
        messages.info(request, _("%(n)d trips planned.") % {"n": len(trips)})
    except (FieldError, ValueError) as e:
        messages.error(request, str(e))
    return redirect("isolation:transfers")


@login_required
@require_POST
def trip_advance(request: HttpRequest, pk: int) -> HttpResponse:
    trip = queries.get_trip(request.user, pk)
    try:
        out = services.advance_trip(request.user, trip, request.POST.get("status", ""),
                                    vehicle=request.POST.get("vehicle", ""))  # fmt: skip
    except FieldError as e:
        _fail(request, e)
    else:
        if isinstance(out, services.Assignment):
            messages.info(request, _("Arrived: %(n)d placed.") % {"n": len(out.placements)})
    return redirect("isolation:transfers")


@login_required
def capacity(request: HttpRequest) -> HttpResponse:
    cap = queries.capacity(request.user)
    chart = {"dates": [d.isoformat() for d in cap["dates"]],
             "series": [{"name": r["name"], "free": r["projected_free"], "threshold": round(r["beds"] * cap["warning_share"], 1)}
                        for r in cap["regions"]]}  # fmt: skip
    return render(request, "isolation/capacity.html", {"cap": cap, "chart": chart,
                                                        "summary": queries.bed_summary(request.user)})
