"""/api/v1/cases: report, read, reclassify, test, discharge, status; the investigation and its trajectory."""

from __future__ import annotations

from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema, Status

from cordon.cases import queries, services
from cordon.cases.models import Case, Investigation
from cordon.core.pagination import paginate
from cordon.people import queries as people_q

router = Router(tags=["cases"])


class InvestigationOut(Schema):
    id: int
    status: str
    investigator_id: int | None
    opened_at: datetime
    trajectory_due_at: datetime
    preliminary_due_at: datetime
    contacts_due_at: datetime
    complete_due_at: datetime
    trajectory_published_at: datetime | None
    preliminary_report_at: datetime | None
    contacts_done_at: datetime | None
    closed_at: datetime | None
    lookback_from: date
    policy_name: str
    overdue: list[str]
    notes: str


class CaseOut(Schema):
    id: int
    number: str
    person_id: int
    person: dict
    classification: str
    severity: str
    origin: str
    origin_detail: str
    found_by: str
    found_under_control: bool
    onset_date: date | None
    sampled_at: datetime | None
    first_positive_at: datetime | None
    diagnosed_at: datetime | None
    reported_at: datetime
    region_code: str
    hospital: str
    status: str
    discharged_at: datetime | None
    home_monitoring_end: date | None
    home_test_dates: list[str]
    source_case_id: int | None


class CaseDetail(CaseOut):
    investigation: InvestigationOut | None
    reclassifications: list[dict]


class CasePage(Schema):
    items: list[CaseOut]
    next_cursor: str | None


class CaseIn(Schema):
    person_id: int
    classification: str
    region_code: str
    found_by: str
    found_under_control: bool = False
    origin: str = "local"
    origin_detail: str = ""
    onset_date: date | None = None
    sampled_at: datetime | None = None
    first_positive_at: datetime | None = None
    reported_at: datetime | None = None
    diagnosed_at: datetime | None = None
    severity: str | None = None
    hospital: str = ""
    source_case_id: int | None = None


class CaseFilters(Schema):
    classification: str = ""
    status: str = ""
    region: str = ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    cursor: str | None = None
    limit: int = 50


class ReclassifyIn(Schema):
    to: str
    reason: str


class TestIn(Schema):
    sampled_at: datetime
    positive: bool
    ct_n: float | None = None
    ct_orf1ab: float | None = None


class StatusIn(Schema):
    status: str
    reason: str = ""


class ExposureIn(Schema):
    place: str = ""
    venue_code: str = ""
    address: str = ""
    region_code: str = ""
    start: datetime
    end: datetime
    transport: str = ""
    transport_number: str = ""
    carriage: str = ""
    seat: str = ""
    source: str = "interview"
    notes: str = ""


class ExposureOut(Schema):
    id: int
    place: str
    venue_code: str
    address: str
    start: datetime
    end: datetime
    transport: str
    transport_number: str
    carriage: str
    seat: str
    source: str
    published: bool


class InvestigationPatch(Schema):
    investigator_id: int | None = None
    milestone: str | None = None
    notes: str | None = None
    close: bool = False


def case_out(c: Case) -> dict:
    return {
        **{f: getattr(c, f) for f in ("id", "number", "person_id", "classification", "severity", "origin",
                                      "origin_detail", "found_by", "found_under_control", "onset_date", "sampled_at",
                                      "first_positive_at", "diagnosed_at", "reported_at", "hospital", "status",
                                      "discharged_at", "home_monitoring_end", "home_test_dates", "source_case_id")},
        "region_code": c.region_id,
        "person": people_q.masked(c.person),
    }  # fmt: skip


def investigation_out(inv: Investigation) -> dict:
    data = {f.name: getattr(inv, f.name) for f in Investigation._meta.fields if f.name not in ("case", "region", "investigator")}
    data["investigator_id"] = inv.investigator_id
    data["overdue"] = queries.overdue(inv)
    return data


def case_detail(c: Case) -> dict:
    inv = getattr(c, "investigation", None)
    return {
        **case_out(c),
        "investigation": investigation_out(inv) if inv else None,
        "reclassifications": [{"from": r.from_classification, "to": r.to_classification, "at": r.at, "reason": r.reason,
                               "conversion": r.is_conversion} for r in c.reclassifications.all()],
    }  # fmt: skip


