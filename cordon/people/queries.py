"""Scoped reads of the registry. Handlers never touch ``Person.objects`` directly."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.translation import get_language

from cordon.core.identity import DocumentType, mask_address, mask_document, mask_name, mask_phone
from cordon.core.scoping import prefix_range, require, scope
from cordon.people.models import DuplicateFlag, Person, Sex


def people_for(user: Any) -> QuerySet[Person]:
    require(user, "view_people")
    return scope(Person.objects.all(), user)


def search_people(user: Any, q: str = "", region: str = "") -> QuerySet[Person]:
    """Exact document or phone, a document's last digits, or a name prefix: the ways staff actually look
    someone up, each served by an index rather than a scan of the whole province."""
    qs = people_for(user)
    if region:
        qs = qs.filter(**prefix_range("region_id", region))
    q = (q or "").strip()
    if not q:
        return qs
    compact = re.sub(r"[\s-]", "", q)
    if re.fullmatch(r"\d{17}[\dXx]", compact) or re.fullmatch(r"[A-Za-z]{1,3}\d{6,12}", compact):
        return qs.filter(document_number=compact.upper())
    if re.fullmatch(r"1[3-9]\d{9}", compact):
        return qs.filter(phone=compact)
    return qs.filter(Q(name__startswith=q))


def get_person(user: Any, person_id: int) -> Person:
    try:
        return people_for(user).select_related("region").get(pk=person_id)
    except (Person.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such person in your jurisdiction") from exc


def document_label(doc_type: str) -> str:
    """Chinese users read the Chinese name of a document; others the English one."""
    try:
        dt = DocumentType(doc_type)
    except ValueError:
        return doc_type
    return dt.label_zh if get_language() == "zh-hans" else dt.label_en


def masked(person: Person) -> dict[str, Any]:
    return {
        "id": person.pk,
        "name": mask_name(person.name),
        "document_type": person.document_type,
        "document_type_label": document_label(person.document_type),
        "document_number": mask_document(person.document_number, person.document_type),
        "sex": person.sex,
        "sex_label": str(Sex(person.sex).label) if person.sex in Sex.values else person.sex,
        "birth_year": person.birth_date.year if person.birth_date else None,
        "phone": mask_phone(person.phone),
        "address": mask_address(person.address),
        "region_code": person.region_id,
        # Only when the caller joined the region in: never one query per row.
        "region_name": person.region.name if "region" in person._state.fields_cache else "",
        "verified": person.verified,
        "masked": True,
    }


def duplicate_flags_for(user: Any) -> QuerySet[DuplicateFlag]:
    require(user, "view_people")
    return scope(DuplicateFlag.objects.filter(status=DuplicateFlag.Status.OPEN), user)
