"""The terminal fast path gives the same outcomes and the same rows as the file engine, refusal for refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cordon.core import audit
from cordon.core.models import AuditEvent
from cordon.people.models import Person
from cordon.people.validation import FieldError
from cordon.screening import ingest, services
from cordon.screening import terminal as fast_path
from cordon.screening.models import Registration, Tube
from tests.conftest import rid

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    fast_path.forget_sites()
    yield
    fast_path.forget_sites()


@pytest.fixture
def world(campaign, site, site_yl, tester, person_factory):
    """Stored state every refusal needs: a resulted tube, a sealed half-full one, one of another round, one
    short of full, a known person and a parent."""
    now = timezone.now()
    other = services.create_campaign(tester, name="别的轮次", areas=[{"region_code": "430102", "area_kind": "high"}])
    grid = "430102001001001"
    Tube.objects.create(barcode="RES", campaign=campaign, site=site, region_id=grid, capacity=10, members=1,
                        opened_at=now, result="negative")
    Tube.objects.create(barcode="SEALED", campaign=campaign, site=site, region_id=grid, capacity=10, members=2,
                        opened_at=now, sealed_at=now)
    Tube.objects.create(barcode="OTHER", campaign=other, site=site, region_id=grid, capacity=1, members=0,
                        opened_at=now)
    Tube.objects.create(barcode="NEAR", campaign=campaign, site=site, region_id=grid, capacity=10, members=9,
                        opened_at=now)
    return {"known": person_factory(name="李四"), "parent": person_factory("430104001001001", name="赵母"),
            "other": other}


def _batches(world, scan):
    known, parent = world["known"], world["parent"]
    t0 = timezone.now() - timedelta(hours=1)
    at = [(t0 + timedelta(seconds=i)).isoformat() for i in range(60)]
    new_parent = rid("430102", 1970, 3, 3, 7, "F")
    first = (
        [scan("T1", person=known, scan_id="a1", collected_at=at[0])]
        + [scan("T1", seq=100 + i, scan_id=f"a-fill-{i}", collected_at=at[1 + i]) for i in range(9)]
        + [
            scan("T1", seq=200, scan_id="a-over", collected_at=at[11]),  # tube full
            scan("T2", person=known, scan_id="a2", collected_at=at[12]),
            scan("T2", person=known, scan_id="a3", collected_at=at[13]),  # already in this tube (same batch)
            scan("T2", seq=201, scan_id="a4", document_number="430102198501011235"),  # bad check digit
            scan("T2", seq=202, scan_id="a5", name="  "),  # name missing
            scan("T2", seq=203, scan_id="a6", collected_at="yesterday"),
            scan("T2", seq=204, scan_id="a7", site="NOPE"),
            scan("", seq=205, scan_id="a8"),
            scan("T2", seq=206, scan_id=""),
            scan("T2", seq=207, scan_id="a9", guardian_document="12345"),  # invalid guardian document
            scan("YL1", seq=208, scan_id="b1", site="S-YL-1", guardian_document=parent.document_number,
                 collected_at=at[14]),
            scan("YL1", seq=209, scan_id="b2", site="S-YL-1", guardian_document=rid("430104", 1960, 1, 1, 9),
                 collected_at=at[15]),  # guardian not in the registry
            scan("YL1", seq=210, scan_id="b3", site="S-YL-1", document_number=new_parent, collected_at=at[16]),
            scan("YL1", seq=211, scan_id="b4", site="S-YL-1", guardian_document=new_parent, collected_at=at[17]),
            scan("T3", seq=212, scan_id="c1", collected_at=at[18]),
            scan("T3", seq=212, scan_id="c1", collected_at=at[18]),  # the same scan twice: duplicate
            scan("T3", seq=213, scan_id="c1", collected_at=at[19]),  # same scan_id, other content
            scan("RES", seq=214, scan_id="d1", collected_at=at[20]),  # new person, refused: still registered
            scan("SEALED", seq=215, scan_id="d2", collected_at=at[21]),
            scan("OTHER", seq=216, scan_id="d3", collected_at=at[22]),
            scan("NEAR", seq=217, scan_id="d4", collected_at=at[23]),
            scan("NEAR", seq=218, scan_id="d5", collected_at=at[24]),  # full
            scan("T4", seq=219, scan_id="e1", collected_at=at[25]),
            scan("T4", seq=220, scan_id="e2", site="S-YL-1", collected_at=at[26]),  # tube opened at S-FR-1 (10)
        ]
    )
    third = [
        scan("T1", person=known, scan_id="f1", collected_at=at[30]),  # already in this (full) tube
        scan("T1", seq=300, scan_id="f2", collected_at=at[31]),  # full
        scan("T2", person=known, scan_id="f3", collected_at=at[32]),  # already in this tube
        dict(first[0], name="李四改"),  # stored scan_id, other content
        scan("T5", seq=301, scan_id="f4", collected_at=at[33]),
        scan("T5", seq=301, scan_id="f5", collected_at=at[34]),  # same person twice in a new tube
    ]
    only_bad = [scan("T9", seq=400, scan_id="g1", document_number="bad")]
    return [first, first, third, only_bad, []]


def _rows() -> dict:
    docs = dict(Person.objects.values_list("pk", "document_number"))
    tubes = dict(Tube.objects.values_list("pk", "barcode"))
    return {
        "people": sorted((p.document_type, p.document_number, p.name, p.sex, p.birth_date, p.phone, p.region_id,
                          p.verified, docs.get(p.guardian_id), p.nationality) for p in Person.objects.all()),
        "tubes": sorted(Tube.objects.values_list("barcode", "campaign_id", "site_id", "region_id", "capacity",
                                                 "members", "collector", "opened_at", "sealed_at", "result",
                                                 "is_retest")),
        "registrations": sorted((r.scan_id, r.campaign_id, tubes[r.tube_id], docs[r.person_id], r.site_id,
                                 r.region_id, docs.get(r.guardian_id), r.collected_at, r.digest)
                                for r in Registration.objects.all()),
    }


def _run(engine, user, batches, campaign=None) -> dict:
    """Runs the batches, snapshots, and rolls everything back so the other engine starts from the same state."""
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    with transaction.atomic():
        outcomes = [[(o.scan_id, o.status, o.reason, o.field) for o in engine(user, b, campaign=campaign)]
                    for b in batches]
        snap = _rows()
        snap["audit"] = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq")
                             .values_list("action", "actor_id", "object_type", "object_id", "region_code", "changes"))
        snap["outcomes"] = outcomes
        snap["chain"] = [p for _n, p in audit.verify_chain()][-1]
        transaction.set_rollback(True)
    return snap


def test_parity_with_the_file_engine(world, terminal, scan, monkeypatch):
    from django.db import connection

    user = terminal
    batches = _batches(world, scan)
    slow = _run(ingest.ingest_scans, user, batches)
    engine_calls = []
    monkeypatch.setattr(fast_path, "write_batch", lambda rows, **kw: engine_calls.append(rows) or ingest.write_batch(
        rows, **kw))
    fast = _run(terminal_register, user, batches)
    # On PostgreSQL the fast path's own statement did the work (no fallback to the file engine).
    assert len(engine_calls) == (0 if connection.vendor == "postgresql" else 3)
    assert slow["chain"] is None and fast["chain"] is None
    for key in ("outcomes", "people", "tubes", "registrations", "audit"):
        assert fast[key] == slow[key], key
    out = fast["outcomes"]
    statuses = {(sid, st, reason.split(":")[0]) for sid, st, reason, _f in out[0]}
    assert {("a-over", "refused", ingest.TUBE_FULL), ("a3", "refused", ingest.ALREADY_IN_TUBE),
            ("a4", "refused", ingest.INVALID_DOCUMENT), ("a5", "refused", ingest.MISSING),
            ("a6", "refused", ingest.BAD_TIME), ("a7", "refused", ingest.UNKNOWN_SITE),
            ("a8", "refused", ingest.MISSING), ("", "refused", ingest.MISSING),
            ("a9", "refused", ingest.INVALID_DOCUMENT), ("b1", "accepted", ""),
            ("b2", "refused", ingest.UNKNOWN_GUARDIAN), ("b3", "accepted", ""), ("b4", "accepted", ""),
            ("d1", "refused", ingest.TUBE_RESULTED), ("d2", "refused", ingest.TUBE_SEALED),
            ("d3", "refused", ingest.TUBE_OTHER_CAMPAIGN), ("d4", "accepted", ""), ("d5", "refused", ingest.TUBE_FULL),
            ("e1", "accepted", ""), ("e2", "accepted", "")} <= statuses
    # The same scan_id three times: the first counts, the later ones are judged against its content.
    assert [o[1:3] for o in out[0] if o[0] == "c1"] == [
        ("accepted", ""), ("duplicate", ""), ("refused", ingest.DUPLICATE_DIFFERENT)]
    assert [o[1] for o in out[1][:10]] == ["duplicate"] * 10  # the re-sent batch
    assert [o[1:3] for o in out[2][:4]] == [("refused", ingest.ALREADY_IN_TUBE), ("refused", ingest.TUBE_FULL),
                                            ("refused", ingest.ALREADY_IN_TUBE),
                                            ("refused", ingest.DUPLICATE_DIFFERENT)]
    assert out[2][5][1:3] == ("refused", ingest.ALREADY_IN_TUBE)
    assert out[3] == [("g1", "refused", out[3][0][2], "document_number")] and out[4] == []
    # Database effects, checked once on the fast path's snapshot (the slow path's is identical).
    people = {p[1]: p for p in fast["people"]}
    assert people[world["known"].document_number][7] is True
    new_parent = rid("430102", 1970, 3, 3, 7, "F")
    assert people[new_parent][6] == "430104001001001" and people[new_parent][7] is False
    tubes = {t[0]: t for t in fast["tubes"]}
    assert tubes["T1"][5] == 10 and tubes["T1"][8] is not None  # sealed when full
    assert tubes["NEAR"][5] == 10 and tubes["NEAR"][8] is not None
    assert tubes["T4"][4] == 10 and tubes["T4"][5] == 2 and tubes["T4"][8] is None
    assert tubes["T3"][5] == 1 and "RES" in tubes and tubes["RES"][5] == 1
    regs = {r[0]: r for r in fast["registrations"]}
    assert regs["b1"][6] == world["parent"].document_number
    assert regs["b4"][6] == new_parent
    assert len(fast["audit"]) == 3  # one per batch that reached the database
    assert fast["audit"][0][5]["people_added"] == slow["audit"][0][5]["people_added"] > 0


def terminal_register(user, scans, campaign=None):
    return fast_path.register_scans(user, scans, campaign=campaign)


def test_parity_with_a_given_campaign(world, terminal, scan, campaign):
    batches = [[scan("G1", scan_id=f"g{i}") for i in range(3)] + [scan("OTHER", scan_id="g-other")]]
    slow = _run(ingest.ingest_scans, terminal, batches, campaign=campaign)
    fast = _run(terminal_register, terminal, batches, campaign=campaign)
    assert fast["outcomes"] == slow["outcomes"]
    assert fast["registrations"] == slow["registrations"] and fast["tubes"] == slow["tubes"]
    other = _run(terminal_register, terminal, batches, campaign=world["other"])  # planned, not running
    assert {o[2] for o in other["outcomes"][0]} == {ingest.NO_CAMPAIGN}


def test_refusals_before_the_database(terminal, investigator_user, scan, campaign, site):
    with pytest.raises(FieldError):
        terminal_register(terminal, [scan("X")] * (ingest.MAX_BATCH + 1))
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        terminal_register(investigator_user, [scan("X")])


@pytest.fixture
def investigator_user(make_user):
    return make_user("inv", role="investigator", region="430102")


def test_collision_falls_back_to_the_file_engine(campaign, site, terminal, scan, monkeypatch):
    calls = []

    def collide(rows, user, lock=False):
        calls.append((len(rows), lock))
        raise fast_path._Collided

    monkeypatch.setattr(fast_path, "_write_pg", collide)
    out = terminal_register(terminal, [scan("C1"), scan("C1")])
    assert [o.status for o in out] == ["accepted", "accepted"]
    assert Tube.objects.get(barcode="C1").members == 2
    from django.db import connection

    # Tried again holding the tubes' locks, then handed to the file engine.
    expected = [(2, False)] + [(2, True)] * (fast_path._ATTEMPTS - 1)
    assert calls == (expected if connection.vendor == "postgresql" else [])


def test_site_cache_follows_changes(campaign, site, terminal, tester, scan):
    assert terminal_register(terminal, [scan("S1")])[0].status == "accepted"
    services.set_campaign_status(tester, campaign, "finished")  # saved in this process: forgotten at once
    out = terminal_register(terminal, [scan("S1")])
    assert (out[0].status, out[0].reason, out[0].field) == ("refused", ingest.NO_CAMPAIGN, "site")


def test_audit_events_chain_and_first_event(campaign, site, terminal, scan):
    from cordon.core.models import AuditHead

    terminal_register(terminal, [scan("A1"), scan("A1")])
    last = AuditEvent.objects.order_by("-seq").first()
    assert last.action == "screening.registrations" and last.changes["accepted"] == 2
    assert last.actor_id == terminal.pk and last.object_id == str(campaign.pk)
    assert [p for _n, p in audit.verify_chain()][-1] is None
    # A chain with no head yet (nothing ever recorded): the batch starts it.
    AuditEvent.objects.all().delete()
    AuditHead.objects.all().delete()
    terminal_register(terminal, [scan("A2")])
    assert list(AuditEvent.objects.values_list("seq", "action")) == [(1, "screening.registrations")]
    assert [p for _n, p in audit.verify_chain()][-1] is None


def test_second_attempt_holds_the_tubes(campaign, site, terminal, scan, monkeypatch):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the statement path is PostgreSQL's")
    terminal_register(terminal, [scan("L1") for _ in range(8)])
    real, seen = fast_path._write_pg, []

    def first_collides(rows, user, lock=False):
        seen.append(lock)
        if not lock:
            raise fast_path._Collided
        return real(rows, user, lock=lock)

    monkeypatch.setattr(fast_path, "_write_pg", first_collides)
    out = terminal_register(terminal, [scan("L1") for _ in range(3)])
    assert seen == [False, True]
    assert [o.status for o in out] == ["accepted", "accepted", "refused"]
    assert out[2].reason == ingest.TUBE_FULL
    t = Tube.objects.get(barcode="L1")
    assert t.members == 10 and t.sealed_at is not None and Registration.objects.filter(tube=t).count() == 10


def test_batch_and_audit_statements_are_prepared_once_per_connection(campaign, site, terminal, scan):
    """A terminal's batch statement costs more to plan than to run: it and the audit append are server-side
    prepared statements, parsed and planned once per connection, whatever Django's own queries do."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    for i in range(3):
        assert terminal_register(terminal, [scan(f"P{i}")])[0].status == "accepted"
    with connection.cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements WHERE from_sql = false")
        prepared = [row[0] for row in cur.fetchall()]
    assert sum("json_to_recordset" in text for text in prepared) == 1
    assert sum("core_audithead" in text for text in prepared) == 1
    # Django's own queries (client-side binding) are never prepared, however often they run.
    for _ in range(10):
        Tube.objects.filter(barcode="P0").count()
    with connection.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM pg_prepared_statements")
        assert cur.fetchone()[0] == 2
