"""Registrations in bulk: one set-based engine for sampling terminals (batches of up to 1,000 scans over the
API) and for registration files (millions of rows).

Why set-based: a city round is ten million swabs in a day. Each batch is validated in Python (documents,
times, sites), staged into a temporary table (COPY on PostgreSQL, one executemany on SQLite) and then
written with a handful of INSERT … SELECT statements that resolve people and tubes by join, refuse what
breaks a rule (tube full, tube already resulted, person already in the tube) with window functions, and
insert the rest. Re-sending a batch is harmless: registrations are keyed by the terminal's ``scan_id``.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cordon.core import audit
from cordon.core.identity import (
    DocumentType,
    IdentityError,
    _check_digit_unchecked,
    parse_document_type,
    parse_resident_id,
    validate_document,
)
from cordon.core.importing import Column, ErrorReport, ImportSummary, RowError, TabularFile, file_sha256

MAX_BATCH = 1000
_RID = re.compile(r"^\d{17}[\dX]$")
_EARLIEST = date(1890, 1, 1)

# Refusal reasons, stable strings that terminals can act on.
INVALID_DOCUMENT = "invalid document"
TUBE_FULL = "tube full"
TUBE_RESULTED = "tube already resulted"
TUBE_SEALED = "tube sealed"
TUBE_OTHER_CAMPAIGN = "tube belongs to another campaign"
ALREADY_IN_TUBE = "person already in this tube"
UNKNOWN_SITE = "unknown site"
NO_CAMPAIGN = "no running campaign covers this site"
DUPLICATE_DIFFERENT = "duplicate scan_id with different content"
UNKNOWN_GUARDIAN = "guardian not in the registry"
BAD_TIME = "collected_at is not a time"
MISSING = "required"


@dataclass
class ScanOutcome:
    scan_id: str
    status: str  # accepted | duplicate | refused
    reason: str = ""
    field: str = ""


@dataclass(slots=True)
class StagedRow:
    line: int
    scan_id: str
    barcode: str
    doc_type: str
    doc_number: str
    name: str
    phone: str
    collected_at: datetime
    site_id: int
    campaign_id: int
    capacity: int
    person_region: str  # region for an unknown person: the site's grid
    tube_region: str
    birth_date: date | None
    sex: str
    digest: str
    g_doc_type: str = ""
    g_doc_number: str = ""


@dataclass
class BatchResult:
    outcomes: dict[int, ScanOutcome] = field(default_factory=dict)  # by line
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    people_added: int = 0
    tubes_opened: int = 0


def clean_document(raw_type: str, number: str, today: date | None = None) -> tuple[str, str, date | None, str]:
    """(type, normalised number, birth date, sex). A fast path for well-formed resident IDs (the
    overwhelming majority at a sampling site); everything else through the full rules."""
    raw_type = (raw_type or "").strip()
    number = (number or "").strip().upper()
    if (not raw_type or raw_type in ("resident_id", "居民身份证", "身份证")) and _RID.match(number):
        if _check_digit_unchecked(number[:17]) == number[17]:
            try:
                born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
            except ValueError:
                born = None
            if born is not None and _EARLIEST <= born <= (today or date.today()):
                return "resident_id", number, born, "M" if int(number[16]) % 2 else "F"
    try:
        kind = parse_document_type(raw_type) if raw_type else DocumentType.RESIDENT_ID
        clean = validate_document(kind, number)
    except IdentityError as exc:
        raise ValueError(str(exc)) from exc
    if kind == DocumentType.RESIDENT_ID:
        rid = parse_resident_id(clean)
        return kind.value, clean, rid.birth_date, rid.sex
    return kind.value, clean, None, "U"


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:  # the usual ISO form, parsed in C
            dt = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            dt = None
    if dt is None:
        s = str(value or "").strip().replace("/", "-")
        dt = parse_datetime(s) if s else None
        if dt is None and len(s) == 16:
            dt = parse_datetime(s + ":00")
        if dt is None:
            raise ValueError(BAD_TIME)
    if timezone.is_naive(dt):
        dt = timezone.make_aware(dt)
    return dt


def scan_digest(barcode: str, doc_type: str, doc_number: str, name: str, phone: str, collected_at: datetime,
                site: str, guardian: str) -> str:  # fmt: skip
    text = "|".join([barcode, doc_type, doc_number, name, phone, collected_at.astimezone(UTC).isoformat(), site, guardian])
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class SiteResolver:
    """Sites by code, with the campaign and pool size that apply to each (cached for the run)."""

    def __init__(self, user: Any, campaign: Any = None) -> None:
        from cordon.core.scoping import jurisdiction_prefix

        self.prefix = jurisdiction_prefix(user) if user is not None else ""
        self.campaign = campaign
        self.cache: dict[str, tuple[Any, Any, int] | str] = {}
        self.today = timezone.localdate()

    def resolve(self, code: str) -> tuple[Any, Any, int] | str:
        if code in self.cache:
            return self.cache[code]
        from cordon.screening.models import Campaign, Site
        from cordon.screening.services import area_for

        site = Site.objects.filter(code=code, active=True).first()
        if site is None or (self.prefix is not None and not site.region_id.startswith(self.prefix or "")):
            out: tuple[Any, Any, int] | str = UNKNOWN_SITE
        else:
            campaign = self.campaign
            if campaign is None:
                running = Campaign.objects.filter(status=Campaign.Status.RUNNING).order_by("-starts_at", "-pk")
                campaign = next((c for c in running if area_for(c, site.region_id) is not None), None)
            area = area_for(campaign, site.region_id) if campaign is not None else None
            if campaign is None or campaign.status != Campaign.Status.RUNNING:
                out = NO_CAMPAIGN
            elif area is None:
                out = NO_CAMPAIGN
            else:
                out = (site, campaign, area.pool_size)
        self.cache[code] = out
        return out


def stage_scan(line: int, scan: dict[str, Any], sites: SiteResolver) -> StagedRow | ScanOutcome:
    scan_id = str(scan.get("scan_id") or "").strip()
    if not scan_id:
        return ScanOutcome("", "refused", MISSING, "scan_id")
    barcode = str(scan.get("tube") or "").strip()
    if not barcode:
        return ScanOutcome(scan_id, "refused", MISSING, "tube")
    site_code = str(scan.get("site") or "").strip()
    resolved = sites.resolve(site_code)
    if isinstance(resolved, str):
        return ScanOutcome(scan_id, "refused", resolved, "site")
    site, campaign, capacity = resolved
    try:
        doc_type, number, born, sex = clean_document(str(scan.get("document_type") or ""),
                                                     str(scan.get("document_number") or ""), sites.today)  # fmt: skip
    except ValueError as exc:
        return ScanOutcome(scan_id, "refused", f"{INVALID_DOCUMENT}: {exc}", "document_number")
    name = " ".join(str(scan.get("name") or "").split())[:100]
    if not name:
        return ScanOutcome(scan_id, "refused", MISSING, "name")
    try:
        collected = parse_time(scan.get("collected_at"))
    except ValueError:
        return ScanOutcome(scan_id, "refused", BAD_TIME, "collected_at")
    phone = "".join(str(scan.get("phone") or "").split()).replace("-", "")[:20]
    g_type = g_number = ""
    guardian = str(scan.get("guardian_document") or "").strip()
    if guardian:
        try:
            g_type, g_number, _b, _s = clean_document("", guardian)
        except ValueError as exc:
            return ScanOutcome(scan_id, "refused", f"{INVALID_DOCUMENT}: {exc}", "guardian_document")
    digest = scan_digest(barcode, doc_type, number, name, phone, collected, site_code, g_number)
    return StagedRow(line, scan_id, barcode, doc_type, number, name, phone, collected, site.pk, campaign.pk, capacity,
                     site.region_id, site.region_id, born, sex, digest, g_type, g_number)  # fmt: skip


STAGE_COLUMNS = ("line", "scan_id", "barcode", "doc_type", "doc_number", "name", "phone", "collected_at", "site_id",
                 "campaign_id", "capacity", "person_region", "tube_region", "birth_date", "sex", "digest",
                 "g_doc_type", "g_doc_number")  # fmt: skip
_STAGE_DDL = """CREATE TEMP TABLE {t} (line integer, scan_id varchar(64), barcode varchar(40), doc_type varchar(32),
 doc_number varchar(32), name varchar(100), phone varchar(20), collected_at {ts}, site_id bigint,
 campaign_id bigint, capacity smallint, person_region varchar(15), tube_region varchar(15), birth_date date,
 sex varchar(1), digest varchar(32), g_doc_type varchar(32), g_doc_number varchar(32),
 person_id bigint, tube_id bigint, guardian_id bigint, status varchar(64)){suffix}"""


def _stage(rows: list[StagedRow]) -> str:
    pg = connection.vendor == "postgresql"
    table = "screening_stage"
    with connection.cursor() as cur:
        if pg:
            cur.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
            cur.execute(_STAGE_DDL.format(t=table, ts="timestamptz", suffix=" ON COMMIT DROP"))
            buf = io.StringIO()
            for r in rows:
                buf.write("\t".join(_copy_text(v) for v in _values(r)))
                buf.write("\n")
            with cur.cursor.copy(f"COPY {table} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                copy.write(buf.getvalue())
            # The statements below join on these; without statistics the planner picks nested loops.
            cur.execute(f"CREATE UNIQUE INDEX ON {table} (line)")
            if len(rows) > 2000:
                cur.execute(f"ANALYZE {table}")
        else:
            cur.execute(f"DROP TABLE IF EXISTS temp.{table}")
            cur.execute(_STAGE_DDL.format(t=table, ts="datetime", suffix=""))
            marks = ", ".join(["%s"] * len(STAGE_COLUMNS))
            cur.executemany(f"INSERT INTO {table} ({', '.join(STAGE_COLUMNS)}) VALUES ({marks})",
                            [_values(r, sqlite=True) for r in rows])  # fmt: skip
            cur.execute(f"CREATE UNIQUE INDEX temp.{table}_line ON {table} (line)")
    return table


def _values(r: StagedRow, sqlite: bool = False) -> tuple:
    at = r.collected_at
    if sqlite:
        at = timezone.make_naive(at, timezone.get_fixed_timezone(0)).isoformat(" ") if timezone.is_aware(at) else at
    return (r.line, r.scan_id, r.barcode, r.doc_type, r.doc_number, r.name, r.phone, at, r.site_id, r.campaign_id,
            r.capacity, r.person_region, r.tube_region, r.birth_date, r.sex, r.digest, r.g_doc_type,
            r.g_doc_number)  # fmt: skip


def _copy_text(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, datetime | date):
        return v.isoformat()
    s = str(v)
    if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


def write_batch(rows: list[StagedRow], *, user: Any, run_id: int | None = None) -> BatchResult:
    """Stage, resolve and write one batch in one transaction (with its audit event)."""
    out = BatchResult()
    if not rows:
        return out
    pg = connection.vendor == "postgresql"
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cur:
        t = _stage(rows)
        # 1. Scans already registered: the same content is a harmless re-send, other content is refused.
        cur.execute(f"""UPDATE {t} SET status = CASE WHEN r.digest = {t}.digest THEN 'duplicate' ELSE %s END
                        FROM screening_registration r WHERE r.scan_id = {t}.scan_id""", [DUPLICATE_DIFFERENT])
        # The same scan_id twice in one batch: the first line counts.
        cur.execute(f"""UPDATE {t} SET status = CASE WHEN d.digest = {t}.digest THEN 'duplicate' ELSE %s END
                        FROM (SELECT scan_id, MIN(line) AS first, MIN(digest) AS digest FROM {t}
                              WHERE status IS NULL GROUP BY scan_id HAVING COUNT(*) > 1) d
                        WHERE d.scan_id = {t}.scan_id AND {t}.line > d.first AND {t}.status IS NULL""",
                    [DUPLICATE_DIFFERENT])  # fmt: skip
        # 2. Unknown people join the registry, unverified, in the site's grid.
        cur.execute(f"""INSERT INTO people_person (name, document_type, document_number, sex, birth_date, phone,
                            address, region_id, nationality, verified, created_at, updated_at, import_run)
                        SELECT s.name, s.doc_type, s.doc_number, s.sex, s.birth_date, s.phone, '', s.person_region,
                               'CHN', %s, %s, %s, %s
                        FROM {t} s
                        WHERE s.status IS NULL
                          AND s.line IN (SELECT MIN(line) FROM {t} WHERE status IS NULL GROUP BY doc_type, doc_number)
                          AND NOT EXISTS (SELECT 1 FROM people_person p
                                          WHERE p.document_type = s.doc_type AND p.document_number = s.doc_number)
                        ON CONFLICT (document_type, document_number) DO NOTHING""",
                    [False, now, now, run_id])  # fmt: skip
        out.people_added = max(cur.rowcount, 0)
        cur.execute(f"""UPDATE {t} SET person_id = p.id FROM people_person p
                        WHERE p.document_type = {t}.doc_type AND p.document_number = {t}.doc_number
                          AND {t}.status IS NULL""")
        cur.execute(f"""UPDATE {t} SET guardian_id = p.id FROM people_person p
                        WHERE p.document_type = {t}.g_doc_type AND p.document_number = {t}.g_doc_number
                          AND {t}.status IS NULL AND {t}.g_doc_number <> ''""")
        cur.execute(f"UPDATE {t} SET status = %s WHERE status IS NULL AND g_doc_number <> '' AND guardian_id IS NULL",
                    [UNKNOWN_GUARDIAN])  # fmt: skip
        # 3. New tubes are opened by their first swab.
        cur.execute(f"""INSERT INTO screening_tube (barcode, campaign_id, site_id, region_id, capacity, members,
                            collector, opened_at, result, is_retest)
                        SELECT s.barcode, s.campaign_id, s.site_id, s.tube_region, s.capacity, 0, %s, s.collected_at,
                               '', %s
                        FROM {t} s
                        WHERE s.status IS NULL
                          AND s.line IN (SELECT MIN(line) FROM {t} WHERE status IS NULL GROUP BY barcode)
                          AND NOT EXISTS (SELECT 1 FROM screening_tube x WHERE x.barcode = s.barcode)
                        ON CONFLICT (barcode) DO NOTHING""",
                    [getattr(user, "username", "") or "", False])  # fmt: skip
        out.tubes_opened = max(cur.rowcount, 0)
        # 4. Rules on the tube, in line order within the batch.
        cur.execute(f"""UPDATE {t} SET tube_id = x.id,
                          status = CASE WHEN x.result <> '' THEN %s
                                        WHEN x.campaign_id <> {t}.campaign_id THEN %s
                                        WHEN x.sealed_at IS NOT NULL AND x.members < x.capacity THEN %s
                                        ELSE NULL END
                        FROM screening_tube x WHERE x.barcode = {t}.barcode AND {t}.status IS NULL""",
                    [TUBE_RESULTED, TUBE_OTHER_CAMPAIGN, TUBE_SEALED])  # fmt: skip
        cur.execute(f"""UPDATE {t} SET status = %s WHERE status IS NULL AND EXISTS (
                          SELECT 1 FROM screening_registration r
                          WHERE r.tube_id = {t}.tube_id AND r.person_id = {t}.person_id)""", [ALREADY_IN_TUBE])
        cur.execute(f"""UPDATE {t} SET status = %s FROM (
                          SELECT line, ROW_NUMBER() OVER (PARTITION BY tube_id, person_id ORDER BY line) AS n
                          FROM {t} WHERE status IS NULL) d
                        WHERE d.line = {t}.line AND d.n > 1""", [ALREADY_IN_TUBE])
        cur.execute(f"""UPDATE {t} SET status = %s FROM (
                          SELECT s.line, x.members + ROW_NUMBER() OVER (PARTITION BY s.tube_id ORDER BY s.line) AS n,
                                 x.capacity AS cap
                          FROM {t} s JOIN screening_tube x ON x.id = s.tube_id WHERE s.status IS NULL) d
                        WHERE d.line = {t}.line AND d.n > d.cap""", [TUBE_FULL])
        # 5. Write what passed.
        cur.execute(f"""INSERT INTO screening_registration (scan_id, campaign_id, tube_id, person_id, site_id,
                            region_id, guardian_id, collected_at, digest, created_at)
                        SELECT s.scan_id, s.campaign_id, s.tube_id, s.person_id, s.site_id, p.region_id,
                               s.guardian_id, s.collected_at, s.digest, %s
                        FROM {t} s JOIN people_person p ON p.id = s.person_id
                        WHERE s.status IS NULL
                        ON CONFLICT DO NOTHING""", [now])  # fmt: skip
        out.accepted = max(cur.rowcount, 0)
        cur.execute(f"""UPDATE screening_tube SET members = screening_tube.members + d.n,
                          sealed_at = CASE WHEN screening_tube.members + d.n >= screening_tube.capacity
                                           THEN d.last ELSE screening_tube.sealed_at END
                        FROM (SELECT tube_id, COUNT(*) AS n, MAX(collected_at) AS last FROM {t}
                              WHERE status IS NULL GROUP BY tube_id) d
                        WHERE screening_tube.id = d.tube_id""")
        # A minor registered under a guardian: the registry remembers the guardian.
        cur.execute(f"""UPDATE people_person SET guardian_id = s.guardian_id FROM {t} s
                        WHERE people_person.id = s.person_id AND s.guardian_id IS NOT NULL
                          AND s.status IS NULL AND people_person.guardian_id IS NULL""")
        cur.execute(f"SELECT line, status FROM {t} WHERE status IS NOT NULL")
        flagged = cur.fetchall()
        cur.execute(f"DROP TABLE IF EXISTS {'pg_temp' if pg else 'temp'}.{t}")
        by_line = {r.line: r for r in rows}
        for line, status in flagged:
            r = by_line[line]
            if status == "duplicate":
                out.outcomes[line] = ScanOutcome(r.scan_id, "duplicate")
                out.duplicate += 1
            else:
                fld = {TUBE_FULL: "tube", TUBE_RESULTED: "tube", TUBE_SEALED: "tube", TUBE_OTHER_CAMPAIGN: "tube",
                       ALREADY_IN_TUBE: "document_number", UNKNOWN_GUARDIAN: "guardian_document"}.get(status,
                                                                                                     "scan_id")  # fmt: skip
                out.outcomes[line] = ScanOutcome(r.scan_id, "refused", status, fld)
                out.refused += 1
        campaigns = sorted({r.campaign_id for r in rows})
        audit.record(user or "import", "screening.registrations", object_type="screening.campaign",
                     object_id=",".join(map(str, campaigns)), region_code=getattr(user, "region_id", "") or "",
                     changes={"scans": len(rows), "accepted": out.accepted, "duplicate": out.duplicate,
                              "refused": out.refused, "people_added": out.people_added,
                              "tubes_opened": out.tubes_opened, "import_run": run_id})  # fmt: skip
    return out


def ingest_scans(user: Any, scans: list[dict[str, Any]], *, campaign: Any = None) -> list[ScanOutcome]:
    """A sampling terminal's batch. Every scan gets an outcome, in the order sent."""
    from cordon.core.scoping import require

    require(user, "scan")
    if len(scans) > MAX_BATCH:
        from cordon.people.validation import FieldError

        raise FieldError("scans", str(len(scans)), f"at most {MAX_BATCH} scans per batch")
    sites = SiteResolver(user, campaign)
    staged: list[StagedRow] = []
    outcomes: dict[int, ScanOutcome] = {}
    for i, scan in enumerate(scans):
        s = stage_scan(i, scan, sites)
        if isinstance(s, ScanOutcome):
            outcomes[i] = s
        else:
            staged.append(s)
    result = write_batch(staged, user=user)
    outcomes.update(result.outcomes)
    return [outcomes.get(i) or ScanOutcome(str(scans[i].get("scan_id")), "accepted") for i in range(len(scans))]


