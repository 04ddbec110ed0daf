"""Policy rules for contacts: look-back window per profile, quarantine end dates, secondary contacts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from cordon.people.validation import FieldError
from cordon.tracing.models import ContactKind, ContactStatus
from cordon.tracing.services import add_contact, advance_contact, record_close_contact_test
from tests.cases.conftest import *  # noqa: F403
from tests.cases.conftest import local


@pytest.mark.parametrize(("profile", "days"), [("ncov-8", 2), ("ncov-9", 4), ("ncov-2022-11", 4)])
def test_lookback_window_per_profile(settings, make_case, inv, person_factory, profile, days):
    settings.CORDON_POLICY = profile
    onset = date(2022, 5, 10)
    case = make_case(onset_date=onset, reported_at=local(2022, 5, 11, 9))
    assert case.investigation.lookback_from == onset - timedelta(days=days)
    inside = local(2022, 5, 10 - days, 0, 30)
    add_contact(inv, case, person_factory(name="窗口内"), setting="household", last_exposure_at=inside)
    outside = local(2022, 5, 10 - days - 1, 23, 30)
    with pytest.raises(FieldError) as e:
        add_contact(inv, case, person_factory(name="窗口外"), setting="household", last_exposure_at=outside)
    assert e.value.field == "last_exposure_at" and "look-back" in e.value.reason and profile in e.value.reason
    from cordon.cases.services import add_exposure

    with pytest.raises(FieldError) as e:
        add_exposure(inv, case, place="超市", start=outside - timedelta(hours=2), end=outside)
    assert "look-back" in e.value.reason
    add_exposure(inv, case, place="超市", start=outside, end=inside)  # ends inside the window: kept


def test_asymptomatic_lookback_counts_from_first_positive_sample(settings, make_case):
    settings.CORDON_POLICY = "ncov-9"
    case = make_case(classification="asymptomatic", sampled_at=local(2022, 6, 3, 8),
                     first_positive_at=local(2022, 6, 3, 8), reported_at=local(2022, 6, 4, 9))
    assert case.investigation.lookback_from == date(2022, 5, 30)


@pytest.mark.parametrize(("profile", "end"), [("ncov-8", date(2022, 6, 22)), ("ncov-9", date(2022, 6, 11)),
                                              ("ncov-2022-11", date(2022, 6, 9))])
def test_quarantine_end_from_last_exposure(settings, make_case, inv, person_factory, profile, end):
    settings.CORDON_POLICY = profile
    case = make_case(onset_date=date(2022, 6, 2), reported_at=local(2022, 6, 3, 9))
    c = add_contact(inv, case, person_factory(name="密接"), setting="household", last_exposure_at=local(2022, 6, 1, 20))
    assert c.last_exposure_date == date(2022, 6, 1) and c.quarantine_end_date == end
    assert c.transfer_due_at == c.identified_at + timedelta(hours=8)


@pytest.fixture
def chain(settings, make_case, inv, person_factory):
    settings.CORDON_POLICY = "ncov-9"
    now = timezone.now()
    case = make_case(onset_date=timezone.localdate(now - timedelta(days=9)), reported_at=now - timedelta(days=8))
    close = add_contact(inv, case, person_factory(name="密接"), setting="household",
                        first_exposure_at=now - timedelta(days=10), last_exposure_at=now - timedelta(days=8, hours=2))
    sec = add_contact(inv, case, person_factory(name="次密接"), kind=ContactKind.SECONDARY, via=close,
                      setting="shared_meal_entertainment", last_exposure_at=now - timedelta(days=8, hours=3))
    return case, close, sec


def test_secondary_contact_schedule_and_window(chain, inv, person_factory):
    case, close, sec = chain
    assert sec.quarantine_end_date == sec.last_exposure_date + timedelta(days=7)
    assert sec.transfer_due_at == sec.identified_at + timedelta(hours=12)
    with pytest.raises(FieldError) as e:  # before the close contact's first exposure
        add_contact(inv, case, person_factory(name="太早"), kind="secondary", via=close, setting="household",
                    last_exposure_at=close.first_exposure_at - timedelta(hours=1))
    assert e.value.field == "last_exposure_at"
    with pytest.raises(FieldError) as e:  # not a secondary setting
        add_contact(inv, case, person_factory(name="探视"), kind="secondary", via=close, setting="visitor",
                    last_exposure_at=timezone.now() - timedelta(days=8))
    assert e.value.field == "setting"
    with pytest.raises(FieldError):  # a secondary contact needs a close contact
        add_contact(inv, case, person_factory(name="无链"), kind="secondary", setting="household",
                    last_exposure_at=timezone.now() - timedelta(days=8))


def test_secondary_contacts_not_determined_under_nov_2022(settings, make_case, inv, person_factory):
    settings.CORDON_POLICY = "ncov-2022-11"
    case = make_case()
    close = add_contact(inv, case, person_factory(name="密接"), setting="household",
                        last_exposure_at=timezone.now() - timedelta(hours=5))
    with pytest.raises(FieldError) as e:
        add_contact(inv, case, person_factory(name="次密接"), kind="secondary", via=close, setting="household",
                    last_exposure_at=timezone.now() - timedelta(hours=4))
    assert e.value.field == "kind" and "ncov-2022-11" in e.value.reason


def test_secondary_upgraded_when_close_contacts_first_or_second_test_positive(chain, inv):
    _case, close, sec = chain
    now = timezone.now()
    out = record_close_contact_test(inv, close, False, now - timedelta(days=7))
    assert out["upgraded"] == []
    out = record_close_contact_test(inv, close, True, now - timedelta(days=6))
    assert out["upgraded"] == [sec.pk]
    sec.refresh_from_db()
    assert sec.kind == ContactKind.CLOSE and sec.provenance["upgraded_from"] == "secondary"
    assert sec.quarantine_end_date == sec.last_exposure_date + timedelta(days=10)


def test_third_test_positive_does_not_upgrade(chain, inv):
    _case, close, _sec = chain
    now = timezone.now()
    for d in (7, 6):
        record_close_contact_test(inv, close, False, now - timedelta(days=d))
    out = record_close_contact_test(inv, close, True, now - timedelta(days=5))
    assert out["upgraded"] == []


def test_secondary_released_on_day_7_with_both_conditions(chain, inv):
    _case, close, sec = chain
    advance_contact(inv, sec, "quarantined", at=timezone.now() - timedelta(days=7))
    now = timezone.now()
    record_close_contact_test(inv, close, False, now - timedelta(days=7))
    # own test on the last test day (day 7) negative, but the close contact has only one test so far
    last = timezone.make_aware(timezone.datetime.combine(sec.quarantine_end_date, timezone.datetime.min.time())) + timedelta(hours=9)
    last = min(last, now)
    out = record_close_contact_test(inv, sec, False, last)
    assert out["released"] == []
    out = record_close_contact_test(inv, close, False, now - timedelta(days=6))
    assert out["released"] == [sec.pk]
    sec.refresh_from_db()
    assert sec.status == ContactStatus.RELEASED and sec.released_at


def test_secondary_own_positive_upgrades(chain, inv):
    _case, _close, sec = chain
    out = record_close_contact_test(inv, sec, True, timezone.now() - timedelta(days=1))
    assert out["upgraded"] == [sec.pk]
