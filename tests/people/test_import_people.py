from __future__ import annotations

import json
from datetime import date

import pytest
import xlsxwriter
from typer.testing import CliRunner

from cordon.cli import app
from cordon.core.importing import FileUnusable
from cordon.core.models import AuditEvent
from cordon.people.importer import import_people
from cordon.people.models import DuplicateFlag, Person
from tests.conftest import rid

HEADER_ZH = "姓名,证件类型,证件号码,性别,出生日期,联系电话,住址,所属区划\n"
TODAY = date(2026, 11, 29)


def _good(n: int, region: str = "430102001001001") -> list[str]:
    return [f"测试{i},身份证,{rid('430102', 1990, 1, 1 + i, i, 'M')},男,1990-01-{1 + i:02d},1380000{i:04d},长沙市芙蓉区{i}号,{region}"
            for i in range(n)]  # fmt: skip


def _write(tmp_path, lines: list[str], name: str = "people.csv", encoding: str = "utf-8", header: str = HEADER_ZH):
    p = tmp_path / name
    p.write_bytes((header + "\n".join(lines) + "\n").encode(encoding))
    return p


@pytest.mark.django_db
def test_bad_rows_reported_with_line_and_reason_good_rows_kept(tmp_path, regions):
    good = _good(3)
    valid = rid("430102", 1990, 1, 1, 0, "M")
    bad = [
        f",身份证,{valid[:-1]}9,男,,,,430102001001001",  # line 5: no name
        f"李四,身份证,{valid[:-1]}{'0' if valid[-1] != '0' else '1'},男,,,,430102001001001",  # line 6: check digit
        f"王五,身份证,{rid('430102', 1991, 2, 2, 3, 'M')},女,,,,430102001001001",  # line 7: sex mismatch
        f"赵六,身份证,{rid('430102', 1992, 3, 3, 4, 'F')},女,,12345,,430102001001001",  # line 8: phone
        f"钱七,身份证,{rid('430102', 1993, 4, 4, 5, 'F')},女,,,,999999",  # line 9: unknown region
        "孙八,外星证,X1234567,,,,,430102001001001",  # line 10: document type
    ]
    path = _write(tmp_path, good + bad)
    errors = tmp_path / "errors.csv"
    s = import_people(path, errors_path=errors, today=TODAY)
    assert (s.accepted, s.rejected, s.unchanged) == (3, 6, 0)
    assert s.exit_code == 3
    report = errors.read_text(encoding="utf-8-sig").splitlines()
    assert report[0] == "line,column,value,reason"
    by_line = {int(r.split(",")[0]): r for r in report[1:]}
    assert sorted(by_line) == [5, 6, 7, 8, 9, 10]
    assert by_line[5].split(",")[1] == "name"
    assert by_line[6].split(",")[1] == "document_number"
    assert by_line[7].split(",")[1] == "document_number"
    assert by_line[8].split(",")[1] == "phone"
    assert by_line[9].split(",")[1] == "region_code" and "unknown region" in by_line[9]
    assert by_line[10].split(",")[1] == "document_type"
    assert Person.objects.count() == 3


@pytest.mark.django_db
def test_reimport_changes_nothing(tmp_path, regions):
    path = _write(tmp_path, _good(5))
    first = import_people(path, today=TODAY)
    assert (first.accepted, first.unchanged) == (5, 0)
    before = list(Person.objects.order_by("pk").values())
    events = AuditEvent.objects.count()
    second = import_people(path, today=TODAY)
    assert (second.accepted, second.updated, second.unchanged, second.rejected) == (0, 0, 5, 0)
    assert list(Person.objects.order_by("pk").values()) == before
    # A batch that wrote nothing still leaves one batch event (what was checked), never a per-row write.
    assert AuditEvent.objects.count() == events + 1


@pytest.mark.django_db
def test_changed_row_is_an_update_and_audited(tmp_path, regions):
    lines = _good(2)
    import_people(_write(tmp_path, lines), today=TODAY)
    lines[1] = lines[1].replace("13800000001", "13900000001")
    s = import_people(_write(tmp_path, lines, name="v2.csv"), today=TODAY)
    assert (s.accepted, s.updated, s.unchanged) == (0, 1, 1)
    assert Person.objects.filter(phone="13900000001").count() == 1
    ev = AuditEvent.objects.filter(action="people.import_batch").order_by("-seq").first()
    assert len(ev.changes["updated"]) == 1


@pytest.mark.django_db
def test_gbk_file_with_english_headers_and_bom_variants(tmp_path, regions):
    header = "name,document_type,document_number,sex,birth_date,phone,address,region_code\n"
    gbk = _write(tmp_path, _good(2), name="gbk.csv", encoding="gbk", header=header)
    assert gbk.read_bytes().decode("gbk")  # really GBK bytes
    s = import_people(gbk, today=TODAY)
    assert s.accepted == 2
    assert Person.objects.filter(name="测试1").exists()
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER_ZH + "\n".join(_good(3)[2:]) + "\n").encode())
    assert import_people(bom, today=TODAY).accepted == 1


