"""/api/v1/isolation: sites and their board, placements and tests, releases, transfers and trips, capacity."""

from __future__ import annotations

from datetime import date, datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from cordon.core.pagination import paginate
from cordon.core.scoping import require
from cordon.isolation import queries, services
from cordon.isolation.models import IsolationSite, Placement, Transfer, Trip
from cordon.people.queries import masked
from cordon.people.validation import FieldError

router = Router(tags=["isolation"])


# ---- schemas -------------------------------------------------------------------------------------------


class SiteIn(Schema):
    code: str
    name: str
    region_code: str
    floors: int
    rooms_per_floor: int
    beds_per_room: int | list[int] = 1
    kind: str = "hotel"
    address: str = ""
    staff_count: int = 0
    contact_name: str = ""
    contact_phone: str = ""


class SiteOut(Schema):
    id: int
    code: str
    name: str
    kind: str
    region_code: str
    address: str
    floors: int
    status: str
    staff_count: int
    contact_name: str
    beds: int
    occupied: int


class StatusIn(Schema):
    status: str


class SampleIn(Schema):
    result: str
    room: str | None = None
    sampled_at: datetime | None = None


class AssignIn(Schema):
    contact_ids: list[int] | None = None
    due: bool = False
    dry_run: bool = False


class TestIn(Schema):
    positive: bool
    at: datetime | None = None
    classification: str = "asymptomatic"


class ReleaseIn(Schema):
    reason: str = ""
    at: datetime | None = None


class TransferRequestIn(Schema):
    contact_ids: list[int] | None = None
    due: bool = False


class TripPlanIn(Schema):
    site_id: int
    seats: int | None = None
    transfer_ids: list[int] | None = None


class TripStatusIn(Schema):
    status: str
    vehicle: str = ""
    at: datetime | None = None


class ListParams(Schema):
    status: str = ""
    site_id: int | None = None
    cursor: str | None = None
    limit: int = 50


# ---- serialisers ---------------------------------------------------------------------------------------


def _site(s: IsolationSite) -> dict:
    occ = services.occupancy_by_room(s)
    return {"id": s.pk, "code": s.code, "name": s.name, "kind": s.kind, "region_code": s.region_id,
            "address": s.address, "floors": s.floors, "status": s.status, "staff_count": s.staff_count,
            "contact_name": s.contact_name, "beds": sum(r.beds for r in s.rooms.filter(in_service=True)),
            "occupied": sum(occ.values())}  # fmt: skip


def _placement(p: Placement, tests: bool = False) -> dict:
    out = {"id": p.pk, "person": masked(p.person), "contact_id": p.contact_id, "subject": p.subject, "kind": p.kind,
           "site_id": p.site_id, "site_code": p.site.code if p.site_id else None,
           "room": p.room.number if p.room_id else None, "floor": p.floor, "status": p.status,
           "clock_start": p.clock_start, "start_date": p.start_date, "end_date": p.end_date,
           "entry_date": p.entry_date, "restarts": p.restarts, "missed_days": p.missed_days,
           "released_at": p.released_at, "release_reason": p.release_reason, "case_id": p.case_id,
           "previous_id": p.previous_id, "policy": p.policy_name}  # fmt: skip
    if tests:
        out["tests"] = [{"id": t.pk, "day": t.day, "due_date": t.due_date, "kind": t.kind, "status": t.status,
                         "sampled_at": t.sampled_at} for t in p.tests.all()]  # fmt: skip
    return out


def _transfer(t: Transfer) -> dict:
    return {"id": t.pk, "person": masked(t.person), "contact_id": t.contact_id, "contact_kind": t.contact_kind,
            "pickup_area": t.pickup_area, "site_id": t.site_id, "trip_id": t.trip_id, "status": t.status,
            "identified_at": t.identified_at, "requested_at": t.requested_at, "due_at": t.due_at,
            "dispatched_at": t.dispatched_at, "picked_up_at": t.picked_up_at, "arrived_at": t.arrived_at,
            "placement_id": t.placement_id}  # fmt: skip


def _trip(t: Trip) -> dict:
    return {"id": t.pk, "site_id": t.site_id, "pickup_area": t.pickup_area_id, "seats": t.seats,
            "vehicle": t.vehicle, "status": t.status, "transfers": list(t.transfers.values_list("pk", flat=True)),
            "dispatched_at": t.dispatched_at, "picked_up_at": t.picked_up_at, "arrived_at": t.arrived_at}  # fmt: skip


def _assignment(a: services.Assignment) -> dict:
    return {"placed": [_placement(p) for p in a.placements], "at_home": [_placement(p) for p in a.at_home],
            "unplaced": [c.contact.pk if c.contact else None for c in a.unplaced],
            "errors": [{"row": n, "reason": r} for n, r in a.errors], "cost": a.cost,
            "baseline_cost": a.baseline_cost, "strategy": a.strategy}  # fmt: skip


