"""Thin views: parse, call one query or service, render."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cordon.core import audit
from cordon.core.pagination import BadCursor, paginate
from cordon.core.queries import audit_events_for
from cordon.core.roles import has_capability
from cordon.core.scoping import require
from cordon.people import queries as people_q
from cordon.people import services as people_s
from cordon.people.exports import people_xlsx
from cordon.people.tasks import import_people_file
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
        qs = people_q.search_people(request.user, q, region).select_related("region")
        rows, nxt = paginate(qs, request.GET.get("cursor"), 50)
    except BadCursor:
        rows, nxt = [], None
    context = {
        "q": q,
        "region_filter": region,
        "people": [people_q.masked(p) for p in rows],
        "next_cursor": nxt,
        "can_export": has_capability(request.user, "export_people"),
        "can_import": has_capability(request.user, "import"),
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
def people_import(request: HttpRequest) -> HttpResponse:
    """Upload a registry file; the worker imports it and this page follows the task."""
    require(request.user, "import")
    error = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            error = _("Choose a CSV or XLSX file.")
        elif upload.size > settings.CORDON_MAX_UPLOAD_BYTES:
            error = _("The file is larger than the upload limit.")
        else:
            folder = Path(settings.CORDON_DATA_DIR) / "uploads"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = timezone.now().strftime("%Y%m%d%H%M%S")
            safe = "".join(ch for ch in Path(upload.name).name if ch.isalnum() or ch in "._-")[-80:] or "upload"
            path = folder / f"{stamp}-{request.user.pk}-{safe}"
            with path.open("wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
            result = import_people_file.enqueue(str(path), request.user.pk, str(path) + ".errors.csv")
            return redirect("people-import-status", result_id=result.id)
    return render(request, "web/people_import.html", {"error": error})


@login_required
def people_import_status(request: HttpRequest, result_id: str) -> HttpResponse:
    require(request.user, "import")
    try:
        result = import_people_file.get_result(result_id)
    except Exception as exc:  # the backend raises its own "not found" type
        raise Http404("no such import") from exc
    if result.args[1] != request.user.pk:
        raise Http404("no such import")
    template = "web/import_status_panel.html" if request.headers.get("HX-Request") else "web/import_status.html"
    value = result.return_value if result.status.value == "SUCCESSFUL" else None
    return render(request, template, {"result": result, "value": value, "file": Path(result.args[0]).name})


@login_required
def people_import_errors(request: HttpRequest, result_id: str) -> HttpResponse:
    require(request.user, "import")
    result = import_people_file.get_result(result_id)
    if result.args[1] != request.user.pk or not Path(result.args[2]).exists():
        raise Http404("no error report")
    return FileResponse(open(result.args[2], "rb"), as_attachment=True, filename="import-errors.csv")


@login_required
@require_POST
def duplicate_resolve(request: HttpRequest, flag_id: int) -> HttpResponse:
    """A reviewer's verdict on a flagged pair; merging records stays a deliberate, separate act."""
    flag = people_q.duplicate_flags_for(request.user).filter(pk=flag_id).first()
    if flag is None:
        raise Http404("no such open flag in your jurisdiction")
    people_s.resolve_duplicate(request.user, flag, same_person=request.POST.get("verdict") == "same")
    return redirect("duplicates")


@login_required
def duplicates(request: HttpRequest) -> HttpResponse:
    flags = people_q.duplicate_flags_for(request.user).select_related("person", "other")[:200]
    rows = [{"flag": f, "a": people_q.masked(f.person), "b": people_q.masked(f.other)} for f in flags]
    return render(request, "web/duplicates.html", {"rows": rows, "can_resolve": has_capability(request.user, "write_people")})


@login_required
def regions(request: HttpRequest) -> HttpResponse:
    root = regions_q.root_for(request.user)
    kids = regions_q.children(request.user, root.code)
    return render(request, "web/regions.html", {"root": root, "children": kids, "levels": LEVEL_ORDER})


@login_required
def region_children(request: HttpRequest, code: str) -> HttpResponse:
    kids = regions_q.children(request.user, code)
    return render(request, "web/region_children.html", {"children": kids})


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The trail that makes concealment visible: every write, reveal and export, newest first."""
    action = request.GET.get("action", "").strip()
    actor = request.GET.get("actor", "").strip()
    obj = request.GET.get("object", "").strip()
    qs = audit_events_for(request.user, action=action, actor=actor, object_ref=obj)
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(seq__lt=int(before))
    events = list(qs[:100])
    context = {"events": events, "action": action, "actor": actor, "object": obj,
               "next_before": events[-1].seq if len(events) == 100 else None}  # fmt: skip
    return render(request, "web/audit.html", context)
