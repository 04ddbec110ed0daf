from __future__ import annotations

import pytest

from cordon.core.models import AuditEvent
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_login_search_and_reveal(page, shot, make_user, person_factory):
    target = person_factory(name="欧阳娜娜", phone="13912345678")
    person_factory(name="李四")
    person_factory("430104001001001", name="欧阳外县")
    make_user("inv", role="investigator", region="430102", password="Str0ng-pass-1")

    login(page, "inv", "Str0ng-pass-1")
    assert "芙蓉区" in page.text_content(".jurisdiction")
    shot(page, "home")

    page.goto(page.base_url + "/people/")
    page.fill("input[name=q]", "欧阳")
    page.click("form.search button[type=submit]")
    page.wait_for_selector("#people-rows tr")
    rows = page.locator("#people-rows a.person-name")
    assert rows.count() == 1, "the other county's 欧阳 is not visible"
    assert rows.first.text_content().strip() == "欧***"
    shot(page, "people-search")

    rows.first.click()
    page.wait_for_selector("#doc-masked")
    masked = page.text_content("#doc-masked")
    assert "*" in masked and target.document_number not in masked
    page.fill("input[name=reason]", "流调核实")
    page.click("#reveal")
    page.wait_for_selector("#revealed-document")
    assert page.text_content("#revealed-document").strip() == target.document_number
    assert page.text_content("#revealed-name").strip() == "欧阳娜娜"
    shot(page, "person-revealed")
    ev = AuditEvent.objects.get(action="person.reveal")
    assert ev.object_id == str(target.pk) and ev.changes["reason"] == "流调核实"
