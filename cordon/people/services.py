"""Writes to the registry. Each runs in one transaction with its audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from cordon.core import audit
from cordon.core.scoping import in_jurisdiction, require
from cordon.people.models import DuplicateFlag, Person
from cordon.people.validation import COMPARED_FIELDS, FieldError, clean_person
from cordon.regions.models import Region

REVEALABLE = ("name", "document_number", "phone", "address", "birth_date")


class DuplicateDocument(Exception):
    def __init__(self, person_id: int) -> None:
        super().__init__(f"a person with this document is already registered (#{person_id})")
        self.person_id = person_id


def _check_region(user: Any, code: str) -> None:
    if not Region.objects.filter(code=code).exists():
        raise FieldError("region_code", code, "unknown region code")
    if not in_jurisdiction(user, code):
        raise FieldError("region_code", code, "outside your jurisdiction")


def create_person(user: Any, data: dict[str, Any], *, verified: bool = True) -> Person:
    require(user, "write_people")
    clean = clean_person(data)
    _check_region(user, clean["region_id"])
    with transaction.atomic():
        existing = Person.objects.filter(
            document_type=clean["document_type"], document_number=clean["document_number"]
        ).first()
        if existing is not None:
            raise DuplicateDocument(existing.pk)
        person = Person.objects.create(verified=verified, **clean)
        audit.record(user, "person.create", person, region_code=person.region_id, changes={"fields": sorted(clean)})
        _flag_likely_duplicates(person)
    return person


def update_person(user: Any, person: Person, data: dict[str, Any]) -> Person:
    require(user, "write_people")
    if not in_jurisdiction(user, person.region_id):
        raise FieldError("region_code", person.region_id, "outside your jurisdiction")
    merged = {f: getattr(person, f) for f in ("name", "document_type", "document_number", "sex", "birth_date",
                                               "phone", "address", "region_id")}  # fmt: skip
    merged.update({k: v for k, v in data.items() if v is not None})
    clean = clean_person(merged)
    if (clean["document_type"], clean["document_number"]) != (person.document_type, person.document_number):
        raise FieldError("document_number", clean["document_number"], "a document number cannot be changed here")
    _check_region(user, clean["region_id"])
    changed = [f for f in COMPARED_FIELDS if getattr(person, f) != clean[f]]
    if not changed:
        return person
    with transaction.atomic():
        for f in changed:
            setattr(person, f, clean[f])
        person.save(update_fields=[*changed, "updated_at"])
        # Values are not copied into the audit trail: the trail must not become a second copy of the data.
        audit.record(user, "person.update", person, region_code=person.region_id, changes={"fields": changed})
        _flag_likely_duplicates(person)
    return person


def reveal_person(user: Any, person: Person, fields: tuple[str, ...] = REVEALABLE, reason: str = "") -> dict:
    """The unmasked view is its own action, allowed only to roles that need it and always audited."""
    require(user, "reveal_personal")
    if not in_jurisdiction(user, person.region_id):
        raise FieldError("region_code", person.region_id, "outside your jurisdiction")
    fields = tuple(f for f in fields if f in REVEALABLE)
    with transaction.atomic():
        audit.record(user, "person.reveal", person, region_code=person.region_id,
                     changes={"fields": list(fields), "reason": reason})  # fmt: skip
    out: dict[str, Any] = {f: getattr(person, f) for f in fields}
    if "birth_date" in out and out["birth_date"] is not None:
        out["birth_date"] = out["birth_date"].isoformat()
    return out


def _flag_likely_duplicates(person: Person) -> int:
    if not person.phone or not person.birth_date:
        return 0
    others = Person.objects.filter(name=person.name, birth_date=person.birth_date, phone=person.phone).exclude(
        pk=person.pk
    )
    n = 0
    for other in others:
        a, b = sorted((person.pk, other.pk))
        if DuplicateFlag.objects.filter(person_id__in=(a, b), other_id__in=(a, b)).exists():
            continue
        DuplicateFlag.objects.create(person_id=b, other_id=a, reason="same name, birth date and phone",
                                     region_id=person.region_id)  # fmt: skip
        n += 1
    if n:
        audit.record("system", "people.duplicates_flagged", person, region_code=person.region_id, changes={"pairs": n})
    return n


def resolve_duplicate(user: Any, flag: DuplicateFlag, same_person: bool) -> DuplicateFlag:
    require(user, "write_people")
    if not in_jurisdiction(user, flag.region_id):
        raise FieldError("region_code", flag.region_id, "outside your jurisdiction")
    with transaction.atomic():
        flag.status = DuplicateFlag.Status.SAME if same_person else DuplicateFlag.Status.DISTINCT
        flag.save(update_fields=["status"])
        audit.record(user, "people.duplicate_resolved", flag, region_code=flag.region_id,
                     changes={"status": flag.status})  # fmt: skip
    return flag
