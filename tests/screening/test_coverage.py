"""Pre-aggregated coverage: the stored counts plus the live part above the watermarks always equal a straight
recount, after registrations, re-sent batches, people imports and moves, scoped by jurisdiction."""

from __future__ import annotations

from datetime import date

import pytest
from django.db.models import Exists, OuterRef

from cordon.people import services as people_services
from cordon.people.importer import import_people
from cordon.people.models import Person
from cordon.screening import coverage as cov
from cordon.screening import ingest, queries, services
from cordon.screening.models import CoverageCount, CoverageState, Registration
from tests.conftest import rid

pytestmark = pytest.mark.django_db

FR_GRID = "430102001001001"
YL_GRID = "430104001001001"


def recount(user, campaign) -> dict[str, tuple[int, int]]:
    """The straight way: people under each covered region (scoped), and those with a swab in the round."""
    out = {}
    for lo, hi, area in queries._area_ranges(user, campaign):
        people = Person.objects.filter(region_id__gte=lo, region_id__lt=hi)
        sampled = people.filter(Exists(Registration.objects.filter(campaign=campaign, person_id=OuterRef("pk"))))
        out[area.region_id if area.region.prefix == lo else lo] = (people.count(), sampled.count())
    return out


def shown(user, campaign) -> dict[str, tuple[int, int]]:
    return {r["code"]: (r["target"], r["sampled"]) for r in queries.coverage(user, campaign)}


def stored(campaign) -> tuple[int, int]:
    rows = CoverageCount.objects.filter(campaign=campaign)
    return sum(r.target for r in rows), sum(r.sampled for r in rows)


def _ingest(terminal, batch):
    out = ingest.ingest_scans(terminal, batch)
    assert all(o.status == "accepted" for o in out), [o.reason for o in out if o.status != "accepted"]
    return out


def test_counts_follow_registrations_and_resent_batches(campaign, site, site_yl, terminal, tester, scan,
                                                        person_factory):  # fmt: skip
    fr = [person_factory(FR_GRID, name=f"芙{i}", address=f"人民路{i}号") for i in range(6)]
    yl = [person_factory(YL_GRID, name=f"岳{i}") for i in range(3)]
    person_factory("430202", name="外市")  # outside the campaign: never counted
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (6, 0), "430104": (3, 0)}
    batch = [scan("CV1", person=p) for p in fr[:3]]
    _ingest(terminal, batch)
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (6, 3), "430104": (3, 0)}
    # A refresh folds them into the stored rows, watermark at the newest registration.
    state = cov.refresh(campaign)
    assert state.reg_watermark == Registration.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert stored(campaign) == (9, 3)
    # The same batch re-sent: accepted once, counted once.
    assert {o.status for o in ingest.ingest_scans(terminal, batch)} == {"duplicate"}
    assert Registration.objects.filter(campaign=campaign).count() == 3
    cov.refresh(campaign)
    assert shown(tester, campaign) == recount(tester, campaign)
    # A person swabbed again into another tube is still one person sampled.
    _ingest(terminal, [scan("CV2", person=fr[0]), scan("CV2", person=fr[3]), scan("CV3", person=yl[0], site="S-YL-1")])
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (6, 4), "430104": (3, 1)}
    cov.refresh(campaign)
    assert stored(campaign) == (9, 5)
    # Unknown people registered at a site join the registry and both sides of the count.
    _ingest(terminal, [scan("CV4") for _ in range(2)])
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (8, 6), "430104": (3, 1)}
    t = queries.totals(tester, campaign)
    assert (t["target"], t["sampled"], t["untested"]) == (11, 7, 4) and t["as_of"] is not None


def test_live_part_above_the_watermark_is_exact_between_refreshes(campaign, site, terminal, tester, scan,
                                                                  person_factory, monkeypatch):  # fmt: skip
    people = [person_factory(FR_GRID, name=f"人{i}") for i in range(5)]
    _ingest(terminal, [scan("LV1", person=p) for p in people[:2]])
    state = cov.refresh(campaign)
    monkeypatch.setattr(cov, "needs_refresh", lambda c, s: False)  # no refresh on read from here
    _ingest(terminal, [scan("LV2", person=p) for p in people[:4]])  # two already counted, two new
    person_factory(FR_GRID, name="新")
    assert CoverageState.objects.get(campaign=campaign).reg_watermark == state.reg_watermark
    assert stored(campaign) == (5, 2)
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (6, 4), "430104": (0, 0)}


