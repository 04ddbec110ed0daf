"""Upload a lab file with one positive pool, then follow it to the recall list with its clocks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import rid
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_upload_positive_pool_and_recall(page, shot, make_user, person_factory, tmp_path):
    from cordon.screening import ingest, services

    tester = make_user("tester", role="testing", region="430100", password="Str0ng-pass-1")
    terminal = make_user("terminal", role="machine", region="430100")
    c = services.create_campaign(tester, name="芙蓉区第1轮", start=True, starts_at=timezone.now() - timedelta(hours=3),
                                 areas=[{"region_code": "430102", "area_kind": "medium"},
                                        {"region_code": "430104", "area_kind": "low"}])
    services.create_site(tester, code="S1", name="幸福社区采样点", region_code="430102001001001", staff=6)
    services.create_lab(tester, code="LAB1", name="长沙检测中心", region_code="430100", daily_capacity=50000)
    for i in range(5):
        person_factory("430104001001001", name=f"未检{i}")
    at = (timezone.now() - timedelta(hours=2)).isoformat()
    scans = [{"scan_id": f"s{i}", "tube": "POOL-A" if i < 10 else "POOL-B", "document_number":
              rid("430102", 1980, 1, 1 + i, 10 + i), "name": f"居民{i}", "collected_at": at, "site": "S1"}
             for i in range(20)]
    assert all(o.status == "accepted" for o in ingest.ingest_scans(terminal, scans))
    f = tmp_path / "lab.csv"
    f.write_bytes("试管编码,检测结果,ORF1ab基因Ct值,N基因Ct值\nPOOL-A,阳性,28.1,29.3\nPOOL-B,阴性,,\nNOPE,阴性,,\n"
                  .encode("gbk"))

    login(page, "tester", "Str0ng-pass-1")
    page.goto(page.base_url + "/screening/results/upload/")
    page.select_option("select[name=lab]", "LAB1")
    page.set_input_files("input[name=file]", str(f))
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#summary")
    assert page.text_content("#positive").strip() == "1"
    assert page.text_content("#rejected").strip() == "1"
    assert "unknown tube" in page.text_content("#errors")
    shot(page, "screening-upload")
    page.click("#to-recall")
    page.wait_for_selector("#retests tbody tr")
    rows = page.locator("#retests tbody tr")
    assert rows.count() == 10
    assert page.locator("#retests .countdown").count() == 10
    body = page.text_content("#retests")
    assert "居民0" not in body and "POOL-A" in body
    shot(page, "screening-recall")
    page.goto(page.base_url + f"/screening/campaigns/{c.pk}/")
    page.wait_for_selector("#positive-pools")
    assert "POOL-A" in page.text_content("#positive-pools")
    page.wait_for_selector("#coverage-chart canvas")
    shot(page, "screening-board")
    page.goto(page.base_url + f"/screening/campaigns/{c.pk}/coverage/")
    assert page.locator("#untested tbody tr").count() == 5
    shot(page, "screening-coverage")
