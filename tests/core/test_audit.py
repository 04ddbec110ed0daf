from __future__ import annotations

import itertools

import pytest
from django.db import connection, transaction
from typer.testing import CliRunner

from cordon.cli import app
from cordon.core import audit
from cordon.core.audit import verify_chain
from cordon.core.models import AuditEvent, AuditHead


def _events(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            audit.record("tester", "thing.update", object_type="test.thing", object_id=i, changes={"i": i, "名": "值"})


def _problem():
    result = None
    for _checked, problem in verify_chain(batch=3):
        result = problem
        if problem:
            return problem
    return result


@pytest.mark.django_db
def test_intact_chain_verifies_and_links_hashes():
    _events(7)
    assert _problem() is None
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, 8))
    assert events[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert AuditHead.objects.get().hash == events[-1].hash


@pytest.mark.django_db(transaction=True)
def test_record_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError):
        audit.record("tester", "x.y", object_type="t", object_id=1)


@pytest.mark.django_db
def test_altered_row_is_named():
    _events(6)
    AuditEvent.objects.filter(seq=4).update(changes={"i": 999})
    problem = _problem()
    assert problem is not None and problem.seq == 4
    assert "altered" in problem.reason


@pytest.mark.django_db
def test_altered_row_with_recomputed_hash_breaks_the_next_link():
    _events(6)
    ev = AuditEvent.objects.get(seq=3)
    ev.changes = {"i": -1}
    ev.hash = audit.compute_hash(seq=ev.seq, at=ev.at, actor_id=ev.actor_id, actor_label=ev.actor_label,
                                 action=ev.action, object_type=ev.object_type, object_id=ev.object_id,
                                 region_code=ev.region_code, changes=ev.changes, prev_hash=ev.prev_hash)  # fmt: skip
    ev.save()
    problem = _problem()
    assert problem is not None and problem.seq == 4
    assert "previous-hash" in problem.reason


@pytest.mark.django_db
def test_deleted_row_in_the_middle_is_a_gap():
    _events(6)
    AuditEvent.objects.filter(seq=2).delete()
    problem = _problem()
    assert problem is not None and problem.seq == 3
    assert "gap" in problem.reason


@pytest.mark.django_db
def test_deleted_tail_is_noticed_by_the_head():
    _events(5)
    AuditEvent.objects.filter(seq=5).delete()
    problem = _problem()
    assert problem is not None and "missing at the end" in problem.reason


@pytest.mark.django_db
def test_row_inserted_out_of_band_is_detected():
    _events(3)
    last = AuditEvent.objects.get(seq=3)
    AuditEvent.objects.create(seq=4, at=last.at, actor_label="intruder", action="x", object_type="t", object_id="1",
                              changes={}, prev_hash=last.hash, hash="f" * 64)  # fmt: skip
    problem = _problem()
    assert problem is not None and problem.seq == 4


@pytest.mark.django_db
def test_cli_verify_exit_codes():
    _events(4)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "4 events" in ok.output
    with connection.cursor() as cur:
        cur.execute("UPDATE core_auditevent SET action = 'tampered' WHERE seq = 2")
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "#2" in bad.output
