"""/api/v1/tracing: contacts and their pipeline, tests, manifests, co-location runs, clusters, chains."""

from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path

from django.http import HttpRequest
from ninja import File, Query, Router, Schema, Status
from ninja.files import UploadedFile

from cordon.cases import queries as cases_q
from cordon.core.pagination import paginate
from cordon.people import queries as people_q
from cordon.people.validation import FieldError
from cordon.tracing import graph, queries, services
from cordon.tracing.models import Cluster, ColocationRun, Contact

router = Router(tags=["tracing"])


class ContactOut(Schema):
    id: int
    index_case_id: int
    index_case_number: str
    via_id: int | None
    person_id: int
    person: dict
    kind: str
    setting: str
    status: str
    identified_how: str
    first_exposure_at: datetime | None
    last_exposure_at: datetime
    last_exposure_date: date
    identified_at: datetime
    notified_at: datetime | None
    located_at: datetime | None
    transfer_requested_at: datetime | None
    quarantined_at: datetime | None
    released_at: datetime | None
    transfer_due_at: datetime
    quarantine_end_date: date | None
    region_code: str
    index_region_code: str
    became_case_id: int | None
    provenance: dict
    note: str


class ContactPage(Schema):
    items: list[ContactOut]
    next_cursor: str | None


class PersonRef(Schema):
    name: str
    document_type: str | None = None
    document_number: str
    phone: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    region_code: str | None = None


class ContactIn(Schema):
    case_id: int
    person_id: int | None = None
    person: PersonRef | None = None
    kind: str = "close"
    setting: str = ""
    last_exposure_at: datetime
    first_exposure_at: datetime | None = None
    via_id: int | None = None
    note: str = ""


class AdvanceIn(Schema):
    status: str
    at: datetime | None = None
    note: str = ""


class ContactTestIn(Schema):
    positive: bool
    at: datetime


class ContactFilters(Schema):
    status: str = ""
    kind: str = ""
    case_id: int | None = None
    region: str = ""
    cursor: str | None = None
    limit: int = 50


class RunOut(Schema):
    id: int
    case_id: int
    status: str
    window_from: datetime
    window_to: datetime
    requested_at: datetime
    finished_at: datetime | None
    matches: int
    proposed: int
    unknown_people: int
    error: str


class ClusterOut(Schema):
    id: int
    name: str
    setting: str
    region_code: str
    root_case_id: int | None
    size: int
    generations: int
    first_reported_at: datetime | None
    last_reported_at: datetime | None


def contact_out(c: Contact) -> dict:
    data = {f: getattr(c, f) for f in ("id", "index_case_id", "via_id", "person_id", "kind", "setting", "status",
                                       "identified_how", "first_exposure_at", "last_exposure_at", "last_exposure_date",
                                       "identified_at", "notified_at", "located_at", "transfer_requested_at",
                                       "quarantined_at", "released_at", "transfer_due_at", "quarantine_end_date",
                                       "became_case_id", "provenance", "note")}  # fmt: skip
    data.update(region_code=c.region_id, index_region_code=c.index_region_id, index_case_number=c.index_case.number,
                person=people_q.masked(c.person))  # fmt: skip
    return data


def cluster_out(c: Cluster) -> dict:
    data = {f: getattr(c, f) for f in ("id", "name", "setting", "root_case_id", "size", "generations",
                                       "first_reported_at", "last_reported_at")}  # fmt: skip
    data["region_code"] = c.region_id
    return data


@router.get("/contacts", response=ContactPage, summary="Contacts visible to you (where they live or the index case)")
def list_contacts(request: HttpRequest, f: Query[ContactFilters]):
    qs = queries.search_contacts(request.user, status=f.status, kind=f.kind, case_id=f.case_id, region=f.region)
    rows, nxt = paginate(qs.select_related("person", "index_case"), f.cursor, f.limit)
    return {"items": [contact_out(c) for c in rows], "next_cursor": nxt}


