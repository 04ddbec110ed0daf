"""A first load with the registry's secondary indexes built, and its region key checked, at the end (PostgreSQL).

It must give the registry, counts, error report and duplicate flags of the ordinary load, and the
indexes must be there afterwards whatever happened: after a failed load, and after a process that
died mid-load (the next import or ``migrate`` creates them again). These tests commit (transaction=True):
the deferral only happens outside a caller's transaction.
"""

from __future__ import annotations

import threading
from datetime import date

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from cordon.people import importer
from cordon.people.importer import import_people, restore_registry_indexes
from cordon.people.models import DuplicateFlag, Person
from tests.conftest import rid

HEADER = "姓名,证件类型,证件号码,性别,出生日期,联系电话,住址,所属区划\n"
TODAY = date(2026, 11, 29)
GRID = "430102001001001"
DEFERRED = {"person_name_birth_idx", "person_region_idx"}  # and the import_run index, named by Django
pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the deferral is a PostgreSQL load")


def _lines() -> list[str]:
    out = []
    for i in range(40):
        number = rid("430102", 1975, 1 + i // 28, 1 + i % 28, i % 500, "M")
        out.append(f"庚{i},身份证,{number},男,,1370000{i:04d},长沙{i}号,{GRID}")
        if i % 10 == 9:  # a passport entry for the same person: flagged as a likely duplicate
            out.append(f"庚{i},护照,E7{i:07d},男,1975-{1 + i // 28:02d}-{1 + i % 28:02d},1370000{i:04d},,{GRID}")
    out.insert(7, "无名,身份证,123,,,,,430102001001001")  # refused: not a resident ID
    out.insert(20, out[3].replace("庚", "辛"))  # the same document with another name: refused
    out.insert(30, out[5])  # the same line again: unchanged
    return out


def _write(tmp_path, lines: list[str], name: str = "p.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _indexes() -> dict[str, str]:
    """The registry's indexes, and its region key ("fk:" + name) with whether it has been checked."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = 'people_person'")  # fmt: skip
        out = dict(cur.fetchall())
        cur.execute("SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE contype = 'f' "
                    "AND conrelid = 'people_person'::regclass AND confrelid = 'regions_region'::regclass")  # fmt: skip
        out.update({f"fk:{name}": f"{definition} valid={valid}" for name, definition, valid in cur.fetchall()})
        return out


def _drop_region_key() -> None:
    with connection.cursor() as cur:
        for name in importer._region_keys(cur):
            cur.execute(f'ALTER TABLE people_person DROP CONSTRAINT "{name}"')


def _advisory_locks() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        return cur.fetchone()[0]


def _state(summary, errors) -> tuple:
    rows = sorted(Person.objects.values_list("document_type", "document_number", "name", "sex", "birth_date",
                                             "phone", "address", "region_id"))  # fmt: skip
    flags = sorted(DuplicateFlag.objects.values_list("person__document_number", "other__document_number", "reason"))
    counts = (summary.accepted, summary.updated, summary.unchanged, summary.rejected)
    return counts, summary.extra["duplicates_flagged"], errors.read_text(encoding="utf-8-sig"), rows, flags


def _import(path, errors, seen: list[set[str]], **kw):
    """Import, noting after each batch which indexes the registry has."""
    return import_people(path, today=TODAY, batch_size=8, errors_path=errors,
                         progress=lambda done: seen.append(set(_indexes())), **kw)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_deferred_first_load_gives_the_same_registry_as_the_ordinary_one(tmp_path, regions):
    before = _indexes()
    path = _write(tmp_path, _lines())
    seen: list[set[str]] = []
    deferred = _state(_import(path, tmp_path / "e1.csv", seen, defer_indexes=True), tmp_path / "e1.csv")
    assert _indexes() == before
    if connection.vendor == "postgresql":
        assert seen and all(not (DEFERRED & names) for names in seen)  # the load really ran without them
        assert all("person_document_unique" in names and "people_person_pkey" in names for names in seen)
        # ... and without the per-row region check, which is back and validated afterwards.
        assert all(not any(n.startswith("fk:") for n in names) for names in seen)
        assert any(n.startswith("fk:") and v.endswith("valid=True") for n, v in before.items())
    Person.objects.all().delete()
    seen = []
    ordinary = _state(_import(path, tmp_path / "e2.csv", seen, defer_indexes=False), tmp_path / "e2.csv")
    assert all(set(before) == names for names in seen)
    assert deferred == ordinary
    counts, flagged, report, rows, _ = deferred
    assert counts == (44, 0, 1, 2) and flagged == 4 and len(rows) == 44
    assert len(report.splitlines()) == 3
    again = import_people(path, today=TODAY, batch_size=8, defer_indexes=True)
    assert (again.accepted, again.updated, again.unchanged, again.rejected) == (0, 0, 45, 2)
    assert _indexes() == before


@pg_only
@pytest.mark.django_db(transaction=True)
def test_indexes_are_back_after_a_failed_load(tmp_path, regions):
    before = _indexes()
    path = _write(tmp_path, _lines())

    def fail(done: int) -> None:
        assert not DEFERRED & set(_indexes())
        raise RuntimeError("the load stops midway")

    with pytest.raises(RuntimeError, match="midway"):
        import_people(path, today=TODAY, batch_size=8, progress=fail, defer_indexes=True)
    assert _indexes() == before
    assert _advisory_locks() == 0
    assert Person.objects.count() == 8  # the first batch stays, as in any failed import


@pg_only
@pytest.mark.django_db(transaction=True)
def test_indexes_missing_after_a_died_load_are_created_by_the_next_import_and_by_migrate(tmp_path, regions):
    before = _indexes()
    with connection.cursor() as cur:
        cur.execute("DROP INDEX person_region_idx")
        cur.execute("DROP INDEX person_name_birth_idx")
    _drop_region_key()
    import_people(_write(tmp_path, _lines()[:3]), today=TODAY, defer_indexes=False)
    assert _indexes() == before
    with connection.cursor() as cur:
        cur.execute("DROP INDEX person_region_idx")
    _drop_region_key()
    call_command("migrate", verbosity=0)
    assert _indexes() == before
    assert restore_registry_indexes() == []


@pg_only
@pytest.mark.django_db(transaction=True)
def test_no_deferral_and_no_repair_while_another_load_defers(tmp_path, regions):
    """Another session holds the deferral lock: its load owns the missing indexes."""
    before = _indexes()
    settings = connection.settings_dict
    other = psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                            password=settings["PASSWORD"], dbname=settings["NAME"], autocommit=True)  # fmt: skip
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [importer._INDEX_LOCK])
        with connection.cursor() as cur:
            cur.execute("DROP INDEX person_region_idx")
        assert restore_registry_indexes() == []
        seen: list[set[str]] = []
        _import(_write(tmp_path, _lines()), tmp_path / "e.csv", seen, defer_indexes=True)
        assert all(names == set(before) - {"person_region_idx"} for names in seen)
        other.execute("SELECT pg_advisory_unlock(%s)", [importer._INDEX_LOCK])  # the other load ends
    finally:
        other.close()
    assert restore_registry_indexes() == ["person_region_idx"]
    assert _indexes() == before


@pg_only
@pytest.mark.django_db(transaction=True)
def test_the_load_defers_by_itself_only_into_a_registry_much_smaller_than_the_file(tmp_path, regions, monkeypatch):
    monkeypatch.setattr(importer, "_DEFER_MIN_ROWS", 10)
    monkeypatch.setattr(importer, "_BYTES_PER_LINE", 40)
    path = _write(tmp_path, _lines())  # about 100 lines by that measure
    seen: list[set[str]] = []
    _import(path, tmp_path / "e1.csv", seen)
    assert seen and all(not (DEFERRED & names) for names in seen)
    seen = []
    _import(path, tmp_path / "e2.csv", seen)  # 44 people are more than a quarter of the file
    assert seen and all(DEFERRED <= names for names in seen)


@pg_only
@pytest.mark.django_db(transaction=True)
def test_duplicates_are_grouped_beside_the_index_builds_and_paired_after_them(tmp_path, regions, monkeypatch):
    before = _indexes()
    path = _write(tmp_path, _lines())
    seen: list[tuple[str, bool]] = []
    flag = importer.flag_duplicates

    def watched(run_id: int, *, before_pairs=None, **kw) -> int:
        def wait() -> None:
            if before_pairs is not None:
                before_pairs()
            seen.append((threading.current_thread().name, DEFERRED <= set(_indexes())))

        return flag(run_id, before_pairs=wait, **kw)

    monkeypatch.setattr(importer, "flag_duplicates", watched)
    summary = import_people(path, today=TODAY, batch_size=8, defer_indexes=True)
    assert seen == [("cordon-import-duplicates", True)] and summary.extra["duplicates_flagged"] == 4
    assert DuplicateFlag.objects.count() == 4 and _indexes() == before

    seen.clear()
    import_people(_write(tmp_path, _lines()[:3], "small.csv"), today=TODAY, defer_indexes=False)
    assert seen == [("MainThread", True)]  # nothing deferred: flagged in line, on the caller's connection


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_failed_grouping_or_index_build_is_raised_and_nothing_is_flagged(tmp_path, regions, monkeypatch):
    before = _indexes()
    path = _write(tmp_path, _lines())

    def broken(run_id: int, **kw) -> int:
        raise RuntimeError("the grouping failed")

    monkeypatch.setattr(importer, "flag_duplicates", broken)
    with pytest.raises(RuntimeError, match="grouping failed"):
        import_people(path, today=TODAY, batch_size=8, defer_indexes=True)
    assert _indexes() == before  # the builds beside it finished
    assert _advisory_locks() == 0 and Person.objects.count() == 44
    monkeypatch.undo()

    Person.objects.all().delete()
    finish = importer._DeferredIndexes.finish

    def failing_build(self, *, failing: bool) -> None:
        finish(self, failing=failing)
        raise RuntimeError("an index build failed")

    monkeypatch.setattr(importer._DeferredIndexes, "finish", failing_build)
    with pytest.raises(RuntimeError, match="index build failed"):
        import_people(path, today=TODAY, batch_size=8, defer_indexes=True)
    assert Person.objects.count() == 44 and DuplicateFlag.objects.count() == 0  # the pairs were abandoned
    assert not [t for t in threading.enumerate() if t.name == "cordon-import-duplicates"]  # joined, not left behind
