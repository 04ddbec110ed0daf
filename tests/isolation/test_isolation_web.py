"""The API and pages: scoped, masked, audited, and the same rules as the services."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from cordon.core.models import AuditEvent
from cordon.core.policy import active_policy
from cordon.isolation import services
from cordon.isolation.models import Placement, Restart, Transfer

API = "/api/v1/isolation"


def test_api_site_assign_board_test_restart(iso_user, client_for, make_contact):
    c = client_for(iso_user)
    r = c.post(f"{API}/sites", {"code": "CS-01", "name": "岳麓山酒店", "region_code": "430102", "floors": 5,
                                "rooms_per_floor": 3, "beds_per_room": [2, 1, 1]}, content_type="application/json")
    assert r.status_code == 201, r.content
    site = r.json()
    assert site["beds"] == 20 and site["occupied"] == 0
    contacts = [make_contact(days_ago=2) for _ in range(5)]
    r = c.post(f"{API}/sites/{site['id']}/assign", {"due": True}, content_type="application/json")
    body = r.json()
    assert r.status_code == 200 and len(body["placed"]) == 5 and body["cost"] <= body["baseline_cost"]
    assert body["placed"][0]["person"]["name"].endswith("*")
    board = c.get(f"{API}/sites/{site['id']}").json()
    assert sum(f["people"] for f in board["floors"]) == 5
    pid = body["placed"][0]["id"]
    detail = c.get(f"{API}/placements/{pid}").json()
    assert detail["tests"] and detail["end_date"]
    r = c.post(f"{API}/placements/{pid}/tests", {"positive": True}, content_type="application/json")
    assert r.status_code == 201 and r.json()["placement"]["status"] == "to_hospital"
    assert Restart.objects.count() == 1
    r = c.post(f"{API}/placements/{body['placed'][1]['id']}/release", {"reason": ""}, content_type="application/json")
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    assert len(contacts) == 5
    r = c.get(f"{API}/summary")
    assert r.status_code == 200 and r.json()["beds_total"] == 20


def test_api_release_blocked_is_409(iso_user, client_for, make_site, make_contact):
    site = make_site()
    days = active_policy().contacts.close.centralized_days
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=days))]).placements[0]
    c = client_for(iso_user)
    r = c.post(f"{API}/placements/{p.pk}/release", {}, content_type="application/json")
    assert r.status_code == 409
    assert {d["reason"] for d in r.json()["error"]["details"]} >= {f"test of {timezone.localdate()} has no result"}


def test_api_transfers_and_trips(iso_user, client_for, make_site, make_contact):
    site = make_site()
    for _ in range(3):
        make_contact(days_ago=1)
    c = client_for(iso_user)
    r = c.post(f"{API}/transfers", {"due": True}, content_type="application/json")
    assert r.status_code == 201 and len(r.json()["created"]) == 3
    r = c.post(f"{API}/trips", {"site_id": site.pk, "seats": 2}, content_type="application/json")
    trips = r.json()
    assert r.status_code == 201 and sorted(len(t["transfers"]) for t in trips) == [1, 2]
    for st in ("dispatched", "picked_up", "arrived"):
        r = c.post(f"{API}/trips/{trips[0]['id']}/status", {"status": st, "vehicle": "湘A0001"},
                   content_type="application/json")
        assert r.status_code == 200, r.content
    assert len(r.json()["assignment"]["placed"]) == len(trips[0]["transfers"])
    assert c.get(f"{API}/transfers?status=arrived").json()["items"][0]["status"] == "arrived"
    cap = c.get(f"{API}/capacity").json()
    # The one transfer not yet arrived is expected on the day it is due: today, or tomorrow when the policy's
    # transfer deadline runs past midnight (a request made in the evening).
    waiting = Transfer.objects.exclude(status="arrived").get()
    day = (timezone.localdate(waiting.due_at) - timezone.localdate()).days
    assert cap["regions"][0]["arrivals"][max(day, 0)] == 1 and sum(cap["regions"][0]["arrivals"]) == 1


def test_api_scoping(iso_user, make_user, client_for, make_site, make_contact):
    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    outsider = client_for(make_user("zz", role="isolation", region="430200"))
    assert outsider.get(f"{API}/sites").json() == []
    assert outsider.get(f"{API}/sites/{site.pk}").status_code == 404
    assert outsider.get(f"{API}/placements/{p.pk}").status_code == 404
    assert outsider.post(f"{API}/placements/{p.pk}/tests", {"positive": False},
                         content_type="application/json").status_code == 404
    analyst = client_for(make_user("an", role="analyst", region="430000"))
    assert analyst.get(f"{API}/sites/{site.pk}").status_code == 200
    r = analyst.post(f"{API}/placements/{p.pk}/tests", {"positive": False}, content_type="application/json")
    assert r.status_code == 403
    assert client_for(make_user("t", role="testing", region="430000")).get(f"{API}/sites").status_code == 403


def test_pages_render_and_act(iso_user, client_for, make_site, make_contact):
    site = make_site(floors=3, rooms=2)
    days = active_policy().contacts.close.centralized_days
    make_contact(days_ago=days)
    make_contact(days_ago=1, identified_hours_ago=20)
    c = client_for(iso_user)
    assert c.get("/isolation/").status_code == 200
    page = c.get(f"/isolation/sites/{site.pk}/").content.decode()
    assert "2" in page and "assign-batch" in page
    r = c.post(f"/isolation/sites/{site.pk}/assign")
    assert r.status_code == 302 and Placement.objects.count() == 2
    p = Placement.objects.get(end_date=timezone.localdate())
    page = c.get(f"/isolation/sites/{site.pk}/").content.decode()
    assert "release due" in page or "待解除" in page
    c.post(f"/isolation/placements/{p.pk}/test", {"result": "negative"})
    c.post(f"/isolation/sites/{site.pk}/sample", {"room": p.room.number, "result": "negative"})
    rel = c.get("/isolation/releases/").content.decode()
    assert f"/isolation/placements/{p.pk}/" in rel
    r = c.post(f"/isolation/placements/{p.pk}/release", {"next": "/isolation/releases/"})
    assert r.status_code == 302 and r["Location"] == "/isolation/releases/"
    p.refresh_from_db()
    assert p.status == "ended" and p.follow_on.kind == active_policy().contacts.close.home_kind
    for url in ("/isolation/transfers/", "/isolation/capacity/", f"/isolation/placements/{p.pk}/",
                "/isolation/releases/?date=bad"):
        assert c.get(url).status_code == 200, url
    cap = c.get("/isolation/capacity/").content.decode()
    assert 'id="capacity-data"' in cap and "<script>" not in cap.replace('<script src=', '')
    assert AuditEvent.objects.filter(action="isolation.release").exists()


def test_transfer_board_requests_due(iso_user, client_for, make_contact):
    make_contact(days_ago=1, identified_hours_ago=9)
    c = client_for(iso_user)
    page = c.get("/isolation/transfers/").content.decode()
    assert "countdown" in page and "request-all" in page
    c.post("/isolation/transfers/request")
    t = Transfer.objects.get()
    assert t.due_at < timezone.now() and t.due_at > timezone.now() - timedelta(hours=2)


def test_openapi_lists_the_isolation_api(iso_user, client_for):
    r = client_for(iso_user).get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/api/v1/isolation/sites", "/api/v1/isolation/sites/{site_id}/assign", "/api/v1/isolation/releases",
              "/api/v1/isolation/placements/{pk}/release", "/api/v1/isolation/trips/{pk}/status",
              "/api/v1/isolation/capacity", "/api/v1/isolation/summary"):
        assert p in paths, p


def test_anonymous_is_refused(client):
    assert client.get("/api/v1/isolation/sites").status_code == 401
    assert client.get("/isolation/").status_code == 302


def test_capacity_warning_on_the_sites_page(iso_user, client_for, make_site, make_contact):
    site = make_site(floors=1, rooms=2)
    services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1)) for _ in range(2)])
    page = client_for(iso_user).get("/isolation/").content.decode()
    assert 'data-region="430102"' in page and "10%" in page


def test_api_cancel_transfer_needs_a_reason(iso_user, client_for, make_contact):
    make_contact(days_ago=1)
    c = client_for(iso_user)
    t = c.post(f"{API}/transfers", {"due": True}, content_type="application/json").json()["created"][0]
    r = c.post(f"{API}/transfers/{t['id']}/cancel", {"reason": " "}, content_type="application/json")
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    r = c.post(f"{API}/transfers/{t['id']}/cancel", {"reason": "已在外地隔离"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert AuditEvent.objects.get(action="isolation.transfer_cancel").changes == {"reason": "已在外地隔离"}
    r = c.post(f"{API}/transfers/{t['id']}/cancel", {"reason": "again"}, content_type="application/json")
    assert r.status_code == 422