@router.post("/contacts", response={201: ContactOut}, summary="Add a contact from the interview")
def create_contact(request: HttpRequest, payload: ContactIn):
    case = cases_q.get_case(request.user, payload.case_id)
    if payload.person_id:
        person = people_q.get_person(request.user, payload.person_id)
    elif payload.person is not None:
        data = payload.person.dict()
        person, _created = services.match_or_create_person(request.user, data, default_region=case.region_id)
    else:
        raise FieldError("person", "", "give person_id or the person's details")
    via = queries.get_contact(request.user, payload.via_id) if payload.via_id else None
    c = services.add_contact(request.user, case, person, kind=payload.kind, setting=payload.setting,
                             last_exposure_at=payload.last_exposure_at, first_exposure_at=payload.first_exposure_at,
                             via=via, note=payload.note)  # fmt: skip
    return Status(201, contact_out(c))


@router.get("/contacts/{contact_id}", response=ContactOut, summary="One contact")
def get_contact(request: HttpRequest, contact_id: int):
    return contact_out(queries.get_contact(request.user, contact_id))


@router.post("/contacts/{contact_id}/status", response=ContactOut, summary="Advance in the pipeline (forward only)")
def advance(request: HttpRequest, contact_id: int, payload: AdvanceIn):
    c = queries.get_contact(request.user, contact_id)
    return contact_out(services.advance_contact(request.user, c, payload.status, at=payload.at, note=payload.note))


@router.post("/contacts/{contact_id}/tests", response={201: dict}, summary="Record a contact's test (applies the secondary-contact rule)")
def contact_test(request: HttpRequest, contact_id: int, payload: ContactTestIn):
    c = queries.get_contact(request.user, contact_id)
    return Status(201, services.record_close_contact_test(request.user, c, payload.positive, payload.at))


@router.post("/exposures/{exposure_id}/manifest", response=dict, summary="Import a transport manifest (CSV/XLSX)")
def manifest(request: HttpRequest, exposure_id: int, file: File[UploadedFile]):
    from cordon.cases.models import Exposure

    exp = Exposure.objects.filter(pk=exposure_id, case__in=cases_q.cases_for(request.user)).select_related("case").first()
    if exp is None:
        from django.http import Http404

        raise Http404("no such trajectory stop in your jurisdiction")
    with tempfile.TemporaryDirectory(prefix="cordon-manifest-") as tmp:
        path = Path(tmp) / Path(file.name or "manifest.csv").name
        with path.open("wb") as fh:
            for chunk in file.chunks():
                fh.write(chunk)
        return services.import_manifest(request.user, exp, path)


@router.post("/cases/{case_id}/colocation", response={202: RunOut}, summary="Run the co-location engine for the case")
def colocation(request: HttpRequest, case_id: int):
    case = cases_q.get_case(request.user, case_id)
    return Status(202, services.request_colocation(request.user, case))


@router.get("/colocation/{run_id}", response=RunOut, summary="Status of a co-location run")
def colocation_status(request: HttpRequest, run_id: int):
    run = ColocationRun.objects.filter(pk=run_id, case__in=cases_q.cases_for(request.user)).first()
    if run is None:
        from django.http import Http404

        raise Http404("no such run in your jurisdiction")
    return run


@router.get("/cases/{case_id}/chain", response=dict, summary="The transmission chain of a case (graph with positions)")
def case_chain(request: HttpRequest, case_id: int):
    case = cases_q.get_case(request.user, case_id)
    return graph.chain_data(request.user, cases_q.chain_case_ids(case), focus=case.pk)


@router.get("/clusters", response=list[ClusterOut], summary="Clusters in your jurisdiction")
def clusters(request: HttpRequest):
    return [cluster_out(c) for c in queries.clusters_for(request.user).order_by("-last_reported_at")[:500]]


@router.post("/clusters/rebuild", response=list[ClusterOut], summary="Recompute clusters below your jurisdiction")
def rebuild(request: HttpRequest):
    from cordon.cases.services import require_any

    require_any(request.user, ("write_cases",))
    return [cluster_out(c) for c in services.rebuild_clusters(request.user.region, user=request.user)]


@router.get("/clusters/{cluster_id}", response=dict, summary="A cluster: cases (yours), chain")
def cluster(request: HttpRequest, cluster_id: int):
    cl = queries.get_cluster(request.user, cluster_id)
    ids = set(cl.cases.values_list("pk", flat=True))
    visible = cases_q.cases_for(request.user).filter(pk__in=ids)
    return {**cluster_out(cl), "case_ids": sorted(visible.values_list("pk", flat=True)),
            "chain": graph.chain_data(request.user, ids, contacts=False)}  # fmt: skip
