"""Registrations in bulk: one set-based engine for sampling terminals (batches of up to 1,000 scans over the
API) and for registration files (millions of rows).

Why set-based: a city round is ten million swabs in a day. Each row is checked in Python (documents, times,
sites) and streamed into a temporary table (binary COPY on PostgreSQL, executemany on SQLite) while the file
is read; a file is written a million rows per transaction. Then a handful of statements refuse what breaks a
rule (tube full, tube already resulted, person already in the tube), each touching only the rows it
concerns, and one INSERT … SELECT writes the rest, its people and tubes resolved by their natural keys (hash
joins; the people the registry already held are looked up before the batch's turn to write). Re-sending a
batch is harmless: registrations are keyed by the terminal's ``scan_id``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import mul
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cordon.core import audit, bulkindex
from cordon.core.bulkindex import DeferredIndexes
from cordon.core.identity import (
    _CHECK_MAP,
    _WEIGHTS,
    DocumentType,
    IdentityError,
    _check_digit_unchecked,
    parse_document_type,
    parse_resident_id,
    validate_document,
)
from cordon.core.importing import Column, ErrorReport, ImportSummary, RowError, TabularFile, file_sha256

MAX_BATCH = 1000
# Rows of a registration file written per transaction. Each batch's statements join the staging table to
# the registry, the tubes and the registrations, whose size does not shrink with the batch; so a file is cut
# into about FILE_BATCHES batches, none smaller than FILE_BATCH: enough for one worker to read and stage the
# next batch while the other writes (a single batch leaves the server idle while Python parses, then
# Python idle while the server writes), few enough that those whole-table joins run a handful of times.
FILE_BATCH = 250_000
FILE_BATCHES = 4
_FILE_BYTES_PER_LINE = 100  # a terminal export's line is 100-130 bytes: the estimate errs towards more rows


def file_batch_size(source: TabularFile) -> int:
    """Rows per transaction for a registration file, from its size (a workbook, compressed, counts as small)."""
    if source.is_xlsx:
        return FILE_BATCH
    return max(FILE_BATCH, source.path.stat().st_size // _FILE_BYTES_PER_LINE // FILE_BATCHES)


_RID = re.compile(r"^[0-9]{17}[0-9X]$")
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
OTHER_HOUSEHOLD = "tube holds another household"
BAD_TIME = "collected_at is not a time"
MISSING = "required"
TOO_LONG = "too long"


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
    household: bool = False  # a household tube: every swab of one household (same address and grid)


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


def _utc_iso(at: datetime) -> str:
    return (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat()


def scan_digest(barcode: str, doc_type: str, doc_number: str, name: str, phone: str, collected_at: datetime,
                site: str, guardian: str) -> str:  # fmt: skip
    return _digest(barcode, doc_type, doc_number, name, phone, _utc_iso(collected_at), site, guardian)


def _digest(barcode: str, doc_type: str, doc_number: str, name: str, phone: str, at_iso: str, site: str,
            guardian: str) -> str:  # fmt: skip
    """``scan_digest`` with the time already in its text form (see ``SiteResolver.times``)."""
    text = f"{barcode}|{doc_type}|{doc_number}|{name}|{phone}|{at_iso}|{site}|{guardian}"
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class SiteResolver:
    """Sites by code, with the campaign and pool size that apply to each (cached for the run)."""

    def __init__(self, user: Any, campaign: Any = None) -> None:
        from cordon.core.scoping import jurisdiction_prefix

        self.prefix = jurisdiction_prefix(user) if user is not None else ""
        self.campaign = campaign
        self.cache: dict[str, tuple[Any, Any, int] | str] = {}
        self.today = timezone.localdate()
        self.complete = False  # every site is in the cache (after ``preload``)
        self._running: list[Any] | None = None
        self._areas: dict[int, list[Any]] = {}
        # collected_at text -> (aware time, its UTC ISO form for the digest), or None when it is not a time. A
        # city takes a hundred swabs a second, so a round's file repeats each time text many times over; kept
        # per run, since a naive time reads in the time zone active when it is parsed.
        self.times: dict[str, tuple[datetime, str] | None] = {}

    def resolve(self, code: str) -> tuple[Any, Any, int] | str:
        if code in self.cache:
            return self.cache[code]
        if self.complete:
            return UNKNOWN_SITE
        from cordon.screening.models import Site

        out = self._decide(Site.objects.filter(code=code, active=True).first())
        self.cache[code] = out
        return out

    def preload(self) -> None:
        """Every active site at once, so that the rows of a file never wait on a lookup (and none is made
        while the staging table is being copied into)."""
        from cordon.screening.models import Site

        for site in Site.objects.filter(active=True):
            self.cache[site.code] = self._decide(site)
        self.complete = True

    def _decide(self, site: Any) -> tuple[Any, Any, int] | str:
        from cordon.screening.models import Campaign

        if site is None or (self.prefix is not None and not site.region_id.startswith(self.prefix or "")):
            return UNKNOWN_SITE
        campaign = self.campaign
        if campaign is None:
            if self._running is None:
                self._running = list(Campaign.objects.filter(status=Campaign.Status.RUNNING)
                                     .order_by("-starts_at", "-pk"))  # fmt: skip
            campaign = next((c for c in self._running if self._area(c, site.region_id) is not None), None)
        area = self._area(campaign, site.region_id) if campaign is not None else None
        if campaign is None or campaign.status != Campaign.Status.RUNNING or area is None:
            return NO_CAMPAIGN
        if area.household_tubes:
            # One tube per household: it holds the whole household, up to the largest pool the policy allows.
            from cordon.core.policy import active_policy

            return (site, campaign, int(active_policy().screening.max_pool_size), True)
        return (site, campaign, area.pool_size, False)

    def _area(self, campaign: Any, region_code: str) -> Any:
        """``services.area_for`` with the campaign's areas read once."""
        areas = self._areas.get(campaign.pk)
        if areas is None:
            areas = self._areas[campaign.pk] = list(campaign.areas.select_related("region"))
        best = None
        for a in areas:
            if region_code.startswith(a.region.prefix) and (best is None or len(a.region.prefix) > len(best.region.prefix)):
                best = a
        return best


