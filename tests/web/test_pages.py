from __future__ import annotations

import re

import pytest
from django.test import Client

from cordon.core.models import AuditEvent


@pytest.fixture
def inv(make_user):
    return make_user("inv", role="investigator", region="430102")


def _external_refs(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']+)["']""", html)
    return [r for r in refs if re.match(r"^(https?:)?//", r)]


def test_login_required_and_login_page_is_self_contained(db):
    c = Client()
    r = c.get("/people/")
    assert r.status_code == 302 and r["Location"].startswith("/login/")
    page = c.get("/login/")
    assert page.status_code == 200
    assert _external_refs(page.content.decode()) == []
    csp = page["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize("url", ["/", "/people/", "/regions/", "/people/duplicates/"])
def test_pages_render_with_jurisdiction_and_no_external_requests(inv, client_for, person_factory, url):
    person_factory()
    r = client_for(inv).get(url)
    assert r.status_code == 200
    html = r.content.decode()
    assert "芙蓉区" in html and "430102" in html, "the user's jurisdiction is shown"
    assert _external_refs(html) == []
    assert "<script>" not in html, "no inline scripts (CSP)"


def test_people_list_is_masked_and_reveal_is_audited(inv, client_for, person_factory):
    p = person_factory(name="张三丰")
    c = client_for(inv)
    listing = c.get("/people/").content.decode()
    assert "张**" in listing and "张三丰" not in listing and p.document_number not in listing
    detail = c.get(f"/people/{p.pk}/").content.decode()
    assert p.document_number not in detail
    r = c.post(f"/people/{p.pk}/reveal", {"reason": "核实"})
    assert r.status_code == 200
    assert p.document_number in r.content.decode() and "张三丰" in r.content.decode()
    assert AuditEvent.objects.filter(action="person.reveal", object_id=str(p.pk), actor_label="inv").count() == 1
    assert c.get(f"/people/{p.pk}/reveal").status_code == 405


def test_analyst_sees_no_reveal_button_and_is_refused(make_user, client_for, person_factory):
    p = person_factory()
    c = client_for(make_user("ana", role="analyst", region="430000"))
    assert 'id="reveal"' not in c.get(f"/people/{p.pk}/").content.decode()
    assert c.post(f"/people/{p.pk}/reveal").status_code == 403


def test_region_tree_expands_one_level_at_a_time(inv, client_for):
    c = client_for(inv)
    page = c.get("/regions/").content.decode()
    assert "东湖街道" in page and "幸福社区" not in page
    frag = c.get("/regions/430102001/children").content.decode()
    assert "幸福社区" in frag
    assert c.get("/regions/430104001/children").status_code == 404


def test_language_switch(inv, client_for):
    c = client_for(inv)
    zh = c.get("/people/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "人员" in zh
    c.post("/i18n/setlang/", {"language": "en", "next": "/people/"})
    en = c.get("/people/").content.decode()
    assert "People" in en and 'lang="en"' in en


def test_login_lockout_after_repeated_failures(make_user, settings):
    make_user("victim", password="right-password-1")
    c = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        r = c.post("/login/", {"username": "victim", "password": "wrong"})
        assert r.status_code in (200, 403, 429)
    r = c.post("/login/", {"username": "victim", "password": "right-password-1"})
    assert r.status_code in (403, 429), "locked out even with the right password"
    assert "/login/" not in r.get("Location", "")


def test_successful_login_uses_argon2(make_user):
    user = make_user("u1", password="right-password-1")
    assert user.password.startswith("argon2")
    c = Client()
    r = c.post("/login/", {"username": "u1", "password": "right-password-1"})
    assert r.status_code == 302 and r["Location"] == "/"


def test_audit_trail_page_is_scoped_and_needs_the_capability(make_user, client_for, person_factory):
    from django.db import transaction

    from cordon.core import audit

    mine = person_factory("430102001001001")
    theirs = person_factory("430104001001001")
    with transaction.atomic():
        audit.record("x", "person.reveal", mine, region_code=mine.region_id)
        audit.record("x", "person.reveal", theirs, region_code=theirs.region_id)
    assert client_for(make_user("inv2", role="investigator", region="430102")).get("/audit/").status_code == 403
    county = client_for(make_user("sup", role="supervisor", region="430102")).get("/audit/?action=person.reveal")
    html = county.content.decode()
    assert f"people.person:{mine.pk}<" in html and f"people.person:{theirs.pk}<" not in html
    province = client_for(make_user("sup2", role="supervisor", region="430000")).get("/audit/?action=person.")
    assert f"people.person:{theirs.pk}<" in province.content.decode()


def test_duplicate_review_records_the_verdict(inv, client_for, person_factory):
    from cordon.people.models import DuplicateFlag

    a = person_factory(name="张伟", phone="13800001111")
    b = person_factory(name="张伟", phone="13800001111")
    flag = DuplicateFlag.objects.create(person=b, other=a, reason="same name, birth date and phone", region_id=b.region_id)
    c = client_for(inv)
    assert "张*" in c.get("/people/duplicates/").content.decode()
    r = c.post(f"/people/duplicates/{flag.pk}/resolve", {"verdict": "distinct"})
    assert r.status_code == 302
    flag.refresh_from_db()
    assert flag.status == "distinct"
    assert AuditEvent.objects.filter(action="people.duplicate_resolved").count() == 1
    assert c.post(f"/people/duplicates/{flag.pk}/resolve", {"verdict": "same"}).status_code == 404
