"""Timeliness figures on a fixture with known times; inspections and accountability; the dashboard's data."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from cordon.command import queries, services
from cordon.command.models import DailyFigure, Task
from cordon.core import events

pytestmark = pytest.mark.django_db


def _inv(case, opened, contacts_due, contacts_done):
    from cordon.cases.models import Investigation

    return Investigation.objects.create(case=case, region_id=case.region_id, opened_at=opened,
                                        trajectory_due_at=opened, preliminary_due_at=opened, contacts_due_at=contacts_due,
                                        complete_due_at=contacts_due, contacts_done_at=contacts_done,
                                        lookback_from=opened.date(), policy_name="ncov-9")  # fmt: skip


@pytest.fixture
def clocked(make_case, make_contact, make_user, county_hqs):
    t0 = (timezone.now() - timedelta(days=3)).replace(microsecond=0)
    h = lambda n: t0 + timedelta(hours=n)  # noqa: E731
    c1 = make_case("430102", "confirmed", h(0), number="FR-1")
    c2 = make_case("430102", "confirmed", h(0), number="FR-2")
    c3 = make_case("430104", "confirmed", h(0), number="YL-1")
    _inv(c1, h(1), h(24), h(20))  # opened in 1 h (≤ 2 h); contacts in 20 h (≤ 24 h)
    _inv(c2, h(3), h(24), None)  # opened in 3 h: late; contacts never done, now past due: late and open
    _inv(c3, h(0.5), h(24), h(30))  # opened in 0.5 h; contacts in 30 h: late
    k1 = make_contact(c1, "430102", "close", h(2), quarantined_at=h(8), status="quarantined")  # 6 h ≤ 8 h
    k2 = make_contact(c3, "430104", "close", h(2), quarantined_at=h(12), status="quarantined")  # 10 h > 8 h
    return {"t0": t0, "cases": (c1, c2, c3), "contacts": (k1, k2),
            "prov": make_user("prov", role="commander", region="430000"),
            "fr": make_user("fr", role="investigator", region="430102"),
            "sup": make_user("sup", role="supervisor", region="430000")}  # fmt: skip


def test_clock_figures(clocked):
    d = queries.timeliness(clocked["prov"])
    clocks = {c["key"]: c for c in d["clocks"]}
    r = clocks["report_to_investigation"]
    assert (r["n"], r["median_hours"], r["share_within"]) == (3, 1.0, 0.6667)
    assert [x["label"] for x in r["late"]] == ["FR-2"] and r["late"][0]["hours_late"] == 1.0
    c = clocks["case_to_contacts"]
    assert (c["n"], c["median_hours"], c["share_within"]) == (3, 25.0, 0.3333)  # done: 20 h and 30 h
    assert sorted(x["label"] for x in c["late"]) == ["FR-2", "YL-1"]
    assert [x["open"] for x in c["late"] if x["label"] == "FR-2"] == [True]
    q = clocks["identified_to_quarantine"]
    assert (q["n"], q["median_hours"], q["share_within"]) == (2, 8.0, 0.5)
    k2 = clocked["contacts"][1]
    assert [x["label"] for x in q["late"]] == [f"close #{k2.pk} ← YL-1"]  # by number, never a name
    by_region = {r["code"]: r for r in r["by_region"]}
    assert by_region["430100"]["share_within"] == 0.6667 and "430200" not in by_region
    # the league table: 长沙市 holds every item; 株洲市 none (counted as nothing late)
    assert [x["code"] for x in d["league"]] == ["430200", "430100"]


def test_county_sees_only_its_own_figures(clocked):
    fr = queries.timeliness(clocked["fr"])
    clocks = {c["key"]: c for c in fr["clocks"]}
    assert clocks["report_to_investigation"]["n"] == 2
    assert all(x["label"].startswith("FR") for c in fr["clocks"] for x in c["late"] if "#" not in x["label"])
    with pytest.raises(Exception):  # noqa: B017 - Http404 for a region outside the jurisdiction
        queries.timeliness(clocked["fr"], "430104")


def test_retest_and_round_clocks_and_groups(clocked, county_hqs):
    tube = SimpleNamespace(pk=1, barcode="P1", region_id="430102", resulted_at=timezone.now() - timedelta(hours=2))
    events.emit("pools.positive", pools=[(tube, [])], user=None)
    services.close_auto_task("retest:tube:1", "all negative")
    campaign = SimpleNamespace(pk=9, name="R9", started_at=timezone.now() - timedelta(hours=10))
    events.emit("screening.region_finished", campaign=campaign, region_code="430104")
    d = queries.timeliness(clocked["prov"])
    clocks = {c["key"]: c for c in d["clocks"]}
    assert clocks["pool_to_retested"]["n"] == 1 and clocks["pool_to_retested"]["share_within"] == 1.0
    assert clocks["round_to_finished"]["share_within"] == 1.0
    groups = {g["code"]: g for g in d["by_group"]}
    assert groups["testing"]["done"] == 1 and groups["testing"]["late"] == 0


def test_inspection_and_accountability_linked_to_late_tasks(clocked, county_hqs):
    sup, fr = clocked["sup"], clocked["fr"]
    with pytest.raises(PermissionDenied):
        services.record_inspection(fr, region_code="430102", unit="x", day=timezone.localdate(), findings="y")
    ins = services.record_inspection(sup, region_code="430102", unit="芙蓉区流调队", day=timezone.localdate(),
                                     findings="流调报告超时", rectification_due=timezone.localdate() + timedelta(days=3))  # fmt: skip
    late = services.create_task("system", title="late one", issuer_hq=county_hqs["430102"],
                                assignee_hq=county_hqs["430102"], due_at=timezone.now() - timedelta(hours=1))  # fmt: skip
    with pytest.raises(ValidationError):
        services.record_accountability(sup, region_code="430102", kind="talk", subject="芙蓉区流调队", description="d",
                                       day=timezone.localdate())  # fmt: skip
    act = services.record_accountability(sup, region_code="430102", kind="talk", subject="芙蓉区流调队",
                                         description="约谈", day=timezone.localdate(), inspection=ins, tasks=[late])  # fmt: skip
    assert list(act.tasks.all()) == [late] and late.accountability_actions.get() == act
    services.set_inspection_status(sup, ins, "rectifying")
    assert list(queries.inspections_for(fr)) == [ins]
    assert list(queries.inspections_for(clocked["prov"])) == [ins]


def test_dashboard_data_and_scoping(clocked, county_hqs, monkeypatch, client_for):
    import cordon.modules as modules

    today = timezone.localdate()
    for code, metric, v in [("430102", "new_confirmed", 3), ("430102", "new_confirmed_local", 3),
                            ("430102", "new_confirmed_under_control", 2), ("430102", "new_confirmed_community", 1),
                            ("430104", "new_asymptomatic", 5), ("430104", "new_asymptomatic_local", 5),
                            ("430202", "new_confirmed", 1), ("430202", "new_confirmed_imported", 1),
                            ("430102", "managed_close", 40), ("430104", "managed_close", 2)]:  # fmt: skip
        DailyFigure.objects.create(date=today, region_code=code, metric=metric, value=v)
    DailyFigure.objects.create(date=today - timedelta(days=1), region_code="430102", metric="managed_close", value=-10)
    overdue = services.create_task("system", title="late", issuer_hq=county_hqs["430102"],
                                   assignee_hq=county_hqs["430102"],
                                   assignee_group=county_hqs["430102"].groups.get(code="isolation"),
                                   due_at=timezone.now() - timedelta(hours=1))  # fmt: skip
    screening = SimpleNamespace(screening_summary=lambda user: {"campaign_id": 1, "campaign_name": "第5轮", "target": 1000,
                                "sampled": 800, "share": 0.8, "tubes_pending": 3, "positive_pools_open": 1,
                                "retests_overdue": 0, "deadline": None})  # fmt: skip
    real = modules.optional
    monkeypatch.setattr("cordon.command.queries.optional",
                        lambda m: screening if m == "screening.queries" else real(m) if m != "isolation.queries" else None)
    s = queries.dashboard_summary(clocked["prov"])
    assert s["cases"]["confirmed"] == {"new": 4, "local": 3, "imported": 1, "under_control": 2, "community": 1}
    assert s["cases"]["asymptomatic"]["new"] == 5
    assert s["contacts"]["close_managed"] == 32
    assert s["tasks"]["overdue"] >= 1 and s["tasks"]["overdue_by_group"][0]["group"] == "转运隔离组"
    assert s["screening"]["sampled"] == 800 and s["beds"] is None
    t = queries.tiles(clocked["prov"])
    assert [(x["code"], x["new"]) for x in t["tiles"]] == [("430100", 8), ("430200", 1)]
    assert t["tiles"][0]["heat"] == 5 and t["tiles"][0]["drill"]
    city = queries.tiles(clocked["prov"], "430100")
    assert [(x["code"], x["new"], x["drill"]) for x in city["tiles"]] == [("430102", 3, False), ("430104", 5, False)]
    assert city["up"] == "430000"
    # a county sees its own figures only
    fr = queries.dashboard_summary(clocked["fr"])
    assert fr["cases"]["confirmed"]["new"] == 3 and fr["contacts"]["close_managed"] == 30
    c = client_for(clocked["fr"])
    assert c.get("/api/v1/command/dashboard/summary?region=430104").status_code == 404
    assert c.get("/api/v1/command/dashboard/summary").json()["region"]["code"] == "430102"
    curve = client_for(clocked["prov"]).get("/api/v1/command/dashboard/epicurve").json()
    assert len(curve["dates"]) == 60 and curve["series"]["confirmed_local"][-1] == 3
    assert curve["series"]["confirmed_imported"][-1] == 1 and curve["rt"]["mean"]
    page = client_for(clocked["prov"]).get("/command/")
    html = page.content.decode()
    assert page.status_code == 200 and "第5轮" in html and 'hx-trigger="every 60s"' in html
    assert "isolation module reports nothing yet" in html or "隔离模块暂无数据" in html
    assert client_for(clocked["prov"]).get("/command/panel?region=430100").status_code == 200
    assert overdue in Task.objects.all()
    for url in ("/command/timeliness/", "/command/inspections/", "/command/groups/", "/command/bulletins/",
                "/command/notifications/", "/command/tipoffs/"):  # fmt: skip
        assert client_for(clocked["prov"]).get(url).status_code == 200, url


def test_dashboard_is_a_fixed_number_of_queries(clocked, client_for, django_assert_max_num_queries):
    c = client_for(clocked["prov"])
    with django_assert_max_num_queries(14):
        assert c.get("/api/v1/command/dashboard/summary").status_code == 200


def test_bed_forecast_against_capacity(clocked, monkeypatch, client_for):
    today = timezone.localdate()
    for back in range(14):
        d = today - timedelta(days=back)
        DailyFigure.objects.create(date=d, region_code="430102", metric="new_confirmed_local", value=4)
        DailyFigure.objects.create(date=d, region_code="430102", metric="new_confirmed", value=4)
        DailyFigure.objects.create(date=d, region_code="430102", metric="new_contacts_close", value=20)
    beds = SimpleNamespace(bed_summary=lambda user: {"beds_total": 500, "beds_occupied": 300, "beds_free": 200,
                           "projected_free": [{"date": "x", "free": 200 + 10 * i} for i in range(7)]})  # fmt: skip
    import cordon.modules as modules

    real = modules.optional
    monkeypatch.setattr("cordon.command.queries.optional", lambda m: beds if m == "isolation.queries" else real(m))
    f = client_for(clocked["prov"]).get("/api/v1/command/dashboard/forecast").json()
    assert f["available"] and f["contacts_per_case"] == 5.0 and len(f["dates"]) == 7
    assert f["beds"]["capacity"] == 500 and len(f["beds"]["median"]) == 7
    assert f["beds"]["median"][0] >= 300  # current placements (500 - 200) plus the first day's new contacts
    assert 0.5 < f["r_mean"] < 2
    empty = client_for(clocked["fr"]).get("/api/v1/command/dashboard/forecast?region=430102").json()
    assert empty["available"] is True


def test_dashboard_answers_are_shared_briefly(clocked, settings):
    from django.core.cache import cache

    cache.clear()
    settings.CORDON_DASHBOARD_CACHE_SECONDS = 30
    today = timezone.localdate()
    DailyFigure.objects.create(date=today, region_code="430102", metric="new_confirmed", value=1)
    assert queries.dashboard_summary(clocked["prov"])["cases"]["confirmed"]["new"] == 1
    DailyFigure.objects.filter(metric="new_confirmed").update(value=2)
    assert queries.dashboard_summary(clocked["prov"])["cases"]["confirmed"]["new"] == 1  # within the 30 s
    assert queries.dashboard_summary(clocked["fr"])["cases"]["confirmed"]["new"] == 2  # another jurisdiction: its own
    cache.clear()
    assert queries.dashboard_summary(clocked["prov"])["cases"]["confirmed"]["new"] == 2
    cache.clear()