def clean_scan(line: int, scan: dict[str, Any], sites: SiteResolver) -> tuple | ScanOutcome:
    """One scan (a terminal's JSON object or a file row as a dict) checked and normalised into a staging row
    (``STAGE_COLUMNS`` order, but for the two flags ``_Stage.put`` adds), or its refusal."""
    g = scan.get
    return clean_fields(line, str(g("scan_id") or ""), str(g("tube") or ""), str(g("document_type") or ""),
                        str(g("document_number") or ""), g("name"), g("phone"), g("collected_at"),
                        str(g("site") or ""), g("guardian_document"), sites)  # fmt: skip


# A resident ID is region (6 digits), birth date (8) and sequence (3) before its check character. The MOD 11-2
# sum splits the same way, and a city's registrations share a few hundred regions and a few tens of thousands
# of birth dates: their partial sums (and the parsed date) are remembered, so a well-formed number costs three
# dictionary lookups instead of seventeen multiplications.
_REGION_SUMS: dict[str, int] = {}
_BIRTHS: dict[str, tuple[date | None, int]] = {}
_SEQ_SUMS: dict[str, int] = {}
_RID_TYPES = frozenset(("", "resident_id", "居民身份证", "身份证"))
_MEMO_LIMIT = 200_000


def _partial(digits: str, weights: tuple[int, ...]) -> int:
    return sum(map(mul, weights, digits.encode("ascii"))) - 48 * sum(weights)


def _region_sum(digits: str) -> int:
    n = _partial(digits, _WEIGHTS[:6])
    if len(_REGION_SUMS) < _MEMO_LIMIT:
        _REGION_SUMS[digits] = n
    return n


def _birth(digits: str) -> tuple[date | None, int]:
    try:
        born: date | None = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        born = None
    out = (born, _partial(digits, _WEIGHTS[6:14]))
    if len(_BIRTHS) < _MEMO_LIMIT:
        _BIRTHS[digits] = out
    return out


def _seq_sum(digits: str) -> int:
    n = _SEQ_SUMS[digits] = _partial(digits, _WEIGHTS[14:])
    return n


def _resident_fast(number: str) -> date | None:
    """The birth date of a well-formed resident ID with a correct check character, else None (the caller
    then applies the full rules, which also say what is wrong)."""
    if len(number) != 18 or not number.isascii() or not number[:17].isdigit() or number[17] not in _CHECK_CHARS:
        return None
    r, b, q = number[:6], number[6:14], number[14:17]
    born, bsum = _BIRTHS[b] if b in _BIRTHS else _birth(b)
    total = (_REGION_SUMS[r] if r in _REGION_SUMS else _region_sum(r)) + bsum + \
        (_SEQ_SUMS[q] if q in _SEQ_SUMS else _seq_sum(q))  # fmt: skip
    return born if _CHECK_MAP[total % 11] == number[17] else None


_CHECK_CHARS = frozenset("0123456789X")


def clean_fields(line: int, scan_id: str, barcode: str, raw_type: str, raw_number: str, name: Any, phone: Any,
                 collected_at: Any, site_code: str, guardian: Any, sites: SiteResolver) -> tuple | ScanOutcome:  # fmt: skip
    """The one per-row step in Python, on positional fields, kept lean because a registration file holds
    millions of rows: the rules that need the database (people, tubes, duplicates) are checked set-based
    after staging. A well-formed resident ID (nearly every swab) is checked inline; anything else goes
    through the full document rules of ``clean_document``."""
    scan_id = scan_id.strip()
    if not scan_id:
        return ScanOutcome("", "refused", MISSING, "scan_id")
    if len(scan_id) > 64:
        return ScanOutcome(scan_id, "refused", TOO_LONG, "scan_id")
    barcode = barcode.strip()
    if not barcode:
        return ScanOutcome(scan_id, "refused", MISSING, "tube")
    if len(barcode) > 40:
        return ScanOutcome(scan_id, "refused", TOO_LONG, "tube")
    site_code = site_code.strip()
    resolved = sites.cache.get(site_code) or sites.resolve(site_code)
    if resolved.__class__ is str:
        return ScanOutcome(scan_id, "refused", resolved, "site")
    site, campaign, capacity, household = resolved
    raw_type = raw_type.strip()
    number = raw_number.strip().upper()
    born = _resident_fast(number) if raw_type in _RID_TYPES else None
    if born is not None and _EARLIEST <= born <= sites.today:
        doc_type, sex = "resident_id", ("M" if number[16] in "13579" else "F")
    else:
        try:
            doc_type, number, born, sex = clean_document(raw_type, number, sites.today)
        except ValueError as exc:
            return ScanOutcome(scan_id, "refused", f"{INVALID_DOCUMENT}: {exc}", "document_number")
    name = " ".join(str(name or "").split())[:100]
    if not name:
        return ScanOutcome(scan_id, "refused", MISSING, "name")
    when = sites.times.get(collected_at, _MISSING) if collected_at.__class__ is str else _MISSING
    if when is _MISSING:
        when = _parse_collected(collected_at, sites.times)
    if when is None:
        return ScanOutcome(scan_id, "refused", BAD_TIME, "collected_at")
    collected, at_iso = when
    phone = "".join(str(phone).split()).replace("-", "")[:20] if phone else ""
    g_type = g_number = ""
    guardian = str(guardian).strip() if guardian else ""
    if guardian:
        try:
            g_type, g_number, _b, _s = clean_document("", guardian, sites.today)
        except ValueError as exc:
            return ScanOutcome(scan_id, "refused", f"{INVALID_DOCUMENT}: {exc}", "guardian_document")
    digest = _digest(barcode, doc_type, number, name, phone, at_iso, site_code, g_number)
    return (line, scan_id, barcode, doc_type, number, name, phone, collected, site.id, campaign.id, capacity,
            site.region_id, born, sex, digest, g_type, g_number, household)  # fmt: skip


_MISSING = object()


def _parse_collected(value: Any, memo: dict[str, tuple[datetime, str] | None]) -> tuple[datetime, str] | None:
    """A collection time and its UTC ISO text, remembered (for text) up to ``_MEMO_LIMIT`` values."""
    try:
        collected = parse_time(value)
    except ValueError:
        found = None
    else:
        found = (collected, _utc_iso(collected))
    if value.__class__ is str and len(memo) < _MEMO_LIMIT:
        memo[value] = found
    return found


