"""Fixtures for cases and tracing tests: an investigator per county and a case factory."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.conftest import earlier_today


@pytest.fixture
def inv(make_user):
    return make_user("inv", role="investigator", region="430102")


@pytest.fixture
def inv2(make_user):
    return make_user("inv2", role="investigator", region="430104")


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return timezone.make_aware(datetime(y, m, d, hh, mm))


@pytest.fixture
def make_case(inv, person_factory):
    from cordon.cases.services import report_case

    def make(person=None, *, user=None, region_code="430102", classification="confirmed", onset_days_ago=2,
             reported_at=None, **kw):
        person = person or person_factory(name="病例甲")
        reported_at = reported_at or earlier_today()
        onset = kw.pop("onset_date", None)
        if onset is None and classification != "asymptomatic":
            onset = timezone.localdate(reported_at) - timedelta(days=onset_days_ago)
        return report_case(user or inv, person, classification=classification, region_code=region_code,
                           found_by=kw.pop("found_by", "fever_clinic"), onset_date=onset, reported_at=reported_at,
                           **kw)

    return make
