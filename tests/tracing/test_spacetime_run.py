"""Co-location from the case page: the engine over stored check-in logs proposes space-time companions."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from cordon.tracing.models import ColocationRun, Contact, ContactKind, ContactStatus
from cordon.tracing.services import add_contact, advance_contact, request_colocation
from tests.cases.conftest import *  # noqa: F403


@pytest.fixture
def store(settings, tmp_path):
    """Check-ins under a fresh data dir; background tasks run at once (the immediate backend)."""
    settings.CORDON_DATA_DIR = tmp_path
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
                                  "QUEUES": ["default", "imports", "analytics"]}}
    return tmp_path


def _write_checkins(tmp_path, rows):
    from cordon.tracing.checkins import import_checkins

    src = tmp_path / "src.parquet"
    table = pa.table({
        "person_id": [r[0] for r in rows], "venue_code": [r[1] for r in rows],
        "checkin_at": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
        "checkout_at": pa.array([r[3] for r in rows], pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, src)
    import_checkins(src, tmp_path, tz="Asia/Shanghai", default_stay_minutes=30)


def test_colocation_proposes_companions_deduplicated(store, make_case, inv, person_factory):
    now = timezone.now()
    case = make_case(reported_at=now - timedelta(hours=1))
    a = person_factory(name="同场所")
    b = person_factory(name="已是密接")
    short = person_factory(name="太短")
    t0 = now - timedelta(days=1)
    _write_checkins(store, [
        (case.person.document_number, "V-MARKET", t0, t0 + timedelta(hours=1)),
        (a.document_number, "V-MARKET", t0 + timedelta(minutes=20), t0 + timedelta(hours=2)),
        (b.document_number, "V-MARKET", t0, t0 + timedelta(minutes=50)),
        (short.document_number, "V-MARKET", t0 + timedelta(minutes=55), t0 + timedelta(hours=2)),
        ("110101199001011234", "V-MARKET", t0, t0 + timedelta(hours=1)),  # not in the registry
    ])
    add_contact(inv, case, b, setting="shared_workplace", last_exposure_at=t0 + timedelta(minutes=50))
    run = request_colocation(inv, case)
    run.refresh_from_db()
    assert run.status == ColocationRun.Status.DONE, run.error
    assert run.proposed == 1 and run.unknown_people == 1
    c = Contact.objects.get(index_case=case, kind=ContactKind.SPACETIME)
    assert c.person == a and c.status == ContactStatus.PROPOSED and c.identified_how == "computed"
    assert c.provenance["venue_code"] == "V-MARKET" and c.provenance["overlap_minutes"] == 40
    advance_contact(inv, c, "identified")
    # a second run proposes nobody new
    run2 = request_colocation(inv, case)
    run2.refresh_from_db()
    assert run2.status == "done" and run2.proposed == 0


def test_colocation_without_logs_is_done_with_nothing(store, make_case, inv, client_for):
    case = make_case()
    r = client_for(inv).post(f"/api/v1/tracing/cases/{case.pk}/colocation")
    assert r.status_code == 202
    body = client_for(inv).get(f"/api/v1/tracing/colocation/{r.json()['id']}").json()
    assert body["status"] == "done" and body["proposed"] == 0
    page = client_for(inv).get(f"/tracing/cases/{case.pk}/colocation/status").content.decode()
    assert "run-done" in page
