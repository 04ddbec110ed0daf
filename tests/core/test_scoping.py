"""A county user sees none of another county's people: through queries, the UI, the API or an export."""

from __future__ import annotations

import io

import pytest
from python_calamine import CalamineWorkbook

from cordon.core.scoping import prefix_range, scope
from cordon.people import queries
from cordon.people.models import Person


@pytest.fixture
def two_counties(person_factory):
    mine = person_factory("430102001001001", name="芙蓉人")
    theirs = person_factory("430104001001001", name="岳麓人")
    return mine, theirs


def test_prefix_range_is_exact_on_digit_codes():
    assert prefix_range("code", "4301") == {"code__gte": "4301", "code__lt": "4302"}
    assert prefix_range("code", "4309") == {"code__gte": "4309", "code__lt": "430:"}


def test_query_scoping(two_counties, make_user):
    mine, theirs = two_counties
    fu = make_user("fu", region="430102")
    city = make_user("city", role="commander", region="430100")
    zhuzhou = make_user("zz", role="commander", region="430200")
    assert list(queries.people_for(fu)) == [mine]
    assert set(queries.people_for(city)) == {mine, theirs}
    assert list(queries.people_for(zhuzhou)) == []


def test_user_without_region_or_inactive_sees_nothing(two_counties, make_user):
    nobody = make_user("nobody", region="430102")
    nobody.region = None
    assert scope(Person.objects.all(), nobody).count() == 0
    inactive = make_user("inactive", region="430000")
    inactive.is_active = False
    assert scope(Person.objects.all(), inactive).count() == 0


def test_ui_list_detail_and_export_are_scoped(two_counties, make_user, client_for):
    mine, theirs = two_counties
    c = client_for(make_user("fu", region="430102"))
    page = c.get("/people/").content.decode()
    assert f"/people/{mine.pk}/" in page
    assert f"/people/{theirs.pk}/" not in page
    assert c.get(f"/people/{theirs.pk}/").status_code == 404
    assert c.post(f"/people/{theirs.pk}/reveal").status_code == 404
    resp = c.get("/people/export.xlsx")
    assert resp.status_code == 200
    data = b"".join(resp.streaming_content)
    rows = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == [mine.pk]
    assert theirs.name not in str(rows) and mine.name not in str(rows), "export is masked"


def test_api_is_scoped(two_counties, make_user, client_for):
    mine, theirs = two_counties
    c = client_for(make_user("fu", region="430102"))
    listing = c.get("/api/v1/people").json()
    assert [p["id"] for p in listing["items"]] == [mine.pk]
    assert c.get(f"/api/v1/people/{theirs.pk}").status_code == 404
    assert c.post(f"/api/v1/people/{theirs.pk}/reveal", {}, content_type="application/json").status_code == 404
    assert c.get("/api/v1/regions/430104").status_code == 404
    assert c.get("/api/v1/regions/430102").status_code == 200


def test_searching_by_another_countys_document_finds_nothing(two_counties, make_user, client_for):
    _, theirs = two_counties
    c = client_for(make_user("fu", region="430102"))
    assert c.get("/api/v1/people", {"q": theirs.document_number}).json()["items"] == []