REGISTRATION_COLUMNS = [
    Column("scan_id", ("扫码编号", "scan_id", "登记编号", "流水号"), required=True),
    Column("tube", ("试管编码", "tube_barcode", "tube", "试管条码"), required=True),
    Column("document_type", ("证件类型", "document_type")),
    Column("document_number", ("证件号码", "document_number", "身份证号"), required=True),
    Column("name", ("姓名", "name"), required=True),
    Column("phone", ("联系电话", "phone", "手机号")),
    Column("collected_at", ("采样时间", "collected_at"), required=True),
    Column("site", ("采样点", "site", "采样点编码"), required=True),
    Column("guardian_document", ("监护人证件号码", "guardian_document")),
]


def import_registrations(
    path: str | Path,
    *,
    campaign: Any,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """A registration file (exported by sampling terminals that worked offline) into a campaign."""
    from cordon.core.models import ImportRun

    path = Path(path)
    source = TabularFile(path, REGISTRATION_COLUMNS)
    with transaction.atomic():
        run = ImportRun.objects.create(kind="screening_registrations", file_name=path.name,
                                       file_sha256=file_sha256(path), user_id=getattr(user, "pk", None))  # fmt: skip
    summary = import_rows(source.rows(), campaign=campaign, user=user, errors_path=errors_path,
                          batch_size=batch_size, progress=progress, run_id=run.pk)  # fmt: skip
    ImportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), accepted=summary.accepted,
                                               unchanged=summary.unchanged, rejected=summary.rejected,
                                               errors_path=summary.errors or "", status="done")  # fmt: skip
    return summary


