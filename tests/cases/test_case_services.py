from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from cordon.cases import queries, services
from cordon.cases.models import CaseStatus, Investigation, Reclassification
from cordon.core import events
from cordon.core.models import AuditEvent
from cordon.people.validation import FieldError
from cordon.tracing.models import ContactStatus
from cordon.tracing.services import add_contact
from tests.cases.conftest import local


@pytest.fixture
def captured():
    seen = []

    def handler(**payload):
        seen.append(payload)

    for name in ("case.reported", "case.reclassified", "case.status_changed", "contact.status_changed"):
        events.subscribe(name, handler)
    yield seen
    for name in ("case.reported", "case.reclassified", "case.status_changed", "contact.status_changed"):
        events.unsubscribe(name, handler)


def test_report_opens_investigation_with_policy_deadlines(make_case, captured, settings):
    settings.CORDON_POLICY = "ncov-9"
    at = timezone.now() - timedelta(hours=2)
    case = make_case(reported_at=at)
    assert case.number.startswith(f"430102-{timezone.localdate(at):%Y%m%d}-") and case.number.endswith("0001")
    inv = case.investigation
    assert inv.trajectory_due_at == at + timedelta(hours=4)
    assert inv.preliminary_due_at == at + timedelta(hours=24)
    assert inv.contacts_due_at == at + timedelta(hours=8)
    assert inv.complete_due_at == at + timedelta(hours=24)
    assert inv.lookback_from == case.onset_date - timedelta(days=4)
    assert inv.policy_name == "ncov-9"
    assert Reclassification.objects.get(case=case).to_classification == "confirmed"
    assert any(p.get("case") == case for p in captured)
    ev = AuditEvent.objects.get(action="cases.report")
    assert ev.object_id == str(case.pk) and "病例甲" not in str(ev.changes)


def test_numbers_increment_per_region_and_day(make_case, person_factory):
    a = make_case(person_factory(name="甲"))
    b = make_case(person_factory(name="乙"))
    assert a.number[:-4] == b.number[:-4] and int(b.number[-4:]) == int(a.number[-4:]) + 1


def test_overdue_investigation(make_case):
    case = make_case(reported_at=timezone.now() - timedelta(hours=5))
    inv = Investigation.objects.get(case=case)
    assert queries.overdue(inv) == ["trajectory"]
    services.mark_milestone(None, inv, "trajectory", at=inv.opened_at + timedelta(hours=1))
    assert queries.overdue(inv) == []
    services.mark_milestone(None, inv, "contacts", at=inv.contacts_due_at + timedelta(minutes=1))
    assert queries.overdue(inv) == ["contacts"], "done late still counts as late"


def test_report_converts_open_contact_and_links_chain(make_case, inv, person_factory, captured):
    index = make_case(person_factory(name="源头"))
    p = person_factory(name="密接")
    c = add_contact(inv, index, p, setting="household", last_exposure_at=timezone.now() - timedelta(hours=3))
    second = make_case(p, found_by="under_control", found_under_control=True)
    c.refresh_from_db()
    assert c.status == ContactStatus.BECAME_CASE and c.became_case == second
    assert second.source_case == index
    assert c.events.last().status == ContactStatus.BECAME_CASE
    assert any(x.get("new") == ContactStatus.BECAME_CASE for x in captured)


def test_reclassification_conversion_is_not_a_new_case(make_case, inv, person_factory):
    case = make_case(person_factory(name="无症状"), classification="asymptomatic")
    other = make_case(person_factory(name="确诊"))
    row = services.reclassify(inv, case, "confirmed", "出现症状")
    assert row.is_conversion
    figs = queries.daily_figures(inv, timezone.localdate())
    assert figs["new_cases"] == 2, "the conversion is not a second case"
    assert figs["new_confirmed_converted"] == 1
    assert figs["new_confirmed"] == 2  # the confirmed one + the converted one
    assert figs["new_asymptomatic"] == 1
    assert other.classification == "confirmed"
    with pytest.raises(FieldError):
        services.reclassify(inv, case, "confirmed", "again")
    with pytest.raises(FieldError):
        services.reclassify(inv, case, "excluded", "")