def stage_scan(line: int, scan: dict[str, Any], sites: SiteResolver) -> StagedRow | ScanOutcome:
    s = clean_scan(line, scan, sites)
    if isinstance(s, ScanOutcome):
        return s
    return StagedRow(*s[:12], s[11], *s[12:])


# The staging table: one row per checked scan, written by streaming (binary COPY on PostgreSQL).
STAGE_COLUMNS = ("line", "scan_id", "barcode", "doc_type", "doc_number", "name", "phone", "collected_at", "site_id",
                 "campaign_id", "capacity", "region", "birth_date", "sex", "digest", "g_doc_type", "g_doc_number",
                 "household", "repeat", "maybe_full")  # fmt: skip
_STAGE_TYPES = ["int4", "text", "text", "text", "text", "text", "text", "timestamptz", "int8", "int8", "int2", "text",
                "date", "text", "text", "text", "text", "bool", "bool", "bool"]  # fmt: skip
_STAGE_DDL = """CREATE TEMP TABLE {t} (line integer, scan_id text, barcode text, doc_type text, doc_number text,
 name text, phone text, collected_at {ts}, site_id bigint, campaign_id bigint, capacity smallint, region text,
 birth_date date, sex text, digest text, g_doc_type text, g_doc_number text, household boolean,
 repeat boolean, maybe_full boolean, tube_id bigint, guardian_id bigint, status text)"""
STAGE_TABLE = "screening_stage"
PERSON_TABLE = "screening_stage_person"  # (line, person_id, region_id) of the staged lines whose person is known
_WORK_MEM = "256MB"  # per hash or sort of one large batch, on PostgreSQL
_SQLITE_CHUNK = 5000
_ANALYZE_AFTER = 50_000  # rows written by one file import


