"""Isolation in the browser: place a batch of contacts, record a positive, see the floors restart."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from cordon.isolation.models import Placement, Restart
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _contacts(person_factory, n: int, status: str = "located", region: str = "430102001001001", hours_ago: float = 3):
    from cordon.cases.services import report_case
    from cordon.tracing.models import Contact

    case = report_case(None, person_factory(name="病例" + status), classification="confirmed", region_code="430102",
                       found_by="fever_clinic", onset_date=timezone.localdate() - timedelta(days=1))
    last = timezone.localdate() - timedelta(days=2)
    out = []
    for i in range(n):
        p = person_factory(region=region, name=f"密接{'甲乙丙丁戊己'[i]}", address=f"芙蓉区人民路{i + 1}号")
        out.append(Contact.objects.create(
            index_case=case, person=p, kind="close", status=status, setting="household",
            last_exposure_at=timezone.make_aware(datetime.combine(last, time(9))), last_exposure_date=last,
            identified_at=timezone.now() - timedelta(hours=hours_ago), transfer_due_at=timezone.now() + timedelta(hours=5),
            region_id=p.region_id, index_region_id="430102"))
    return out


def test_place_batch_positive_restarts_floor(page, shot, make_user, person_factory):
    from cordon.isolation import services

    user = make_user("iso", role="isolation", region="430100", password="Str0ng-pass-1")
    site = services.create_site(user, code="CS-01", name="芙蓉华天隔离酒店", region_code="430102", floors=5,
                                rooms_per_floor=4, address="长沙市芙蓉区解放西路300号", staff_count=20, contact_name="刘建国")
    _contacts(person_factory, 6)

    login(page, "iso", "Str0ng-pass-1")
    page.goto(page.base_url + "/isolation/")
    assert page.locator("#sites a.site-link").count() == 1
    page.goto(page.base_url + f"/isolation/sites/{site.pk}/")
    page.click("#assign-batch")
    page.wait_for_selector(".occupant")
    assert page.locator(".occupant").count() == 6
    assert Placement.objects.filter(site=site).count() == 6
    floors = sorted(set(Placement.objects.values_list("floor", flat=True)))
    assert floors == [1, 3], "one cohort fills floor 1, then skips a floor"
    assert "*" in page.locator(".occ-name").first.text_content(), "names are masked"
    shot(page, "isolation-board-placed")

    page.locator('.floor[data-floor="1"] .occ-name').first.click()
    page.wait_for_selector("#record-test")
    shot(page, "isolation-placement")
    page.click("#test-positive")
    page.wait_for_selector(".floor.restarted")
    assert page.locator('.floor[data-floor="1"].restarted').count() == 1
    assert page.locator('.floor[data-floor="2"].restarted').count() == 1
    assert page.locator('.floor[data-floor="3"].restarted').count() == 0
    assert page.locator(".occupant").count() == 5, "the positive person went to hospital"
    r = Restart.objects.get()
    assert r.floors == [1, 2] and r.people_affected == 3, "floor 0 does not exist"
    assert page.locator("#restarts tbody tr td.num").first.text_content().strip() == "3"
    shot(page, "isolation-board-restarted")

    # Transfers: three more contacts due (one already overdue), requested, grouped into trips, one dispatched.
    _contacts(person_factory, 2, status="identified")
    _contacts(person_factory, 1, status="notified", region="430104001001001", hours_ago=9)
    page.goto(page.base_url + "/isolation/transfers/")
    assert page.locator("#due tbody .countdown").count() == 3
    page.click("#request-all")
    page.wait_for_selector("#open-transfers .countdown")
    assert page.locator("#open-transfers .countdown.overdue").count() == 1, "8 h from identification: 9 h ago is late"
    page.fill("input[name=seats]", "2")
    page.click("text=" + page.locator("form.search button").text_content().strip())
    page.wait_for_selector("#trips tbody tr button")
    assert page.locator("#trips tbody tr").count() == 2  # 2 in the 芙蓉区 community, 1 in 岳麓区
    page.locator("#trips input[name=vehicle]").first.fill("湘A12345")
    page.locator("#trips button[value=dispatched]").first.click()
    page.wait_for_selector("#trips button[value=picked_up]")
    shot(page, "isolation-transfers")
    for path, name in (("/isolation/releases/", "isolation-releases"), ("/isolation/capacity/", "isolation-capacity")):
        page.goto(page.base_url + path)
        page.wait_for_load_state("networkidle")
        shot(page, name)
    assert page.locator("#capacity-chart canvas").count() >= 1, "the ECharts projection is drawn"
