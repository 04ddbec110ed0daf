"""Lab reception, turnaround and overdue tubes, single-tube positives, campaign status, retest scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cordon.people.validation import FieldError
from cordon.screening import ingest, queries, services
from cordon.screening.models import Hold, Retest, Tube

pytestmark = pytest.mark.django_db


def test_receive_turnaround_and_overdue(campaign, site, terminal, tester, lab, scan, client_for):
    old = (timezone.now() - timedelta(hours=30)).isoformat()
    ingest.ingest_scans(terminal, [scan("OLD", collected_at=old) for _ in range(3)])
    ingest.ingest_scans(terminal, [scan("NEW") for _ in range(3)])
    r = client_for(tester).post("/api/v1/screening/labs/LAB1/receive", {"barcodes": ["OLD", "NEW", "NOPE"]},
                                content_type="application/json")
    assert r.json()["results"] == {"OLD": "received", "NEW": "received", "NOPE": "unknown"}
    assert services.receive_tubes(tester, lab, ["OLD"]) == {"OLD": "already_received"}
    ta = queries.turnaround(tester, campaign)
    assert ta["pending"] == 2 and [t.barcode for t in ta["overdue"]] == ["OLD"]  # pooled clock: 24 h
    tube = Tube.objects.get(barcode="NEW")
    tested = tube.received_at + timedelta(hours=2)
    services.record_result(tester, tube, "negative", tested_at=tested)
    # "Used today" counts the day the result came in; asked on that day, so a reception late in the evening counts.
    ta = queries.turnaround(tester, campaign, now=tested)
    row = ta["labs"][0]
    assert row["lab"] == lab and row["tubes"] == 1 and row["result_median"] == 2.0 and row["used_today"] == 1
    # Refused: a resulted tube takes no more swabs.
    out = ingest.ingest_scans(terminal, [scan("NEW")])
    assert out[0].reason == ingest.TUBE_RESULTED


def test_single_tube_positive_opens_case_directly(tester, terminal, site, scan, monkeypatch):
    c = services.create_campaign(tester, name="封控区", start=True,
                                 areas=[{"region_code": "430102001001001", "area_kind": "high"}])
    opened = []
    import cordon.cases.services as cs

    monkeypatch.setattr(cs, "report_case", lambda user, person, **kw: opened.append((person.pk, kw["found_by"])))
    out = ingest.ingest_scans(terminal, [scan("SINGLE"), scan("SINGLE")], campaign=c)
    assert [o.status for o in out] == ["accepted", "refused"] and out[1].reason == ingest.TUBE_FULL
    tube = Tube.objects.get(barcode="SINGLE")
    assert tube.capacity == 1
    services.record_result(tester, tube, "positive")
    assert len(opened) == 1 and opened[0][1] == "screening"
    assert not Hold.objects.exists() and not Retest.objects.exists()


def test_status_transitions_and_closed_campaign(tester, campaign, site, terminal, scan):
    with pytest.raises(FieldError):
        services.set_campaign_status(tester, campaign, "planned")
    services.set_campaign_status(tester, campaign, "finished")
    out = ingest.ingest_scans(terminal, [scan("LATE")])
    assert out[0].reason == ingest.NO_CAMPAIGN


def test_retests_scoped_and_real_report_case(tester, make_user, campaign, site, site_yl, terminal, scan):
    ingest.ingest_scans(terminal, [scan("FR") for _ in range(2)])
    ingest.ingest_scans(terminal, [scan("YL", site="S-YL-1") for _ in range(2)])
    for b in ("FR", "YL"):
        services.record_result(tester, Tube.objects.get(barcode=b), "positive")
    assert queries.retests_for(tester, campaign).count() == 4
    fr = make_user("frt", role="testing", region="430102")
    assert queries.retests_for(fr, campaign).count() == 2
    yl_retest = Retest.objects.filter(region__code__startswith="430104").first()
    from django.http import Http404

    with pytest.raises(Http404):
        queries.get_retest(fr, yl_retest.pk)
    # The real cases service (when installed) opens the case, found by mass screening.
    r = Retest.objects.filter(region__code__startswith="430102").first()
    services.sample_retest(terminal, r, "RT-1")
    services.record_result(tester, Tube.objects.get(barcode="RT-1"), "positive")
    r.refresh_from_db()
    from cordon.cases.models import Case

    case = Case.objects.get(pk=r.case_id)
    assert case.found_by == "screening" and case.classification == "asymptomatic" and not case.found_under_control
    assert Hold.objects.get(tube__barcode="FR", person_id=r.person_id).status == "case"