class _Stage:
    """Rows streamed into the staging table: ``put`` one tuple at a time, nothing kept in memory beyond a
    chunk (SQLite) or the driver's copy buffer (PostgreSQL)."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.pg = connection.vendor == "postgresql"
        self.rows = 0
        self.campaigns: set[int] = set()
        self.household = False  # some row goes into a household tube
        self.guardians = False  # some row is registered under a guardian's document
        self.repeats = False  # some row names a person already staged for its tube
        # Two flags on each row narrow the rules that compare a batch's lines with each other to the few rows
        # they can concern: ``repeat``, the tube and person were staged before (a hash seen before: a collision
        # only flags a row for the exact check); ``maybe_full``, the tube's lines so far exceed the smallest pool
        # size among them, without which no line of a tube this batch opens can overflow it.
        self._seen: set[int] = set()
        self._tubes: dict[str, list[int]] = {}
        self._pending: list[tuple] = []
        self._copy: Any = None
        self._copy_cm: Any = None
        t = STAGE_TABLE
        cur.execute(f"DROP TABLE IF EXISTS {'pg_temp' if self.pg else 'temp'}.{t}")
        cur.execute(_STAGE_DDL.format(t=t, ts="timestamptz" if self.pg else "datetime"))
        if self.pg:
            self._copy_cm = cur.cursor.copy(f"COPY {t} ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)")
            self._copy = self._copy_cm.__enter__()
            self._copy.set_types(_STAGE_TYPES)

    def put(self, row: tuple) -> None:
        self.rows += 1
        self.campaigns.add(row[9])
        if row[17]:
            self.household = True
        if row[16]:
            self.guardians = True
        key = hash((row[2], row[3], row[4]))
        repeat = key in self._seen
        if repeat:
            self.repeats = True
        else:
            self._seen.add(key)
        tube = self._tubes.get(row[2])
        if tube is None:
            tube = self._tubes[row[2]] = [1, row[10]]
        else:
            tube[0] += 1
            if row[10] < tube[1]:
                tube[1] = row[10]
        row = (*row, repeat, tube[0] > tube[1])
        if self._copy is not None:
            self._copy.write_row(row)
            return
        at = row[7]
        at = timezone.make_naive(at, UTC).isoformat(" ") if timezone.is_aware(at) else at.isoformat(" ")
        self._pending.append((*row[:7], at, *row[8:]))
        if len(self._pending) >= _SQLITE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            marks = ", ".join(["%s"] * len(STAGE_COLUMNS))
            self.cur.executemany(f"INSERT INTO {STAGE_TABLE} ({', '.join(STAGE_COLUMNS)}) VALUES ({marks})",
                                 self._pending)  # fmt: skip
            self._pending = []

    def close(self, exc: BaseException | None = None) -> None:
        self._seen, self._tubes = set(), {}  # the flags are written: a large batch's keys need not wait for its turn
        if self._copy_cm is not None:
            cm, self._copy_cm, self._copy = self._copy_cm, None, None
            cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        elif exc is None:
            self._flush()

    def drop(self) -> None:
        schema = "pg_temp" if self.pg else "temp"
        self.cur.execute(f"DROP TABLE IF EXISTS {schema}.{STAGE_TABLE}")
        self.cur.execute(f"DROP TABLE IF EXISTS {schema}.{PERSON_TABLE}")


def _prepare(cur: Any, rows: int) -> int:
    """What a staged batch can settle before its turn to write, because no earlier batch changes it: the
    planner's statistics of the staging table, and the people the registry already holds (people are never
    deleted, so an id read now is still right when the batch is written). With two workers this runs on one
    core while the other batch is written on the other, and the final insert joins this small table instead of
    the whole registry. The people an earlier batch adds are looked up in turn, in ``_write_pending``. Returns
    how many lines found their person."""
    pg = connection.vendor == "postgresql"
    t, tp = STAGE_TABLE, PERSON_TABLE
    if pg and rows > 2000:
        # The statements below join on the staging table; without statistics the planner picks nested loops,
        # and with the default work_mem a hash over a million rows spills to disk in many batches.
        cur.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
        cur.execute(f"ANALYZE {t}")
    if not pg:
        cur.execute(f"CREATE INDEX temp.{t}_line ON {t} (line)")
        cur.execute(f"CREATE INDEX temp.{t}_scan ON {t} (scan_id)")
    cur.execute(f"DROP TABLE IF EXISTS {'pg_temp' if pg else 'temp'}.{tp}")
    cur.execute(f"""CREATE TEMP TABLE {tp} AS
                    SELECT s.line, p.id AS person_id, p.region_id FROM {t} s
                    JOIN people_person p ON p.document_type = s.doc_type AND p.document_number = s.doc_number""")
    known = cur.rowcount
    if pg and rows > 2000:
        cur.execute(f"ANALYZE {tp}")
    elif not pg:
        cur.execute(f"CREATE INDEX temp.{tp}_line ON {tp} (line)")
    return known


class _Redo(Exception):
    """An optimistic write met a scan_id already stored or repeated in its batch: undone, to be done carefully."""


def _resolve(cur: Any, *, user: Any, run_id: int | None, rows: int, detail: bool, household: bool = True,
             guardians: bool = True, repeats: bool = True, optimistic: bool = False,
             known: int | None = None) -> tuple[BatchResult, list, bool]:  # fmt: skip
    """The pooling rules and the writes, set-based over the staging table, in an order that keeps every
    statement to the rows it concerns: duplicates and rules on tubes that existed before touch few rows,
    and people (``_prepare``, then the newcomers) and tubes are resolved by natural key into the final
    insert (hash joins, no per-row updates of the staging table).

    ``optimistic`` (a registration file on PostgreSQL): the batch is first written without looking for
    its scan_ids among the stored registrations and within itself, the two statements that read the whole
    registration table and the whole batch. The unique scan_id index checks every line that is written;
    what it cannot see, a line refused by a pooling rule, is looked up afterwards, and those are few. Should
    any scan_id turn out stored or repeated, the attempt is undone (a savepoint) and the batch written the
    careful way, as are the run's later batches: a file that repeats once, a re-import, usually goes on
    doing so. Both ways give the same rows and outcomes. Returns (result, flagged lines, still optimistic).

    ``household``, ``guardians``, ``repeats``: some line goes into a household tube, some is registered under
    a guardian, some names a person already staged for its tube (the rules for them are skipped otherwise).
    ``known``: what ``_prepare`` returned, when it has already run on this staging table (a file's worker
    runs it before its turn)."""
    pg = connection.vendor == "postgresql"
    t = STAGE_TABLE
    now = timezone.now()
    if known is None:
        known = _prepare(cur, rows)
    facts = {"household": household, "guardians": guardians, "repeats": repeats, "newcomers": known < rows}
    if pg and optimistic:
        out = BatchResult()
        try:
            with transaction.atomic():
                _write_pending(cur, t, pg=pg, user=user, run_id=run_id, now=now, out=out, strict=True, **facts)
                # A refused line was not offered to the unique index: is its scan_id stored, or repeated?
                cur.execute(f"""SELECT EXISTS (SELECT 1 FROM {t} s WHERE s.status IS NOT NULL AND EXISTS (
                                  SELECT 1 FROM screening_registration r WHERE r.scan_id = s.scan_id))
                                OR EXISTS (SELECT 1 FROM {t} WHERE status IS NOT NULL
                                           GROUP BY scan_id HAVING COUNT(*) > 1)""")  # fmt: skip
                if cur.fetchone()[0]:
                    raise _Redo
        except (IntegrityError, _Redo):
            optimistic = False
        else:
            return (*_flagged(cur, t, out, detail), True)
    out = BatchResult()
    # 1. Scans already registered: the same content is a harmless re-send, other content is refused.
    cur.execute(f"""UPDATE {t} SET status = CASE WHEN r.digest = {t}.digest THEN 'duplicate' ELSE %s END
                    FROM screening_registration r WHERE r.scan_id = {t}.scan_id""", [DUPLICATE_DIFFERENT])
    # The same scan_id twice in one batch: the first line counts, and later lines are judged against its content.
    cur.execute(f"""UPDATE {t} SET status = CASE WHEN d.digest = {t}.digest THEN 'duplicate' ELSE %s END
                    FROM (SELECT g.scan_id, g.first, f.digest
                          FROM (SELECT scan_id, MIN(line) AS first FROM {t}
                                WHERE status IS NULL GROUP BY scan_id HAVING COUNT(*) > 1) g
                          JOIN {t} f ON f.line = g.first) d
                    WHERE d.scan_id = {t}.scan_id AND {t}.line > d.first AND {t}.status IS NULL""",
                [DUPLICATE_DIFFERENT])  # fmt: skip
    cur.execute(f"SELECT COUNT(*) FROM {t} WHERE status IS NULL")
    pending = cur.fetchone()[0]
    if pending:
        if pg and rows > 2000 and pending < rows // 2:
            cur.execute(f"ANALYZE {t}")  # mostly a re-send: let the planner see how few rows are left
        _write_pending(cur, t, pg=pg, user=user, run_id=run_id, now=now, out=out, **facts)
    return (*_flagged(cur, t, out, detail), False)


def _flagged(cur: Any, t: str, out: BatchResult, detail: bool) -> tuple[BatchResult, list]:
    """The batch's outcomes other than accepted: every line's (``detail``), or the refusals and a count of
    duplicates."""
    if detail:
        cur.execute(f"SELECT line, status, scan_id FROM {t} WHERE status IS NOT NULL ORDER BY line")
        flagged = cur.fetchall()
    else:
        cur.execute(f"SELECT line, status, scan_id FROM {t} WHERE status IS NOT NULL AND status <> 'duplicate'"
                    " ORDER BY line")  # fmt: skip
        flagged = cur.fetchall()
        cur.execute(f"SELECT COUNT(*) FROM {t} WHERE status = 'duplicate'")
        out.duplicate = cur.fetchone()[0]
    for line, status, scan_id in flagged:
        if status == "duplicate":
            out.outcomes[line] = ScanOutcome(scan_id, "duplicate")
            out.duplicate += 1
        else:
            out.outcomes[line] = ScanOutcome(scan_id, "refused", status, _REFUSAL_FIELD.get(status, "scan_id"))
            out.refused += 1
    return out, flagged


_REFUSAL_FIELD = {TUBE_FULL: "tube", TUBE_RESULTED: "tube", TUBE_SEALED: "tube", TUBE_OTHER_CAMPAIGN: "tube",
                  ALREADY_IN_TUBE: "document_number", UNKNOWN_GUARDIAN: "guardian_document",
                  OTHER_HOUSEHOLD: "tube"}  # fmt: skip


def _write_pending(cur: Any, t: str, *, pg: bool, user: Any, run_id: int | None, now: datetime,
                   out: BatchResult, household: bool, guardians: bool, repeats: bool, newcomers: bool,
                   strict: bool = False) -> None:  # fmt: skip
    """Steps 2-8 over the lines no earlier step refused. ``strict``: a conflict in the final insert is
    raised, not skipped (the optimistic write, which has not looked for stored scan_ids). ``newcomers``: some
    line's person was not in the registry when ``_prepare`` looked."""
    tp = PERSON_TABLE
    if newcomers:
        _add_newcomers(cur, t, pg=pg, now=now, run_id=run_id, out=out)
    if guardians:
        # Guardians (rare) are resolved on their own rows only.
        cur.execute(f"""UPDATE {t} SET guardian_id = p.id FROM people_person p
                        WHERE p.document_type = {t}.g_doc_type AND p.document_number = {t}.g_doc_number
                          AND {t}.status IS NULL AND {t}.g_doc_number <> ''""")
        cur.execute(f"UPDATE {t} SET status = %s WHERE status IS NULL AND g_doc_number <> '' AND guardian_id IS NULL",
                    [UNKNOWN_GUARDIAN])  # fmt: skip
    # 3. Rules on tubes that existed before this batch (in a city round, a few per batch).
    cur.execute(f"""UPDATE {t} SET tube_id = x.id,
                      status = CASE WHEN x.result <> '' THEN %s
                                    WHEN x.campaign_id <> {t}.campaign_id THEN %s
                                    WHEN x.sealed_at IS NOT NULL AND x.members < x.capacity THEN %s
                                    ELSE NULL END
                    FROM screening_tube x WHERE x.barcode = {t}.barcode AND {t}.status IS NULL""",
                [TUBE_RESULTED, TUBE_OTHER_CAMPAIGN, TUBE_SEALED])  # fmt: skip
    cur.execute(f"""UPDATE {t} SET status = %s WHERE status IS NULL AND tube_id IS NOT NULL AND EXISTS (
                      SELECT 1 FROM screening_registration r JOIN people_person p ON p.id = r.person_id
                      WHERE r.tube_id = {t}.tube_id AND p.document_type = {t}.doc_type
                        AND p.document_number = {t}.doc_number)""", [ALREADY_IN_TUBE])
    # 4. The same person twice in one tube within the batch: the first line counts. Only a tube and person
    # staged more than once can be concerned, and a later one of their lines carries ``repeat``.
    if repeats:
        cur.execute(f"""UPDATE {t} SET status = %s FROM (
                          SELECT barcode, doc_type, doc_number, MIN(line) AS first FROM {t}
                          WHERE status IS NULL AND (barcode, doc_type, doc_number) IN (
                            SELECT barcode, doc_type, doc_number FROM {t} WHERE repeat)
                          GROUP BY barcode, doc_type, doc_number HAVING COUNT(*) > 1) d
                        WHERE d.barcode = {t}.barcode AND d.doc_type = {t}.doc_type
                          AND d.doc_number = {t}.doc_number AND {t}.line > d.first AND {t}.status IS NULL""",
                    [ALREADY_IN_TUBE])  # fmt: skip
    # 5. A household tube takes one household: the person of its first swab (stored, else this batch's first
    # line) and whoever shares their address in the same grid. A person with no address is a household alone.
    if household:
        _household_rule(cur, t)
    # 6. Capacity, in line order, only where a tube would overflow: a tube stored before, or one whose lines
    # here exceed their smallest pool size (``maybe_full``). A tube this batch opens has the pool size of its
    # first swab.
    cur.execute(f"""UPDATE {t} SET status = %s FROM (
                      SELECT s.line,
                             COALESCE(x.members, 0) + ROW_NUMBER() OVER (PARTITION BY s.barcode ORDER BY s.line) AS n,
                             COALESCE(x.capacity, FIRST_VALUE(s.capacity) OVER (PARTITION BY s.barcode
                                                                                ORDER BY s.line)) AS cap
                      FROM {t} s LEFT JOIN screening_tube x ON x.id = s.tube_id
                      WHERE s.status IS NULL AND s.barcode IN (
                        SELECT g.barcode FROM {t} g LEFT JOIN screening_tube y ON y.id = g.tube_id
                        WHERE g.status IS NULL AND g.barcode IN (
                          SELECT c.barcode FROM {t} c WHERE c.maybe_full OR c.tube_id IS NOT NULL)
                        GROUP BY g.barcode, y.members, y.capacity
                        HAVING COALESCE(y.members, 0) + COUNT(*) > COALESCE(y.capacity, MIN(g.capacity)))) d
                    WHERE d.line = {t}.line AND d.n > d.cap""", [TUBE_FULL])  # fmt: skip
    # 7. New tubes are opened by their first swab, already holding what this batch put in them.
    collector = getattr(user, "username", "") or ""
    cur.execute(f"""INSERT INTO screening_tube (barcode, campaign_id, site_id, region_id, capacity, members,
                        collector, opened_at, sealed_at, result, is_retest)
                    SELECT f.barcode, f.campaign_id, f.site_id, f.region, f.capacity, g.n, %s, f.collected_at,
                           CASE WHEN g.n >= f.capacity THEN g.last END, '', %s
                    FROM (SELECT barcode, MIN(line) AS first, COUNT(*) AS n, MAX(collected_at) AS last FROM {t}
                          WHERE status IS NULL AND tube_id IS NULL GROUP BY barcode) g
                    JOIN {t} f ON f.line = g.first
                    ORDER BY g.first
                    ON CONFLICT (barcode) DO NOTHING""", [collector, False])  # fmt: skip
    out.tubes_opened = max(cur.rowcount, 0)
    # 8. Write what passed, people and tubes resolved by their natural keys. The checks above leave nothing
    # to conflict; should a terminal's batch land in between, the insert is redone skipping its rows.
    insert = f"""INSERT INTO screening_registration (scan_id, campaign_id, tube_id, person_id, site_id,
                     region_id, guardian_id, collected_at, digest, created_at)
                 SELECT s.scan_id, s.campaign_id, x.id, k.person_id, s.site_id, k.region_id, s.guardian_id,
                        s.collected_at, s.digest, %s
                 FROM {t} s
                 JOIN {tp} k ON k.line = s.line
                 JOIN screening_tube x ON x.barcode = s.barcode
                 WHERE s.status IS NULL"""  # fmt: skip
    if strict:
        cur.execute(insert, [now])
    else:
        try:
            with transaction.atomic():
                cur.execute(insert, [now])
        except IntegrityError:
            cur.execute(insert + " ON CONFLICT DO NOTHING", [now])
    out.accepted = max(cur.rowcount, 0)
    cur.execute(f"""UPDATE screening_tube SET members = screening_tube.members + d.n,
                      sealed_at = CASE WHEN screening_tube.members + d.n >= screening_tube.capacity
                                       THEN d.last ELSE screening_tube.sealed_at END
                    FROM (SELECT tube_id, COUNT(*) AS n, MAX(collected_at) AS last FROM {t}
                          WHERE status IS NULL AND tube_id IS NOT NULL GROUP BY tube_id) d
                    WHERE screening_tube.id = d.tube_id""")
    if guardians:
        # A minor registered under a guardian: the registry remembers the guardian.
        cur.execute(f"""UPDATE people_person SET guardian_id = s.guardian_id FROM {t} s
                        WHERE people_person.document_type = s.doc_type
                          AND people_person.document_number = s.doc_number
                          AND s.guardian_id IS NOT NULL AND s.status IS NULL
                          AND people_person.guardian_id IS NULL""")


