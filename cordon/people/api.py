from __future__ import annotations

from datetime import date

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from cordon.core.pagination import paginate
from cordon.people import queries, services

router = Router(tags=["people"])


class PersonOut(Schema):
    id: int
    name: str
    document_type: str
    document_number: str
    sex: str
    birth_year: int | None
    phone: str
    address: str
    region_code: str
    verified: bool
    masked: bool


class PersonPage(Schema):
    items: list[PersonOut]
    next_cursor: str | None


class PersonIn(Schema):
    name: str
    document_type: str | None = None
    document_number: str
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str


class PersonPatch(Schema):
    name: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None


class RevealIn(Schema):
    fields: list[str] | None = None
    reason: str = ""


class SearchParams(Schema):
    q: str = ""
    region: str = ""
    cursor: str | None = None
    limit: int = 50


class Conflict(Schema):
    error: dict


@router.get("", response=PersonPage, summary="Search people in your jurisdiction (masked)")
def list_people(request: HttpRequest, params: Query[SearchParams]):
    rows, nxt = paginate(queries.search_people(request.user, params.q, params.region), params.cursor, params.limit)
    return {"items": [queries.masked(p) for p in rows], "next_cursor": nxt}


@router.get("/{person_id}", response=PersonOut, summary="One person (masked)")
def get_person(request: HttpRequest, person_id: int):
    return queries.masked(queries.get_person(request.user, person_id))


@router.post("", response={201: PersonOut, 409: Conflict}, summary="Register a person")
def create_person(request: HttpRequest, payload: PersonIn):
    data = payload.dict()
    data["region_id"] = data.pop("region_code")
    try:
        person = services.create_person(request.user, data)
    except services.DuplicateDocument as exc:
        return Status(409, {"error": {"code": "duplicate_document", "message": str(exc), "field": "document_number",
                               "details": [{"person_id": exc.person_id}]}})  # fmt: skip
    return Status(201, queries.masked(person))


@router.patch("/{person_id}", response=PersonOut, summary="Correct a person's details")
def update_person(request: HttpRequest, person_id: int, payload: PersonPatch):
    person = queries.get_person(request.user, person_id)
    data = payload.dict(exclude_unset=True)
    if "region_code" in data:
        data["region_id"] = data.pop("region_code")
    return queries.masked(services.update_person(request.user, person, data))


@router.post("/{person_id}/reveal", response=dict, summary="Unmasked details (audited)")
def reveal(request: HttpRequest, person_id: int, payload: RevealIn):
    person = queries.get_person(request.user, person_id)
    fields = tuple(payload.fields) if payload.fields else services.REVEALABLE
    return services.reveal_person(request.user, person, fields, payload.reason)
