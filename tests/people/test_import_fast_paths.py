"""The importer's fast paths give the results of the general ones.

The row cleaner must accept, normalise and refuse exactly as ``clean_person``; the optimistic batch write
(PostgreSQL: one COPY of a whole batch, the careful path when a document is already taken) must count,
report and audit as the careful path does; both plans of the duplicate flagging find the same pairs.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.db.models import F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cordon.core.identity import PROVINCE_CODES, make_resident_id
from cordon.core.models import AuditEvent
from cordon.people.importer import RECORD_KEYS, _BatchWriter, _RowCleaner, flag_duplicates, import_people
from cordon.people.models import DuplicateFlag, Person
from cordon.people.validation import PERSON_FIELDS, FieldError, clean_person
from tests.conftest import rid

HEADER = "姓名,证件类型,证件号码,性别,出生日期,联系电话,住址,所属区划\n"
TODAY = date(2026, 11, 29)
GRID = "430102001001001"


def _reference(row: dict[str, str]) -> tuple | FieldError:
    try:
        clean = clean_person(row, today=TODAY)
    except FieldError as exc:
        return exc
    return tuple(clean[f] for f in PERSON_FIELDS)


def _cleaned(cleaner: _RowCleaner, row: dict[str, str]) -> tuple | FieldError:
    """The row as the file reader hands it over: a record in RECORD_KEYS order, "" for a missing column."""
    try:
        return cleaner.clean(tuple(row.get(key, "") for key in RECORD_KEYS))
    except FieldError as exc:
        return exc


def _corrupt(number: str, at: int, char: str) -> str:
    return number[:at] + char + number[at + 1 :]


@st.composite
def rows(draw: st.DrawFn) -> dict[str, str]:
    """Rows as a file holds them: mostly well-formed resident IDs, with every field sometimes blank, odd,
    inconsistent with the number or wrong."""
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    county = province + draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    born = draw(st.dates(min_value=date(1895, 1, 1), max_value=TODAY + timedelta(days=400)))
    sex = draw(st.sampled_from("MF"))
    number = make_resident_id(county, born, draw(st.integers(0, 499)), sex)
    number = draw(
        st.one_of(
            st.just(number),
            st.just(number.lower()),
            st.just(f" {number} "),
            st.builds(_corrupt, st.just(number), st.integers(0, 17), st.sampled_from("0123456789Xx")),
            st.just(number[:17]),
            st.just(""),
            st.text(max_size=20),
        )
    )
    name = draw(st.one_of(st.sampled_from(["张伟", "李秀英", "Ali", "阿卜杜·热合曼", "王 小明", "", "  ", "李" * 101]),
                          st.text(max_size=8)))  # fmt: skip
    doc_type = draw(st.sampled_from(["", "身份证", "居民身份证", "resident_id", "护照", "外星证", " 身份证 "]))
    other_sex = "F" if sex == "M" else "M"
    given_sex = draw(st.sampled_from(["", "男" if sex == "M" else "女", sex, other_sex, "未知", "?", "1", "2"]))
    birth_text = draw(
        st.sampled_from(
            [
                "",
                born.isoformat(),
                born.strftime("%Y/%m/%d"),
                born.strftime("%Y%m%d"),
                born.strftime("%Y年%m月%d日"),
                f"{born.isoformat()} 00:00:00",
                (born + timedelta(days=1)).isoformat(),
                "not a date",
                "2031-01-01",
            ]
        )
    )
    phone = draw(st.sampled_from(["", "13812345678", " 13812345678", "138 1234 5678", "+86 13812345678",
                                  "12812345678", "0731-84567890", "12345", "１３８１２３４５６７８"]))  # fmt: skip
    address = draw(st.sampled_from(["", "长沙市芙蓉区1号", " 有空格 ", "路" * 201]))
    region = draw(st.sampled_from([GRID, "430102", "430102001", "", "43010", "abcdef", " 430102001001001 "]))
    return {
        "name": name,
        "document_type": doc_type,
        "document_number": number,
        "sex": given_sex,
        "birth_date": birth_text,
        "phone": phone,
        "address": address,
        "region_code": region,
    }


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
@example({"name": "张伟", "document_type": "", "document_number": rid(), "sex": "", "birth_date": "",
          "phone": "", "address": "", "region_code": GRID})  # fmt: skip
def test_row_cleaner_agrees_with_clean_person(row: dict[str, str]) -> None:
    expected = _reference(row)
    got = _cleaned(_RowCleaner(TODAY), row)
    if isinstance(expected, FieldError):
        assert isinstance(got, FieldError), (row, got)
        assert (got.field, got.value, got.reason) == (expected.field, expected.value, expected.reason)
    else:
        assert got == expected


def test_row_cleaner_caches_do_not_change_answers() -> None:
    """The same cleaner over many rows (its caches warm) answers as a fresh one per row."""
    cleaner = _RowCleaner(TODAY)
    samples = []
    for i in range(300):
        born = date(1950, 1, 1) + timedelta(days=97 * i)
        number = make_resident_id("430102", born, i % 500, "MF"[i % 2])
        if i % 7 == 0:
            number = _corrupt(number, 17, "0" if number[17] != "0" else "1")
        sex = ["", "男", "女", "未知"][i % 4]
        birth = ["", born.isoformat(), born.strftime("%Y%m%d"), "1990-02-30"][i % 4]
        samples.append({"name": "测试", "document_number": number, "sex": sex, "birth_date": birth,
                        "phone": "13800000000", "address": "", "region_code": GRID})  # fmt: skip
    for row in samples * 2:
        expected, got = _reference(row), _cleaned(cleaner, row)
        if isinstance(expected, FieldError):
            assert isinstance(got, FieldError) and got.reason == expected.reason
        else:
            assert got == expected
    assert any(isinstance(_reference(r), FieldError) for r in samples)
    assert any(not isinstance(_reference(r), FieldError) for r in samples)


def _line(i: int, *, phone: str | None = None, name: str | None = None, region: str = GRID) -> str:
    number = rid("430102", 1980, 1 + i // 28, 1 + i % 28, i % 500, "M")
    phone = phone if phone is not None else f"1390000{i:04d}"
    return f"{name or f'甲{i}'},身份证,{number},男,,{phone},,{region}"


def _write(tmp_path, lines: list[str], name: str):
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.django_db
def test_overlapping_file_after_new_batches_counts_and_audits_each_batch(tmp_path, regions):
    """Small batches: the first ones are all new (one COPY each on PostgreSQL), a later one meets
    registered documents (changed and unchanged) and the rest of the run takes the careful path."""
    first = [_line(i) for i in range(10)]
    import_people(_write(tmp_path, first, "a.csv"), today=TODAY, batch_size=4)
    assert Person.objects.count() == 10
    new = [_line(i) for i in range(10, 18)]
    changed = _line(3, phone="13700000003")
    second = [*new, first[1], changed, first[5], _line(18), _line(18, name="乙")]
    events = AuditEvent.objects.filter(action="people.import_batch").count()
    errors = tmp_path / "e.csv"
    s = import_people(_write(tmp_path, second, "b.csv"), today=TODAY, batch_size=4, errors_path=errors)
    assert (s.accepted, s.updated, s.unchanged, s.rejected) == (9, 1, 2, 1)
    assert Person.objects.count() == 19
    assert Person.objects.get(document_number=rid("430102", 1980, 1, 4, 3, "M")).phone == "13700000003"
    # 13 lines in batches of 4: four batch events, whichever way each batch was written.
    batch_events = AuditEvent.objects.filter(action="people.import_batch").order_by("seq")
    assert batch_events.count() == events + 4
    last = list(batch_events)[events:]
    assert [e.changes["lines"] for e in last] == [[2, 5], [6, 9], [10, 13], [14, 14]]
    assert sum(e.changes["inserted"] for e in last) == 9
    assert sum(len(e.changes["updated"]) for e in last) == 1
    report = errors.read_text(encoding="utf-8-sig").splitlines()
    assert len(report) == 2 and report[1].startswith("14,document_number,")
    again = import_people(_write(tmp_path, second[:-1], "c.csv"), today=TODAY, batch_size=4)
    assert (again.accepted, again.updated, again.unchanged, again.rejected) == (0, 0, 12, 0)


@pytest.mark.django_db
def test_document_repeated_across_batches_of_one_run(tmp_path, regions):
    """The second occurrence is in a later batch: judged against the row the run already wrote."""
    lines = [_line(i) for i in range(6)]
    same, other = lines[0], lines[1].replace("甲1,", "丙1,")
    s = import_people(_write(tmp_path, [*lines, same, other], "r.csv"), today=TODAY, batch_size=3,
                      errors_path=tmp_path / "e.csv")  # fmt: skip
    assert (s.accepted, s.unchanged, s.rejected) == (6, 1, 1)
    assert Person.objects.get(document_number=rid("430102", 1980, 1, 2, 1, "M")).name == "甲1"
    assert "9,document_number" in (tmp_path / "e.csv").read_text(encoding="utf-8-sig")


@pytest.mark.django_db
def test_rows_of_a_batch_are_all_written_whatever_their_order(tmp_path, regions):
    lines = [_line(i) for i in reversed(range(30))]
    s = import_people(_write(tmp_path, lines, "o.csv"), today=TODAY, batch_size=7)
    assert s.accepted == 30
    stored = dict(Person.objects.values_list("document_number", "name"))
    assert stored == {rid("430102", 1980, 1 + i // 28, 1 + i % 28, i % 500, "M"): f"甲{i}" for i in range(30)}


@pytest.mark.django_db
def test_duplicate_flagging_plans_find_the_same_pairs(tmp_path, regions):
    """A first load (the run is most of the registry) and a small run use different plans on PostgreSQL;
    with the same rows they flag the same pairs."""
    number = rid("430102", 1990, 1, 1, 0, "M")
    twins = [
        f"张伟,身份证,{number},男,1990-01-01,13800001111,,{GRID}",
        f"张伟,护照,E12345678,男,1990-01-01,13800001111,,{GRID}",
        f"张伟,护照,E12345679,男,1990-01-01,13800001111,,{GRID}",
        f"张伟,护照,E22345679,男,1990-01-01,,,{GRID}",  # no phone: never flagged
    ]
    import_people(_write(tmp_path, twins[:2], "t1.csv"), today=TODAY)
    pairs_first = set(DuplicateFlag.objects.values_list("person__document_number", "other__document_number"))
    assert len(pairs_first) == 1
    s = import_people(_write(tmp_path, twins, "t2.csv"), today=TODAY)
    assert s.extra["duplicates_flagged"] == 2  # the new passport with each of the two earlier entries
    run_id = Person.objects.get(document_number="E12345679").import_run
    flags = set(DuplicateFlag.objects.values_list("person_id", "other_id"))
    DuplicateFlag.objects.filter(person__import_run=run_id).delete()
    assert flag_duplicates(run_id, rows_written=10**9) == 2  # as if a first load
    assert set(DuplicateFlag.objects.values_list("person_id", "other_id")) == flags
    DuplicateFlag.objects.filter(person__import_run=run_id).delete()
    assert flag_duplicates(run_id) == 2  # the join through the (name, birth date) index
    assert set(DuplicateFlag.objects.values_list("person_id", "other_id")) == flags
    assert flag_duplicates(run_id, rows_written=10**9) == 0  # already flagged: nothing twice


@pytest.mark.django_db
def test_batches_formatted_on_the_reader_thread_write_what_the_writer_would(tmp_path, regions, monkeypatch):
    """Whole batches of new people go in as COPY data the reader thread prepared (PostgreSQL): the same
    rows, counts and audit events as rows formatted by the writer."""
    path = _write(tmp_path, [_line(i) for i in range(12)], "p.csv")
    prepared: list[bool] = []
    original = _BatchWriter.prepare

    def spy(self, items):
        got = original(self, items)
        prepared.append(got is not None)
        return got

    def outcome(summary) -> tuple:
        rows = sorted(Person.objects.values_list("document_type", "document_number", "name", "sex", "birth_date",
                                                 "phone", "address", "region_id", "nationality", "verified"))  # fmt: skip
        events = AuditEvent.objects.filter(action="people.import_batch").order_by("-seq")[:3]
        return (summary.accepted, summary.unchanged), rows, [e.changes for e in reversed(events)]

    monkeypatch.setattr(_BatchWriter, "prepare", spy)
    ready = outcome(import_people(path, today=TODAY, batch_size=4))
    assert prepared == ([True, True, True] if connection.vendor == "postgresql" else [])
    assert Person.objects.filter(created_at=F("updated_at")).count() == 12
    Person.objects.all().delete()
    monkeypatch.setattr(_BatchWriter, "prepare", lambda self, items: None)
    assert outcome(import_people(path, today=TODAY, batch_size=4)) == ready