def _add_newcomers(cur: Any, t: str, *, pg: bool, now: datetime, run_id: int | None, out: BatchResult) -> None:
    """Step 2, for the lines whose person ``_prepare`` did not find."""
    tp = PERSON_TABLE
    # 2. Unknown people join the registry, unverified, in the site's grid (the first line of each wins).
    if pg:
        cur.execute(f"""INSERT INTO people_person (name, document_type, document_number, sex, birth_date, phone,
                            address, region_id, nationality, verified, created_at, updated_at, import_run)
                        SELECT DISTINCT ON (s.doc_type, s.doc_number) s.name, s.doc_type, s.doc_number, s.sex,
                               s.birth_date, s.phone, '', s.region, 'CHN', %s, %s, %s, %s
                        FROM {t} s
                        WHERE s.status IS NULL AND NOT EXISTS (SELECT 1 FROM {tp} k WHERE k.line = s.line)
                          AND NOT EXISTS (SELECT 1 FROM people_person p
                                          WHERE p.document_type = s.doc_type AND p.document_number = s.doc_number)
                        ORDER BY s.doc_type, s.doc_number, s.line
                        ON CONFLICT (document_type, document_number) DO NOTHING""",
                    [False, now, now, run_id])  # fmt: skip
    else:
        cur.execute(f"""INSERT INTO people_person (name, document_type, document_number, sex, birth_date, phone,
                            address, region_id, nationality, verified, created_at, updated_at, import_run)
                        SELECT s.name, s.doc_type, s.doc_number, s.sex, s.birth_date, s.phone, '', s.region,
                               'CHN', %s, %s, %s, %s
                        FROM {t} s
                        WHERE s.status IS NULL AND NOT EXISTS (SELECT 1 FROM {tp} k WHERE k.line = s.line)
                          AND s.line IN (SELECT MIN(line) FROM {t} WHERE status IS NULL GROUP BY doc_type, doc_number)
                          AND NOT EXISTS (SELECT 1 FROM people_person p
                                          WHERE p.document_type = s.doc_type AND p.document_number = s.doc_number)
                        ON CONFLICT (document_type, document_number) DO NOTHING""",
                    [False, now, now, run_id])  # fmt: skip
    out.people_added = max(cur.rowcount, 0)
    # The lines whose person was not in the registry before the turn: added just now, or by an earlier batch.
    cur.execute(f"""INSERT INTO {tp} (line, person_id, region_id)
                    SELECT s.line, p.id, p.region_id FROM {t} s
                    JOIN people_person p ON p.document_type = s.doc_type AND p.document_number = s.doc_number
                    WHERE s.status IS NULL AND NOT EXISTS (SELECT 1 FROM {tp} k WHERE k.line = s.line)""")


