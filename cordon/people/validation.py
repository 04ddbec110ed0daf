"""Turning what a user typed (or a file held) into a registry entry, field by field.

One function serves the importer, the API and the web forms, so a person accepted by one path is accepted
by all, and a refusal names the same field and reason everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cordon.core.identity import (
    DocumentType,
    IdentityError,
    normalise_phone,
    parse_document_type,
    parse_resident_id,
    validate_document,
)

_SEX = {
    "男": "M", "m": "M", "male": "M", "1": "M",
    "女": "F", "f": "F", "female": "F", "2": "F",
    "未知": "U", "u": "U", "unknown": "U", "0": "U", "9": "U",
}  # fmt: skip
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
PERSON_FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region_id")
COMPARED_FIELDS = ("name", "sex", "birth_date", "phone", "address", "region_id")


@dataclass
class FieldError(Exception):
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason} ({self.value!r})"


def parse_sex(text: str) -> str:
    key = str(text or "").strip().lower()
    if not key:
        return ""
    if key not in _SEX:
        raise FieldError("sex", text, "expected 男/女 or M/F")
    return _SEX[key]


def parse_date(text: Any, field: str = "birth_date") -> date | None:
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    s = str(text).strip()
    if "T" in s or " " in s:
        s = re.split(r"[T ]", s)[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise FieldError(field, str(text), "not a date (expected YYYY-MM-DD)")


def clean_person(data: dict[str, Any], *, today: date | None = None) -> dict[str, Any]:
    """Validate and normalise one person. Raises FieldError for the first bad field.

    For a resident ID the sex and birth date are embedded in the number: when given they must agree with
    it, when missing they are taken from it.
    """
    today = today or date.today()
    name = re.sub(r"\s+", " ", str(data.get("name") or "")).strip()
    if not name:
        raise FieldError("name", "", "required")
    if len(name) > 100:
        raise FieldError("name", name[:20] + "…", "longer than 100 characters")
    raw_type = str(data.get("document_type") or "").strip()
    try:
        doc_type = parse_document_type(raw_type) if raw_type else DocumentType.RESIDENT_ID
    except IdentityError as exc:
        raise FieldError("document_type", raw_type, str(exc)) from exc
    number = str(data.get("document_number") or "").strip()
    if not number:
        raise FieldError("document_number", "", "required")
    sex = parse_sex(data.get("sex") or "")
    birth = parse_date(data.get("birth_date"))
    if birth and birth > today:
        raise FieldError("birth_date", str(data.get("birth_date")), "in the future")
    try:
        number = validate_document(doc_type, number, sex=sex or None, birth_date=birth, today=today)
    except IdentityError as exc:
        raise FieldError("document_number", number, str(exc)) from exc
    if doc_type == DocumentType.RESIDENT_ID:
        rid = parse_resident_id(number, today=today)
        sex = sex or rid.sex
        birth = birth or rid.birth_date
    phone_raw = str(data.get("phone") or "").strip()
    try:
        phone = normalise_phone(phone_raw) if phone_raw else ""
    except IdentityError as exc:
        raise FieldError("phone", phone_raw, str(exc)) from exc
    address = str(data.get("address") or "").strip()
    if len(address) > 200:
        raise FieldError("address", address[:20] + "…", "longer than 200 characters")
    region = str(data.get("region_id") or data.get("region_code") or "").strip()
    if not region:
        raise FieldError("region_code", "", "required")
    if not region.isdigit() or len(region) not in (6, 9, 12, 15):
        raise FieldError("region_code", region, "not a region code (6, 9, 12 or 15 digits)")
    return {
        "name": name,
        "document_type": doc_type.value,
        "document_number": number,
        "sex": sex or "U",
        "birth_date": birth,
        "phone": phone,
        "address": address,
        "region_id": region,
    }
