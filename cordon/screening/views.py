"""Screening pages: thin views over queries (reads, scoped) and services (writes, audited)."""

from __future__ import annotations

import csv
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cordon.core import audit
from cordon.core.importing import FileUnusable
from cordon.core.pagination import BadCursor, paginate
from cordon.core.roles import has_capability
from cordon.core.scoping import in_jurisdiction, require
from cordon.people.exports import people_xlsx
from cordon.people.queries import masked
from cordon.people.validation import FieldError
from cordon.screening import admin_services, queries, services
from cordon.screening import coverage as cov
from cordon.screening.models import Retest


def _errors_dir() -> Path:
    base = Path(getattr(settings, "CORDON_DATA_DIR", None) or settings.BASE_DIR / "var")
    d = base / "screening-errors"
    d.mkdir(parents=True, exist_ok=True)
    return d


@login_required
def campaigns(request: HttpRequest) -> HttpResponse:
    require(request.user, "view_screening")
    if request.method == "POST":
        require(request.user, "write_screening")
        codes = request.POST.getlist("region_code")
        kinds = request.POST.getlist("area_kind")
        sizes = request.POST.getlist("pool_size")
        areas = [{"region_code": c.strip(), "area_kind": k, "pool_size": int(s) if s.strip() else None}
                 for c, k, s in zip(codes, kinds, sizes, strict=False) if c.strip()]  # fmt: skip
        prev = request.POST.get("previous") or ""
        try:
            previous = queries.get_campaign(request.user, int(prev)) if prev else None
            c = services.create_campaign(request.user, name=request.POST.get("name", ""), areas=areas,
                                         previous=previous, start=bool(request.POST.get("start")))  # fmt: skip
        except (FieldError, ValueError) as exc:
            messages.error(request, str(exc))
        else:
            return redirect("screening:campaign", c.pk)
    rows = list(queries.campaigns_for(request.user).prefetch_related("areas__region")[:100])
    return render(request, "screening/campaigns.html", {
        "campaigns": rows, "kinds": services.area_kinds(), "can_write": has_capability(request.user, "write_screening"),
        "now": timezone.now(),
    })  # fmt: skip


@login_required
def campaign(request: HttpRequest, campaign_id: int) -> HttpResponse:
    c = queries.get_campaign(request.user, campaign_id)
    parent = request.GET.get("parent", "").strip()
    rows = queries.coverage(request.user, c, parent)
    ta = queries.turnaround(request.user, c)
    pools = queries.positive_pools(request.user, c)
    now = timezone.now()
    chart = {"names": [r["name"] for r in rows], "sampled": [r["sampled"] for r in rows],
             "untested": [r["untested"] for r in rows]}  # fmt: skip
    return render(request, "screening/board.html", {
        "c": c, "areas": c.areas.select_related("region"), "pace": queries.pace(request.user, c, now), "rows": rows,
        "parent": parent, "ta": ta, "pools": pools, "now": now, "chart": chart,
        "overdue": [(t, queries.overdue_due(t)) for t in ta["overdue"][:20]],
        "resample_open": queries.retests_for(request.user, c, Retest.Reason.INVALID).count(),
        "recall_open": queries.retests_for(request.user, c, Retest.Reason.POSITIVE_POOL).count(),
        "retests_overdue": queries.retests_for(request.user, c).filter(due_at__lt=now).count(),
        "sites": queries.site_throughput(request.user, c),
        "can_write": has_capability(request.user, "write_screening"),
        "can_upload": has_capability(request.user, "lab_results"),
    })  # fmt: skip


@login_required
@require_POST
def campaign_status(request: HttpRequest, campaign_id: int) -> HttpResponse:
    c = queries.get_campaign(request.user, campaign_id)
    try:
        services.set_campaign_status(request.user, c, request.POST.get("status", ""))
    except FieldError as exc:
        messages.error(request, str(exc))
    return redirect("screening:campaign", c.pk)


@login_required
def coverage(request: HttpRequest, campaign_id: int) -> HttpResponse:
    require(request.user, "view_people")
    c = queries.get_campaign(request.user, campaign_id)
    region = request.GET.get("region", "").strip()
    carried = request.GET.get("list") == "carried"
    qs = queries.carried_over(request.user, c) if carried else queries.untested(request.user, c, region)
    try:
        rows, nxt = paginate(qs.select_related("region"), request.GET.get("cursor"), 100)
    except BadCursor:
        rows, nxt = [], None
    people = [{**masked(p), "region_name": p.region.name} for p in rows]
    return render(request, "screening/coverage.html", {
        "c": c, "people": people, "next_cursor": nxt, "region": region, "carried": carried,
        "totals": queries.totals(request.user, c), "can_export": has_capability(request.user, "export_people"),
        "can_refresh": has_capability(request.user, "write_screening"),
    })  # fmt: skip


