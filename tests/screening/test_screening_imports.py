"""Lab result files and registration files: encodings, headers, duplicates, corrections, CLI exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cordon.screening import ingest
from cordon.screening.models import Registration, Retest, Tube, TubeResult
from cordon.screening.results import import_results

pytestmark = pytest.mark.django_db


def _tubes(terminal, scan, *barcodes, n=2):
    for b in barcodes:
        out = ingest.ingest_scans(terminal, [scan(b) for _ in range(n)])
        assert all(o.status == "accepted" for o in out)


def test_gbk_chinese_headers_duplicates_unknown_invalid(tmp_path, campaign, site, terminal, tester, lab, scan):
    _tubes(terminal, scan, "A1", "A2", "A3", "A4")
    f = tmp_path / "lab.csv"
    f.write_bytes(("试管编码,检测结果,ORF1ab基因Ct值,N基因Ct值,检测时间\n"
                   "A1,阴性,,,2022-05-01 10:00\n"
                   "A2,无效,,,2022-05-01 10:00\n"
                   "A1,阴性,,,2022-05-01 10:00\n"   # duplicate row, same content: unchanged
                   "A3,阴性,,,2022-05-01 10:00\n"
                   "A3,阳性,30,31,2022-05-01 10:00\n"  # same tube, other result in one file: refused
                   "ZZ9,阴性,,,\n"                     # unknown tube
                   "A4,可疑,,,\n"                      # bad result word
                   "A4,阴性,abc,,\n").encode("gbk"))  # bad Ct
    err = tmp_path / "err.csv"
    s = import_results(f, lab=lab, user=tester, errors_path=err)
    assert (s.accepted, s.unchanged, s.rejected) == (3, 1, 4)
    assert s.extra["invalid"] == 1
    text = err.read_text(encoding="utf-8-sig")
    assert "unknown tube" in text and "line 5" in text and "阴性/阳性/无效" in text and "not a number" in text
    assert Tube.objects.get(barcode="A1").result == "negative"
    assert Retest.objects.filter(source_tube__barcode="A2", reason="invalid").count() == 2
    again = import_results(f, lab=lab, user=tester)
    assert (again.accepted, again.updated) == (0, 0) and again.unchanged == 4
    assert TubeResult.objects.count() == 3


def test_english_xlsx_and_correction(tmp_path, campaign, site, terminal, tester, lab, scan):
    import xlsxwriter

    _tubes(terminal, scan, "B1", "B2")
    f = tmp_path / "lab.xlsx"
    wb = xlsxwriter.Workbook(str(f))
    ws = wb.add_worksheet()
    for i, row in enumerate([["tube_barcode", "result", "ct_orf1ab", "ct_n", "tested_at"],
                             ["B1", "negative", "", "", "2022-05-01T10:00:00+08:00"],
                             ["B2", "positive", 31.2, 32.5, "2022-05-01T10:00:00+08:00"]]):
        ws.write_row(i, 0, row)
    wb.close()
    s = import_results(f, lab=lab, user=tester)
    assert (s.accepted, s.rejected, s.extra["positive"]) == (2, 0, 1)
    assert Retest.objects.filter(source_tube__barcode="B2", status="pending").count() == 2
    fix = tmp_path / "fix.csv"
    fix.write_text("tube_barcode,result\nB2,negative\n", encoding="utf-8")
    s2 = import_results(fix, lab=lab, user=tester)
    assert s2.updated == 1 and s2.extra["corrections"] == 1
    v = list(TubeResult.objects.filter(tube__barcode="B2").order_by("version").values_list("result", "is_correction",
                                                                                          "by__username"))
    assert v == [("positive", False, "tester"), ("negative", True, "tester")]
    assert not Retest.objects.filter(source_tube__barcode="B2", status="pending").exists()


def test_cli_results_and_registrations(tmp_path, campaign, site, terminal, tester, lab, scan, person_factory):
    from cordon.cli import app

    runner = CliRunner()
    p = person_factory(name="周七")
    reg = tmp_path / "reg.csv"
    reg.write_text("扫码编号,试管编码,证件号码,姓名,联系电话,采样时间,采样点\n"
                   f"R-1,K1,{p.document_number},周七,13900000000,2022-05-01 09:00,S-FR-1\n"
                   "R-2,K1,123,无名,,2022-05-01 09:00,S-FR-1\n", encoding="utf-8")
    r = runner.invoke(app, ["import", "registrations", str(reg), "--campaign", str(campaign.pk), "--json"])
    assert r.exit_code == 3, r.output
    data = json.loads(r.output.strip().splitlines()[-1])
    assert data["accepted"] == 1 and data["rejected"] == 1
    r = runner.invoke(app, ["import", "registrations", str(reg), "--campaign", str(campaign.pk), "--json"])
    assert json.loads(r.output.strip().splitlines()[-1])["unchanged"] == 1
    assert Registration.objects.filter(tube__barcode="K1").count() == 1
    res = tmp_path / "res.csv"
    res.write_text("试管编码,检测结果\nK1,阴性\n", encoding="utf-8")
    r = runner.invoke(app, ["import", "results", str(res), "--lab", "LAB1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["accepted"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    r = runner.invoke(app, ["import", "results", str(bad), "--lab", "LAB1", "--json"])
    assert r.exit_code == 2 and "required column" in r.output