def test_watermark_waits_for_transactions_in_flight(campaign, site, terminal, tester, scan, person_factory,
                                                    monkeypatch):  # fmt: skip
    """Ids read while another transaction is still writing may have gaps that fill in later: the watermark
    stays put until that transaction has ended, and the live part covers the gap meanwhile."""
    people = [person_factory(FR_GRID, name=f"人{i}") for i in range(4)]
    cov.refresh(campaign)
    real = cov._current_marks
    in_flight = {"xids": {"990001"}}
    monkeypatch.setattr(cov, "_current_marks", lambda: (*real()[:2], set(in_flight["xids"])))
    monkeypatch.setattr(cov, "_in_flight", lambda: set(in_flight["xids"]))
    _ingest(terminal, [scan("WM1", person=p) for p in people[:2]])
    state = cov.refresh(campaign)
    assert state.reg_watermark == 0 and state.reg_candidate is not None and state.candidate_xids == "990001"
    assert stored(campaign) == (4, 0)
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (4, 2), "430104": (0, 0)}
    candidate = state.reg_candidate
    in_flight["xids"] = {"990002"}  # the first writer ended, another one started
    _ingest(terminal, [scan("WM2", person=people[2])])
    assert cov.needs_refresh(campaign, CoverageState.objects.get(campaign=campaign))
    state = cov.refresh(campaign)
    assert state.reg_watermark == candidate and state.candidate_xids == "990002"
    assert stored(campaign) == (4, 2)
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (4, 3), "430104": (0, 0)}
    in_flight["xids"] = set()
    state = cov.refresh(campaign)
    assert state.reg_candidate is None and stored(campaign) == (4, 3)


def test_people_import_and_moves_are_recounted(campaign, site, terminal, tester, scan, person_factory, tmp_path):
    mover = person_factory(FR_GRID, name="搬家", document_number=rid("430102", 1970, 5, 5, 7))
    stay = person_factory(FR_GRID, name="留下")
    _ingest(terminal, [scan("MV1", person=mover), scan("MV1", person=stay)])
    assert shown(tester, campaign) == {"430102": (2, 2), "430104": (0, 0)}
    # An import adds two people to 岳麓区 and moves the sampled ``mover`` there too.
    path = tmp_path / "people.csv"
    lines = ["姓名,证件类型,证件号码,性别,出生日期,联系电话,住址,所属区划",
             f"搬家,身份证,{mover.document_number},男,1970-05-05,13812345678,岳麓区1号,{YL_GRID}"]
    lines += [f"新人{i},身份证,{rid('430104', 1990, 2, 1 + i, i)},男,1990-02-{1 + i:02d},,岳麓区{i}号,{YL_GRID}"
              for i in range(2)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = import_people(path, today=date(2026, 11, 29))
    assert (s.accepted, s.updated) == (2, 1)
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (1, 1), "430104": (3, 1)}
    assert stored(campaign) == (4, 2)
    # An edit in the UI moves ``stay`` to 岳麓区 as well.
    people_services.update_person(tester, stay, {"region_id": YL_GRID})
    assert CoverageState.objects.get(campaign=campaign).dirty
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (0, 0), "430104": (4, 2)}
    assert not CoverageState.objects.get(campaign=campaign).dirty
    # A save that does not touch the region leaves the stored rows alone.
    people_services.update_person(tester, stay, {"phone": "13911112222"})
    assert not CoverageState.objects.get(campaign=campaign).dirty


def test_scoped_by_jurisdiction(campaign, site, site_yl, terminal, tester, scan, person_factory, make_user):
    fr = [person_factory(FR_GRID, name=f"芙{i}") for i in range(4)]
    yl = [person_factory(YL_GRID, name=f"岳{i}") for i in range(3)]
    _ingest(terminal, [scan("SC1", person=p) for p in fr[:3]])
    _ingest(terminal, [scan("SC2", person=yl[0], site="S-YL-1")])
    county = make_user("fr", role="testing", region="430102")
    assert shown(county, campaign) == recount(county, campaign) == {"430102": (4, 3)}
    grid = make_user("grid", role="grid_worker", region=YL_GRID)
    t = queries.totals(grid, campaign)
    assert (t["target"], t["sampled"]) == (3, 1)
    assert [(r["code"], r["target"], r["sampled"]) for r in queries.coverage(grid, campaign)] == [(YL_GRID, 3, 1)]
    # Drilling down stays inside the user's part: nothing above it, nothing beside it.
    assert queries.coverage(grid, campaign, parent="430104") == []
    assert queries.coverage(county, campaign, parent="430104") == []
    kids = queries.coverage(grid, campaign, parent=YL_GRID)
    assert [(r["code"], r["target"], r["sampled"]) for r in kids] == [(YL_GRID, 3, 1)]
    kids = queries.coverage(tester, campaign, parent="430102001001")
    assert [(r["code"], r["target"], r["sampled"]) for r in kids] == [(FR_GRID, 4, 3)]


