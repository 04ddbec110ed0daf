"""Setting up the places of a round from the browser: sampling sites (code, name, grid, hours, samplers) and
laboratories (code, name, daily capacity). Inputs arrive as form text, so they are checked here once for
both the pages and the API; each write records its audit event in the same transaction, and only a user whose
jurisdiction holds the site or lab may change it.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from cordon.core import audit
from cordon.core.scoping import in_jurisdiction, require
from cordon.people.validation import FieldError
from cordon.regions.models import Level, Region
from cordon.screening import services
from cordon.screening.models import Lab, Site

_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Sites sit in the places people are registered in: a grid, or a community where grids are not drawn.
SITE_LEVELS = (Level.GRID, Level.COMMUNITY)
MAX_STAFF = 10_000
MAX_DAILY_CAPACITY = 10_000_000


def _code(value: Any) -> str:
    code = str(value or "").strip()
    if not _CODE_RE.match(code):
        raise FieldError("code", code, _("letters, digits, '-', '_' or '.', at most 32"))
    return code


def _name(value: Any, fallback: str = "") -> str:
    name = " ".join(str(value or "").split())
    if not name and not fallback:
        raise FieldError("name", "", _("required"))
    if len(name) > 100:
        raise FieldError("name", name[:20], _("at most 100 characters"))
    return name or fallback


def _count(field: str, value: Any, ceiling: int) -> int:
    text = str(value if value is not None else "").strip() or "0"
    try:
        n = int(text)
    except ValueError as exc:
        raise FieldError(field, text, _("a whole number")) from exc
    if n < 0 or n > ceiling:
        raise FieldError(field, text, _("between 0 and %(n)s") % {"n": ceiling})
    return n


def _hours(value: Any) -> str:
    hours = str(value or "").strip()
    if len(hours) > 50:
        raise FieldError("hours", hours[:20], _("at most 50 characters"))
    return hours


def _site_region(user: Any, code: Any) -> str:
    code = str(code or "").strip()
    level = Region.objects.filter(code=code).values_list("level", flat=True).first()
    if level is None:
        raise FieldError("region_code", code, _("unknown region code"))
    if level not in SITE_LEVELS:
        raise FieldError("region_code", code, _("a sampling site is placed in a grid or community"))
    if not in_jurisdiction(user, code):
        raise FieldError("region_code", code, _("outside your jurisdiction"))
    return code


def create_site(user: Any, *, code: Any, name: Any, region_code: Any, hours: Any = "", staff: Any = 0) -> Site:
    require(user, "write_screening")
    return services.create_site(user, code=_code(code), name=_name(name), region_code=_site_region(user, region_code),
                                hours=_hours(hours), staff=_count("staff", staff, MAX_STAFF))  # fmt: skip


def update_site(user: Any, site: Site, *, name: Any = None, region_code: Any = None, hours: Any = None,
                staff: Any = None, active: bool | None = None) -> Site:  # fmt: skip
    """Only the fields given change; the code is the site's identity on every tube and never changes."""
    require(user, "write_screening")
    if not in_jurisdiction(user, site.region_id):
        raise FieldError("site", site.code, _("outside your jurisdiction"))
    new: dict[str, Any] = {}
    if name is not None:
        new["name"] = _name(name)
    if region_code is not None and str(region_code).strip() != site.region_id:
        new["region_id"] = _site_region(user, region_code)
    if hours is not None:
        new["hours"] = _hours(hours)
    if staff is not None:
        new["staff"] = _count("staff", staff, MAX_STAFF)
    if active is not None:
        new["active"] = bool(active)
    changed = {k: [getattr(site, k), v] for k, v in new.items() if getattr(site, k) != v}
    if not changed:
        return site
    with transaction.atomic():
        for k, (_old, v) in changed.items():
            setattr(site, k, v)
        site.save(update_fields=list(changed))
        audit.record(user, "screening.site_update", site, region_code=site.region_id, changes=changed)
    return site


def create_lab(user: Any, *, code: Any, name: Any, region_code: Any, daily_capacity: Any = 0) -> Lab:
    require(user, "write_screening")
    region = str(region_code or "").strip()
    if not Region.objects.filter(code=region).exists():
        raise FieldError("region_code", region, _("unknown region code"))
    if not in_jurisdiction(user, region):
        raise FieldError("region_code", region, _("outside your jurisdiction"))
    return services.create_lab(user, code=_code(code), name=_name(name), region_code=region,
                               daily_capacity=_count("daily_capacity", daily_capacity, MAX_DAILY_CAPACITY))  # fmt: skip


def update_lab(user: Any, lab: Lab, *, name: Any = None, daily_capacity: Any = None) -> Lab:
    """A lab serving the whole city is seen by every county, but only changed from the city's jurisdiction."""
    require(user, "write_screening")
    if not in_jurisdiction(user, lab.region_id):
        raise FieldError("lab", lab.code, _("outside your jurisdiction"))
    new: dict[str, Any] = {}
    if name is not None:
        new["name"] = _name(name)
    if daily_capacity is not None:
        new["daily_capacity"] = _count("daily_capacity", daily_capacity, MAX_DAILY_CAPACITY)
    changed = {k: [getattr(lab, k), v] for k, v in new.items() if getattr(lab, k) != v}
    if not changed:
        return lab
    with transaction.atomic():
        for k, (_old, v) in changed.items():
            setattr(lab, k, v)
        lab.save(update_fields=list(changed))
        audit.record(user, "screening.lab_update", lab, region_code=lab.region_id, changes=changed)
    return lab
