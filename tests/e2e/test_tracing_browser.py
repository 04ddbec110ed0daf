from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cordon.cases.models import Case
from cordon.tracing.models import Contact
from tests.conftest import rid
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_report_case_add_contact_countdown_and_chain(page, shot, make_user, person_factory):
    person_factory(name="欧阳病例", phone="13912345678")
    make_user("inv", role="investigator", region="430102", password="Str0ng-pass-1")
    login(page, "inv", "Str0ng-pass-1")

    page.goto(page.base_url + "/cases/")
    page.click("#report-case")
    page.fill("input[name=q]", "欧阳")
    page.click("form.search button[type=submit]")
    page.click("#person-results a.pick")
    page.select_option("select[name=classification]", "confirmed")
    page.select_option("select[name=found_by]", "fever_clinic")
    page.fill("input[name=hospital]", "长沙市公共卫生救治中心")
    shot(page, "tracing-report-form")
    page.click("#submit-report")
    page.wait_for_selector("#case-number")
    case = Case.objects.get()
    assert page.text_content("#case-number").strip() == case.number
    # the investigation's countdowns are running
    # a locator assertion polls from outside the page: the page's CSP forbids the eval a
    # string predicate needs once its first check comes back false
    expect(page.locator("#investigation .countdown").first).to_have_text(re.compile(r"\S"))
    first = page.text_content("#investigation .countdown")
    assert "h" in first and "overdue" not in first

    page.fill("#add-contact input[name=name]", "密接甲")
    page.fill("#add-contact input[name=document_number]", rid("430102", 1988, 8, 8, 5))
    page.fill("#add-contact input[name=region_code]", "430102001001001")
    page.select_option("#add-contact select[name=setting]", "household")
    page.click("#add-contact-submit")
    page.wait_for_selector("#contact-table tr.st-identified")
    contact = Contact.objects.get()
    assert contact.status == "identified" and contact.person.verified is False
    row = page.locator("#contact-table tr.st-identified")
    assert "密接甲" not in row.text_content(), "the contact's name is masked"
    assert row.locator(".countdown").text_content().strip()
    # the chain: the case and its contact, drawn on a canvas
    page.wait_for_selector("#chain[data-ready='1'] canvas")
    page.locator("#chain-card").scroll_into_view_if_needed()
    shot(page, "tracing-case-page")

    page.goto(page.base_url + "/cases/board/")
    page.wait_for_selector("#board .countdown")
    shot(page, "tracing-board")
    page.goto(page.base_url + "/tracing/")
    assert page.locator("#contact-rows tr.st-identified").count() == 1
    shot(page, "tracing-contacts")
