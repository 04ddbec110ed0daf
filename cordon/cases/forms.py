"""Parsing what the web forms post. The rules live in the services; these only turn text into values and
name the field that could not be read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.utils import timezone

from cordon.people.validation import FieldError, parse_date


def text(data: Any, name: str, *, required: bool = False, max_len: int = 200) -> str:
    value = str(data.get(name, "") or "").strip()
    if required and not value:
        raise FieldError(name, "", "required")
    if len(value) > max_len:
        raise FieldError(name, value[:20] + "…", f"longer than {max_len} characters")
    return value


def when(data: Any, name: str, *, required: bool = False) -> datetime | None:
    """``datetime-local`` inputs are wall-clock time in the deployment's zone."""
    raw = str(data.get(name, "") or "").strip()
    if not raw:
        if required:
            raise FieldError(name, "", "required")
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise FieldError(name, raw, "not a date and time (YYYY-MM-DDTHH:MM)") from exc
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def day(data: Any, name: str, *, required: bool = False) -> date | None:
    raw = str(data.get(name, "") or "").strip()
    if not raw:
        if required:
            raise FieldError(name, "", "required")
        return None
    return parse_date(raw, name)


def number(data: Any, name: str) -> float | None:
    raw = str(data.get(name, "") or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise FieldError(name, raw, "not a number") from exc


def integer(data: Any, name: str, *, required: bool = False) -> int | None:
    raw = str(data.get(name, "") or "").strip()
    if not raw:
        if required:
            raise FieldError(name, "", "required")
        return None
    if not raw.isdigit():
        raise FieldError(name, raw, "not a number")
    return int(raw)


def person_data(data: Any, prefix: str = "") -> dict[str, Any]:
    """A person typed into a form (interview): name, document, phone, region."""
    return {
        "name": text(data, f"{prefix}name", required=True, max_len=100),
        "document_type": text(data, f"{prefix}document_type") or "resident_id",
        "document_number": text(data, f"{prefix}document_number", required=True, max_len=32),
        "phone": text(data, f"{prefix}phone", max_len=20),
        "region_code": text(data, f"{prefix}region_code", max_len=15),
    }
