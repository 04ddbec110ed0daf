"""Bulk import of the person registry.

Rows are validated in Python, then written a batch at a time: on PostgreSQL new rows go in with a binary
COPY (the physical floor for loading rows), on SQLite with one executemany. Existing people are looked up
per batch by document, so a re-import of the same file finds every row unchanged and writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cordon.core import audit
from cordon.core.importing import (
    Column,
    ErrorReport,
    ImportSummary,
    RowError,
    TabularFile,
    file_sha256,
)
from cordon.core.models import ImportRun
from cordon.core.scoping import jurisdiction_prefix
from cordon.people.models import Person
from cordon.people.validation import COMPARED_FIELDS, PERSON_FIELDS, FieldError, clean_person
from cordon.regions.models import Region

COLUMNS = [
    Column("name", ("姓名", "name", "名字"), required=True),
    Column("document_type", ("证件类型", "document_type", "doc_type")),
    Column("document_number", ("证件号码", "document_number", "身份证号", "身份证号码", "id_number"), required=True),
    Column("sex", ("性别", "sex", "gender")),
    Column("birth_date", ("出生日期", "birth_date", "birthday")),
    Column("phone", ("联系电话", "phone", "手机号", "手机号码", "电话")),
    Column("address", ("住址", "address", "现住址", "居住地址")),
    Column("region_code", ("所属区划", "region_code", "区划代码", "所属网格")),
]
COMPARED = COMPARED_FIELDS
INSERT_COLUMNS = (
    "name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region_id",
    "nationality", "verified", "created_at", "updated_at", "import_run",
)  # fmt: skip
DUPLICATE_REASON = "same name, birth date and phone"


class _RegionCache:
    """Region codes seen in this run; the registry's region table is small next to the file."""

    def __init__(self, prefix: str | None) -> None:
        self.prefix = prefix
        self.known: dict[str, bool] = {}

    def check(self, code: str) -> str | None:
        if code not in self.known:
            self.known[code] = Region.objects.filter(code=code).exists()
        if not self.known[code]:
            return "unknown region code"
        if self.prefix is not None and not code.startswith(self.prefix):
            return "outside your jurisdiction"
        return None


def import_people(
    path: str | Path,
    *,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    today: date | None = None,
) -> ImportSummary:
    """Import a person file. Raises FileUnusable when the file itself cannot be read (exit code 2)."""
    path = Path(path)
    source = TabularFile(path, COLUMNS)
    prefix = jurisdiction_prefix(user) if user is not None else None
    if user is not None and prefix is None:
        raise PermissionError("the importing user has no jurisdiction")
    regions = _RegionCache(prefix)
    report = ErrorReport(errors_path)
    summary = ImportSummary()
    with transaction.atomic():
        run = ImportRun.objects.create(
            kind="people", file_name=path.name, file_sha256=file_sha256(path), user_id=getattr(user, "pk", None)
        )
    batch: list[tuple[int, dict[str, Any]]] = []
    done = 0
    for line, row in source.rows():
        try:
            clean = clean_person(row, today=today)
        except FieldError as exc:
            report.add(RowError(line, _column_label(exc.field), exc.value, exc.reason))
            summary.rejected += 1
            continue
        problem = regions.check(clean["region_id"])
        if problem:
            report.add(RowError(line, "region_code", clean["region_id"], problem))
            summary.rejected += 1
            continue
        batch.append((line, clean))
        if len(batch) >= batch_size:
            _write_batch(batch, run, user, summary, report)
            done += len(batch)
            batch = []
            if progress:
                progress(done)
    if batch:
        _write_batch(batch, run, user, summary, report)
        done += len(batch)
        if progress:
            progress(done)
    flagged = flag_duplicates(run.pk)
    summary.extra["duplicates_flagged"] = flagged
    summary.errors = report.close()
    ImportRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        accepted=summary.accepted,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        errors_path=summary.errors or "",
        status="done",
    )
    return summary


def _column_label(field: str) -> str:
    return "region_code" if field == "region_id" else field


