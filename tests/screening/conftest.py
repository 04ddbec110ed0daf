from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import rid


@pytest.fixture
def tester(make_user):
    return make_user("tester", role="testing", region="430100")


@pytest.fixture
def terminal(make_user):
    return make_user("terminal", role="machine", region="430100")


@pytest.fixture
def campaign(tester):
    from cordon.screening import services

    return services.create_campaign(tester, name="芙蓉区第1轮", start=True,
                                    starts_at=timezone.now() - timedelta(hours=2),
                                    areas=[{"region_code": "430102", "area_kind": "medium"},
                                           {"region_code": "430104", "area_kind": "low"}])


@pytest.fixture
def site(tester):
    from cordon.screening import services

    return services.create_site(tester, code="S-FR-1", name="幸福社区采样点", region_code="430102001001001",
                                hours="07:00-22:00", staff=6)


@pytest.fixture
def site_yl(tester):
    from cordon.screening import services

    return services.create_site(tester, code="S-YL-1", name="枫林社区采样点", region_code="430104001001001")


@pytest.fixture
def lab(tester):
    from cordon.screening import services

    return services.create_lab(tester, code="LAB1", name="长沙检测中心", region_code="430100", daily_capacity=50000)


@pytest.fixture
def scan():
    counter = {"n": 0}

    def make(tube: str, *, person=None, seq: int | None = None, site: str = "S-FR-1", **kw):
        counter["n"] += 1
        n = seq if seq is not None else counter["n"]
        number = person.document_number if person is not None else rid("430102", 1985, 1 + (n // 28) % 12, 1 + n % 28, (100 + n) % 500)
        data = {"scan_id": kw.pop("scan_id", f"T-{tube}-{n}"), "tube": tube, "document_type": "resident_id",
                "document_number": number, "name": kw.pop("name", "王五"), "phone": "13900000000",
                "collected_at": kw.pop("collected_at", timezone.now().isoformat()), "site": site}
        data.update(kw)
        return data

    return make