@router.get("", response=CasePage, summary="Cases in your jurisdiction (cursor-paginated, filtered)")
def list_cases(request: HttpRequest, f: Query[CaseFilters]):
    qs = queries.search_cases(request.user, classification=f.classification, status=f.status, region=f.region,
                              date_from=f.date_from, date_to=f.date_to, q=f.q).select_related("person")  # fmt: skip
    rows, nxt = paginate(qs, f.cursor, f.limit, newest_first=True)
    return {"items": [case_out(c) for c in rows], "next_cursor": nxt}


@router.post("", response={201: CaseDetail}, summary="Report a case (opens its investigation)")
def create_case(request: HttpRequest, payload: CaseIn):
    person = people_q.get_person(request.user, payload.person_id)
    data = payload.dict()
    data.pop("person_id")
    source_id = data.pop("source_case_id")
    source = queries.get_case(request.user, source_id) if source_id else None
    case = services.report_case(request.user, person, source_case=source, **data)
    return Status(201, case_detail(queries.get_case(request.user, case.pk)))


@router.get("/figures", response=dict, summary="Figures of one day (conversions are not new cases)")
def figures(request: HttpRequest, day: date, region: str = ""):
    return queries.daily_figures(request.user, day, region)


@router.get("/{case_id}", response=CaseDetail, summary="One case with its investigation")
def get_case(request: HttpRequest, case_id: int):
    return case_detail(queries.get_case(request.user, case_id))


@router.post("/{case_id}/reclassify", response=CaseDetail, summary="Reclassify (转归/订正)")
def reclassify(request: HttpRequest, case_id: int, payload: ReclassifyIn):
    case = queries.get_case(request.user, case_id)
    services.reclassify(request.user, case, payload.to, payload.reason)
    return case_detail(queries.get_case(request.user, case_id))


@router.post("/{case_id}/tests", response={201: dict}, summary="Record a test of the case (Ct values)")
def add_test(request: HttpRequest, case_id: int, payload: TestIn):
    case = queries.get_case(request.user, case_id)
    t = services.record_case_test(request.user, case, **payload.dict())
    case.refresh_from_db()
    ok, why = services.discharge_check(case)
    return Status(201, {"id": t.pk, "case_status": case.status, "discharge_eligible": ok, "discharge_reason": why})


@router.post("/{case_id}/discharge", response=CaseDetail, summary="Discharge under the policy's rule")
def discharge(request: HttpRequest, case_id: int):
    case = queries.get_case(request.user, case_id)
    services.discharge(request.user, case)
    return case_detail(queries.get_case(request.user, case_id))


@router.post("/{case_id}/status", response=CaseDetail, summary="Set status (in hospital, died)")
def set_status(request: HttpRequest, case_id: int, payload: StatusIn):
    case = queries.get_case(request.user, case_id)
    services.set_status(request.user, case, payload.status, reason=payload.reason)
    return case_detail(queries.get_case(request.user, case_id))


@router.get("/{case_id}/exposures", response=list[ExposureOut], summary="The case's trajectory")
def exposures(request: HttpRequest, case_id: int):
    return list(queries.get_case(request.user, case_id).exposures.all())


@router.post("/{case_id}/exposures", response={201: ExposureOut}, summary="Add a trajectory stop")
def add_exposure(request: HttpRequest, case_id: int, payload: ExposureIn):
    case = queries.get_case(request.user, case_id)
    return Status(201, services.add_exposure(request.user, case, **payload.dict()))


@router.patch("/{case_id}/investigation", response=InvestigationOut,
              summary="Assign, mark a milestone (trajectory, preliminary, contacts), notes, close")  # fmt: skip
def patch_investigation(request: HttpRequest, case_id: int, payload: InvestigationPatch):
    case = queries.get_case(request.user, case_id)
    inv = case.investigation
    data = payload.dict(exclude_unset=True)
    if "investigator_id" in data:
        who = None
        if data["investigator_id"] is not None:
            who = get_user_model().objects.filter(pk=data["investigator_id"]).first()
            if who is None:
                raise Http404("no such user")
        services.assign_investigator(request.user, inv, who)
    if data.get("milestone"):
        services.mark_milestone(request.user, inv, data["milestone"])
    if data.get("notes") is not None:
        services.save_notes(request.user, inv, data["notes"])
    if data.get("close"):
        services.close_investigation(request.user, inv, at=timezone.now())
    inv.refresh_from_db()
    return investigation_out(inv)