@login_required
def untested_export(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The untested list for grid workers, masked, as a workbook; exporting it is audited."""
    require(request.user, "export_people")
    c = queries.get_campaign(request.user, campaign_id)
    region = request.GET.get("region", "").strip()
    qs = queries.untested(request.user, c, region).select_related("region").order_by("pk")
    with transaction.atomic():
        audit.record(request.user, "screening.untested_export", c, region_code=request.user.region_id,
                     changes={"region": region, "masked": True})  # fmt: skip
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    resp = StreamingHttpResponse(people_xlsx(qs),
                                 content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    resp["Content-Disposition"] = f'attachment; filename="untested-{c.pk}-{stamp}.xlsx"'
    return resp


@login_required
@require_POST
def coverage_refresh(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Recount the stored coverage now: in the background when a worker runs, else on the next read."""
    from cordon.screening.tasks import refresh_coverage

    require(request.user, "write_screening")
    c = queries.get_campaign(request.user, campaign_id)
    cov.request_rebuild(c)
    refresh_coverage.enqueue(c.pk, rebuild=True)
    messages.success(request, _("Coverage is being recounted."))
    return redirect("screening:coverage", c.pk)


def _form_error(request: HttpRequest, exc: FieldError) -> None:
    messages.error(request, str(exc))


@login_required
def sites(request: HttpRequest) -> HttpResponse:
    """Sampling sites and labs of the user's jurisdiction, with the forms to add them."""
    require(request.user, "view_screening")
    can_write = has_capability(request.user, "write_screening")
    form: dict[str, str] = {}
    if request.method == "POST":
        require(request.user, "write_screening")
        form = {k: request.POST.get(k, "") for k in ("kind", "code", "name", "region_code", "hours", "staff",
                                                      "daily_capacity")}  # fmt: skip
        try:
            if form["kind"] == "lab":
                admin_services.create_lab(request.user, code=form["code"], name=form["name"],
                                          region_code=form["region_code"], daily_capacity=form["daily_capacity"])  # fmt: skip
                messages.success(request, _("Laboratory added."))
                return redirect("screening:sites")
            s = admin_services.create_site(request.user, code=form["code"], name=form["name"],
                                           region_code=form["region_code"], hours=form["hours"], staff=form["staff"])  # fmt: skip
        except FieldError as exc:
            _form_error(request, exc)
        else:
            messages.success(request, _("Sampling site added."))
            return redirect("screening:site", s.pk)
    c = queries.latest_campaign(request.user)
    return render(request, "screening/sites.html", {
        "rows": queries.site_throughput(request.user, c), "labs": list(queries.labs_for(request.user)), "c": c,
        "can_write": can_write, "form": form, "default_region": request.user.region_id,
    })  # fmt: skip


@login_required
def site(request: HttpRequest, site_id: int) -> HttpResponse:
    s = queries.get_site(request.user, site_id)
    can_write = has_capability(request.user, "write_screening")
    if request.method == "POST":
        require(request.user, "write_screening")
        try:
            admin_services.update_site(request.user, s, name=request.POST.get("name", ""),
                                       region_code=request.POST.get("region_code", ""),
                                       hours=request.POST.get("hours", ""), staff=request.POST.get("staff", ""),
                                       active=bool(request.POST.get("active")))  # fmt: skip
        except FieldError as exc:
            _form_error(request, exc)
            s.refresh_from_db()
        else:
            messages.success(request, _("Saved."))
            return redirect("screening:site", s.pk)
    c = queries.latest_campaign(request.user)
    stats = next((x for x in queries.site_throughput(request.user, c) if x["site"].pk == s.pk), None)
    tubes = list(queries.tubes_for(request.user).filter(site=s).order_by("-opened_at")[:50])
    households = (queries.tube_households(request.user, tubes) if has_capability(request.user, "view_people")
                  else {})  # fmt: skip
    rows = [{"t": t, "hh": households.get(t.pk)} for t in tubes]
    return render(request, "screening/site.html", {"s": s, "c": c, "stats": stats, "rows": rows,
                                                   "can_write": can_write})  # fmt: skip


@login_required
def lab(request: HttpRequest, code: str) -> HttpResponse:
    lab_ = queries.get_lab(request.user, code)
    can_write = has_capability(request.user, "write_screening") and in_jurisdiction(request.user, lab_.region_id)
    if request.method == "POST":
        require(request.user, "write_screening")
        try:
            admin_services.update_lab(request.user, lab_, name=request.POST.get("name", ""),
                                      daily_capacity=request.POST.get("daily_capacity", ""))  # fmt: skip
        except FieldError as exc:
            _form_error(request, exc)
            lab_.refresh_from_db()
        else:
            messages.success(request, _("Saved."))
            return redirect("screening:lab", lab_.code)
    return render(request, "screening/lab.html", {"lab": lab_, "can_write": can_write})


@login_required
def tube(request: HttpRequest, barcode: str) -> HttpResponse:
    """A tube and its members grouped by household, with whether its area allows one tube per household."""
    require(request.user, "view_people")
    t = queries.get_tube(request.user, barcode)
    hh = queries.tube_households(request.user, [t])[t.pk]
    registry = queries.household_registry(request.user, t.campaign, [h["key"] for h in hh["households"]])
    for h in hh["households"]:
        h["registry"] = registry.get(h["key"])
    area = services.area_for(t.campaign, t.region_id)
    return render(request, "screening/tube.html", {"t": t, "hh": hh, "area": area, "c": t.campaign})


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    require(request.user, "lab_results")
    labs = list(queries.labs_for(request.user))
    summary = None
    errors: list[dict] = []
    token = ""
    if request.method == "POST":
        from cordon.screening.results import import_results

        code = request.POST.get("lab", "")
        f = request.FILES.get("file")
        if f is None:
            messages.error(request, _("Choose a result file."))
        else:
            lab = queries.get_lab(request.user, code)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / Path(f.name).name
                with path.open("wb") as fh:
                    for chunk in f.chunks():
                        fh.write(chunk)
                token = uuid.uuid4().hex
                report = _errors_dir() / f"{request.user.pk}-{token}.csv"
                try:
                    summary = import_results(path, lab=lab, user=request.user, errors_path=report)
                except FileUnusable as exc:
                    messages.error(request, str(exc))
                    token = ""
                else:
                    with report.open(encoding="utf-8-sig") as fh:
                        errors = list(csv.DictReader(fh))[:200]
    c = queries.latest_campaign(request.user) if has_capability(request.user, "view_screening") else None
    return render(request, "screening/upload.html", {"labs": labs, "summary": summary, "errors": errors,
                                                     "token": token, "c": c})  # fmt: skip


@login_required
def error_report(request: HttpRequest, token: str) -> HttpResponse:
    if not token.isalnum():
        raise Http404
    path = _errors_dir() / f"{request.user.pk}-{token}.csv"
    if not path.exists():
        raise Http404("no such report")
    return FileResponse(path.open("rb"), as_attachment=True, filename="errors.csv", content_type="text/csv")


@login_required
def retests(request: HttpRequest, campaign_id: int) -> HttpResponse:
    c = queries.get_campaign(request.user, campaign_id)
    reason = request.GET.get("reason", Retest.Reason.POSITIVE_POOL)
    if reason not in Retest.Reason.values:
        reason = Retest.Reason.POSITIVE_POOL
    show_all = request.GET.get("all") == "1"
    qs = queries.retests_for(request.user, c, reason, open_only=not show_all).order_by("due_at", "pk")
    rows = [{"r": r, "p": masked(r.person)} for r in qs[:500]]
    return render(request, "screening/retests.html", {
        "c": c, "rows": rows, "reason": reason, "show_all": show_all, "now": timezone.now(),
        "can_sample": has_capability(request.user, "scan"), "can_result": has_capability(request.user, "lab_results"),
    })  # fmt: skip


@login_required
@require_POST
def retest_action(request: HttpRequest, retest_id: int) -> HttpResponse:
    r = queries.get_retest(request.user, retest_id)
    try:
        if request.POST.get("action") == "sample":
            services.sample_retest(request.user, r, request.POST.get("tube", ""))
        elif request.POST.get("action") == "result":
            services.resolve_retest(request.user, r, request.POST.get("result", ""))
        else:
            raise PermissionDenied
    except FieldError as exc:
        messages.error(request, str(exc))
    return redirect(f"/screening/campaigns/{r.campaign_id}/retests/?reason={r.reason}")