def test_excluded_closes_the_case(make_case, inv):
    case = make_case(classification="suspected")
    services.reclassify(inv, case, "excluded", "两次阴性")
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED


def test_discharge_rule_and_home_monitoring(make_case, inv, settings):
    settings.CORDON_POLICY = "ncov-9"
    case = make_case(reported_at=timezone.now() - timedelta(days=10))
    now = timezone.now()
    services.record_case_test(inv, case, sampled_at=now - timedelta(hours=30), positive=True, ct_n=36, ct_orf1ab=34)
    services.record_case_test(inv, case, sampled_at=now - timedelta(hours=2), positive=True, ct_n=36, ct_orf1ab=37)
    with pytest.raises(FieldError, match="Ct"):
        services.discharge(inv, case)
    services.record_case_test(inv, case, sampled_at=now - timedelta(hours=1), positive=False)
    with pytest.raises(FieldError, match="24 h"):
        services.discharge(inv, case)
    services.record_case_test(inv, case, sampled_at=now - timedelta(minutes=5), positive=False)
    # last two: 1 h and 5 min ago -> still not 24 h apart
    with pytest.raises(FieldError):
        services.discharge(inv, case)
    case.tests.all().delete()
    services.record_case_test(inv, case, sampled_at=now - timedelta(hours=26), positive=True, ct_n=35, ct_orf1ab=35.5)
    services.record_case_test(inv, case, sampled_at=now - timedelta(hours=1), positive=False)
    services.discharge(inv, case, at=now)
    case.refresh_from_db()
    today = timezone.localdate(now)
    assert case.status == CaseStatus.DISCHARGED
    assert case.home_monitoring_end == today + timedelta(days=7)
    assert case.home_test_dates == [(today + timedelta(days=7)).isoformat()]
    # 复阳: Ct < 35 after discharge sends the patient back to hospital
    services.record_case_test(inv, case, sampled_at=now, positive=True, ct_n=30, ct_orf1ab=31)
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_HOSPITAL


def test_report_validations(make_case, inv, inv2, person_factory):
    p = person_factory(name="某人")
    with pytest.raises(FieldError) as e:
        make_case(p, region_code="430104")
    assert e.value.field == "region_code"
    with pytest.raises(FieldError) as e:
        make_case(p, origin="imported_domestic")
    assert e.value.field == "origin_detail"
    with pytest.raises(FieldError) as e:
        make_case(p, classification="asymptomatic", onset_date=timezone.localdate())
    assert e.value.field == "onset_date"
    make_case(p)
    with pytest.raises(FieldError) as e:
        make_case(p)
    assert e.value.field == "person"


def test_grid_worker_cannot_report(make_user, person_factory):
    from cordon.cases.services import report_case

    gw = make_user("gw", role="grid_worker", region="430102")
    with pytest.raises(PermissionDenied):
        report_case(gw, person_factory(), classification="confirmed", region_code="430102", found_by="screening")


def test_screening_and_isolation_roles_may_report(make_user, person_factory):
    from cordon.cases.services import report_case

    t = make_user("t", role="testing", region="430100")
    case = report_case(t, person_factory(), classification="asymptomatic", region_code="430102",
                       found_by="screening", sampled_at=local(2022, 5, 1))
    assert case.investigation.lookback_from == local(2022, 5, 1).date() - timedelta(days=4)


def test_set_status_died(make_case, inv, captured):
    case = make_case()
    services.set_status(inv, case, "died")
    case.refresh_from_db()
    assert case.status == "died" and case.died_at
    with pytest.raises(FieldError):
        services.set_status(inv, case, "discharged")
