from __future__ import annotations

import pytest

from cordon.core.models import AuditEvent
from cordon.core.tokens import create_token
from tests.conftest import rid

URL = "/api/v1/people"


def _payload(**kw):
    data = {"name": "王小明", "document_number": rid("430102", 1985, 6, 1, 3, "M"), "phone": "+86 138-1234-5678",
            "address": "长沙市芙蓉区五一大道1号", "region_code": "430102001001001"}  # fmt: skip
    data.update(kw)
    return data


@pytest.fixture
def investigator(make_user):
    return make_user("inv", role="investigator", region="430102")


def test_create_is_masked_normalised_and_audited(investigator, client_for):
    c = client_for(investigator)
    r = c.post(URL, _payload(), content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "王**"
    assert body["document_number"].startswith("430") and "*" in body["document_number"]
    assert body["phone"] == "138****5678"
    assert body["birth_year"] == 1985 and body["sex"] == "M"
    ev = AuditEvent.objects.get(action="person.create")
    assert ev.object_id == str(body["id"]) and ev.actor_label == "inv"
    assert "王小明" not in str(ev.changes), "the audit trail must not copy personal data"


def test_duplicate_document_is_409_with_error_schema(investigator, client_for):
    c = client_for(investigator)
    assert c.post(URL, _payload(), content_type="application/json").status_code == 201
    r = c.post(URL, _payload(name="别人"), content_type="application/json")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "duplicate_document"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"document_number": "430102198506010000"}, "document_number"),
        ({"phone": "12345"}, "phone"),
        ({"region_code": "430104001001001"}, "region_code"),
        ({"region_code": "999999"}, "region_code"),
        ({"sex": "女"}, "document_number"),
    ],
)
def test_bad_input_names_the_field(investigator, client_for, override, field):
    r = client_for(investigator).post(URL, _payload(**override), content_type="application/json")
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == field and err["message"]


def test_schema_validation_uses_the_same_error_shape(investigator, client_for):
    r = client_for(investigator).post(URL, {"name": "x"}, content_type="application/json")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"


def test_update_and_reveal(investigator, client_for):
    c = client_for(investigator)
    pid = c.post(URL, _payload(), content_type="application/json").json()["id"]
    r = c.patch(f"{URL}/{pid}", {"phone": "13900001111"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["phone"] == "139****1111"
    assert AuditEvent.objects.get(action="person.update").changes["fields"] == ["phone"]
    r = c.post(f"{URL}/{pid}/reveal", {"reason": "流调核实"}, content_type="application/json")
    assert r.status_code == 200
    assert r.json()["name"] == "王小明" and r.json()["phone"] == "13900001111"
    ev = AuditEvent.objects.get(action="person.reveal")
    assert ev.changes["reason"] == "流调核实" and ev.actor_label == "inv"


def test_analyst_cannot_reveal_or_write(make_user, client_for, person_factory):
    p = person_factory()
    c = client_for(make_user("ana", role="analyst", region="430000"))
    assert c.get(f"{URL}/{p.pk}").status_code == 200
    r = c.post(f"{URL}/{p.pk}/reveal", {}, content_type="application/json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert c.post(URL, _payload(), content_type="application/json").status_code == 403
    assert not AuditEvent.objects.filter(action="person.reveal").exists()


def test_cursor_pagination_walks_everything_once(investigator, client_for, person_factory):
    ids = {person_factory(name=f"人{i}").pk for i in range(7)}
    c = client_for(investigator)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = c.get(URL, params).json()
        seen += [p["id"] for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and pages == 3
    bad = c.get(URL, {"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "cursor"


def test_search_by_document_phone_and_name(investigator, client_for, person_factory):
    a = person_factory(name="欧阳娜娜", phone="13711112222")
    person_factory(name="李四", phone="13733334444")
    c = client_for(investigator)
    assert [p["id"] for p in c.get(URL, {"q": a.document_number}).json()["items"]] == [a.pk]
    assert [p["id"] for p in c.get(URL, {"q": "137-1111-2222"}).json()["items"]] == [a.pk]
    assert [p["id"] for p in c.get(URL, {"q": "欧阳"}).json()["items"]] == [a.pk]


def test_bearer_token_auth_and_revocation(make_user, person_factory):
    from django.test import Client

    person_factory()
    machine = make_user("lab", role="machine", region="430100")
    token, secret = create_token(machine, "lab 1")
    c = Client()
    assert c.get(URL).status_code == 401
    assert c.get(URL, HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    ok = c.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ok.status_code == 200 and len(ok.json()["items"]) == 1
    assert token.digest != secret and secret not in str(token.__dict__)
    # Machine clients write without a CSRF token, since they do not use cookies.
    r = c.post(URL, _payload(), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert r.status_code == 201
    me = c.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert me["role"] == "machine" and me["region_code"] == "430100"
    revoked = c.delete(f"/api/v1/tokens/{token.pk}", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert revoked.status_code == 200
    assert c.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_session_writes_need_csrf(investigator):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(investigator)
    assert c.post(URL, _payload(), content_type="application/json").status_code in (401, 403)


def test_regions_tree_and_openapi(investigator, client_for):
    c = client_for(investigator)
    tree = c.get("/api/v1/regions/tree", {"depth": 3}).json()
    assert tree["code"] == "430102"
    assert tree["children"][0]["code"] == "430102001"
    assert tree["children"][0]["children"][0]["children"][0]["code"] == "430102001001001"
    assert c.get("/api/v1/regions/tree", {"root": "430000"}).status_code == 404
    spec = c.get("/api/v1/openapi.json").json()
    assert "/api/v1/people" in spec["paths"] and "/api/v1/people/{person_id}/reveal" in spec["paths"]
    docs = c.get("/api/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html


def test_newest_first_pagination_walks_downwards(investigator, person_factory):
    from cordon.core.pagination import paginate
    from cordon.people.models import Person

    ids = [person_factory(name=f"人{i}").pk for i in range(5)]
    first, cursor = paginate(Person.objects.all(), None, 2, newest_first=True)
    second, cursor2 = paginate(Person.objects.all(), cursor, 2, newest_first=True)
    third, end = paginate(Person.objects.all(), cursor2, 2, newest_first=True)
    assert [p.pk for p in first + second + third] == sorted(ids, reverse=True) and end is None
