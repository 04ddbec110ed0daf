"""API happy paths and bad input, for cases and tracing."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from cordon.tracing.models import Contact
from tests.cases.conftest import *  # noqa: F403
from tests.conftest import rid


def _iso(dt):
    return dt.isoformat()


def test_report_case_via_api_then_contacts_pipeline(inv, client_for, person_factory):
    c = client_for(inv)
    p = person_factory(name="接口病例")
    now = timezone.now()
    r = c.post("/api/v1/cases", {"person_id": p.pk, "classification": "confirmed", "region_code": "430102",
                                 "found_by": "fever_clinic", "onset_date": str(timezone.localdate() - timedelta(days=1)),
                                 "hospital": "长沙市第一医院"}, content_type="application/json")
    assert r.status_code == 201, r.content
    case = r.json()
    assert case["investigation"]["policy_name"] == "ncov-9" and case["person"]["name"] == "接***"
    cid = case["id"]
    r = c.post("/api/v1/tracing/contacts", {"case_id": cid, "setting": "household", "last_exposure_at": _iso(now - timedelta(hours=3)),
                                            "person": {"name": "新密接", "document_number": rid("430102", 1988, 8, 8, 5),
                                                       "region_code": "430102001001001"}}, content_type="application/json")
    assert r.status_code == 201, r.content
    contact = r.json()
    assert contact["status"] == "identified" and contact["person"]["verified"] is False
    r = c.post(f"/api/v1/tracing/contacts/{contact['id']}/status", {"status": "notified"}, content_type="application/json")
    assert r.json()["status"] == "notified" and r.json()["notified_at"]
    r = c.post(f"/api/v1/tracing/contacts/{contact['id']}/status", {"status": "identified"}, content_type="application/json")
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    r = c.post(f"/api/v1/tracing/contacts/{contact['id']}/tests", {"positive": False, "at": _iso(now)},
               content_type="application/json")
    assert r.status_code == 201 and r.json()["upgraded"] == []
    assert len(c.get(f"/api/v1/tracing/contacts?case_id={cid}").json()["items"]) == 1
    assert c.get("/api/v1/tracing/contacts?status=nope").json()["error"]["field"] == "status"
    # investigation: milestone, reclassify, exposure, chain
    r = c.patch(f"/api/v1/cases/{cid}/investigation", {"milestone": "trajectory"}, content_type="application/json")
    assert r.json()["trajectory_published_at"] and "trajectory" not in r.json()["overdue"]
    r = c.post(f"/api/v1/cases/{cid}/exposures", {"place": "菜市场", "start": _iso(now - timedelta(hours=5)),
                                                  "end": _iso(now - timedelta(hours=4))}, content_type="application/json")
    assert r.status_code == 201
    r = c.post(f"/api/v1/cases/{cid}/exposures", {"place": "x", "start": _iso(now), "end": _iso(now - timedelta(hours=1))},
               content_type="application/json")
    assert r.status_code == 422 and r.json()["error"]["field"] == "end"
    chain = c.get(f"/api/v1/tracing/cases/{cid}/chain").json()
    assert chain["cases"] == 1 and chain["contacts"] == 1
    r = c.post(f"/api/v1/cases/{cid}/reclassify", {"to": "confirmed", "reason": "x"}, content_type="application/json")
    assert r.status_code == 422
    figs = c.get(f"/api/v1/cases/figures?day={timezone.localdate()}").json()
    assert figs["new_cases"] == 1


def test_api_bad_inputs(inv, client_for, person_factory):
    c = client_for(inv)
    p = person_factory()
    bad = [({"classification": "probable"}, "classification"), ({"found_by": "magic"}, "found_by"),
           ({"region_code": "430104"}, "region_code"), ({"region_code": "999999"}, "region_code"),
           ({"origin": "imported_abroad"}, "origin_detail")]
    for override, field in bad:
        body = {"person_id": p.pk, "classification": "confirmed", "region_code": "430102", "found_by": "screening",
                **override}
        r = c.post("/api/v1/cases", body, content_type="application/json")
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (override, r.content)
    r = c.post("/api/v1/cases", {"person_id": p.pk}, content_type="application/json")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
    assert c.post("/api/v1/cases", {"person_id": 99999, "classification": "confirmed", "region_code": "430102",
                                    "found_by": "screening"}, content_type="application/json").status_code == 404


def test_api_scoping_of_contacts(make_case, inv, inv2, client_for, person_factory, make_user):
    case = make_case()
    there = person_factory("430104001001001", name="岳麓")
    r = client_for(inv).post("/api/v1/tracing/contacts", {"case_id": case.pk, "person_id": there.pk, "setting": "visitor",
                                                          "last_exposure_at": _iso(timezone.now() - timedelta(hours=1))},
                             content_type="application/json")
    assert r.status_code == 404, "the investigator cannot look up a person of another county by id"
    Contact.objects.create(index_case=case, person=there, setting="visitor", last_exposure_at=timezone.now(),
                           last_exposure_date=timezone.localdate(), identified_at=timezone.now(),
                           transfer_due_at=timezone.now(), region_id=there.region_id, index_region_id="430102")
    assert len(client_for(inv2).get("/api/v1/tracing/contacts").json()["items"]) == 1
    assert client_for(inv2).get(f"/api/v1/cases/{case.pk}").status_code == 404
    zz = make_user("zz", role="investigator", region="430202")
    assert client_for(zz).get("/api/v1/tracing/contacts").json()["items"] == []
    k = Contact.objects.get()
    assert client_for(zz).get(f"/api/v1/tracing/contacts/{k.pk}").status_code == 404
    assert client_for(zz).get(f"/tracing/contacts/{k.pk}/").status_code == 404
    assert "岳" not in client_for(zz).get("/tracing/").content.decode()


def test_unauthenticated_api_is_401(client):
    assert client.get("/api/v1/cases").status_code == 401
    assert client.get("/api/v1/tracing/contacts").status_code == 401


def test_discharge_via_api(make_case, inv, client_for):
    case = make_case(reported_at=timezone.now() - timedelta(days=5))
    c = client_for(inv)
    now = timezone.now()
    r = c.post(f"/api/v1/cases/{case.pk}/discharge")
    assert r.status_code == 422 and r.json()["error"]["field"] == "tests"
    c.post(f"/api/v1/cases/{case.pk}/tests", {"sampled_at": _iso(now - timedelta(hours=30)), "positive": False},
           content_type="application/json")
    r = c.post(f"/api/v1/cases/{case.pk}/tests", {"sampled_at": _iso(now - timedelta(hours=2)), "positive": True,
                                                 "ct_n": 36, "ct_orf1ab": 38}, content_type="application/json")
    assert r.json()["discharge_eligible"] is True
    r = c.post(f"/api/v1/cases/{case.pk}/discharge")
    assert r.status_code == 200 and r.json()["status"] == "discharged" and r.json()["home_monitoring_end"]
