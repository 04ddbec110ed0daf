"""One tube per household (policy §4, high-risk and sealed areas): a household tube takes the household of its
first swab (same address, same grid) and refuses everyone else, up to the largest pool the policy allows; the
terminal statement, the batch engine and the file import agree line for line."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest
from django.utils import timezone

from cordon.core.policy import active_policy
from cordon.screening import ingest, services
from cordon.screening import terminal as fast_path
from cordon.screening.models import Registration, Tube
from tests.screening.test_terminal import _run, terminal_register

pytestmark = pytest.mark.django_db

GRID = "430102001001001"
HOME = "幸福路1号101室"


@pytest.fixture(autouse=True)
def _fresh_cache():
    fast_path.forget_sites()
    yield
    fast_path.forget_sites()


@pytest.fixture
def sealed(tester, site):
    return services.create_campaign(tester, name="封控区每日核酸", start=True,
                                    starts_at=timezone.now() - timedelta(hours=1),
                                    areas=[{"region_code": "430102", "area_kind": "high",
                                            "household_tubes": True}])  # fmt: skip


@pytest.fixture
def folk(person_factory):
    return {
        "a1": person_factory(name="户主", address=HOME),
        "a2": person_factory(name="配偶", address=HOME),
        "a3": person_factory(name="孩子", address=HOME),
        "a4": person_factory(name="老人", address=HOME),
        "b": person_factory(name="邻居", address="幸福路1号102室"),
        "c": person_factory("430104001001001", name="别的网格", address=HOME),
        "d": person_factory(name="无地址甲", address=""),
        "e": person_factory(name="无地址乙", address=""),
    }


def _batches(folk, scan):
    t0 = timezone.now() - timedelta(minutes=30)
    at = iter((t0 + timedelta(seconds=i)).isoformat() for i in range(100))

    def s(tube, who, sid):
        return scan(tube, person=folk[who], scan_id=sid, collected_at=next(at))

    first = [s("H1", "a1", "1"), s("H1", "a2", "2"), s("H1", "b", "3"), s("H1", "c", "4"), s("H1", "a3", "5"),
             s("H2", "d", "6"), s("H2", "e", "7"), s("H2", "d", "8"), s("H3", "e", "9"), s("H3", "a1", "10")]
    later = [s("H1", "b", "11"), s("H1", "a4", "12"), s("H3", "d", "13"),
             scan("H4", seq=77, scan_id="14", collected_at=next(at)),  # an unknown person opens a tube
             scan("H4", seq=78, scan_id="15", collected_at=next(at))]  # another unknown person: no address
    return [first, later]


EXPECTED = {"3": ingest.OTHER_HOUSEHOLD, "4": ingest.OTHER_HOUSEHOLD, "7": ingest.OTHER_HOUSEHOLD,
            "8": ingest.ALREADY_IN_TUBE, "10": ingest.OTHER_HOUSEHOLD, "11": ingest.OTHER_HOUSEHOLD,
            "13": ingest.OTHER_HOUSEHOLD, "15": ingest.OTHER_HOUSEHOLD}  # fmt: skip


def test_household_tubes_take_one_household(sealed, folk, terminal, scan):
    batches = _batches(folk, scan)
    slow = _run(ingest.ingest_scans, terminal, batches)
    fast = _run(terminal_register, terminal, batches)
    for key in ("outcomes", "people", "tubes", "registrations", "audit"):
        assert fast[key] == slow[key], key
    refused = {sid: reason for batch in fast["outcomes"] for sid, status, reason, _f in batch if status == "refused"}
    assert refused == EXPECTED
    fields = {sid: f for batch in fast["outcomes"] for sid, _st, _r, f in batch}
    assert fields["3"] == "tube"
    tubes = {t[0]: t for t in fast["tubes"]}
    cap = int(active_policy().screening.max_pool_size)
    assert {t[4] for t in tubes.values()} == {cap}  # a household tube holds the whole household
    assert tubes["H1"][5] == 4 and tubes["H2"][5] == 1 and tubes["H3"][5] == 1 and tubes["H4"][5] == 1


def test_ordinary_areas_keep_pooling_strangers(campaign, site, folk, terminal, scan):
    out = ingest.ingest_scans(terminal, [scan("P1", person=folk[k], scan_id=k) for k in ("a1", "b", "c", "d", "e")])
    assert {o.status for o in out} == {"accepted"}
    assert Tube.objects.get(barcode="P1").capacity == 10


@pytest.mark.parametrize("batch_size", [ingest.FILE_BATCH, 2])
def test_registration_file_applies_the_household_rule(tmp_path, sealed, folk, tester, scan, batch_size):
    scans = [sc for batch in _batches(folk, scan) for sc in batch]
    path = tmp_path / "reg.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scan_id", "tube_barcode", "document_number", "name", "phone", "collected_at", "site"])
        for sc in scans:
            w.writerow([sc["scan_id"], sc["tube"], sc["document_number"], sc["name"], sc["phone"], sc["collected_at"],
                        sc["site"]])  # fmt: skip
    err = tmp_path / "err.csv"
    summary = ingest.import_registrations(path, campaign=sealed, user=tester, errors_path=err, batch_size=batch_size)
    with err.open(encoding="utf-8-sig", newline="") as fh:
        reasons = {r["value"]: r["reason"] for r in csv.DictReader(fh)}
    # In one batch the neighbour's second swab into H1 is first caught as a repeat within the batch.
    assert reasons == {**EXPECTED, **({"11": ingest.ALREADY_IN_TUBE} if batch_size > len(scans) else {})}
    assert summary.accepted == len(scans) - len(EXPECTED)
    assert Registration.objects.filter(tube__barcode="H1").count() == 4
    assert Tube.objects.get(barcode="H4").members == 1


def test_a_sealed_township_inside_a_covered_county_is_counted_once(tester, site, person_factory, terminal, scan,
                                                                    make_user):  # fmt: skip
    from cordon.people.models import Person
    from cordon.screening import queries

    c = services.create_campaign(tester, name="嵌套", start=True, starts_at=timezone.now() - timedelta(hours=1),
                                 areas=[{"region_code": "430102", "area_kind": "medium"},
                                        {"region_code": "430102001", "area_kind": "high",
                                         "household_tubes": True}])  # fmt: skip
    people = [person_factory(name=f"人{i}", address=f"路{i % 2}号") for i in range(5)]
    ingest.ingest_scans(terminal, [scan("N1", person=people[0], scan_id="n1")], campaign=c)
    target = Person.objects.filter(region__code__startswith="430102").count()
    rows = queries.coverage(tester, c)
    assert [r["code"] for r in rows] == ["430102"]
    assert queries.totals(tester, c)["target"] == target and queries.totals(tester, c)["sampled"] == 1
    # Someone whose jurisdiction is the township sees the township once, named as such.
    local = make_user("township", role="testing", region="430102001")
    assert [(r["code"], r["target"]) for r in queries.coverage(local, c)] == [
        ("430102001", Person.objects.filter(region__code__startswith="430102001").count())]