def test_households_sampled(campaign, site, terminal, tester, scan, person_factory):
    home = [person_factory(FR_GRID, name=f"家{i}", address="人民路1号") for i in range(3)]
    other = person_factory(FR_GRID, name="邻居", address="人民路2号")
    no_address = [person_factory(FR_GRID, name=f"无{i}", address="") for i in range(2)]
    person_factory("430104001001001", name="岳麓", address="人民路1号")  # same address, other grid
    _ingest(terminal, [scan("HH1", person=p) for p in home[:2]])
    cov.refresh(campaign)
    assert queries.totals(tester, campaign)["households"] == 1
    _ingest(terminal, [scan("HH2", person=p) for p in [home[2], other, *no_address]])
    cov.refresh(campaign)
    assert queries.totals(tester, campaign)["households"] == 4
    cov.refresh(campaign, rebuild=True)
    assert queries.totals(tester, campaign)["households"] == 4


def test_refresh_task_and_rebuild_on_demand(campaign, site, terminal, tester, scan, person_factory, settings,
                                            client_for, make_user):  # fmt: skip
    from cordon.screening.tasks import refresh_coverage

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
                                  "QUEUES": ["default", "imports", "analytics"]}}  # fmt: skip
    people = [person_factory(FR_GRID, name=f"人{i}") for i in range(3)]
    _ingest(terminal, [scan("TK1", person=p) for p in people[:2]])
    result = refresh_coverage.enqueue(campaign.pk)
    assert result.return_value == {"refreshed": 1}
    assert stored(campaign) == (3, 2)
    # Finished rounds are left alone by the all-campaigns run; a bad id is refused politely.
    assert refresh_coverage.enqueue(None).return_value == {"refreshed": 1}
    assert refresh_coverage.enqueue(999999).return_value == {"refreshed": 0}
    # Stored rows tampered with are put right by a rebuild requested from the coverage page.
    CoverageCount.objects.filter(campaign=campaign).update(sampled=0)
    page = client_for(tester).get(f"/screening/campaigns/{campaign.pk}/coverage/")
    assert page.status_code == 200
    resp = client_for(tester).post(f"/screening/campaigns/{campaign.pk}/coverage/refresh")
    assert resp.status_code == 302
    assert stored(campaign) == (3, 2)
    # Only those who run screening may ask for it.
    grid = make_user("grid", role="grid_worker", region=FR_GRID)
    assert client_for(grid).post(f"/screening/campaigns/{campaign.pk}/coverage/refresh").status_code == 403
    # The coverage page says when the counts were taken.
    page = client_for(tester).get(f"/screening/campaigns/{campaign.pk}/coverage/").content.decode()
    assert 'id="as-of"' in page


def test_two_campaigns_do_not_mix(campaign, site, terminal, tester, scan, person_factory):
    people = [person_factory(FR_GRID, name=f"人{i}") for i in range(3)]
    other = services.create_campaign(tester, name="芙蓉区专项", start=True,
                                     areas=[{"region_code": "430102", "area_kind": "medium"}])
    out = ingest.ingest_scans(terminal, [scan("TC1", person=p) for p in people[:2]], campaign=campaign)
    assert [o.status for o in out] == ["accepted"] * 2
    out = ingest.ingest_scans(terminal, [scan("TC2", person=people[2])], campaign=other)
    assert [o.status for o in out] == ["accepted"]
    assert shown(tester, campaign) == recount(tester, campaign) == {"430102": (3, 2), "430104": (0, 0)}
    assert shown(tester, other) == recount(tester, other) == {"430102": (3, 1)}


def test_only_this_databases_writers_hold_the_watermark():
    # A snapshot lists the whole cluster's transactions (64-bit, with epoch); pg_stat_activity gives 32-bit xids.
    assert cov._ours("100:120:101,105,110", ["105"]) == {"101", "110"}
    assert cov._ours(f"{2**32 + 100}:{2**32 + 120}:{2**32 + 105}", ["105"]) == set()
    assert cov._ours("100:100:", None) == set()


def test_demo_round_is_counted_right_after_the_demo(tester, regions, person_factory):
    import random

    from django.utils import timezone
    from rich.console import Console

    from cordon.demo.build import DemoContext
    from cordon.screening import demo
    from cordon.screening.models import Campaign

    for i in range(160):
        person_factory(FR_GRID if i % 3 else YL_GRID, name=f"演{i}", address=f"演示路{i}号")
    now = timezone.now()
    ctx = DemoContext(rng=random.Random(7), seed=7, today=now.date(), now=now, users={"testing": tester},
                      console=Console(quiet=True))
    demo.extend_demo(ctx)
    campaign = Campaign.objects.get(pk=ctx.shared["screening_campaign"])
    state = CoverageState.objects.get(campaign=campaign)
    assert state.rebuilt_at is not None and not state.dirty
    assert state.reg_watermark == Registration.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert cov.needs_refresh(campaign, state) is False
    # The stored rows alone already equal a straight recount.
    expected = recount(tester, campaign)
    assert stored(campaign) == tuple(map(sum, zip(*expected.values(), strict=True)))
    assert shown(tester, campaign) == expected
    # Households of several people were swabbed together.
    t = queries.totals(tester, campaign)
    assert 0 < t["households"] < t["sampled"]
