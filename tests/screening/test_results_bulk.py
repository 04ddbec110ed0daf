"""The lab-file import's set-based cascade: the rows it writes for many positive pools and invalid tubes at once
are those of the one-tube path (``services.record_result``), member for member."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from cordon.command.models import Task
from cordon.core import events
from cordon.core.audit import verify_chain
from cordon.core.models import AuditEvent
from cordon.core.policy import active_policy
from cordon.screening import ingest, results, services
from cordon.screening.models import Hold, Registration, Retest, Tube, TubeResult
from cordon.screening.results import import_results

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["planner", "probe"])
def tube_lookup(request, monkeypatch):
    """Every test twice on PostgreSQL: with the batch's tubes joined as the planner likes (a small tube table),
    and found by one index probe per line, as when the tube table is many times the batch."""
    if request.param == "probe":
        if connection.vendor != "postgresql":
            pytest.skip("the probe plan is PostgreSQL's; SQLite has one path, run once")
        monkeypatch.setattr(results, "_PROBE_FROM", -(10**9))  # any table counts as large (reltuples may be -1)
    return request.param

HEADER = "试管编码,检测结果,ORF1ab基因Ct值,N基因Ct值,检测时间\n"


def _fill(terminal, scan, barcode, people, site="S-FR-1"):
    out = ingest.ingest_scans(terminal, [scan(barcode, person=p, name=p.name, site=site) for p in people])
    assert all(o.status == "accepted" for o in out), out
    return Tube.objects.get(barcode=barcode)


def _file(tmp_path, name, lines):
    f = tmp_path / name
    f.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return f


def _snapshot(tube: Tube) -> dict:
    """What the cascade left for one tube, with members named by their place in the tube (so that two tubes of
    different people compare) and times as offsets (so that two runs compare)."""
    tube.refresh_from_db()
    member = {p: i for i, p in enumerate(Registration.objects.filter(tube=tube).order_by("pk")
                                         .values_list("person_id", flat=True))}  # fmt: skip
    region = dict(Registration.objects.filter(tube=tube).values_list("person_id", "region_id"))
    holds = sorted((member[h.person_id], h.status, h.campaign_id == tube.campaign_id, h.region_id == region[h.person_id],
                    h.lifted_at) for h in Hold.objects.filter(tube=tube))  # fmt: skip
    retests = sorted((member[r.person_id], r.reason, r.status, r.campaign_id == tube.campaign_id,
                      r.region_id == region[r.person_id], r.due_at - r.ordered_at, r.retest_tube_id, r.case_id)
                     for r in Retest.objects.filter(source_tube=tube))  # fmt: skip
    results = list(TubeResult.objects.filter(tube=tube).order_by("version")
                   .values_list("version", "result", "ct_orf1ab", "ct_n", "lab_id", "by_id", "is_correction"))  # fmt: skip
    audit = [(e.action, e.actor_label, e.region_code, {k: v for k, v in e.changes.items() if k != "due"})
             for e in AuditEvent.objects.filter(object_type="screening.tube", object_id=str(tube.pk)).order_by("seq")]  # fmt: skip
    tasks = [(t.kind, t.title.replace(tube.barcode, "<tube>"), t.due_at - tube.resulted_at, t.region_code, t.priority,
              t.status, t.context_type) for t in Task.objects.filter(context_type="tube", context_id=str(tube.pk))]  # fmt: skip
    return {"tube": (tube.result, tube.ct_orf1ab, tube.ct_n, tube.lab_id, tube.resulted_at is not None,
                     tube.received_at is not None, tube.sealed_at is not None),
            "holds": holds, "retests": retests, "results": results, "audit": audit, "tasks": tasks}  # fmt: skip


@pytest.fixture
def pools(campaign, site, terminal, person_factory, scan):
    """Four tubes of three people each, all different people."""

    def make(*barcodes, n=3):
        return [_fill(terminal, scan, b, [person_factory(name=f"{b}-{i}") for i in range(n)]) for b in barcodes]

    return make


def test_several_positive_pools_and_invalid_tubes_match_the_one_tube_path(tmp_path, tester, lab, pools):
    seen, batches = [], []

    def on_pool(**kw):
        batches.append(len(kw["pools"]))
        seen.extend((tube.barcode, len(retests), {r.status for r in retests}) for tube, retests in kw["pools"])

    p1, p2, p3, inv, n1, ref_pos, ref_inv = pools("P1", "P2", "P3", "I1", "N1", "RP", "RI")
    f = _file(tmp_path, "lab.csv", ["P1,阳性,28.4,29.1,2022-05-01 10:00", "N1,阴性,,,2022-05-01 10:00",
                                    "P2,阳性,31,32.5,2022-05-01 10:00", "I1,无效,,,2022-05-01 10:00",
                                    "P3,阳性,28.4,29.1,2022-05-01 10:00"])  # fmt: skip
    events.subscribe("pools.positive", on_pool)
    try:
        s = import_results(f, lab=lab, user=tester)
        assert services.record_result(tester, ref_pos, "positive", ct_orf1ab=28.4, ct_n=29.1, lab=lab,
                                      tested_at=Tube.objects.get(pk=p1.pk).resulted_at) == "accepted"  # fmt: skip
        assert services.record_result(tester, ref_inv, "invalid", lab=lab) == "accepted"
    finally:
        events.unsubscribe("pools.positive", on_pool)
    assert (s.accepted, s.updated, s.unchanged, s.rejected) == (5, 0, 0, 0)
    assert (s.extra["positive"], s.extra["invalid"], s.extra["corrections"]) == (3, 1, 0)
    assert sorted(seen) == [("P1", 3, {"pending"}), ("P2", 3, {"pending"}), ("P3", 3, {"pending"}),
                            ("RP", 3, {"pending"})]  # fmt: skip
    assert batches == [3, 1]  # the file's three pools in one event, then the one-tube path's

    hours = timedelta(hours=float(active_policy().screening.positive_pool.hold_and_resample_hours))
    want = _snapshot(ref_pos)
    assert want["holds"] == [(i, "active", True, True, None) for i in range(3)]
    assert want["retests"] == [(i, "positive_pool", "pending", True, True, hours, None, None) for i in range(3)]
    assert want["results"] == [(1, "positive", 28.4, 29.1, lab.pk, tester.pk, False)]
    assert [a[0] for a in want["audit"]] == ["screening.result", "screening.pool_positive"]
    assert want["audit"][1][3] == {"members": 3, "retests": 3}
    assert len(want["tasks"]) == 1 and want["tasks"][0][2] == hours
    got = _snapshot(p1)
    assert got == want
    p2_snap = _snapshot(p2)
    assert p2_snap["results"] == [(1, "positive", 31.0, 32.5, lab.pk, tester.pk, False)]
    assert {k: v for k, v in p2_snap.items() if k not in ("results", "tube", "audit")} == \
        {k: v for k, v in want.items() if k not in ("results", "tube", "audit")}  # fmt: skip
    assert _snapshot(p3) == want

    want_inv = _snapshot(ref_inv)
    assert want_inv["holds"] == []
    assert [r[:3] for r in want_inv["retests"]] == [(i, "invalid", "pending") for i in range(3)]
    assert [a[0] for a in want_inv["audit"]] == ["screening.result", "screening.resample"]
    got_inv = _snapshot(inv)
    assert {k: v for k, v in got_inv.items() if k != "tube"} == {k: v for k, v in want_inv.items() if k != "tube"}
    assert got_inv["tube"][:4] == ("invalid", None, None, lab.pk)
    assert _snapshot(n1)["retests"] == [] and _snapshot(n1)["holds"] == []
    assert Hold.objects.count() == 12 and Retest.objects.count() == 18


def test_member_already_held_or_ordered_is_not_doubled(tmp_path, tester, lab, pools, campaign):
    p1, p2 = pools("H1", "H2")
    members = list(Registration.objects.filter(tube=p1).order_by("pk"))
    before = p1.opened_at - timedelta(hours=1)
    kept = Hold.objects.create(person_id=members[0].person_id, tube=p1, campaign=campaign,
                               region_id=members[0].region_id, placed_at=before)  # fmt: skip
    ordered = Retest.objects.create(person_id=members[1].person_id, source_tube=p1, campaign=campaign,
                                    region_id=members[1].region_id, reason="positive_pool", ordered_at=before,
                                    due_at=before)  # fmt: skip
    # Someone held on H1 in advance who is a member of H2: held on H2 too, for its own positive.
    other = Hold.objects.create(person_id=Registration.objects.filter(tube=p2).first().person_id, tube=p1,
                                campaign=campaign, region_id=members[2].region_id, placed_at=before)  # fmt: skip
    s = import_results(_file(tmp_path, "lab.csv", ["H1,阳性,30,31,", "H2,阳性,30,31,"]), lab=lab, user=tester)
    assert s.accepted == 2 and s.extra["positive"] == 2
    assert Hold.objects.filter(tube=p1).count() == 4  # its three members and the one held in advance
    assert Hold.objects.get(pk=kept.pk).placed_at == before
    assert Hold.objects.get(pk=other.pk).tube_id == p1.pk
    assert Hold.objects.filter(tube=p2).count() == 3
    assert Retest.objects.filter(source_tube=p1).count() == 3
    assert Retest.objects.get(pk=ordered.pk).due_at == before
    event = AuditEvent.objects.get(action="screening.pool_positive", object_id=str(p1.pk))
    assert event.changes["members"] == 3 and event.changes["retests"] == 3


def test_reimport_changes_nothing_and_the_chain_verifies(tmp_path, tester, lab, pools):
    pools("R1", "R2", "R3", "R4")
    f = _file(tmp_path, "lab.csv", ["R1,阳性,28,29,2022-05-01 10:00", "R2,阴性,,,2022-05-01 10:00",
                                    "R3,无效,,,2022-05-01 10:00", "R4,阳性,25,26,2022-05-01 10:00"])  # fmt: skip
    first = import_results(f, lab=lab, user=tester)
    assert (first.accepted, first.extra["positive"], first.extra["invalid"]) == (4, 2, 1)

    def counts():
        return [m.objects.count() for m in (TubeResult, Hold, Retest, Task, AuditEvent)]

    before = counts()
    assert before[:4] == [4, 6, 9, 2]
    again = import_results(f, lab=lab, user=tester)
    assert (again.accepted, again.updated, again.unchanged, again.rejected) == (0, 0, 4, 0)
    assert counts() == before
    *_, (checked, problem) = verify_chain()
    assert problem is None and checked == AuditEvent.objects.count()


def test_file_mixing_first_results_corrections_single_tubes_and_retests(tmp_path, tester, lab, terminal, pools,
                                                                       person_factory, scan, monkeypatch):  # fmt: skip
    """One file carrying every kind of row: first positives (set-based), a correction, a single-tube positive
    (opens a case) and the results of retest tubes (negative lifts the hold, positive opens a case)."""
    opened = []

    def fake_report(user, person, **kw):
        opened.append((person.pk, kw["found_by"]))

        class C:
            pk = 4242 + len(opened)

        return C()

    import cordon.cases.services as cs

    monkeypatch.setattr(cs, "report_case", fake_report)
    old, fresh, corrected = pools("OLD", "NEW", "COR")
    single = _fill(terminal, scan, "ONE", [person_factory(name="单管")])
    single.capacity = 1
    single.save(update_fields=["capacity"])
    import_results(_file(tmp_path, "a.csv", ["OLD,阳性,30,31,", "COR,阴性,,,"]), lab=lab, user=tester)
    retests = list(Retest.objects.filter(source_tube=old).order_by("pk"))
    for i, r in enumerate(retests):
        services.sample_retest(terminal, r, f"OLD-R{i}")
    s = import_results(_file(tmp_path, "b.csv", ["OLD-R0,阳性,27,28,", "OLD-R1,阴性,,,", "OLD-R2,阴性,,,",
                                                 "NEW,阳性,29,30,", "COR,阳性,33,34,", "ONE,阳性,25,26,"]),
                       lab=lab, user=tester)  # fmt: skip
    assert (s.accepted, s.updated, s.rejected) == (5, 1, 0)
    assert (s.extra["positive"], s.extra["corrections"]) == (4, 1)
    statuses = {r.pk: r.status for r in Retest.objects.filter(source_tube=old)}
    assert [statuses[r.pk] for r in retests] == ["positive", "negative", "negative"]
    holds = {h.person_id: h.status for h in Hold.objects.filter(tube=old)}
    assert [holds[r.person_id] for r in retests] == ["case", "lifted", "lifted"]
    assert Retest.objects.get(pk=retests[0].pk).case_id is not None
    single_person = Registration.objects.get(tube=single).person_id
    assert sorted(opened) == sorted([(retests[0].person_id, "screening"), (single_person, "screening")])
    assert Hold.objects.filter(tube=fresh, status="active").count() == 3
    assert Hold.objects.filter(tube=corrected, status="active").count() == 3
    assert list(TubeResult.objects.filter(tube=corrected).values_list("version", "result", "is_correction")) == [
        (1, "negative", False), (2, "positive", True)]  # fmt: skip
    *_, (_checked, problem) = verify_chain()
    assert problem is None


def test_set_based_entry_refuses_rows_it_does_not_cascade(tester, lab, pools):
    (t,) = pools("X1")
    services.record_result(tester, t, "negative")
    with pytest.raises(ValueError, match="X1"):
        services.record_first_results(tester, [(t.pk, "positive", 30.0, 31.0, None)], lab=lab)


def test_tubes_outside_the_importers_jurisdiction_are_unknown(tmp_path, make_user, tester, lab, pools, site_yl,
                                                              terminal, person_factory, scan):  # fmt: skip
    (fr,) = pools("FR1")
    yl = _fill(terminal, scan, "YL1", [person_factory("430104001001001", name="岳一")], site="S-YL-1")
    other = make_user("yl-lab", role="testing", region="430104")
    err = tmp_path / "err.csv"
    lines = ["FR1,阴性,,,", "YL1,阴性,,,", "NOPE,阳性,30,31,"]
    s = import_results(_file(tmp_path, "lab.csv", lines), lab=lab, user=other, errors_path=err)
    assert (s.accepted, s.unchanged, s.rejected) == (1, 0, 2)
    assert Tube.objects.get(pk=fr.pk).result == "" and Tube.objects.get(pk=yl.pk).result == "negative"
    text = err.read_text(encoding="utf-8-sig")
    assert text.count("unknown tube") == 2 and "FR1" in text and "NOPE" in text
    again = import_results(_file(tmp_path, "lab.csv", lines), lab=lab, user=other)
    assert (again.accepted, again.unchanged, again.rejected) == (0, 1, 2)


def test_many_small_batches_give_the_same_rows_as_one(tmp_path, tester, lab, pools):
    """Each batch stages, writes and cascades on its own; a file cut into many batches ends the same."""
    tubes = pools(*[f"B{i}" for i in range(8)], n=2)
    lines = [f"B{i},{'阳性,30,31' if i % 3 == 0 else ('无效,,' if i % 3 == 1 else '阴性,,')},2022-05-01 10:00"
             for i in range(8)]  # fmt: skip
    f = _file(tmp_path, "lab.csv", lines)
    s = import_results(f, lab=lab, user=tester, batch_size=1)
    assert (s.accepted, s.extra["positive"], s.extra["invalid"]) == (8, 3, 3)
    assert [Tube.objects.get(pk=t.pk).result for t in tubes] == ["positive", "invalid", "negative"] * 2 + [
        "positive", "invalid"]  # fmt: skip
    assert Hold.objects.count() == 6 and Retest.objects.count() == 12 and Task.objects.count() == 3
    again = import_results(f, lab=lab, user=tester, batch_size=3)
    assert (again.accepted, again.unchanged) == (0, 8)
    *_, (_checked, problem) = verify_chain()
    assert problem is None


def _tube_updates() -> tuple[int, int]:
    """(updates, of which heap-only) of the tube table in this transaction (PostgreSQL's own counters)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_get_xact_tuples_updated(c), pg_stat_get_xact_tuples_hot_updated(c) "
                    "FROM CAST('screening_tube' AS regclass) AS c")  # fmt: skip
        return cur.fetchone()