def _write_batch(
    batch: list[tuple[int, dict[str, Any]]], run: ImportRun, user: Any, summary: ImportSummary, report: ErrorReport
) -> None:
    # Within one batch a document seen twice keeps its first line; later lines are judged against it.
    first: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for line, clean in batch:
        key = (clean["document_type"], clean["document_number"])
        if key in first:
            other_line, other = first[key]
            if any(other[f] != clean[f] for f in COMPARED):
                report.add(
                    RowError(line, "document_number", key[1], f"same document as line {other_line} with other details")
                )
                summary.rejected += 1
            else:
                summary.unchanged += 1
            continue
        first[key] = (line, clean)
        rows.append((line, clean))
    numbers = [c["document_number"] for _, c in rows]
    existing: dict[tuple[str, str], Person] = {}
    for chunk_start in range(0, len(numbers), 900):
        chunk = numbers[chunk_start : chunk_start + 900]
        for p in Person.objects.filter(document_number__in=chunk).only(*PERSON_FIELDS, "id", "import_run"):
            existing[(p.document_type, p.document_number)] = p
    new_rows: list[dict[str, Any]] = []
    changed: list[Person] = []
    unchanged = 0
    for line, clean in rows:
        current = existing.get((clean["document_type"], clean["document_number"]))
        if current is None:
            new_rows.append(clean)
            continue
        diffs = [f for f in COMPARED if getattr(current, f) != clean[f]]
        if not diffs:
            unchanged += 1
            continue
        if current.import_run == run.pk:
            report.add(
                RowError(
                    line,
                    "document_number",
                    clean["document_number"],
                    "same document as an earlier line with other details",
                )
            )
            summary.rejected += 1
            continue
        for f in diffs:
            setattr(current, f, clean[f])
        current.import_run = run.pk
        changed.append(current)
    now = timezone.now()
    digest = hashlib.sha256(
        "\n".join(f"{c['document_type']}|{c['document_number']}" for _, c in rows).encode()
    ).hexdigest()
    with transaction.atomic():
        insert_people_rows(new_rows, run.pk, now)
        if changed:
            for p in changed:
                p.updated_at = now
            Person.objects.bulk_update(changed, [*COMPARED, "import_run", "updated_at"], batch_size=500)
        audit.record(
            user or "import",
            "people.import_batch",
            object_type="core.importrun",
            object_id=run.pk,
            region_code=getattr(getattr(user, "region", None), "code", ""),
            changes={
                "file": run.file_name,
                "lines": [batch[0][0], batch[-1][0]],
                "inserted": len(new_rows),
                "updated": [p.pk for p in changed],
                "unchanged": unchanged,
                "documents_sha256": digest,
            },
        )
    summary.accepted += len(new_rows)
    summary.updated += len(changed)
    summary.unchanged += unchanged


def insert_people_rows(rows: list[dict[str, Any]], run_id: int, now: Any) -> None:
    if not rows:
        return
    values = [
        (r["name"], r["document_type"], r["document_number"], r["sex"], r["birth_date"], r["phone"], r["address"],
         r["region_id"], "CHN", True, now, now, run_id)
        for r in rows
    ]  # fmt: skip
    table = Person._meta.db_table
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                copy_rows(table, INSERT_COLUMNS, values)
            return
        except IntegrityError:
            # Another writer registered one of these documents since the lookup: fall back to the slow,
            # per-conflict path for this batch only.
            pass
        cols = ", ".join(INSERT_COLUMNS)
        marks = ", ".join(["%s"] * len(INSERT_COLUMNS))
        with connection.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT (document_type, document_number) DO NOTHING",
                values,
            )
        return
    cols = ", ".join(INSERT_COLUMNS)
    marks = ", ".join(["%s"] * len(INSERT_COLUMNS))
    with connection.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", values)


def copy_rows(table: str, columns: tuple[str, ...], values: list[tuple]) -> None:
    """COPY rows into a PostgreSQL table through psycopg 3 (text COPY with typed rows)."""
    with connection.cursor() as cur:
        raw = cur.cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)


def flag_duplicates(run_id: int) -> int:
    """Flag likely duplicates among the people this run wrote: one set-based query, not a lookup per row."""
    table = Person._meta.db_table
    now = timezone.now()
    sql = f"""
        INSERT INTO people_duplicateflag (person_id, other_id, reason, status, region_id, created_at)
        SELECT n.id, o.id, %s, 'open', n.region_id, %s
        FROM {table} n JOIN {table} o
          ON o.name = n.name AND o.birth_date = n.birth_date AND o.phone = n.phone AND o.id <> n.id
        WHERE n.import_run = %s AND n.phone <> ''
          AND (o.import_run IS NULL OR o.import_run <> n.import_run OR o.id < n.id)
          AND NOT EXISTS (SELECT 1 FROM people_duplicateflag f
                          WHERE (f.person_id = n.id AND f.other_id = o.id) OR (f.person_id = o.id AND f.other_id = n.id))
    """
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [DUPLICATE_REASON, now, run_id])
        count = cur.rowcount
        if count:
            audit.record("import", "people.duplicates_flagged", object_type="core.importrun", object_id=run_id,
                         changes={"pairs": count})  # fmt: skip
    return max(count, 0)
