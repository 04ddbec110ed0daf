"""Transport manifests: the policy's vehicle rules decide who on board is a close contact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cordon.cases.services import add_exposure
from cordon.core.policy import load_policy
from cordon.people.models import Person
from cordon.people.validation import FieldError
from cordon.tracing.models import Contact, ContactStatus
from cordon.tracing.services import import_manifest, vehicle_selects
from tests.cases.conftest import *  # noqa: F403
from tests.conftest import rid

RULES = load_policy("ncov-9").contacts.vehicle_rules


@pytest.mark.parametrize(("seat", "crew", "expected"), [
    ("12C", False, True), ("9A", False, True), ("15F", False, True), ("8A", False, False), ("16B", False, False),
    ("", True, True), ("30A", True, False), ("14", True, True),
])
def test_aircraft_rows_and_crew(seat, crew, expected):
    assert vehicle_selects(RULES.aircraft, "12C", "", seat, "", crew) is expected


def test_train_carriage_coach_all_bus_rows_ship_cabin():
    assert vehicle_selects(RULES.train_sealed, "05F", "08", "99A", "8", False)
    assert not vehicle_selects(RULES.train_sealed, "05F", "08", "05F", "09", False)
    assert vehicle_selects(RULES.coach_sealed, "1", "", "40", "", False)
    assert vehicle_selects(RULES.bus_ventilated, "10", "", "7", "", False)
    assert not vehicle_selects(RULES.bus_ventilated, "10", "", "14", "", False)
    assert vehicle_selects(RULES.ship, "", "A203", "", "a203", False)
    assert not vehicle_selects(RULES.ship, "", "A203", "", "A204", False)


def _manifest(tmp_path, rows):
    path = tmp_path / "manifest.csv"
    lines = ["姓名,证件类型,证件号码,联系电话,座位号,车厢,机组"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    return path


def test_flight_manifest_proposes_contacts_idempotently(make_case, inv, tmp_path, regions):
    case = make_case()
    exp = add_exposure(inv, case, place="CZ3101", start=timezone.now() - timedelta(hours=6),
                       end=timezone.now() - timedelta(hours=4), transport="aircraft", transport_number="cz3101",
                       seat="12C")
    rows = [
        ["前三排", "身份证", rid("430102", 1990, 1, 1, 11), "13800000001", "9A", "", ""],
        ["同排", "身份证", rid("430102", 1990, 1, 2, 12), "", "12A", "", ""],
        ["太远", "身份证", rid("430102", 1990, 1, 3, 13), "", "20A", "", ""],
        ["乘务员", "护照", "E12345678", "", "", "", "是"],
        ["坏证件", "身份证", "430102199001011234", "", "13B", "", ""],
    ]
    out = import_manifest(inv, exp, _manifest(tmp_path, rows))
    assert out["proposed"] == 3 and out["outside_rule"] == 1 and out["rejected"] == 1
    assert out["errors"][0]["line"] == 6 and out["errors"][0]["field"] == "document_number"
    contacts = Contact.objects.filter(index_case=case)
    assert {c.status for c in contacts} == {ContactStatus.PROPOSED}
    assert {c.setting for c in contacts} == {"same_vehicle"}
    assert all(c.identified_how == "manifest" and c.exposure_id == exp.pk for c in contacts)
    assert Person.objects.filter(verified=False).count() == 3
    again = import_manifest(inv, exp, _manifest(tmp_path, rows))
    assert again["proposed"] == 0 and again["already"] == 3
    assert contacts.count() == 3


def test_train_manifest_needs_the_case_carriage(make_case, inv, tmp_path):
    case = make_case()
    exp = add_exposure(inv, case, place="G1001", start=timezone.now() - timedelta(hours=6),
                       end=timezone.now() - timedelta(hours=4), transport="train_sealed", transport_number="G1001")
    rows = [["同车厢", "身份证", rid("430102", 1990, 1, 1, 21), "", "01A", "05", ""]]
    with pytest.raises(FieldError) as e:
        import_manifest(inv, exp, _manifest(tmp_path, rows))
    assert e.value.field == "carriage"
    rows.append(["病例本人", "身份证", case.person.document_number, "", "02B", "05", ""])
    out = import_manifest(inv, exp, _manifest(tmp_path, rows))
    assert out["proposed"] == 1


def test_manifest_for_a_place_is_refused(make_case, inv, tmp_path):
    case = make_case()
    exp = add_exposure(inv, case, place="超市", start=timezone.now() - timedelta(hours=6),
                       end=timezone.now() - timedelta(hours=4))
    with pytest.raises(FieldError) as e:
        import_manifest(inv, exp, _manifest(tmp_path, []))
    assert e.value.field == "transport"


def test_manifest_upload_via_api_and_page(make_case, inv, client_for, tmp_path):
    case = make_case()
    exp = add_exposure(inv, case, place="K9001", start=timezone.now() - timedelta(hours=6),
                       end=timezone.now() - timedelta(hours=4), transport="coach_sealed", transport_number="K9001")
    path = _manifest(tmp_path, [["乘客甲", "身份证", rid("430102", 1991, 2, 3, 31), "", "1", "", ""],
                                ["乘客乙", "身份证", rid("430102", 1991, 2, 4, 32), "", "40", "", ""]])
    c = client_for(inv)
    with path.open("rb") as fh:
        r = c.post(f"/api/v1/tracing/exposures/{exp.pk}/manifest", {"file": fh})
    assert r.status_code == 200, r.content
    assert r.json()["proposed"] == 2 and r.json()["rule"] == "all"
    with path.open("rb") as fh:
        r = c.post(f"/tracing/exposures/{exp.pk}/manifest", {"file": fh}, HTTP_REFERER=f"/cases/{case.pk}/")
    assert r.status_code == 302
    page = c.get(f"/cases/{case.pk}/").content.decode()
    assert "already known" in page or "2" in page
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with bad.open("rb") as fh:
        r = c.post(f"/api/v1/tracing/exposures/{exp.pk}/manifest", {"file": fh})
    assert r.status_code == 422 and r.json()["error"]["field"] == "file"
