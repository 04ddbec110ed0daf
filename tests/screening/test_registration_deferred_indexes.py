"""A registration file with the secondary indexes of registrations and tubes built at the end (PostgreSQL).

It must give the registrations, tubes, counts and error report of the ordinary load, and the indexes must be
there afterwards whatever happened: after a failed load, and after a process that died mid-load (the next
file or ``migrate`` creates them again). These tests commit (transaction=True): the deferral only happens
outside a caller's transaction.
"""

from __future__ import annotations

import csv

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from cordon.screening import ingest
from cordon.screening.models import Registration, Tube

HEADER = ["扫码编号", "试管编码", "证件号码", "姓名", "联系电话", "采样时间", "采样点"]
AT = "2022-05-01 09:00"
# Declared by the models; the site key's own index is named by Django and deferred too.
DEFERRED = {"reg_campaign_person_idx", "tube_campaign_idx", "tube_region_idx"}
KEPT = {"registration_scan_id_unique", "registration_tube_person_unique", "tube_barcode_unique",
        "screening_registration_pkey", "screening_tube_pkey", "reg_collected_brin"}  # fmt: skip
pytestmark = [
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the deferral is a PostgreSQL load"),
    pytest.mark.django_db(transaction=True),
]


def _indexes() -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename IN ('screening_registration', 'screening_tube')")  # fmt: skip
        return dict(cur.fetchall())


def _advisory_locks() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        return cur.fetchone()[0]


def _file(tmp_path, people: list[str], name: str = "reg.csv"):
    rows = [(f"F-{i}", "P1", people[i], f"人{i}", "", AT, "S-FR-1") for i in range(11)]  # lines 2-12: one too many
    rows += [
        ("F-0", "P1", people[0], "人0", "", AT, "S-FR-1"),  # 13: re-sent, same content
        ("F-1", "P2", people[1], "人1", "", AT, "S-FR-1"),  # 14: same scan_id, other content
        ("G-1", "P3", people[2], "人2", "", AT, "S-FR-1"),  # 15
        ("G-2", "P3", people[2], "人2", "", AT, "S-FR-1"),  # 16: same person again in that tube
        ("G-3", "P4", "123", "无名", "", AT, "S-FR-1"),  # 17: invalid document
        ("G-5", "P4", people[4], "人4", "", AT, "S-FR-1"),  # 18
    ]
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _outcome(summary, errors) -> tuple:
    with errors.open(encoding="utf-8-sig", newline="") as fh:
        report = [(r["line"], r["reason"]) for r in csv.DictReader(fh)]
    regs = sorted(Registration.objects.values_list("scan_id", "tube__barcode", "person__document_number",
                                                   "region_id", "site__code", "digest"))  # fmt: skip
    tubes = sorted(Tube.objects.values_list("barcode", "members", "capacity", "sealed_at", "region_id", "site__code"))
    return (summary.accepted, summary.unchanged, summary.rejected), report, regs, tubes


def _run(path, errors, seen: list[set[str]], campaign, tester, **kw):
    def progress(_rows: int) -> None:
        seen.append(set(_indexes()))

    return ingest.import_registrations(path, campaign=campaign, user=tester, errors_path=errors, progress=progress,
                                       **kw)  # fmt: skip


def test_a_deferred_load_writes_what_the_ordinary_load_writes(tmp_path, campaign, site, tester, person_factory):
    before = _indexes()
    assert DEFERRED | KEPT <= set(before)
    people = [person_factory(name=f"人{i}").document_number for i in range(12)]
    path = _file(tmp_path, people)
    seen: list[set[str]] = []
    deferred = _outcome(_run(path, tmp_path / "e1.csv", seen, campaign, tester, batch_size=4, defer_indexes=True),
                        tmp_path / "e1.csv")  # fmt: skip
    assert len(seen) == 5
    assert all(names == set(before) - DEFERRED - {n for n in before if "_site_id_" in n}
               for names in seen)  # fmt: skip
    assert all(KEPT <= names for names in seen)
    assert _indexes() == before and _advisory_locks() == 0

    Registration.objects.all().delete()
    Tube.objects.all().delete()
    seen = []
    ordinary = _outcome(_run(path, tmp_path / "e2.csv", seen, campaign, tester, batch_size=4, defer_indexes=False),
                        tmp_path / "e2.csv")  # fmt: skip
    assert seen and all(names == set(before) for names in seen)
    assert deferred == ordinary
    assert deferred[0] == (12, 1, 4) and len(deferred[2]) == 12
    # The same file again, deferred or not, changes nothing.
    again = _run(path, tmp_path / "e3.csv", [], campaign, tester, batch_size=4, defer_indexes=True)
    assert (again.accepted, again.unchanged, again.rejected) == (0, 13, 4)
    assert _outcome(again, tmp_path / "e3.csv")[2:] == ordinary[2:] and _indexes() == before