def test_first_results_update_their_tubes_in_place(tmp_path, tester, lab, pools):
    """No index of a tube covers what a result sets, and its page has room: each update is heap-only, so a round's
    million results write no index entry for their tubes. An index on the result or the lab breaks this."""
    if connection.vendor != "postgresql":
        pytest.skip("heap-only updates are PostgreSQL's")
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE oid = CAST('screening_tube' AS regclass)")
        assert "fillfactor=50" in cur.fetchone()[0]  # room on a full page of a city round for each next version
    pools(*[f"H{i}" for i in range(6)], n=2)
    before = _tube_updates()
    lines = [f"H{i},{'阳性,30,31' if i == 0 else '阴性,,'},2022-05-01 10:00" for i in range(6)]
    s = import_results(_file(tmp_path, "lab.csv", lines), lab=lab, user=tester)
    assert (s.accepted, s.extra["positive"]) == (6, 1)
    updated, hot = (a - b for a, b in zip(_tube_updates(), before, strict=True))
    assert updated >= 6 and hot == updated


def test_positive_pools_are_those_whose_current_result_is_positive(tmp_path, tester, lab, pools, campaign):
    from cordon.screening import queries

    tubes = pools("PP1", "PP2", "PP3")
    f = _file(tmp_path, "lab.csv", ["PP1,阳性,30,31,2022-05-01 10:00", "PP2,阳性,30,31,2022-05-01 10:00",
                                    "PP3,阴性,,,2022-05-01 10:00"])  # fmt: skip
    import_results(f, lab=lab, user=tester)
    assert sorted(p["tube"].barcode for p in queries.positive_pools(tester, campaign)) == ["PP1", "PP2"]
    # A correction to negative takes a pool off the list; one to positive puts a tube on it.
    services.record_result(tester, Tube.objects.get(pk=tubes[1].pk), "negative")
    services.record_result(tester, Tube.objects.get(pk=tubes[2].pk), "positive", ct_orf1ab=25.0, ct_n=26.0)
    assert sorted(p["tube"].barcode for p in queries.positive_pools(tester, campaign)) == ["PP1", "PP3"]
