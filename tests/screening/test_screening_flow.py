"""Scans, pooling rules, results and the positive-pool cascade, through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cordon.core import events
from cordon.core.policy import active_policy
from cordon.people.models import Person
from cordon.people.validation import FieldError
from cordon.screening import ingest, queries, services
from cordon.screening.models import Hold, Registration, Retest, Tube, TubeResult

pytestmark = pytest.mark.django_db


def test_pool_size_rules(tester):
    assert services.check_pool_size("medium", None) == 10
    assert services.check_pool_size("low", None) == 20
    assert services.check_pool_size("high", None) == 1
    assert services.check_pool_size("medium", 5) == 5  # smaller than the default is allowed
    with pytest.raises(FieldError, match="above 20"):
        services.check_pool_size("low", 30)
    with pytest.raises(FieldError, match="at most 10"):
        services.check_pool_size("medium", 20)
    with pytest.raises(FieldError, match="at most 1"):
        services.check_pool_size("quarantine_site", 10)
    with pytest.raises(FieldError, match="one of"):
        services.check_pool_size("low", 7)
    with pytest.raises(FieldError, match="household"):
        services.check_pool_size("medium", None, household=True)
    assert services.check_pool_size("high", 1, household=True) == 1
    with pytest.raises(FieldError, match="unknown area kind"):
        services.check_pool_size("moon", None)
    with pytest.raises(FieldError):
        services.create_campaign(tester, name="x", areas=[{"region_code": "430102", "area_kind": "low",
                                                           "pool_size": 50}])


def test_campaign_deadline_and_plan(tester):
    c = services.create_campaign(tester, name="r", areas=[{"region_code": "430102", "area_kind": "high"}])
    hours = int(active_policy().screening.targets.sealed_first_round_hours)  # a high area's first round
    assert c.target_hours == hours and c.deadline - c.starts_at == timedelta(hours=hours)
    assert c.region_id == "430102" and c.status == "planned"
    c2 = services.create_campaign(tester, name="r2", areas=[{"region_code": "430102", "area_kind": "low"},
                                                            {"region_code": "430104", "area_kind": "low"}])
    assert c2.region_id == "430100"
    assert services.plan(10_000_000) == {"population": 10_000_000, "sites_min": 3334, "sites_max": 5000,
                                         "samplers": 27778}


def test_scans_idempotent_and_refusals(campaign, site, terminal, scan, person_factory):
    known = person_factory(name="李四")
    batch = [scan("TB001", person=known)] + [scan("TB001") for _ in range(9)]
    out = ingest.ingest_scans(terminal, batch)
    assert [o.status for o in out] == ["accepted"] * 10
    tube = Tube.objects.get(barcode="TB001")
    assert tube.members == 10 and tube.capacity == 10 and tube.sealed_at is not None
    # Unknown people joined the registry unverified, in the site's grid.
    new = Person.objects.exclude(pk=known.pk)
    assert new.count() == 9 and not new.filter(verified=True).exists()
    assert set(new.values_list("region_id", flat=True)) == {"430102001001001"}
    # Re-sent: duplicates, no second row.
    again = ingest.ingest_scans(terminal, batch)
    assert {o.status for o in again} == {"duplicate"}
    assert Registration.objects.count() == 10
    changed = dict(batch[0], name="李四改")
    bad = [
        changed,
        scan("TB001"),  # full
        scan("TB002", document_number="430102198501011235"),  # bad check digit
        scan("TB002", site="NOPE"),
        scan("TB003", person=known),
        scan("TB003", person=known),  # same person twice in one tube
    ]
    out = ingest.ingest_scans(terminal, bad)
    assert [(o.status, o.reason.split(":")[0]) for o in out] == [
        ("refused", ingest.DUPLICATE_DIFFERENT), ("refused", ingest.TUBE_FULL),
        ("refused", ingest.INVALID_DOCUMENT), ("refused", ingest.UNKNOWN_SITE),
        ("accepted", ""), ("refused", ingest.ALREADY_IN_TUBE)]
    assert Tube.objects.get(barcode="TB003").members == 1


def test_low_area_pools_twenty_and_guardian(campaign, site_yl, terminal, scan, person_factory):
    parent = person_factory("430104001001001", name="赵母")
    out = ingest.ingest_scans(terminal, [scan("YL1", site="S-YL-1", guardian_document=parent.document_number)])
    assert out[0].status == "accepted"
    assert Tube.objects.get(barcode="YL1").capacity == 20
    reg = Registration.objects.get(tube__barcode="YL1")
    assert reg.guardian_id == parent.pk
    out = ingest.ingest_scans(terminal, [scan("YL1", site="S-YL-1", guardian_document="110101199001011237")])
    assert out[0].reason in (ingest.UNKNOWN_GUARDIAN,) or out[0].reason.startswith(ingest.INVALID_DOCUMENT)


def _fill(terminal, scan, barcode, n=10, people=None):
    people = people or [None] * n
    out = ingest.ingest_scans(terminal, [scan(barcode, person=p) for p in people])
    assert all(o.status == "accepted" for o in out)
    return Tube.objects.get(barcode=barcode)


def test_positive_pool_cascade(campaign, site, terminal, tester, lab, scan, monkeypatch):
    seen = []

    def on_pool(**kw):
        seen.extend(("pool", len(retests)) for _tube, retests in kw["pools"])

    def on_retest(**kw):
        seen.append(("retest", kw["retest"].status))

    events.subscribe("pools.positive", on_pool)
    events.subscribe("retest.resulted", on_retest)
    opened = []

    def fake_report(user, person, **kw):
        assert kw["found_by"] == "screening" and kw["classification"] == "asymptomatic"
        assert kw["found_under_control"] is False
        opened.append(person.pk)

        class C:
            pk = 4242
        return C()

    import cordon.cases.services as cs
    monkeypatch.setattr(cs, "report_case", fake_report)
    tube = _fill(terminal, scan, "POS1")
    try:
        assert services.record_result(tester, tube, "positive", ct_orf1ab=28.5, ct_n=29.1) == "accepted"
        assert Hold.objects.filter(tube=tube, status="active").count() == 10
        retests = list(Retest.objects.filter(source_tube=tube))
        assert len(retests) == 10 and all(r.status == "pending" for r in retests)
        assert seen == [("pool", 10)]
        hours = (retests[0].due_at - retests[0].ordered_at).total_seconds() / 3600
        assert hours == 4
        for i, r in enumerate(retests):
            services.sample_retest(terminal, r, f"R{i}")
        for i in range(len(retests)):
            t = Tube.objects.get(barcode=f"R{i}")
            services.record_result(tester, t, "positive" if i == 0 else "negative")
        assert opened == [retests[0].person_id]
        assert Retest.objects.get(pk=retests[0].pk).case_id == 4242
        assert Hold.objects.get(tube=tube, person_id=retests[0].person_id).status == "case"
        assert Hold.objects.filter(tube=tube, status="lifted").count() == 9
        assert ("retest", "positive") in seen and seen.count(("retest", "negative")) == 9
        pools = queries.positive_pools(tester, campaign)
        assert pools[0]["open"] == 0 and pools[0]["positive"] == 1
    finally:
        # Only this test's listeners: the command centre's own stay subscribed for the tests that follow.
        events.unsubscribe("pools.positive", on_pool)
        events.unsubscribe("retest.resulted", on_retest)


def test_invalid_and_correction(campaign, site, terminal, tester, scan):
    tube = _fill(terminal, scan, "INV1", n=3)
    assert services.record_result(tester, tube, "invalid") == "accepted"
    assert Retest.objects.filter(source_tube=tube, reason="invalid").count() == 3
    assert not Hold.objects.exists()
    tube2 = _fill(terminal, scan, "COR1", n=2)
    services.record_result(tester, tube2, "positive")
    assert Hold.objects.filter(tube=tube2, status="active").count() == 2
    assert services.record_result(tester, tube2, "negative") == "updated"
    versions = list(TubeResult.objects.filter(tube=tube2).values_list("version", "result", "is_correction"))
    assert versions == [(1, "positive", False), (2, "negative", True)]
    assert Hold.objects.filter(tube=tube2, status="active").count() == 0
    assert Retest.objects.filter(source_tube=tube2, status="cancelled").count() == 2


def test_coverage_and_untested(campaign, site, site_yl, terminal, tester, scan, person_factory, make_user):
    fr = [person_factory(name=f"芙{i}") for i in range(5)]
    yl = [person_factory("430104001001001", name=f"岳{i}") for i in range(4)]
    person_factory("430202", name="外市")  # not in the campaign
    _fill(terminal, scan, "C1", people=fr[:3])
    ingest.ingest_scans(terminal, [scan("C2", person=yl[0], site="S-YL-1")])
    rows = {r["code"]: r for r in queries.coverage(tester, campaign)}
    assert (rows["430102"]["target"], rows["430102"]["sampled"]) == (5, 3)
    assert (rows["430104"]["target"], rows["430104"]["sampled"]) == (4, 1)
    assert set(queries.untested(tester, campaign).values_list("pk", flat=True)) == {p.pk for p in fr[3:] + yl[1:]}
    # Scoped: a county user sees only their county.
    county = make_user("fr", role="testing", region="430102")
    assert [r["code"] for r in queries.coverage(county, campaign)] == ["430102"]
    assert set(queries.untested(county, campaign).values_list("pk", flat=True)) == {p.pk for p in fr[3:]}
    kids = queries.coverage(tester, campaign, parent="430102")
    assert kids[0]["code"] == "430102001" and kids[0]["target"] == 5
    # A grid worker below the campaign's region still sees the campaign and their own grid.
    grid = make_user("grid", role="grid_worker", region="430104001001001")
    assert queries.get_campaign(grid, campaign.pk)
    assert queries.totals(grid, campaign)["target"] == 4
    other = make_user("zz", role="testing", region="430202")
    assert not queries.campaigns_for(other).exists()
    s = queries.screening_summary(tester)
    assert s["campaign_id"] == campaign.pk and s["target"] == 9 and s["sampled"] == 4
    assert queries.screening_summary(other)["campaign_id"] is None
    # Next round: the untested carried over.
    nxt = services.create_campaign(tester, name="第2轮", previous=campaign, start=True,
                                   areas=[{"region_code": "430102", "area_kind": "medium"}])
    assert nxt.round_number == 2
    assert set(queries.carried_over(tester, nxt).values_list("pk", flat=True)) == {p.pk for p in fr[3:]}
