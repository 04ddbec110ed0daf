"""Fixtures for the isolation module: a site, an index case and contacts of it, dated relative to today."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone


@pytest.fixture
def iso_user(make_user):
    return make_user("iso", role="isolation", region="430100")


@pytest.fixture
def make_site(iso_user):
    from cordon.isolation import services

    counter = {"n": 0}

    def make(floors: int = 6, rooms: int = 4, beds=1, region: str = "430102", **kw):
        counter["n"] += 1
        return services.create_site(iso_user, code=kw.pop("code", f"S{counter['n']}"), name=kw.pop("name", "东湖酒店"),
                                    region_code=region, floors=floors, rooms_per_floor=rooms, beds_per_room=beds, **kw)

    return make


def local_dt(day, hour: int = 9):
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


@pytest.fixture
def index_case(person_factory):
    from cordon.cases.services import report_case

    p = person_factory(name="病例甲")
    return report_case(None, p, classification="confirmed", region_code="430102", found_by="fever_clinic",
                       onset_date=timezone.localdate() - timedelta(days=1))


@pytest.fixture
def make_contact(index_case, person_factory):
    from cordon.tracing.models import Contact

    def make(days_ago: int = 1, kind: str = "close", status: str = "identified", address: str | None = None,
             region: str = "430102001001001", person=None, via=None, identified_hours_ago: float = 1):
        person = person or person_factory(region=region, name="密接乙",
                                          address=address if address is not None else f"芙蓉区人民路{Contact.objects.count() + 1}号")
        last = timezone.localdate() - timedelta(days=days_ago)
        now = timezone.now()
        return Contact.objects.create(
            index_case=index_case, person=person, kind=kind, status=status, setting="household",
            last_exposure_at=local_dt(last), last_exposure_date=last, identified_at=now - timedelta(hours=identified_hours_ago),
            transfer_due_at=now + timedelta(hours=8), region_id=person.region_id, index_region_id="430102", via=via,
        )

    return make