@pytest.mark.django_db
def test_gb18030_only_characters(tmp_path, regions):
    line = f"䶮明,身份证,{rid('430102', 1985, 5, 5, 7, 'M')},男,,,,430102001001001"
    p = _write(tmp_path, [line], name="gb18030.csv", encoding="gb18030")
    assert import_people(p, today=TODAY).accepted == 1
    assert Person.objects.get().name == "䶮明"


@pytest.mark.django_db
def test_xlsx_input_with_numeric_and_date_cells(tmp_path, regions):
    path = tmp_path / "people.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["姓名", "证件号码", "出生日期", "联系电话", "所属区划"])
    number = rid("430102", 1970, 7, 7, 9, "F")
    ws.write_string(1, 0, "周芳")
    ws.write_string(1, 1, number)
    ws.write_datetime(1, 2, __import__("datetime").datetime(1970, 7, 7), wb.add_format({"num_format": "yyyy-mm-dd"}))
    ws.write_number(1, 3, 13912345678)
    ws.write_number(1, 4, 430102001001001)
    wb.close()
    s = import_people(path, today=TODAY)
    assert (s.accepted, s.rejected) == (1, 0)
    p = Person.objects.get()
    assert (p.document_number, p.birth_date, p.phone, p.sex) == (number, date(1970, 7, 7), "13912345678", "F")


@pytest.mark.django_db
def test_missing_required_column_makes_the_file_unusable(tmp_path, regions):
    p = tmp_path / "bad.csv"
    p.write_text("姓名,住址\n张三,长沙\n", encoding="utf-8")
    with pytest.raises(FileUnusable, match="证件号码"):
        import_people(p, today=TODAY)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(FileUnusable, match="empty"):
        import_people(empty)


@pytest.mark.django_db
def test_same_document_twice_in_a_file(tmp_path, regions):
    lines = _good(2)
    conflicting = lines[0].replace("测试0", "别名")
    s = import_people(_write(tmp_path, [*lines, lines[0], conflicting]), today=TODAY)
    assert (s.accepted, s.unchanged, s.rejected) == (2, 1, 1)


@pytest.mark.django_db
def test_likely_duplicates_are_flagged_not_merged(tmp_path, regions):
    number = rid("430102", 1990, 1, 1, 0, "M")
    lines = [
        f"张伟,身份证,{number},男,1990-01-01,13800001111,,430102001001001",
        "张伟,护照,E12345678,男,1990-01-01,13800001111,,430102001001001",
    ]
    s = import_people(_write(tmp_path, lines), today=TODAY)
    assert s.accepted == 2
    assert s.extra["duplicates_flagged"] == 1
    assert Person.objects.count() == 2
    assert DuplicateFlag.objects.count() == 1
    import_people(_write(tmp_path, lines, name="again.csv"), today=TODAY)
    assert DuplicateFlag.objects.count() == 1


@pytest.mark.django_db
def test_import_as_user_is_limited_to_their_jurisdiction(tmp_path, make_user):
    user = make_user("fu", role="testing", region="430102")
    lines = _good(1) + _good(2, region="430104001001001")[1:]
    s = import_people(_write(tmp_path, lines), user=user, errors_path=tmp_path / "e.csv", today=TODAY)
    assert (s.accepted, s.rejected) == (1, 1)
    assert "outside your jurisdiction" in (tmp_path / "e.csv").read_text(encoding="utf-8-sig")


@pytest.mark.django_db
def test_cli_json_summary_and_exit_codes(tmp_path, regions):
    runner = CliRunner()
    ok = _write(tmp_path, _good(2))
    r = runner.invoke(app, ["import", "people", str(ok), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {
        "accepted": 2, "rejected": 0, "unchanged": 0, "updated": 0, "errors": None, "duplicates_flagged": 0}  # fmt: skip
    bad = _write(tmp_path, [*_good(3)[2:], ",,,,,,,", "无名,身份证,123,,,,,430102001001001"], name="bad.csv")
    r = runner.invoke(app, ["import", "people", str(bad), "--json", "--errors", str(tmp_path / "err.csv")])
    assert r.exit_code == 3
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    assert summary["errors"] == str(tmp_path / "err.csv")
    unusable = tmp_path / "x.csv"
    unusable.write_text("foo,bar\n1,2\n")
    assert runner.invoke(app, ["import", "people", str(unusable), "--json"]).exit_code == 2
    r = runner.invoke(app, ["import", "people", str(ok), "--json"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["unchanged"] == 2