def _household_rule(cur: Any, t: str) -> None:
    """Refuse the swabs of other households in household tubes. The tube's household is that of its first stored
    member, else of this batch's first line for it; a swab belongs if it is that person, or shares their
    (non-empty) address in the same grid. Run only for batches with household tubes."""
    cur.execute(f"""UPDATE {t} SET status = %s WHERE line IN (
                      SELECT s.line FROM {t} s
                      JOIN people_person p ON p.document_type = s.doc_type AND p.document_number = s.doc_number
                      JOIN (SELECT a.barcode, COALESCE(
                                     (SELECT r.person_id FROM screening_registration r WHERE r.tube_id = a.tube_id
                                      ORDER BY r.id LIMIT 1),
                                     (SELECT q.id FROM {t} f JOIN people_person q ON q.document_type = f.doc_type
                                                                                AND q.document_number = f.doc_number
                                      WHERE f.line = a.first)) AS anchor
                            FROM (SELECT barcode, MAX(tube_id) AS tube_id, MIN(line) AS first FROM {t}
                                  WHERE status IS NULL AND household GROUP BY barcode) a) h ON h.barcode = s.barcode
                      JOIN people_person hp ON hp.id = h.anchor
                      WHERE s.status IS NULL AND s.household AND p.id <> hp.id
                        AND NOT (hp.address <> '' AND p.address = hp.address AND p.region_id = hp.region_id))""",
        [OTHER_HOUSEHOLD])  # fmt: skip


def write_batch(rows: list[StagedRow], *, user: Any, run_id: int | None = None) -> BatchResult:
    """Stage, resolve and write one batch in one transaction (with its audit event)."""
    if not rows:
        return BatchResult()
    with transaction.atomic(), connection.cursor() as cur:
        stage = _Stage(cur)
        try:
            for r in rows:
                stage.put(_values(r))
        except BaseException as exc:
            stage.close(exc)
            raise
        stage.close()
        out, _lines, _optimistic = _resolve(cur, user=user, run_id=run_id, rows=stage.rows, detail=True,
                                            household=stage.household, guardians=stage.guardians,
                                            repeats=stage.repeats)  # fmt: skip
        stage.drop()
        _audit_batch(user, stage.campaigns, stage.rows, out, run_id)
    return out


