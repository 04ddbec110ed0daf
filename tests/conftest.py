"""Shared fixtures: a small slice of the region tree with two counties, and users in each."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from cordon.core.identity import make_resident_id

TREE = [
    ("430000", "湖南省", "province", None),
    ("430100", "长沙市", "city", "430000"),
    ("430102", "芙蓉区", "county", "430100"),
    ("430104", "岳麓区", "county", "430100"),
    ("430102001", "东湖街道", "township", "430102"),
    ("430102001001", "幸福社区", "community", "430102001"),
    ("430102001001001", "第1网格", "grid", "430102001001"),
    ("430104001", "望月湖街道", "township", "430104"),
    ("430104001001", "枫林社区", "community", "430104001"),
    ("430104001001001", "第1网格", "grid", "430104001001"),
    ("430200", "株洲市", "city", "430000"),
    ("430202", "荷塘区", "county", "430200"),
]


@pytest.fixture
def regions(db) -> dict:
    from cordon.regions.models import Region

    out = {}
    for code, name, level, parent in TREE:
        r = Region(code=code, name=name, level=level, parent_id=parent)
        r.save()
        out[code] = r
    return out


@pytest.fixture
def make_user(regions):
    from cordon.core.models import User

    def make(username: str, role: str = "investigator", region: str = "430102", password: str = "s3cret-pass!"):
        user = User(username=username, role=role, region_id=region)
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def client_for():
    from django.test import Client

    def login(user) -> Client:
        c = Client()
        c.force_login(user)
        return c

    return login


def rid(region: str = "430102", year: int = 1990, month: int = 1, day: int = 1, seq: int = 1, sex: str = "M") -> str:
    from datetime import date

    return make_resident_id(region, date(year, month, day), seq, sex)


@pytest.fixture
def person_factory(regions):
    from cordon.people.models import Person

    counter = {"n": 0}

    def make(region: str = "430102001001001", name: str = "张三丰", **kw):
        counter["n"] += 1
        from datetime import date

        birth = kw.pop("birth_date", date(1980, 1, 1 + counter["n"] % 28))
        sex = kw.pop("sex", "M")
        number = kw.pop("document_number", make_resident_id(region[:6], birth, counter["n"], sex))
        return Person.objects.create(name=name, document_type="resident_id", document_number=number, sex=sex,
                                     birth_date=birth, region_id=region, phone=kw.pop("phone", "13812345678"),
                                     address=kw.pop("address", "湖南省长沙市芙蓉区人民路1号"), **kw)  # fmt: skip

    return make


def earlier_today(hours: float = 1) -> datetime:
    """``hours`` ago, but never before today's local midnight: for rows a test counts among today's figures,
    which would fall on yesterday when the suite runs just after midnight."""
    from django.utils import timezone

    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    return max(timezone.now() - timedelta(hours=hours), midnight)
