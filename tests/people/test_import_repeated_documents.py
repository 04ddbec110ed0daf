"""A document that a file holds twice: the first line wins, in every import of that file.

The two lines may sit in the same batch or batches apart, and the document may already be registered
(with the first line's details or others); whichever way, the later line with other details is refused
with the same report line each time, and importing the same file again changes nothing.
"""

from __future__ import annotations

from datetime import date

import pytest

from cordon.people.importer import import_people
from cordon.people.models import Person
from tests.conftest import rid

HEADER = "姓名,证件类型,证件号码,性别,出生日期,联系电话,住址,所属区划\n"
TODAY = date(2026, 11, 29)
GRID = "430102001001001"


def _number(i: int) -> str:
    return rid("430102", 1981, 1 + i // 28, 1 + i % 28, i % 500, "F")


def _line(i: int, *, name: str | None = None, phone: str | None = None) -> str:
    phone = phone if phone is not None else f"1360000{i:04d}"
    return f"{name or f'丁{i}'},身份证,{_number(i)},女,,{phone},,{GRID}"


def _write(tmp_path, lines: list[str], name: str):
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import(path, errors, **kw):
    s = import_people(path, today=TODAY, batch_size=3, errors_path=errors, **kw)
    report = errors.read_text(encoding="utf-8-sig").splitlines()[1:] if errors.exists() else []
    return (s.accepted, s.updated, s.unchanged, s.rejected), report


def _registry() -> list[tuple]:
    return list(Person.objects.order_by("document_number").values_list(
        "document_number", "name", "phone", "import_run", "updated_at"))  # fmt: skip


@pytest.mark.django_db
def test_conflicting_line_batches_apart_is_refused_in_every_import(tmp_path, regions):
    """Line 2 and line 12 carry one document with other names, three batches apart: the first import
    refuses line 12, and so does the second, which writes nothing."""
    lines = [_line(i) for i in range(10)]
    path = _write(tmp_path, [*lines, _line(0, name="戊0")], "f.csv")
    first, report = _import(path, tmp_path / "e1.csv")
    assert first == (10, 0, 0, 1)
    assert [r.split(",")[:2] for r in report] == [["12", "document_number"]]
    before = _registry()
    assert Person.objects.get(document_number=_number(0)).name == "丁0"
    again, report_again = _import(path, tmp_path / "e2.csv")
    assert again == (0, 0, 10, 1)
    assert report_again == report
    assert _registry() == before


@pytest.mark.django_db
def test_first_line_wins_over_a_later_one_when_the_document_is_already_registered(tmp_path, regions):
    """The registry already holds the document with the first line's details (unchanged): a later line
    with other details, batches later, is refused, not written over it."""
    import_people(_write(tmp_path, [_line(0), _line(1)], "old.csv"), today=TODAY)
    before = _registry()
    lines = [_line(i) for i in range(8)]
    path = _write(tmp_path, [*lines, _line(1, phone="13799999999"), _line(0)], "g.csv")
    for n in (1, 2):
        counts, report = _import(path, tmp_path / f"e{n}.csv")
        assert counts == ((6, 0, 3, 1) if n == 1 else (0, 0, 9, 1))
        assert [r.split(",")[:2] for r in report] == [["10", "document_number"]]
        assert Person.objects.get(document_number=_number(1)).phone == "13600000001"
    assert [r for r in _registry() if r[0] in (_number(0), _number(1))] == before


@pytest.mark.django_db
def test_first_line_updates_and_a_later_conflicting_line_is_refused(tmp_path, regions):
    """The first line changes a registered person; a later line batches apart with yet other details is
    refused; the re-import finds the first line's details and changes nothing."""
    import_people(_write(tmp_path, [_line(0)], "old.csv"), today=TODAY)
    lines = [_line(0, phone="13500000000"), *(_line(i) for i in range(1, 8)), _line(0, phone="13400000000")]
    path = _write(tmp_path, lines, "h.csv")
    counts, report = _import(path, tmp_path / "e1.csv")
    assert counts == (7, 1, 0, 1)
    assert [r.split(",")[:2] for r in report] == [["10", "document_number"]]
    assert Person.objects.get(document_number=_number(0)).phone == "13500000000"
    before = _registry()
    counts, report_again = _import(path, tmp_path / "e2.csv")
    assert counts == (0, 0, 8, 1)
    assert report_again == report
    assert _registry() == before


@pytest.mark.django_db
def test_same_details_batches_apart_count_as_unchanged_every_time(tmp_path, regions):
    lines = [_line(i) for i in range(7)]
    path = _write(tmp_path, [*lines, _line(2), _line(5)], "s.csv")
    assert _import(path, tmp_path / "e1.csv") == ((7, 0, 2, 0), [])
    before = _registry()
    assert _import(path, tmp_path / "e2.csv") == ((0, 0, 9, 0), [])
    assert _registry() == before