def _contacts(user, ids: list[int] | None, due: bool, awaiting: bool = False) -> list:
    qs = queries.contacts_awaiting_bed(user) if awaiting else queries.contacts_due_for_transfer(user)
    if ids is not None:
        found = {c.pk: c for c in queries.contacts_awaiting_bed(user).filter(pk__in=ids).select_related("person")}
        missing = [i for i in ids if i not in found]
        if missing:
            raise FieldError("contact_ids", str(missing[0]), "no such contact waiting, in your jurisdiction")
        return [found[i] for i in ids]
    if not due:
        raise FieldError("contact_ids", "", "give contact_ids, or due=true for every contact due")
    return list(qs.select_related("person").order_by("identified_at", "pk"))


# ---- sites ---------------------------------------------------------------------------------------------


@router.get("/sites", response=list[SiteOut], summary="Isolation sites in your jurisdiction")
def list_sites(request: HttpRequest):
    return [_site(s) for s in queries.sites_for(request.user)]


@router.post("/sites", response={201: SiteOut}, summary="Open a site with its rooms")
def create_site(request: HttpRequest, payload: SiteIn):
    s = services.create_site(request.user, **payload.dict())
    return Status(201, _site(s))


@router.get("/sites/{site_id}", response=dict, summary="A site's board: floors × rooms, occupants, today's tests")
def site_board(request: HttpRequest, site_id: int):
    site = queries.get_site(request.user, site_id)
    floors = []
    for f in queries.site_board(site):
        floors.append({"floor": f["floor"], "people": f["people"], "restarted": f["restarted"], "rooms": [
            {"number": r["room"].number, "beds": r["room"].beds, "free": r["free"], "cohort": r["cohort"],
             "occupants": [{"placement_id": o["placement"].pk, "person": masked(o["placement"].person),
                            "days_left": o["days_left"], "tests_today": [t.status for t in o["tests"]]}
                           for o in r["occupants"]]} for r in f["rooms"]]})  # fmt: skip
    return {"site": _site(site), "floors": floors}


@router.post("/sites/{site_id}/status", response=SiteOut, summary="Open, full, closed or disinfecting")
def site_status(request: HttpRequest, site_id: int, payload: StatusIn):
    return _site(services.set_site_status(request.user, queries.get_site(request.user, site_id), payload.status))


@router.post("/sites/{site_id}/environment-samples", response={201: dict}, summary="Record an environment sample")
def environment_sample(request: HttpRequest, site_id: int, payload: SampleIn):
    site = queries.get_site(request.user, site_id)
    room = None
    if payload.room:
        room = site.rooms.filter(number=payload.room).first()
        if room is None:
            raise FieldError("room", payload.room, "no such room in this site")
    s = services.record_environment_sample(request.user, site, room=room, result=payload.result,
                                           sampled_at=payload.sampled_at)  # fmt: skip
    restart = site.restarts.filter(source_sample=s).first()
    return Status(201, {"id": s.pk, "result": s.result, "restart_id": restart.pk if restart else None,
                        "people_affected": restart.people_affected if restart else 0})  # fmt: skip


@router.post("/sites/{site_id}/assign", response=dict, summary="Beds for a batch of contacts (households together)")
def assign(request: HttpRequest, site_id: int, payload: AssignIn):
    site = queries.get_site(request.user, site_id)
    contacts = _contacts(request.user, payload.contact_ids, payload.due, awaiting=True)
    cands = [services.Candidate.from_contact(c) for c in contacts]
    return _assignment(services.assign_beds(request.user, site, cands, dry_run=payload.dry_run))


# ---- placements ----------------------------------------------------------------------------------------


@router.get("/placements", response=dict, summary="Placements (masked)")
def list_placements(request: HttpRequest, params: Query[ListParams]):
    qs = queries.placements_for(request.user).select_related("person", "site", "room")
    if params.status:
        qs = qs.filter(status=params.status)
    if params.site_id:
        qs = qs.filter(site_id=params.site_id)
    rows, nxt = paginate(qs, params.cursor, params.limit)
    return {"items": [_placement(p) for p in rows], "next_cursor": nxt}


@router.get("/placements/{pk}", response=dict, summary="One placement with its test schedule")
def get_placement(request: HttpRequest, pk: int):
    return _placement(queries.get_placement(request.user, pk), tests=True)


@router.post("/placements/{pk}/tests", response={201: dict}, summary="A test result for the day (positive → case)")
def record_test(request: HttpRequest, pk: int, payload: TestIn):
    p = queries.get_placement(request.user, pk)
    t = services.record_test(request.user, p, positive=payload.positive, at=payload.at,
                             classification=payload.classification)  # fmt: skip
    p.refresh_from_db()
    return Status(201, {"test_id": t.pk, "status": t.status, "placement": _placement(p)})


