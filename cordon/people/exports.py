"""Workbooks for grid workers, who live in Excel. Written in constant-memory mode and streamed, so an
export of a district does not hold the district in memory."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import xlsxwriter
from django.db.models import QuerySet

from cordon.people.queries import masked

HEADERS = ["编号 ID", "姓名 Name", "证件类型 Document type", "证件号码 Document number", "性别 Sex",
           "出生年份 Birth year", "联系电话 Phone", "住址 Address", "所属区划 Region"]  # fmt: skip


def people_xlsx(qs: QuerySet) -> Iterator[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "people.xlsx"
        wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        ws = wb.add_worksheet("people")
        bold = wb.add_format({"bold": True})
        ws.write_row(0, 0, HEADERS, bold)
        for i, p in enumerate(qs.iterator(chunk_size=2000), start=1):
            m = masked(p)
            ws.write_row(i, 0, [m["id"], m["name"], m["document_type"], m["document_number"], m["sex"],
                                m["birth_year"] or "", m["phone"], m["address"], p.region.name])  # fmt: skip
        wb.close()
        with path.open("rb") as fh:
            while chunk := fh.read(io.DEFAULT_BUFFER_SIZE * 16):
                yield chunk