def test_a_failed_load_keeps_its_earlier_batches_and_gets_its_indexes_back(tmp_path, campaign, site, tester,
                                                                          person_factory, monkeypatch):  # fmt: skip
    before = _indexes()
    people = [person_factory(name=f"人{i}").document_number for i in range(12)]
    real = ingest.clean_fields

    def failing(line, *args):
        if line == 11:  # in the third batch of four lines
            raise RuntimeError("disk on fire")
        return real(line, *args)

    monkeypatch.setattr(ingest, "clean_fields", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest.import_registrations(_file(tmp_path, people), campaign=campaign, user=tester, batch_size=4,
                                    defer_indexes=True)  # fmt: skip
    assert Registration.objects.count() == 8
    assert _indexes() == before and _advisory_locks() == 0


def test_indexes_a_dead_load_left_missing_come_back_unless_another_load_defers(tmp_path, campaign, site, tester,
                                                                               person_factory):  # fmt: skip
    before = _indexes()
    people = [person_factory(name=f"人{i}").document_number for i in range(12)]
    settings = connection.settings_dict
    other = psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                            password=settings["PASSWORD"], dbname=settings["NAME"], autocommit=True)  # fmt: skip
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [ingest._INDEX_LOCK])  # a load deferring them runs elsewhere
        with connection.cursor() as cur:
            cur.execute("DROP INDEX reg_campaign_person_idx")  # as that load left it
        assert ingest.restore_indexes() == []
        seen: list[set[str]] = []
        s = _run(_file(tmp_path, people), tmp_path / "e.csv", seen, campaign, tester, batch_size=4, defer_indexes=True)
        assert s.accepted == 12  # written with the indexes it found, neither deferring nor repairing
        assert seen and all(names == set(before) - {"reg_campaign_person_idx"} for names in seen)
        other.execute("SELECT pg_advisory_unlock(%s)", [ingest._INDEX_LOCK])  # that load died
    finally:
        other.close()
    assert ingest.restore_indexes() == ["reg_campaign_person_idx"]
    assert _indexes() == before

    # The next file repairs before it loads; so does migrate.
    with connection.cursor() as cur:
        cur.execute("DROP INDEX tube_region_idx")
    ingest.import_registrations(_file(tmp_path, people, "again.csv"), campaign=campaign, user=tester,
                                defer_indexes=False)  # fmt: skip
    assert _indexes() == before
    with connection.cursor() as cur:
        cur.execute("DROP INDEX tube_campaign_idx")
        cur.execute("DROP INDEX reg_campaign_person_idx")
    call_command("migrate", verbosity=0)
    assert _indexes() == before and ingest.restore_indexes() == [] and _advisory_locks() == 0


def test_a_file_defers_by_itself_only_when_much_larger_than_the_stored_registrations(tmp_path, campaign, site, tester,
                                                                                     person_factory, monkeypatch):  # fmt: skip
    people = [person_factory(name=f"人{i}").document_number for i in range(12)]
    path = _file(tmp_path, people)
    monkeypatch.setattr(ingest, "_DEFER_MIN_ROWS", 10)
    monkeypatch.setattr(ingest, "_DEFER_BYTES_PER_LINE", path.stat().st_size // 40)  # about 40 lines by that measure
    seen: list[set[str]] = []
    _run(path, tmp_path / "e1.csv", seen, campaign, tester, batch_size=4)  # into no registrations: deferred
    assert seen and all(not (DEFERRED & names) for names in seen)
    seen = []
    _run(_file(tmp_path, people, "same.csv"), tmp_path / "e2.csv", seen, campaign, tester, batch_size=4)
    assert seen and all(DEFERRED <= names for names in seen)  # 12 stored are more than a quarter of 40
    monkeypatch.setattr(ingest, "_DEFER_MIN_ROWS", 100)
    Registration.objects.all().delete()
    seen = []
    _run(path, tmp_path / "e3.csv", seen, campaign, tester, batch_size=4)  # too small a file to bother
    assert seen and all(DEFERRED <= names for names in seen)
