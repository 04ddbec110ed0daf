"""The daily bulletin: every figure of the Hunan format on a fixture with known answers, and versioning."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from cordon.command import bulletin as bl
from cordon.command import services
from cordon.command.models import Bulletin
from cordon.regions.models import Region
from tests.command.conftest import at

pytestmark = pytest.mark.django_db
D = "2022-05-10"


@pytest.fixture
def outbreak(make_case):
    from cordon.cases.models import Reclassification

    c = {}
    c["A"] = make_case("430102", "confirmed", at(D, "09:00"), under_control=True)
    c["B"] = make_case("430202", "confirmed", at(D, "11:00"))
    c["C"] = make_case("430104", "confirmed", at("2022-05-08", "10:00"), under_control=True)
    Reclassification.objects.create(case=c["C"], from_classification="asymptomatic", to_classification="confirmed",
                                    at=at(D, "15:00"))  # fmt: skip
    c["D"] = make_case("430104", "confirmed", at(D, "10:00"), origin="imported_abroad")
    c["E"] = make_case("430102", "asymptomatic", at(D, "08:00"), under_control=True)
    c["F"] = make_case("430202", "asymptomatic", at(D, "20:00"))
    c["G"] = make_case("430102", "asymptomatic", at(D, "12:00"), origin="imported_abroad")
    c["H"] = make_case("430102", "asymptomatic", at("2022-05-05"), status="discharged", discharged_at=at(D, "10:00"))
    c["I"] = make_case("430104", "asymptomatic", at("2022-05-07"), origin="imported_abroad")
    c["J"] = make_case("430102", "confirmed", at("2022-04-20"), status="discharged", discharged_at=at("2022-05-09"))
    c["K"] = make_case("430104", "confirmed", at("2022-04-30"), origin="imported_abroad", status="discharged",
                       discharged_at=at("2022-05-08"))  # fmt: skip
    c["L"] = make_case("430102", "confirmed", at("2022-04-25"), severity="severe")
    c["M"] = make_case("430202", "confirmed", at("2022-04-10"), status="died", died_at=at("2022-05-07"))
    c["N"] = make_case("430102", "confirmed", at("2021-12-20"))  # before the base date: in hospital, not cumulative
    c["O"] = make_case("430102", "confirmed", at("2022-05-11", "00:30"))  # after the period
    c["P"] = make_case("430102", "suspected", at(D, "09:00"))  # suspected cases are not in the bulletin
    # a case reported confirmed that converted from "nothing": its report recorded as a reclassification
    return c


def test_province_bulletin_every_figure(outbreak):
    f = bl.compute(Region.objects.get(code="430000"), date(2022, 5, 10))
    assert f["confirmed"] == {
        "new": 4, "imported": 1, "local": 3,
        "local_by_area": [{"code": "430100", "name": "长沙市", "n": 2}, {"code": "430200", "name": "株洲市", "n": 1}],
        "local_under_control": 2, "converted": 1,
        "converted_by_area": [{"code": "430100", "name": "长沙市", "n": 1}],
    }  # fmt: skip
    assert f["asymptomatic"] == {
        "new": 3, "imported": 1, "local": 2,
        "local_by_area": [{"code": "430100", "name": "长沙市", "n": 1}, {"code": "430200", "name": "株洲市", "n": 1}],
        "local_under_control": 1, "converted_today": 1, "released_today": 1,
        "under_observation": 4, "under_observation_imported": 2,
    }  # fmt: skip
    assert f["cumulative"] == {"confirmed_local": 6, "confirmed_imported": 2, "confirmed": 8, "in_hospital": 6,
                               "in_hospital_imported": 1, "discharged": 2, "discharged_imported": 1, "severe": 1,
                               "deaths": 1}  # fmt: skip
    text = bl.render_zh(f)
    assert text.split("\n\n") == [
        "2022年5月10日0—24时，湖南省新增确诊病例4例，其中境外输入1例，本土3例（长沙市2例、株洲市1例），2例在管控人员中发现；"
        "本土病例中1例为无症状感染者转为确诊病例（长沙市1例）。",
        "新增无症状感染者3例，其中境外输入1例，本土2例（长沙市1例、株洲市1例），1例在管控人员中发现。"
        "当日无症状感染者转为确诊病例1例，解除医学观察1例，尚在医学观察无症状感染者4例（其中境外输入2例）。",
        "2022年1月1日以来，截至5月10日24时，湖南省累计报告确诊病例8例（其中境外输入2例），现有在院确诊病例6例（其中境外输入1例），"
        "累计出院2例（其中境外输入1例），现有重症病例1例，累计死亡1例。",
    ]
    en = bl.render_en(f)
    assert "reported 4 new confirmed cases: 1 imported from abroad and 3 local (长沙市 2, 株洲市 1), 2 of them found among" in en
    assert "still under medical observation: 4 (2 imported)" in en and "1 are severe now, and 1 have died." in en


def test_city_bulletin_lists_counties_and_county_bulletin_none(outbreak):
    f = bl.compute(Region.objects.get(code="430100"), date(2022, 5, 10))
    assert f["confirmed"]["local_by_area"] == [{"code": "430102", "name": "芙蓉区", "n": 1},
                                               {"code": "430104", "name": "岳麓区", "n": 1}]  # fmt: skip
    assert f["confirmed"]["new"] == 3 and f["asymptomatic"]["new"] == 2  # 株洲 is not in 长沙
    g = bl.compute(Region.objects.get(code="430102"), date(2022, 5, 10))
    assert g["confirmed"]["local_by_area"] == [{"code": "430102", "name": "芙蓉区", "n": 1}]
    assert g["cumulative"]["in_hospital"] == 3  # A, L, N


def test_zero_day_reads_correctly(regions):
    f = bl.compute(Region.objects.get(code="430000"), date(2022, 5, 10))
    assert bl.render_zh(f).startswith("2022年5月10日0—24时，湖南省新增确诊病例0例，其中境外输入0例，本土0例。\n\n新增无症状感染者0例，")


def test_report_recorded_as_first_reclassification(make_case):
    from cordon.cases.models import Reclassification

    case = make_case("430102", "confirmed", at(D, "09:00"))
    Reclassification.objects.create(case=case, from_classification="", to_classification="asymptomatic", at=at(D, "09:00"))
    Reclassification.objects.create(case=case, from_classification="asymptomatic", to_classification="confirmed",
                                    at=at(D, "18:00"))  # fmt: skip
    f = bl.compute(Region.objects.get(code="430000"), date(2022, 5, 10))
    assert f["asymptomatic"]["new"] == 1 and f["confirmed"]["new"] == 1 and f["confirmed"]["converted"] == 1
    assert f["asymptomatic"]["under_observation"] == 0


def test_review_publish_and_correction_keep_every_version(outbreak, make_user, make_case):
    cmd = make_user("cmd", role="commander", region="430000")
    inv = make_user("inv", role="investigator", region="430102")
    day = date(2022, 5, 10)
    with pytest.raises(PermissionDenied):
        services.generate_bulletin(inv, "430000", day)
    b = services.generate_bulletin(cmd, "430000", day)
    with pytest.raises(services.TransitionError):
        services.publish_bulletin(cmd, b)  # reviewed first
    services.review_bulletin(cmd, b)
    services.publish_bulletin(cmd, b)
    assert services.generate_bulletin(cmd, "430000", day) == b  # a published bulletin is fixed
    # a late report for that day: the correction is a new version
    make_case("430202", "confirmed", at(D, "23:00"))
    with pytest.raises(ValidationError):
        services.correct_bulletin(cmd, b, "")
    v2 = services.correct_bulletin(cmd, b, "补报株洲市1例")
    with pytest.raises(services.TransitionError):
        services.correct_bulletin(cmd, b, "again")
    assert v2.version == 2 and v2.figures["confirmed"]["new"] == 5 and v2.status == Bulletin.Status.DRAFT
    b.refresh_from_db()
    assert b.status == Bulletin.Status.PUBLISHED  # still the public one until the correction is published
    services.review_bulletin(cmd, v2)
    services.publish_bulletin(cmd, v2)
    b.refresh_from_db()
    assert b.status == Bulletin.Status.SUPERSEDED and b.figures["confirmed"]["new"] == 4
    from django.test import Client  # the public pages need no login

    page = Client().get("/command/public/").content.decode()
    assert f"/command/public/bulletins/{v2.pk}/" in page and f"/command/public/bulletins/{b.pk}/" not in page
    detail = Client().get(f"/command/public/bulletins/{v2.pk}/").content.decode()
    assert "新增确诊病例5例" in detail and "补报株洲市1例" in detail and f"/command/public/bulletins/{b.pk}/" in detail
    old = Client().get(f"/command/public/bulletins/{b.pk}/").content.decode()
    assert "新增确诊病例4例" in old
    drafts = services.generate_bulletin(cmd, "430000", day + timedelta(days=1))
    assert Client().get(f"/command/public/bulletins/{drafts.pk}/").status_code == 404  # drafts are not public
