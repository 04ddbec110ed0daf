"""Sampling sites and labs set up from the browser (audited, scoped, by role), and tubes shown by household."""

from __future__ import annotations

import pytest

from cordon.core.models import AuditEvent
from cordon.people.validation import FieldError
from cordon.screening import admin_services, ingest, queries
from cordon.screening.models import Lab, Site

pytestmark = pytest.mark.django_db

FR_GRID = "430102001001001"
YL_GRID = "430104001001001"


def test_create_and_edit_site_through_the_pages(tester, client_for, regions):
    c = client_for(tester)
    assert c.get("/screening/sites/").status_code == 200
    resp = c.post("/screening/sites/", {"kind": "site", "code": "FR-01", "name": " 幸福  社区采样点 ",
                                        "region_code": FR_GRID, "hours": "07:00-22:00", "staff": "8"})  # fmt: skip
    s = Site.objects.get(code="FR-01")
    assert resp.status_code == 302 and resp["Location"] == f"/screening/sites/{s.pk}/"
    assert (s.name, s.region_id, s.hours, s.staff) == ("幸福 社区采样点", FR_GRID, "07:00-22:00", 8)
    assert AuditEvent.objects.filter(action="screening.site_create").count() == 1
    resp = c.post(f"/screening/sites/{s.pk}/", {"name": "幸福社区采样点", "region_code": FR_GRID,
                                                "hours": "06:00-23:00", "staff": "10", "active": "1"})  # fmt: skip
    assert resp.status_code == 302
    s.refresh_from_db()
    assert (s.name, s.hours, s.staff, s.active) == ("幸福社区采样点", "06:00-23:00", 10, True)
    ev = AuditEvent.objects.get(action="screening.site_update")
    assert ev.changes["staff"] == [8, 10] and "region_id" not in ev.changes
    # Closing the site (checkbox left empty) is a change of its own.
    c.post(f"/screening/sites/{s.pk}/", {"name": s.name, "region_code": FR_GRID, "hours": s.hours, "staff": "10"})
    s.refresh_from_db()
    assert s.active is False
    page = c.get(f"/screening/sites/{s.pk}/").content.decode()
    assert 'id="edit-site"' in page


def test_site_input_is_checked(tester, client_for, regions):
    c = client_for(tester)
    bad = [
        ({"code": "", "name": "x", "region_code": FR_GRID}, "code"),
        ({"code": "有 空格", "name": "x", "region_code": FR_GRID}, "code"),
        ({"code": "A1", "name": "", "region_code": FR_GRID}, "name"),
        ({"code": "A1", "name": "x", "region_code": "999999999999999"}, "region_code"),
        ({"code": "A1", "name": "x", "region_code": "430102"}, "region_code"),  # a county is not a place
        ({"code": "A1", "name": "x", "region_code": "430202"}, "region_code"),
        ({"code": "A1", "name": "x", "region_code": FR_GRID, "staff": "-1"}, "staff"),
        ({"code": "A1", "name": "x", "region_code": FR_GRID, "staff": "many"}, "staff"),
        ({"code": "A1", "name": "x", "region_code": FR_GRID, "hours": "h" * 51}, "hours"),
    ]
    for data, field in bad:
        with pytest.raises(FieldError) as exc:
            admin_services.create_site(tester, **data)
        assert exc.value.field == field, data
        resp = c.post("/screening/sites/", {"kind": "site", **data})
        assert resp.status_code == 200  # the form again, with the message
    assert not Site.objects.exists()
    admin_services.create_site(tester, code="A1", name="x", region_code=FR_GRID)
    with pytest.raises(FieldError, match="exists"):
        admin_services.create_site(tester, code="A1", name="y", region_code=FR_GRID)


def test_sites_scoped_and_by_role(tester, make_user, client_for, regions):
    fr_site = admin_services.create_site(tester, code="FR-1", name="芙蓉", region_code=FR_GRID)
    yl_site = admin_services.create_site(tester, code="YL-1", name="岳麓", region_code=YL_GRID)
    county = make_user("fr-test", role="testing", region="430102")
    # Another county's site is not found, not readable, not editable.
    assert client_for(county).get(f"/screening/sites/{yl_site.pk}/").status_code == 404
    assert client_for(county).post(f"/screening/sites/{yl_site.pk}/", {"name": "改"}).status_code == 404
    with pytest.raises(FieldError) as exc:
        admin_services.update_site(county, yl_site, staff=3)
    assert exc.value.field == "site"
    with pytest.raises(FieldError) as exc:
        admin_services.update_site(county, fr_site, region_code=YL_GRID)  # nor moved out
    assert (exc.value.field, exc.value.value) == ("region_code", YL_GRID)
    listing = client_for(county).get("/screening/sites/").content.decode()
    assert "FR-1" in listing and "YL-1" not in listing
    # A grid worker sees sites but has no forms and cannot post them.
    grid = make_user("grid", role="grid_worker", region="430102")
    page = client_for(grid).get("/screening/sites/").content.decode()
    assert 'id="new-site"' not in page and "FR-1" in page
    assert client_for(grid).post("/screening/sites/", {"kind": "site", "code": "G1", "name": "g",
                                                       "region_code": FR_GRID}).status_code == 403  # fmt: skip
    assert client_for(grid).post(f"/screening/sites/{fr_site.pk}/", {"name": "改"}).status_code == 403
    assert not Site.objects.filter(code="G1").exists()
    assert Site.objects.get(pk=fr_site.pk).name == "芙蓉"


