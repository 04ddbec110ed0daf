"""Thin views: parse, call one query or service, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cordon.core import audit
from cordon.core.pagination import BadCursor, paginate
from cordon.core.roles import has_capability
from cordon.core.scoping import require
from cordon.people import queries as people_q
from cordon.people import services as people_s
from cordon.people.exports import people_xlsx
from cordon.regions import queries as regions_q
from cordon.regions.models import LEVEL_ORDER


@login_required
def home(request: HttpRequest) -> HttpResponse:
    region = request.user.region
    kids = regions_q.children(request.user, region.code) if region else []
    context = {
        "region": region,
        "ancestors": region.ancestors() if region else [],
        "children": kids,
        "child_population": sum(k.population or 0 for k in kids),
        "open_duplicates": people_q.duplicate_flags_for(request.user).count()
        if has_capability(request.user, "view_people")
        else 0,
        "can_view_people": has_capability(request.user, "view_people"),
    }
    return render(request, "web/home.html", context)


@login_required
def people_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    region = request.GET.get("region", "").strip()
    try:
        rows, nxt = paginate(people_q.search_people(request.user, q, region), request.GET.get("cursor"), 50)
    except BadCursor:
        rows, nxt = [], None
    context = {
        "q": q,
        "region_filter": region,
        "people": [people_q.masked(p) for p in rows],
        "next_cursor": nxt,
        "can_export": has_capability(request.user, "export_people"),
    }
    template = "web/people_rows.html" if request.headers.get("HX-Request") else "web/people_list.html"
    return render(request, template, context)


@login_required
def people_export(request: HttpRequest) -> HttpResponse:
    """A masked workbook of the search; exporting personal data is audited like a reveal."""
    require(request.user, "export_people")
    q = request.GET.get("q", "").strip()
    region = request.GET.get("region", "").strip()
    qs = people_q.search_people(request.user, q, region).select_related("region").order_by("pk")
    with transaction.atomic():
        audit.record(request.user, "people.export", object_type="people.person", region_code=request.user.region_id,
                     changes={"q": q, "region": region, "masked": True})  # fmt: skip
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        people_xlsx(qs), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="people-{stamp}.xlsx"'
    return response


@login_required
def person_detail(request: HttpRequest, person_id: int) -> HttpResponse:
    person = people_q.get_person(request.user, person_id)
    return render(
        request,
        "web/person_detail.html",
        {
            "person": people_q.masked(person),
            "region": person.region,
            "can_reveal": has_capability(request.user, "reveal_personal"),
        },
    )


@login_required
@require_POST
def person_reveal(request: HttpRequest, person_id: int) -> HttpResponse:
    if not has_capability(request.user, "reveal_personal"):
        raise PermissionDenied
    person = people_q.get_person(request.user, person_id)
    data = people_s.reveal_person(request.user, person, reason=request.POST.get("reason", ""))
    return render(request, "web/person_revealed.html", {"data": data, "person_id": person.pk})


@login_required
def duplicates(request: HttpRequest) -> HttpResponse:
    flags = people_q.duplicate_flags_for(request.user).select_related("person", "other")[:200]
    rows = [{"flag": f, "a": people_q.masked(f.person), "b": people_q.masked(f.other)} for f in flags]
    return render(request, "web/duplicates.html", {"rows": rows})


@login_required
def regions(request: HttpRequest) -> HttpResponse:
    root = regions_q.root_for(request.user)
    kids = regions_q.children(request.user, root.code)
    return render(request, "web/regions.html", {"root": root, "children": kids, "levels": LEVEL_ORDER})


@login_required
def region_children(request: HttpRequest, code: str) -> HttpResponse:
    kids = regions_q.children(request.user, code)
    return render(request, "web/region_children.html", {"children": kids})
