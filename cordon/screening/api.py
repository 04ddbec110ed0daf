"""Screening API: campaigns, sites, tubes, scans from sampling terminals, labs, results, retests, coverage."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from ninja import File, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import BaseModel

from cordon.core.importing import FileUnusable
from cordon.core.pagination import paginate
from cordon.core.scoping import require
from cordon.people.queries import masked
from cordon.people.validation import FieldError
from cordon.screening import admin_services, queries, services, terminal
from cordon.screening.models import Retest

router = Router(tags=["screening"])


class AreaIn(Schema):
    region_code: str
    area_kind: str
    pool_size: int | None = None
    household_tubes: bool = False


class CampaignIn(Schema):
    name: str
    areas: list[AreaIn]
    starts_at: datetime | None = None
    previous_id: int | None = None
    start: bool = False


class AreaOut(Schema):
    region_code: str
    area_kind: str
    pool_size: int
    household_tubes: bool


class CampaignOut(Schema):
    id: int
    name: str
    round_number: int
    status: str
    region_code: str
    starts_at: datetime
    deadline: datetime
    target_hours: int
    previous_id: int | None
    areas: list[AreaOut]


def _campaign(c) -> dict:
    return {"id": c.pk, "name": c.name, "round_number": c.round_number, "status": c.status, "region_code": c.region_id,
            "starts_at": c.starts_at, "deadline": c.deadline, "target_hours": c.target_hours,
            "previous_id": c.previous_id,
            "areas": [{"region_code": a.region_id, "area_kind": a.area_kind, "pool_size": a.pool_size,
                       "household_tubes": a.household_tubes} for a in c.areas.all()]}  # fmt: skip


class CampaignPage(Schema):
    items: list[CampaignOut]
    next_cursor: str | None


class PageParams(Schema):
    cursor: str | None = None
    limit: int = 100


@router.get("/campaigns", response=CampaignPage, summary="Screening rounds in your jurisdiction")
def list_campaigns(request: HttpRequest, params: Query[PageParams]):
    rows, nxt = paginate(queries.campaigns_for(request.user).prefetch_related("areas"), params.cursor, params.limit)
    return {"items": [_campaign(c) for c in rows], "next_cursor": nxt}


@router.post("/campaigns", response={201: CampaignOut}, summary="Plan a screening round")
def create_campaign(request: HttpRequest, payload: CampaignIn):
    previous = queries.get_campaign(request.user, payload.previous_id) if payload.previous_id else None
    c = services.create_campaign(request.user, name=payload.name, areas=[a.dict() for a in payload.areas],
                                 starts_at=payload.starts_at, previous=previous, start=payload.start)  # fmt: skip
    return Status(201, _campaign(c))


class CampaignDetail(CampaignOut):
    target: int
    sampled: int
    untested: int
    share: float
    per_hour_last: int
    per_hour_overall: int
    projected_finish: datetime | None
    late: bool
    plan: dict


@router.get("/campaigns/{campaign_id}", response=CampaignDetail, summary="A round with progress and pace")
def get_campaign(request: HttpRequest, campaign_id: int):
    c = queries.get_campaign(request.user, campaign_id)
    return {**_campaign(c), **queries.pace(request.user, c)}


class StatusIn(Schema):
    status: str


@router.post("/campaigns/{campaign_id}/status", response=CampaignOut, summary="Start or finish a round")
def set_status(request: HttpRequest, campaign_id: int, payload: StatusIn):
    c = queries.get_campaign(request.user, campaign_id)
    return _campaign(services.set_campaign_status(request.user, c, payload.status))


class CoverageRow(Schema):
    code: str
    name: str
    level: str
    target: int
    sampled: int
    untested: int
    share: float


@router.get("/campaigns/{campaign_id}/coverage", response=list[CoverageRow], summary="Target vs sampled by region")
def coverage(request: HttpRequest, campaign_id: int, parent: str = ""):
    return queries.coverage(request.user, queries.get_campaign(request.user, campaign_id), parent)


class PersonMasked(Schema):
    id: int
    name: str
    document_type: str
    document_number: str
    phone: str
    address: str
    region_code: str
    verified: bool


class PersonPage(Schema):
    items: list[PersonMasked]
    next_cursor: str | None


@router.get("/campaigns/{campaign_id}/untested", response=PersonPage, summary="Not yet sampled in this round (masked)")
def untested(request: HttpRequest, campaign_id: int, params: Query[PageParams], region: str = ""):
    require(request.user, "view_people")
    c = queries.get_campaign(request.user, campaign_id)
    rows, nxt = paginate(queries.untested(request.user, c, region), params.cursor, params.limit)
    return {"items": [masked(p) for p in rows], "next_cursor": nxt}


@router.get("/campaigns/{campaign_id}/carried-over", response=PersonPage, summary="Untested in the previous round")
def carried(request: HttpRequest, campaign_id: int, params: Query[PageParams]):
    require(request.user, "view_people")
    c = queries.get_campaign(request.user, campaign_id)
    rows, nxt = paginate(queries.carried_over(request.user, c), params.cursor, params.limit)
    return {"items": [masked(p) for p in rows], "next_cursor": nxt}


@router.get("/campaigns/{campaign_id}/turnaround", response=dict, summary="Lab turnaround and overdue tubes")
def turnaround(request: HttpRequest, campaign_id: int):
    t = queries.turnaround(request.user, queries.get_campaign(request.user, campaign_id))
    return {
        "labs": [{**{k: v for k, v in r.items() if k != "lab"}, "lab": r["lab"].code if r["lab"] else None}
                 for r in t["labs"]],
        "pending": t["pending"], "overdue_count": t["overdue_count"],
        "overdue": [{"barcode": x.barcode, "opened_at": x.opened_at.isoformat(), "capacity": x.capacity,
                     "due": queries.overdue_due(x).isoformat()} for x in t["overdue"]],
    }  # fmt: skip


class SiteIn(Schema):
    code: str
    name: str
    region_code: str
    hours: str = ""
    staff: int = 0


class SiteOut(Schema):
    id: int
    code: str
    name: str
    region_code: str
    hours: str
    staff: int


def _site(s) -> dict:
    return {"id": s.pk, "code": s.code, "name": s.name, "region_code": s.region_id, "hours": s.hours, "staff": s.staff}


@router.get("/sites", response=list[SiteOut], summary="Sampling sites in your jurisdiction")
def list_sites(request: HttpRequest):
    return [_site(s) for s in queries.sites_for(request.user)[:2000]]


@router.post("/sites", response={201: SiteOut}, summary="Open a sampling site")
def create_site(request: HttpRequest, payload: SiteIn):
    return Status(201, _site(admin_services.create_site(request.user, **payload.dict())))


class SitePatch(Schema):
    name: str | None = None
    region_code: str | None = None
    hours: str | None = None
    staff: int | None = None
    active: bool | None = None


@router.patch("/sites/{site_id}", response=SiteOut, summary="Change a sampling site (only the fields sent)")
def update_site(request: HttpRequest, site_id: int, payload: SitePatch):
    site = queries.get_site(request.user, site_id)
    return _site(admin_services.update_site(request.user, site, **payload.dict()))


class ScanIn(BaseModel):
    """Plain pydantic models for the terminal batch: Ninja's ``Schema`` resolves every field through its own
    hooks, which for a thousand scans costs more than writing them."""

    scan_id: str
    tube: str
    document_type: str = ""
    document_number: str
    name: str
    phone: str = ""
    collected_at: str
    site: str
    guardian_document: str = ""


class ScanBatchIn(BaseModel):
    scans: list[ScanIn]
    campaign_id: int | None = None


class ScanOutcomeOut(BaseModel):
    scan_id: str
    status: str
    reason: str = ""
    field: str = ""


class ScanBatchOut(BaseModel):
    accepted: int
    duplicate: int
    refused: int
    results: list[ScanOutcomeOut]


@router.post("/scans", response=ScanBatchOut, summary="Registrations from a sampling terminal (≤ 1,000 per batch)")
def scans(request: HttpRequest, payload: ScanBatchIn):
    campaign = queries.get_campaign(request.user, payload.campaign_id) if payload.campaign_id else None
    out = terminal.register_scans(request.user, [s.__dict__ for s in payload.scans], campaign=campaign)
    counts = {"accepted": 0, "duplicate": 0, "refused": 0}
    for o in out:
        counts[o.status] += 1
    # Built and encoded here rather than validated against ``ScanBatchOut`` again: the outcomes are ours.
    body = {**counts, "results": [{"scan_id": o.scan_id, "status": o.status, "reason": o.reason, "field": o.field}
                                  for o in out]}  # fmt: skip
    return HttpResponse(json.dumps(body, ensure_ascii=False), content_type="application/json")


class TubeOut(Schema):
    id: int
    barcode: str
    campaign_id: int
    site_id: int | None
    region_code: str
    capacity: int
    members: int
    opened_at: datetime
    sealed_at: datetime | None
    received_at: datetime | None
    resulted_at: datetime | None
    result: str
    ct_orf1ab: float | None
    ct_n: float | None


class TubePage(Schema):
    items: list[TubeOut]
    next_cursor: str | None


def _tube(t) -> dict:
    return {**{f: getattr(t, f) for f in ("id", "barcode", "campaign_id", "site_id", "capacity", "members", "opened_at",
                                          "sealed_at", "received_at", "resulted_at", "result", "ct_orf1ab", "ct_n")},
            "region_code": t.region_id}  # fmt: skip


@router.get("/tubes", response=TubePage, summary="Tubes in your jurisdiction")
def list_tubes(request: HttpRequest, params: Query[PageParams], campaign_id: int | None = None, result: str = ""):
    c = queries.get_campaign(request.user, campaign_id) if campaign_id else None
    qs = queries.tubes_for(request.user, c)
    if result:
        qs = qs.filter(result="" if result == "pending" else result)
    rows, nxt = paginate(qs, params.cursor, params.limit)
    return {"items": [_tube(t) for t in rows], "next_cursor": nxt}


@router.post("/tubes/{barcode}/seal", response=TubeOut, summary="Close a tube before it is full")
def seal(request: HttpRequest, barcode: str):
    from django.http import Http404

    t = queries.tubes_for(request.user).filter(barcode=barcode).first()
    if t is None:
        raise Http404("no such tube in your jurisdiction")
    return _tube(services.seal_tube(request.user, t))


class LabIn(Schema):
    code: str
    name: str
    region_code: str
    daily_capacity: int = 0


class LabOut(Schema):
    code: str
    name: str
    region_code: str
    daily_capacity: int


def _lab(lab) -> dict:
    return {"code": lab.code, "name": lab.name, "region_code": lab.region_id, "daily_capacity": lab.daily_capacity}


@router.get("/labs", response=list[LabOut], summary="Laboratories")
def list_labs(request: HttpRequest):
    return [_lab(x) for x in queries.labs_for(request.user)]


@router.post("/labs", response={201: LabOut}, summary="Register a laboratory")
def create_lab(request: HttpRequest, payload: LabIn):
    return Status(201, _lab(admin_services.create_lab(request.user, **payload.dict())))


class LabPatch(Schema):
    name: str | None = None
    daily_capacity: int | None = None


@router.patch("/labs/{code}", response=LabOut, summary="Change a laboratory's name or daily capacity")
def update_lab(request: HttpRequest, code: str, payload: LabPatch):
    lab = queries.get_lab(request.user, code)
    return _lab(admin_services.update_lab(request.user, lab, **payload.dict()))


class ReceiveIn(Schema):
    barcodes: list[str]


@router.post("/labs/{code}/receive", response=dict, summary="Tubes scanned in at the lab")
def receive(request: HttpRequest, code: str, payload: ReceiveIn):
    if len(payload.barcodes) > 5000:
        raise FieldError("barcodes", str(len(payload.barcodes)), "at most 5,000 barcodes per request")
    out = services.receive_tubes(request.user, queries.get_lab(request.user, code), payload.barcodes)
    return {"received": sum(v == "received" for v in out.values()), "results": out}


@router.post("/labs/{code}/results", response={200: dict, 400: dict}, summary="Upload a lab result file")
def upload_results(request: HttpRequest, code: str, file: File[UploadedFile]):
    from cordon.screening.results import import_results

    require(request.user, "lab_results")
    lab = queries.get_lab(request.user, code)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(file.name or "results.csv").name)
        with path.open("wb") as fh:
            for chunk in file.chunks():
                fh.write(chunk)
        errors = Path(tmp) / "errors.csv"
        try:
            summary = import_results(path, lab=lab, user=request.user, errors_path=errors)
        except FileUnusable as exc:
            return Status(400, {"error": {"code": "unusable_file", "message": str(exc), "field": "file"}})
        import csv

        with errors.open(encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))[:1000]
    body = {"accepted": summary.accepted, "updated": summary.updated, "unchanged": summary.unchanged,
            "rejected": summary.rejected, **summary.extra, "errors": rows}  # fmt: skip
    return body


class RetestOut(Schema):
    id: int
    person_id: int
    reason: str
    status: str
    source_tube: str
    retest_tube: str | None
    ordered_at: datetime
    due_at: datetime
    case_id: int | None
    region_code: str


class RetestPage(Schema):
    items: list[RetestOut]
    next_cursor: str | None


def _retest(r) -> dict:
    return {"id": r.pk, "person_id": r.person_id, "reason": r.reason, "status": r.status,
            "source_tube": r.source_tube.barcode, "retest_tube": r.retest_tube.barcode if r.retest_tube else None,
            "ordered_at": r.ordered_at, "due_at": r.due_at, "case_id": r.case_id, "region_code": r.region_id}  # fmt: skip


@router.get("/retests", response=RetestPage, summary="Recall (positive pools) and resample (invalid) lists")
def list_retests(request: HttpRequest, params: Query[PageParams], campaign_id: int | None = None, reason: str = "",
                 all: bool = False):  # fmt: skip
    c = queries.get_campaign(request.user, campaign_id) if campaign_id else None
    rows, nxt = paginate(queries.retests_for(request.user, c, reason, open_only=not all), params.cursor, params.limit)
    return {"items": [_retest(r) for r in rows], "next_cursor": nxt}


class SampleIn(Schema):
    tube: str
    collected_at: datetime | None = None


@router.post("/retests/{retest_id}/sample", response=RetestOut, summary="Single-tube re-sample taken")
def sample(request: HttpRequest, retest_id: int, payload: SampleIn):
    r = queries.get_retest(request.user, retest_id)
    return _retest(services.sample_retest(request.user, r, payload.tube, payload.collected_at))


class RetestResultIn(Schema):
    result: str


@router.post("/retests/{retest_id}/result", response=RetestOut, summary="A retest's result")
def retest_result(request: HttpRequest, retest_id: int, payload: RetestResultIn):
    r: Retest = queries.get_retest(request.user, retest_id)
    return _retest(services.resolve_retest(request.user, r, payload.result))


@router.get("/summary", response=dict, summary="Dashboard summary of the latest running round")
def summary(request: HttpRequest):
    s = queries.screening_summary(request.user)
    return {**s, "deadline": s["deadline"].isoformat() if s["deadline"] else None}
