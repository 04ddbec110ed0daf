"""The command centre in Chromium: the dashboard renders with demo-like data, a task dispatched to a county is
acknowledged there, and the bulletin is published and appears on the public page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cordon.core import events
from tests.conftest import earlier_today
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _outbreak(person_factory):
    from cordon.cases.models import Case
    from cordon.tracing.models import Contact

    now = earlier_today()  # the figures count by the day a case was reported
    cases = []
    for i, (region, cls, origin, uc, days_ago) in enumerate([
        ("430102", "confirmed", "local", True, 0), ("430102", "asymptomatic", "local", False, 0),
        ("430104", "confirmed", "local", True, 0), ("430104", "asymptomatic", "local", True, 1),
        ("430202", "confirmed", "imported_abroad", False, 0), ("430102", "confirmed", "local", False, 2),
        ("430102", "asymptomatic", "local", True, 3), ("430104", "confirmed", "local", False, 5),
    ]):  # fmt: skip
        p = person_factory("430102001001001" if region == "430102" else "430104001001001", name=f"病例{i}")
        case = Case.objects.create(number=f"HN-{i:03d}", person=p, classification=cls, origin=origin,
                                   found_under_control=uc, reported_at=now - timedelta(days=days_ago),
                                   region_id=region)  # fmt: skip
        events.emit("case.reported", case=case, user=None)
        cases.append(case)
    contacts = []
    for j in range(6):
        p = person_factory("430102001001001", name=f"密接{j}")
        ident = now
        contacts.append(Contact.objects.create(index_case=cases[0], person=p, kind="close" if j < 4 else "secondary",
                                               last_exposure_at=ident - timedelta(days=1),
                                               last_exposure_date=(ident - timedelta(days=1)).date(),
                                               identified_at=ident, transfer_due_at=ident + timedelta(hours=8),
                                               region_id="430102", index_region_id="430102"))  # fmt: skip
    events.emit("contacts.identified", contacts=contacts, user=None)
    return cases


def test_dashboard_dispatch_acknowledge_publish(page, shot, make_user, person_factory, settings):
    settings.CORDON_DASHBOARD_CACHE_SECONDS = 0
    _outbreak(person_factory)
    make_user("city", role="commander", region="430100", password="Str0ng-pass-1")
    make_user("fr_inv", role="investigator", region="430102", password="Str0ng-pass-1")

    login(page, "city", "Str0ng-pass-1")
    page.goto(page.base_url + "/command/")
    page.wait_for_selector("#epicurve canvas")
    assert page.text_content("#new-confirmed").strip() == "2"  # 芙蓉区 1 + 岳麓区 1 today (株洲 is outside 长沙)
    assert page.text_content("#close-managed").strip() == "4"
    tiles = page.locator("#region-tiles .rtile")
    assert tiles.count() == 2 and "芙蓉区" in tiles.first.text_content()
    assert page.locator("#beds-none").count() + page.locator("text=/beds|床位/i").count() >= 1
    shot(page, "command-dashboard")
    page.goto(page.base_url + "/command/timeliness/")
    assert page.locator("#clocks tbody tr").count() == 5
    shot(page, "command-timeliness")
    page.goto(page.base_url + "/command/groups/")
    assert page.locator("section.hq").count() == 3  # 长沙市 and its two districts
    shot(page, "command-groups")

    page.goto(page.base_url + "/command/tasks/")
    assert page.locator("#task-list .task-row").count() >= 3  # the automatic investigation and transfer tasks
    page.fill("#dispatch input[name=title]", "核查幸福社区密接落位")
    value = page.eval_on_selector("#dispatch select[name=assignee]",
                                  "s => [...s.options].find(o => o.textContent.includes('芙蓉区 · 流调溯源组')).value")  # fmt: skip
    page.select_option("#dispatch select[name=assignee]", value)
    page.select_option("#dispatch select[name=priority]", "urgent")
    due = timezone.localtime(timezone.now() + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#dispatch input[name=due_at]", due)
    page.click("#dispatch button[type=submit]")
    page.wait_for_selector("#task-status")
    assert "芙蓉区疫情防控指挥部 · 流调溯源组" in page.text_content("#task-assignee")
    task_url = page.url
    shot(page, "command-task-dispatched")
    page.click("form[action='/logout/'] button")

    login(page, "fr_inv", "Str0ng-pass-1")
    page.goto(page.base_url + "/command/tasks/")
    page.click("text=核查幸福社区密接落位")
    page.click("#btn-acknowledge")
    page.wait_for_selector("#btn-start")
    assert page.url == task_url
    assert page.text_content("#task-status").strip() in ("Acknowledged", "已确认", "已签收")
    shot(page, "command-task-acknowledged")
    page.click("form[action='/logout/'] button")

    login(page, "city", "Str0ng-pass-1")
    page.goto(page.base_url + "/command/bulletins/")
    page.fill("input[name=date]", timezone.localdate().isoformat())
    page.click("#btn-generate")
    page.click("#btn-review")
    page.click("#btn-publish")
    page.wait_for_selector("#bulletin-status.status-published")
    text = page.text_content("article.bulletin")
    assert "长沙市新增确诊病例2例" in text and "2例在管控人员中发现" in text
    shot(page, "command-bulletin")

    page.goto(page.base_url + "/command/public/")
    page.click("#public-bulletins a")
    assert "长沙市新增确诊病例2例" in page.text_content("article.bulletin")
    shot(page, "command-public-bulletin")
    page.goto(page.base_url + "/command/public/tipoff/")
    page.select_option("select[name=category]", "gathering")
    page.select_option("select[name=region_code]", "430102")
    page.fill("input[name=place]", "幸福社区棋牌室")
    page.fill("textarea[name=description]", "晚上有十多人聚集打牌，未戴口罩。")
    page.click("button[type=submit].primary")
    code = page.text_content("#tracking-code").strip()
    assert len(code) == 10
    shot(page, "command-tipoff-done")
    page.goto(page.base_url + f"/command/public/tipoff/status?code={code}")
    assert page.locator("#tipoff-status").count() == 1 and "棋牌室" not in page.content()
