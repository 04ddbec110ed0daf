"""The contact pipeline: forward only, stamped, audited, evented; deadlines and overdue; scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from cordon.core import events
from cordon.core.models import AuditEvent
from cordon.people.validation import FieldError
from cordon.tracing import queries
from cordon.tracing.models import ContactStatus
from cordon.tracing.services import add_contact, advance_contact
from tests.cases.conftest import *  # noqa: F403


@pytest.fixture
def contact(make_case, inv, person_factory):
    case = make_case()
    return add_contact(inv, case, person_factory(name="密接"), setting="shared_workplace",
                       last_exposure_at=timezone.now() - timedelta(hours=6))


def test_forward_only_with_stamps_events_and_audit(contact, inv):
    seen = []
    handler = lambda **kw: seen.append((kw["old"], kw["new"]))  # noqa: E731
    events.subscribe("contact.status_changed", handler)
    try:
        advance_contact(inv, contact, "notified")
        advance_contact(inv, contact, "transfer_requested")  # skipping "located" forward is allowed
        with pytest.raises(FieldError) as e:
            advance_contact(inv, contact, "located")
        assert "forward" in e.value.reason
        with pytest.raises(FieldError):
            advance_contact(inv, contact, "dismissed")  # already in transfer
        advance_contact(inv, contact, "quarantined")
        advance_contact(inv, contact, "released")
        with pytest.raises(FieldError):
            advance_contact(inv, contact, "quarantined")
        with pytest.raises(FieldError):
            advance_contact(inv, contact, "became_case")
    finally:
        events.unsubscribe("contact.status_changed", handler)
    contact.refresh_from_db()
    assert contact.notified_at and contact.transfer_requested_at and contact.quarantined_at and contact.released_at
    assert contact.located_at is None
    assert [e.status for e in contact.events.all()] == ["identified", "notified", "transfer_requested", "quarantined",
                                                        "released"]
    assert seen == [("identified", "notified"), ("notified", "transfer_requested"),
                    ("transfer_requested", "quarantined"), ("quarantined", "released")]
    assert AuditEvent.objects.filter(action="tracing.contact_status").count() == 4


def test_isolation_role_may_advance(contact, make_user):
    iso = make_user("iso", role="isolation", region="430100")
    advance_contact(iso, contact, "transfer_requested")
    gw = make_user("gw", role="grid_worker", region="430102")
    with pytest.raises(PermissionDenied):
        advance_contact(gw, contact, "quarantined")


def test_transfer_deadline_and_overdue(contact):
    assert contact.transfer_due_at - contact.identified_at == timedelta(hours=8)
    from cordon.tracing.models import Contact

    Contact.objects.filter(pk=contact.pk).update(transfer_due_at=timezone.now() - timedelta(minutes=1))
    late = Contact.objects.filter(status__in=["identified", "notified", "located"], transfer_due_at__lt=timezone.now())
    assert list(late) == [contact]


def test_proposed_must_be_confirmed_first(make_case, inv, person_factory):
    case = make_case()
    c = add_contact(inv, case, person_factory(name="待确认"), kind="spacetime", status="proposed",
                    identified_how="computed", last_exposure_at=timezone.now() - timedelta(hours=3))
    with pytest.raises(FieldError):
        advance_contact(inv, c, "notified")
    advance_contact(inv, c, "identified")
    c.refresh_from_db()
    assert c.status == ContactStatus.IDENTIFIED


def test_duplicate_and_self_contact_refused(make_case, inv, person_factory):
    case = make_case()
    p = person_factory(name="甲")
    add_contact(inv, case, p, setting="household", last_exposure_at=timezone.now() - timedelta(hours=3))
    with pytest.raises(FieldError) as e:
        add_contact(inv, case, p, setting="household", last_exposure_at=timezone.now() - timedelta(hours=2))
    assert e.value.field == "person"
    with pytest.raises(FieldError):
        add_contact(inv, case, case.person, setting="household", last_exposure_at=timezone.now())
    with pytest.raises(FieldError) as e:
        add_contact(inv, case, person_factory(name="乙"), setting="nowhere", last_exposure_at=timezone.now())
    assert e.value.field == "setting"


def test_index_region_rule(make_case, inv, inv2, person_factory, make_user):
    """Visible where the person lives and where the index case is investigated; nowhere else."""
    case = make_case()  # investigated in 430102
    lives_in_104 = add_contact(inv, case, person_factory("430104001001001", name="岳麓人"), setting="visitor",
                               last_exposure_at=timezone.now() - timedelta(hours=2))
    lives_in_102 = add_contact(inv, case, person_factory(name="芙蓉人"), setting="visitor",
                               last_exposure_at=timezone.now() - timedelta(hours=2))
    assert set(queries.contacts_for(inv)) == {lives_in_104, lives_in_102}
    assert set(queries.contacts_for(inv2)) == {lives_in_104}
    zz = make_user("zz", role="investigator", region="430202")
    assert list(queries.contacts_for(zz)) == []
    advance_contact(inv2, lives_in_104, "notified")  # where they live: may work the contact
    with pytest.raises(PermissionDenied):
        advance_contact(inv2, lives_in_102, "notified")
    with pytest.raises(PermissionDenied):
        advance_contact(zz, lives_in_104, "located")
