"""Thin views of tracing: contacts by status, a contact's pipeline, adding contacts, manifests, co-location
runs and clusters."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from cordon.cases import forms
from cordon.cases import queries as cases_q
from cordon.cases.models import Exposure
from cordon.cases.views import action
from cordon.core.pagination import BadCursor, paginate
from cordon.core.policy import active_policy
from cordon.core.roles import has_capability
from cordon.people import queries as people_q
from cordon.people.models import DuplicateFlag
from cordon.people.validation import FieldError
from cordon.tracing import graph, queries, services
from cordon.tracing.models import PIPELINE, Contact, ContactStatus


def _labels(request: HttpRequest) -> dict[str, str]:
    zh = request.LANGUAGE_CODE == "zh-hans"
    return {s.code: (s.zh if zh else s.en) for s in active_policy().contacts.settings}


@login_required
def contacts(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "").strip()
    kind = request.GET.get("kind", "").strip()
    error = ""
    try:
        qs = queries.search_contacts(request.user, status=status, kind=kind).select_related("person", "index_case")
        rows, nxt = paginate(qs, request.GET.get("cursor"), 50)
    except (FieldError, BadCursor) as exc:
        rows, nxt, error = [], None, str(exc)
    labels = _labels(request)
    context = {
        "rows": [{"c": c, "person": people_q.masked(c.person), "setting": labels.get(c.setting, c.setting)} for c in rows],
        "next_cursor": nxt,
        "status": status,
        "kind": kind,
        "error": error,
        "counts": [(s, label, n) for (s, label), n in zip(ContactStatus.choices,
                                                          queries.status_counts(request.user).values(), strict=True)],
    }  # fmt: skip
    template = "tracing/contact_rows.html" if request.headers.get("HX-Request") else "tracing/contacts.html"
    return render(request, template, context)


@login_required
def contact(request: HttpRequest, contact_id: int) -> HttpResponse:
    c = queries.get_contact(request.user, contact_id)
    following = [s for s in PIPELINE if PIPELINE.index(s) > PIPELINE.index(c.status)] if c.status in PIPELINE else []
    if c.status == ContactStatus.PROPOSED:
        following = [ContactStatus.IDENTIFIED]
    context = {
        "c": c,
        "person": people_q.masked(c.person),
        "setting": _labels(request).get(c.setting, c.setting),
        "events": list(c.events.select_related("by")),
        "tests": list(c.tests.all()),
        "next_statuses": [(s, ContactStatus(s).label) for s in following],
        "can_dismiss": c.status in (ContactStatus.PROPOSED, ContactStatus.IDENTIFIED, ContactStatus.NOTIFIED,
                                    ContactStatus.LOCATED),
        "schedule": services.schedule_for(c),
        "secondaries": list(c.secondaries.select_related("person")),
        "case_visible": cases_q.cases_for(request.user).filter(pk=c.index_case_id).exists(),
        "can_write": has_capability(request.user, "write_cases") or has_capability(request.user, "write_isolation"),
        "release_check": services.secondary_release_check(c, timezone.now()) if c.kind == "secondary" else None,
    }
    return render(request, "tracing/contact.html", context)


@action
def advance(request: HttpRequest, contact_id: int) -> HttpResponse:
    c = queries.get_contact(request.user, contact_id)
    services.advance_contact(request.user, c, forms.text(request.POST, "status", required=True),
                             note=forms.text(request.POST, "note"))  # fmt: skip
    return redirect(request.POST.get("next") or reverse("tracing:contact", args=[c.pk]))


@action
def contact_test(request: HttpRequest, contact_id: int) -> HttpResponse:
    c = queries.get_contact(request.user, contact_id)
    out = services.record_close_contact_test(request.user, c, request.POST.get("positive") == "on",
                                             forms.when(request.POST, "at", required=True))  # fmt: skip
    if out["upgraded"] or out["released"]:
        messages.info(request, _("Secondary-contact rule: %(u)d upgraded, %(r)d released.")
                      % {"u": len(out["upgraded"]), "r": len(out["released"])})  # fmt: skip
    return redirect("tracing:contact", c.pk)


@action
def add_contact(request: HttpRequest, case_id: int) -> HttpResponse:
    case = cases_q.get_case(request.user, case_id)
    p = request.POST
    person, created = services.match_or_create_person(request.user, forms.person_data(p),
                                                      default_region=case.region_id)  # fmt: skip
    via_id = forms.integer(p, "via")
    via = queries.get_contact(request.user, via_id) if via_id else None
    services.add_contact(request.user, case, person, kind=forms.text(p, "kind") or "close",
                         setting=forms.text(p, "setting"), last_exposure_at=forms.when(p, "last_exposure_at", required=True),
                         first_exposure_at=forms.when(p, "first_exposure_at"), via=via, note=forms.text(p, "note"))  # fmt: skip
    if created and DuplicateFlag.objects.filter(person=person, status=DuplicateFlag.Status.OPEN).exists():
        messages.warning(request, _("The new person looks like someone already registered: review the possible duplicates."))
    elif not created:
        messages.info(request, _("Matched an existing person in the registry by document."))
    return redirect(reverse("cases:detail", args=[case.pk]) + "#contacts")


@action
def manifest(request: HttpRequest, exposure_id: int) -> HttpResponse:
    exp = Exposure.objects.filter(pk=exposure_id, case__in=cases_q.cases_for(request.user)).select_related("case").first()
    if exp is None:
        raise FieldError("exposure", str(exposure_id), "no such trajectory stop in your jurisdiction")
    upload = request.FILES.get("file")
    if upload is None:
        raise FieldError("file", "", "choose a manifest file (CSV or XLSX)")
    with tempfile.TemporaryDirectory(prefix="cordon-manifest-") as tmp:
        path = Path(tmp) / Path(upload.name).name
        with path.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        out = services.import_manifest(request.user, exp, path)
    messages.info(request, _("Manifest: %(rows)d rows, %(p)d contacts proposed by the vehicle rule, %(a)d already known, "
                             "%(r)d rows rejected.") % {"rows": out["rows"], "p": out["proposed"], "a": out["already"],
                                                         "r": out["rejected"]})  # fmt: skip
    for e in out["errors"][:10]:
        messages.error(request, _("line %(line)s, %(field)s: %(reason)s") % e)
    return redirect(reverse("cases:detail", args=[exp.case_id]) + "#contacts")


@action
def colocation(request: HttpRequest, case_id: int) -> HttpResponse:
    case = cases_q.get_case(request.user, case_id)
    services.request_colocation(request.user, case)
    return redirect(reverse("cases:detail", args=[case.pk]) + "#colocation")


@login_required
def colocation_status(request: HttpRequest, case_id: int) -> HttpResponse:
    case = cases_q.get_case(request.user, case_id)
    return render(request, "tracing/run_status.html", {"run": queries.latest_run(case), "case": case})


@login_required
def clusters(request: HttpRequest) -> HttpResponse:
    rows = list(queries.clusters_for(request.user).select_related("root_case").order_by("-last_reported_at")[:500])
    labels = _labels(request)
    return render(request, "tracing/clusters.html", {
        "rows": [{"cl": cl, "setting": labels.get(cl.setting, cl.setting)} for cl in rows],
        "can_write": has_capability(request.user, "write_cases"),
    })  # fmt: skip


@login_required
def cluster(request: HttpRequest, cluster_id: int) -> HttpResponse:
    cl = queries.get_cluster(request.user, cluster_id)
    ids = set(cl.cases.values_list("pk", flat=True))
    visible = list(cases_q.cases_for(request.user).filter(pk__in=ids).select_related("person").order_by("reported_at"))
    chain = graph.chain_data(request.user, ids, contacts=len(ids) <= 300)
    gens = {n["id"]: n["generation"] for n in chain["nodes"]}
    labels = _labels(request)
    settings_count: dict[str, int] = {}
    for setting in Contact.objects.filter(became_case_id__in=ids, index_case_id__in=ids).values_list("setting", flat=True):
        key = labels.get(setting, setting) or "—"
        settings_count[key] = settings_count.get(key, 0) + 1
    return render(request, "tracing/cluster.html", {
        "cl": cl, "setting": labels.get(cl.setting, cl.setting), "chain": chain,
        "cases": [{"case": c, "person": people_q.masked(c.person), "generation": gens.get(f"c{c.pk}", 0)} for c in visible],
        "hidden": len(ids) - len(visible), "settings_count": sorted(settings_count.items(), key=lambda kv: -kv[1]),
    })  # fmt: skip


@action
def rebuild(request: HttpRequest) -> HttpResponse:
    from cordon.cases.services import require_any

    require_any(request.user, ("write_cases",))
    out = services.rebuild_clusters(request.user.region, user=request.user)
    messages.success(request, _("%(n)d clusters recomputed.") % {"n": len(out)})
    return redirect("tracing:clusters")