def _audit_batch(user: Any, campaigns: set[int], scans: int, out: BatchResult, run_id: int | None) -> None:
    audit.record(user or "import", "screening.registrations", object_type="screening.campaign",
                 object_id=",".join(map(str, sorted(campaigns))), region_code=getattr(user, "region_id", "") or "",
                 changes={"scans": scans, "accepted": out.accepted, "duplicate": out.duplicate,
                          "refused": out.refused, "people_added": out.people_added,
                          "tubes_opened": out.tubes_opened, "import_run": run_id})  # fmt: skip


def _values(r: StagedRow) -> tuple:
    return (r.line, r.scan_id, r.barcode, r.doc_type, r.doc_number, r.name, r.phone, r.collected_at, r.site_id,
            r.campaign_id, r.capacity, r.person_region, r.birth_date, r.sex, r.digest, r.g_doc_type,
            r.g_doc_number, r.household)  # fmt: skip


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


REGISTRATION_KEYS = tuple(c.key for c in REGISTRATION_COLUMNS)  # the order of ``clean_fields``' fields

# Session advisory lock of a registration file whose tables' secondary indexes are deferred (core.bulkindex).
_INDEX_LOCK = 0x636F_7264_6F6E_0002
# A file defers them when it is large and the stored registrations at most a quarter of it: the first round
# of a city loaded from its terminals' exports. Its rows are estimated with a long line (the estimate errs low).
_DEFER_MIN_ROWS = 100_000
_DEFER_BYTES_PER_LINE = 160


def _deferrable() -> list[Any]:
    """The tables a registration file fills (registrations first: their size decides), whose declared
    secondary indexes (a registration's (campaign, person); a tube's site, campaign and region) no statement
    of the import reads: it finds tubes, people and scans by their unique keys, which stay."""
    from cordon.screening.models import Registration, Tube

    return [Registration, Tube]


def deferred_indexes(source: TabularFile, wanted: bool | None) -> DeferredIndexes:
    """The registrations' and tubes' secondary indexes, dropped for this file if it is much larger than the
    registrations stored (``wanted`` None) or whatever the sizes (True): a city round's first load otherwise
    pays a random insert into the (campaign, person) index for every swab, the dearest write of the round
    once that index outgrows the server's buffers, where building it after the load is one sort."""
    return DeferredIndexes.begin(_deferrable(), lock=_INDEX_LOCK, wanted=False if source.is_xlsx else wanted,
                                 rows=source.path.stat().st_size // _DEFER_BYTES_PER_LINE,
                                 min_rows=_DEFER_MIN_ROWS)  # fmt: skip


def restore_indexes(using: str = DEFAULT_DB_ALIAS, models: list[Any] | None = None) -> list[str]:
    """The registrations' and tubes' secondary indexes that a file which died while deferring them left
    missing, created again (at the start of each file and after ``migrate``)."""
    names: list[str] = []
    for model in models or _deferrable():
        names += bulkindex.restore_indexes(model, lock=_INDEX_LOCK, using=using)
    return names


def import_registrations(
    path: str | Path,
    *,
    campaign: Any,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
    defer_indexes: bool | None = None,
) -> ImportSummary:
    """A registration file (exported by sampling terminals that worked offline) into a campaign. ``workers=1``
    reads and writes on the caller's connection only; ``batch_size`` None: ``file_batch_size``.
    ``defer_indexes`` (PostgreSQL): None lets a file much larger than the stored registrations build the
    secondary indexes of registrations and tubes at the end (``deferred_indexes``); True does so whatever the
    sizes, False never."""
    from cordon.core.models import ImportRun

    path = Path(path)
    source = TabularFile(path, REGISTRATION_COLUMNS)
    with transaction.atomic():
        run = ImportRun.objects.create(kind="screening_registrations", file_name=path.name,
                                       file_sha256=file_sha256(path), user_id=getattr(user, "pk", None))  # fmt: skip
    sites = SiteResolver(user, campaign)
    sites.preload()
    restore_indexes()
    deferred = deferred_indexes(source, defer_indexes)
    try:
        summary = _import(source.records(REGISTRATION_KEYS, strip=False),
                          lambda line, rec: clean_fields(line, *rec, sites), _record_value, user=user,
                          errors_path=errors_path, batch_size=batch_size or file_batch_size(source), progress=progress,
                          run_id=run.pk, workers=workers)  # fmt: skip
    except BaseException:
        deferred.finish(failing=True)
        raise
    deferred.finish(failing=False)
    ImportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), accepted=summary.accepted,
                                               unchanged=summary.unchanged, rejected=summary.rejected,
                                               errors_path=summary.errors or "", status="done")  # fmt: skip
    return summary


_KEY_INDEX = {key: i for i, key in enumerate(REGISTRATION_KEYS)}


def _record_value(rec: tuple, key: str) -> str:
    return str(rec[_KEY_INDEX[key]]).strip() if key in _KEY_INDEX else ""


def import_rows(
    rows: Iterable[tuple[int, dict[str, Any]]],
    *,
    campaign: Any,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = FILE_BATCH,
    progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
) -> ImportSummary:
    """Rows of a registration file as dicts (line, {key: value}), streamed like a file."""
    sites = SiteResolver(user, campaign)
    sites.preload()
    return _import(rows, lambda line, row: clean_scan(line, row, sites), lambda row, key: str(row.get(key, "") or ""),
                   user=user, errors_path=errors_path, batch_size=batch_size, progress=progress,
                   run_id=run_id)  # fmt: skip


@dataclass
class _Shared:
    """What the workers of one import share: the row source (read by one worker at a time, in file order),
    whose turn it is to write, and the run's totals and error report (touched only in turn)."""

    rows: Any
    report: ErrorReport
    summary: ImportSummary
    lock: Any
    turn: Any
    next_batch: int = 0
    writing: int = 0
    exhausted: bool = False
    failed: BaseException | None = None
    failed_batch: int = -1
    done: int = 0
    optimistic: bool = True  # see ``_resolve``; off for the rest of the run once a batch repeats a scan_id