@router.post("/placements/{pk}/tests/{test_id}/missed", response=dict, summary="Mark a test day missed (make-up)")
def missed(request: HttpRequest, pk: int, test_id: int):
    p = queries.get_placement(request.user, pk)
    t = p.tests.filter(pk=test_id).first()
    if t is None:
        raise FieldError("test_id", str(test_id), "no such test of this placement")
    services.mark_missed(request.user, t)
    p.refresh_from_db()
    return _placement(p, tests=True)


@router.post("/placements/{pk}/release", response={200: dict, 409: dict}, summary="Release (reason if early/late)")
def release(request: HttpRequest, pk: int, payload: ReleaseIn):
    p = queries.get_placement(request.user, pk)
    try:
        out = services.release(request.user, p, at=payload.at, reason=payload.reason)
    except services.ReleaseBlocked as e:
        return Status(409, {"error": {"code": "release_blocked", "message": e.reason, "field": "release",
                                      "details": [{"reason": b} for b in e.blockers]}})  # fmt: skip
    return _placement(out)


@router.get("/releases", response=list[dict], summary="Release list of a day (due or overdue, with blockers)")
def release_list(request: HttpRequest, day: date | None = None):
    return [{"placement": _placement(r["placement"]), "late": r["late"], "blockers": r["blockers"]}
            for r in queries.release_list(request.user, day)]  # fmt: skip


@router.get("/restarts", response=list[dict], summary="Cross-infection restarts")
def restarts(request: HttpRequest):
    return [{"id": r.pk, "site_id": r.site_id, "cause": r.cause, "scope": r.scope, "floors": r.floors,
             "clock_start": r.clock_start, "at": r.at, "people_affected": r.people_affected}
            for r in queries.restarts_for(request.user)[:200]]  # fmt: skip


# ---- transfers -----------------------------------------------------------------------------------------


@router.get("/transfers", response=dict, summary="Transfers (masked)")
def list_transfers(request: HttpRequest, params: Query[ListParams]):
    qs = queries.transfers_for(request.user).select_related("person")
    if params.status:
        qs = qs.filter(status=params.status)
    rows, nxt = paginate(qs, params.cursor, params.limit)
    return {"items": [_transfer(t) for t in rows], "next_cursor": nxt}


@router.post("/transfers", response={201: dict}, summary="Request transfers for contacts due")
def request_transfers(request: HttpRequest, payload: TransferRequestIn):
    require(request.user, "write_isolation")
    contacts = _contacts(request.user, payload.contact_ids, payload.due)
    created, skipped = services.request_transfers(request.user, contacts)
    return Status(201, {"created": [_transfer(t) for t in created],
                        "skipped": [{"contact_id": i, "reason": r} for i, r in skipped]})  # fmt: skip


class CancelIn(Schema):
    reason: str


@router.post("/transfers/{pk}/cancel", response=dict, summary="Cancel an open transfer (reason required)")
def cancel_transfer(request: HttpRequest, pk: int, payload: CancelIn):
    return _transfer(services.cancel_transfer(request.user, queries.get_transfer(request.user, pk), payload.reason))


@router.post("/trips", response={201: list[dict]}, summary="Group requested transfers into vehicle trips")
def plan_trips(request: HttpRequest, payload: TripPlanIn):
    site = queries.get_site(request.user, payload.site_id)
    qs = queries.transfers_for(request.user).filter(status="requested", trip__isnull=True).select_related("person", "contact")
    if payload.transfer_ids is not None:
        qs = qs.filter(pk__in=payload.transfer_ids)
    trips = services.plan_trips(request.user, site, list(qs), seats=payload.seats)
    return Status(201, [_trip(t) for t in trips])


@router.post("/trips/{pk}/status", response=dict, summary="Dispatched, picked up, arrived (arrival assigns beds)")
def trip_status(request: HttpRequest, pk: int, payload: TripStatusIn):
    trip = queries.get_trip(request.user, pk)
    out = services.advance_trip(request.user, trip, payload.status, at=payload.at, vehicle=payload.vehicle)
    trip.refresh_from_db()
    body = {"trip": _trip(trip)}
    if isinstance(out, services.Assignment):
        body["assignment"] = _assignment(out)
    return body


# ---- capacity ------------------------------------------------------------------------------------------


@router.get("/capacity", response=dict, summary="Beds now and projected for 7 days, per site and region")
def capacity(request: HttpRequest):
    cap = queries.capacity(request.user)
    return {"dates": cap["dates"], "warning_share": cap["warning_share"],
            "regions": cap["regions"], "unassigned_arrivals": cap["unassigned_arrivals"],
            "sites": [{"site_id": r["site"].pk, "code": r["site"].code, "beds": r["beds"], "occupied": r["occupied"],
                       "free": r["free"], "releases": r["releases"]} for r in cap["sites"]]}  # fmt: skip


@router.get("/summary", response=dict, summary="The dashboard's bed summary")
def summary(request: HttpRequest):
    require(request.user, "view_isolation")
    return queries.bed_summary(request.user)