def import_rows(
    rows: Iterable[tuple[int, dict[str, Any]]],
    *,
    campaign: Any,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
) -> ImportSummary:
    sites = SiteResolver(user, campaign)
    report = ErrorReport(errors_path)
    summary = ImportSummary()
    batch: list[StagedRow] = []
    done = 0

    def flush() -> None:
        nonlocal batch, done
        res = write_batch(batch, user=user, run_id=run_id)
        summary.accepted += res.accepted
        summary.unchanged += res.duplicate
        summary.rejected += res.refused
        summary.extra["people_added"] = summary.extra.get("people_added", 0) + res.people_added
        summary.extra["tubes_opened"] = summary.extra.get("tubes_opened", 0) + res.tubes_opened
        for line, o in sorted(res.outcomes.items()):
            if o.status == "refused":
                report.add(RowError(line, o.field, o.scan_id, o.reason))
        done += len(batch)
        batch = []
        if progress:
            progress(done)

    for line, row in rows:
        s = stage_scan(line, row, sites)
        if isinstance(s, ScanOutcome):
            report.add(RowError(line, s.field, str(row.get(s.field, "") if s.field != "document_number" else ""),
                                s.reason))  # fmt: skip
            summary.rejected += 1
            continue
        batch.append(s)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    summary.errors = report.close()
    return summary


def window_start(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