def _import(rows: Iterable[tuple[int, Any]], clean: Callable[[int, Any], tuple | ScanOutcome],
            value_of: Callable[[Any, str], str], *, user: Any, errors_path: str | Path | None, batch_size: int,
            progress: Callable[[int], None] | None, run_id: int | None, workers: int = 2) -> ImportSummary:  # fmt: skip
    """Each chunk of ``batch_size`` checked rows is copied into a staging table as it is read (the database
    ingests while Python parses) and then written with the same set-based rules as a terminal's batch, in
    one transaction. Memory does not grow with the file.

    On PostgreSQL, outside a caller's transaction, two workers on two connections take turns: while one
    writes batch k, the other reads and stages batch k+1, so the parsing of a large file overlaps the
    server's work instead of adding to it. Batches are written strictly in file order, each after the one
    before it has committed, so every rule sees exactly what a single worker would have seen."""
    import threading

    report = ErrorReport(errors_path)
    summary = ImportSummary()
    summary.extra.update({"people_added": 0, "tubes_opened": 0})
    shared = _Shared(iter(rows), report, summary, threading.Lock(), threading.Condition())
    work = _Worker(shared, clean, value_of, user=user, batch_size=batch_size, progress=progress, run_id=run_id)
    parallel = workers > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    if parallel:
        other = threading.Thread(target=work.run_in_thread, name="registrations-import", daemon=True)
        other.start()
        try:
            work.run()
        finally:
            other.join()
    else:
        work.run()
    if shared.failed is not None:
        raise shared.failed
    summary.errors = report.close()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # A large file changes the tables' sizes by whole factors: give the planner the new figures now rather
        # than when autovacuum gets round to it, or the coverage count that follows picks nested loops.
        with connection.cursor() as cur:
            if summary.accepted >= _ANALYZE_AFTER:
                cur.execute("ANALYZE screening_registration")
                cur.execute("ANALYZE screening_tube")
            if summary.accepted:
                # The time index's new block ranges (it does not ask autovacuum for each: migration 0007).
                cur.execute("SELECT brin_summarize_new_values(i) FROM to_regclass('reg_collected_brin') AS i"
                            " WHERE i IS NOT NULL")  # fmt: skip
            if summary.extra["people_added"] >= _ANALYZE_AFTER:
                cur.execute("ANALYZE people_person")
    return summary


class _EarlierBatchFailed(Exception):
    """A staged batch is abandoned because a batch before it failed: what follows a failure is never written,
    what precedes it is (each batch is its own transaction, as with a single worker)."""


class _Worker:
    def __init__(self, shared: _Shared, clean: Callable, value_of: Callable, *, user: Any, batch_size: int,
                 progress: Callable[[int], None] | None, run_id: int | None) -> None:  # fmt: skip
        self.s = shared
        self.clean = clean
        self.value_of = value_of
        self.user = user
        self.batch_size = batch_size
        self.progress = progress
        self.run_id = run_id

    def run_in_thread(self) -> None:
        try:
            self.run()
        finally:
            connection.close()  # this thread's own connection

    def run(self) -> None:
        s = self.s
        while True:
            s.lock.acquire()
            if s.exhausted or s.failed is not None:
                s.lock.release()
                return
            k = s.next_batch
            s.next_batch += 1
            try:
                self._batch(k)
            except BaseException as exc:
                with s.turn:
                    if s.failed is None or k < s.failed_batch:
                        s.failed, s.failed_batch = exc, k
                    s.turn.notify_all()
                return

    def _batch(self, k: int) -> None:
        """Read and stage batch ``k`` (holding the source's lock, released as soon as the rows are read),
        then wait for its turn and write it."""
        s = self.s
        rejected: list[RowError] = []
        locked = True
        try:
            with transaction.atomic(), connection.cursor() as cur:
                stage = _Stage(cur)
                put = stage.put
                clean = self.clean
                read = 0
                try:
                    for line, row in s.rows:
                        read += 1
                        out = clean(line, row)
                        if type(out) is tuple:
                            put(out)
                            if stage.rows >= self.batch_size:
                                break
                        else:
                            value = self.value_of(row, out.field) if out.field != "document_number" else ""
                            rejected.append(RowError(line, out.field, value, out.reason))
                    else:
                        s.exhausted = True
                except BaseException as exc:
                    s.exhausted = True
                    stage.close(exc)
                    raise
                finally:
                    locked = False
                    s.lock.release()
                stage.close()
                known = _prepare(cur, stage.rows) if stage.rows else 0
                self._wait_turn(k)
                if stage.rows:
                    res, flagged, s.optimistic = _resolve(cur, user=self.user, run_id=self.run_id,
                                                          rows=stage.rows, detail=False, household=stage.household,
                                                          guardians=stage.guardians, repeats=stage.repeats,
                                                          optimistic=s.optimistic, known=known)  # fmt: skip
                    _audit_batch(self.user, stage.campaigns, stage.rows, res, self.run_id)
                else:
                    res, flagged = BatchResult(), []
                stage.drop()
            self._account(read, rejected, res, flagged)
        finally:
            if locked:
                s.lock.release()
            with s.turn:
                if s.writing == k:
                    s.writing = k + 1
                s.turn.notify_all()

    def _wait_turn(self, k: int) -> None:
        s = self.s
        with s.turn:
            while s.writing != k and not (s.failed is not None and s.failed_batch < k):
                s.turn.wait()
            if s.failed is not None and s.failed_batch < k:
                raise _EarlierBatchFailed

    def _account(self, read: int, rejected: list[RowError], res: BatchResult, flagged: list) -> None:
        """Totals and error lines of a committed batch, in line order (still in turn)."""
        s = self.s
        errors = rejected + [RowError(line, res.outcomes[line].field, scan_id, status)
                             for line, status, scan_id in flagged]  # fmt: skip
        errors.sort(key=lambda e: e.line)
        for e in errors:
            s.report.add(e)
        s.summary.accepted += res.accepted
        s.summary.unchanged += res.duplicate
        s.summary.rejected += res.refused + len(rejected)
        s.summary.extra["people_added"] += res.people_added
        s.summary.extra["tubes_opened"] += res.tubes_opened
        s.done += read
        if self.progress:
            self.progress(s.done)


def window_start(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