def test_labs_created_and_edited_by_the_city_only(tester, make_user, client_for, regions):
    c = client_for(tester)
    resp = c.post("/screening/sites/", {"kind": "lab", "code": "CSJC01", "name": "长沙检测基地",
                                        "region_code": "430100", "daily_capacity": "120000"})  # fmt: skip
    assert resp.status_code == 302
    lab = Lab.objects.get(code="CSJC01")
    assert lab.daily_capacity == 120000
    assert c.get("/screening/labs/CSJC01/").status_code == 200
    c.post("/screening/labs/CSJC01/", {"name": "长沙市核酸检测基地", "daily_capacity": "150000"})
    lab.refresh_from_db()
    assert (lab.name, lab.daily_capacity) == ("长沙市核酸检测基地", 150000)
    ev = AuditEvent.objects.get(action="screening.lab_update")
    assert ev.changes["daily_capacity"] == [120000, 150000]
    for bad in ("-5", "x", "99999999999"):
        c.post("/screening/labs/CSJC01/", {"name": lab.name, "daily_capacity": bad})
        lab.refresh_from_db()
        assert lab.daily_capacity == 150000
    # A county sees the city's lab but may not change it.
    county = make_user("fr-test", role="testing", region="430102")
    page = client_for(county).get("/screening/labs/CSJC01/").content.decode()
    assert "长沙市核酸检测基地" in page and 'id="edit-lab"' not in page
    client_for(county).post("/screening/labs/CSJC01/", {"name": "改", "daily_capacity": "1"})
    lab.refresh_from_db()
    assert lab.name == "长沙市核酸检测基地"
    with pytest.raises(FieldError) as exc:
        admin_services.create_lab(county, code="L2", name="x", region_code="430100")
    assert exc.value.field == "region_code"
    with pytest.raises(FieldError) as exc:
        admin_services.update_lab(county, lab, daily_capacity=1)
    assert exc.value.field == "lab"
    with pytest.raises(FieldError) as exc:
        admin_services.create_lab(tester, code="L2", name="x", region_code="999999")
    assert (exc.value.field, exc.value.value) == ("region_code", "999999")
    assert not Lab.objects.filter(code="L2").exists()
    assert client_for(county).get("/screening/labs/NOPE/").status_code == 404


def test_tube_members_grouped_by_household(campaign, site, terminal, tester, scan, person_factory, client_for,
                                           make_user, django_assert_num_queries):  # fmt: skip
    home = [person_factory(FR_GRID, name=f"王{i}", address="人民路1号") for i in range(3)]
    neighbour = person_factory(FR_GRID, name="李邻", address="人民路2号")
    alone = person_factory(FR_GRID, name="赵独", address="")
    away = person_factory(FR_GRID, name="王外", address="人民路1号")  # same household, not swabbed yet
    visitor = person_factory(YL_GRID, name="岳客", address="人民路1号")  # same address, another grid
    out = ingest.ingest_scans(terminal, [scan("HT1", person=p) for p in [*home, neighbour, alone, visitor]])
    assert all(o.status == "accepted" for o in out)
    tube = queries.get_tube(tester, "HT1")
    hh = queries.tube_households(tester, [tube])[tube.pk]
    assert hh["count"] == 4 and hh["hidden"] == 0
    sizes = sorted(len(h["members"]) for h in hh["households"])
    assert sizes == [1, 1, 1, 3]
    page = client_for(tester).get("/screening/tubes/HT1/").content.decode()
    assert 'id="households"' in page and "李*" in page
    assert "李邻" not in page and "人民路1号" not in page  # names and addresses masked
    assert 'id="household-count">4<' in page
    registry = queries.household_registry(tester, campaign, [(FR_GRID, "人民路1号")])
    assert registry[(FR_GRID, "人民路1号")] == {"registry": 4, "sampled": 3}
    # Every household of a tube is counted by one query, whatever their number.
    with django_assert_num_queries(1):
        both = queries.household_registry(tester, campaign, [(FR_GRID, "人民路1号"), (FR_GRID, "人民路2号"),
                                                             (FR_GRID, "人民路9号"), (FR_GRID, "#5")])  # fmt: skip
    assert both == {(FR_GRID, "人民路1号"): {"registry": 4, "sampled": 3},
                    (FR_GRID, "人民路2号"): {"registry": 1, "sampled": 1},
                    (FR_GRID, "人民路9号"): {"registry": 0, "sampled": 0}}  # fmt: skip
    # A county user sees only the members living in their county; the others are counted.
    county = make_user("fr", role="testing", region="430102")
    scoped = queries.tube_households(county, [queries.get_tube(county, "HT1")])
    assert scoped[tube.pk]["hidden"] == 1 and len(scoped[tube.pk]["households"]) == 3
    # The site page lists the tube with its household count; the board counts households sampled.
    site_page = client_for(tester).get(f"/screening/sites/{site.pk}/").content.decode()
    assert "/screening/tubes/HT1/" in site_page and 'ul class="households"' in site_page
    board = client_for(tester).get(f"/screening/campaigns/{campaign.pk}/").content.decode()
    assert 'id="households"' in board
    assert client_for(tester).get("/screening/tubes/NOPE/").status_code == 404
    other = make_user("zz", role="testing", region="430202")
    assert client_for(other).get("/screening/tubes/HT1/").status_code in (403, 404)
    assert away.pk not in {m["id"] for h in hh["households"] for m in h["members"]}
