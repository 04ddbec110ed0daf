"""Fixtures of the command centre's tests: cases and contacts made directly (the cases and tracing services
are built in parallel), at fixed times in the deployment's zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

TZ = ZoneInfo("Asia/Shanghai")


def at(day: str, hm: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=TZ)


@pytest.fixture
def make_case(person_factory):
    from cordon.cases.models import Case

    counter = {"n": 0}

    def make(region: str = "430102", classification: str = "confirmed", reported_at: datetime | None = None,
             origin: str = "local", under_control: bool = False, **kw):  # fmt: skip
        counter["n"] += 1
        grid = {"430102": "430102001001001", "430104": "430104001001001"}.get(region, region)
        person = kw.pop("person", None) or person_factory(grid if len(grid) == 15 else "430102001001001")
        return Case.objects.create(number=kw.pop("number", f"C{counter['n']:04d}"), person=person,
                                   classification=classification, origin=origin, found_under_control=under_control,
                                   reported_at=reported_at or at("2022-05-10"), region_id=region, **kw)  # fmt: skip

    return make


@pytest.fixture
def make_contact(person_factory):
    from cordon.tracing.models import Contact

    def make(case, region: str = "430102", kind: str = "close", identified_at: datetime | None = None, **kw):
        ident = identified_at or at("2022-05-10", "12:00")
        person = kw.pop("person", None) or person_factory("430102001001001" if region == "430102" else "430104001001001")
        hours = 8 if kind == "close" else 12
        return Contact.objects.create(index_case=case, person=person, kind=kind, last_exposure_at=ident - timedelta(days=1),
                                      last_exposure_date=(ident - timedelta(days=1)).date(), identified_at=ident,
                                      transfer_due_at=kw.pop("transfer_due_at", ident + timedelta(hours=hours)),
                                      region_id=region, index_region_id=case.region_id, **kw)  # fmt: skip

    return make


@pytest.fixture
def county_hqs(regions):
    from cordon.command.services import ensure_headquarters

    return {code: ensure_headquarters(code) for code in ("430000", "430100", "430102", "430104", "430200", "430202")}


@pytest.fixture(autouse=True)
def _no_dashboard_cache(settings):
    """Each test builds its own figures: the dashboard's short cache would carry one test's into the next."""
    settings.CORDON_DASHBOARD_CACHE_SECONDS = 0
