"""Bulk import of the person registry.

Rows are validated in Python, then written a batch at a time: on PostgreSQL new rows go in with a binary
COPY (the physical floor for loading rows), sorted by document, on SQLite with one executemany. Existing
people are looked up per batch by document, so a re-import of the same file finds every row unchanged and
writes nothing; on PostgreSQL a batch of newcomers is first offered whole to the unique document index,
and looked up only when that refuses it (see ``_BatchWriter``).

Speed (bench/import_people.py): a province file has 10^6 rows and more, so the per-row path is kept lean.
The common row (a well-formed resident ID) is checked by ``_RowCleaner`` without the general parsers, and
every row it does not vouch for, valid or not, goes through ``clean_person``, so accepted values and error
messages are the ones every other path produces. Reading, validating and formatting a batch of newcomers
as binary COPY data run in a background thread while the writes wait on the database. A first load into
a registry much smaller than the file builds the secondary indexes once at the end instead of row by row
(``_DeferredIndexes``), and groups its likely duplicates on a second connection meanwhile
(``_finish_and_flag``). Region codes are looked up once per chunk of the file, existing people with one
indexed query per document type and batch, and new ones go in with a binary COPY.
"""

from __future__ import annotations

import hashlib
import io
import logging
import operator
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone
from psycopg.copy import Copy, FileWriter

from cordon.core import audit
from cordon.core.bulkindex import DeferredIndexes, restore_indexes
from cordon.core.identity import (
    MIN_BIRTH_DATE,
    PROVINCE_CODES,
    DocumentType,
    IdentityError,
    normalise_phone,
    parse_document_type,
)
from cordon.core.importing import (
    Column,
    ErrorReport,
    ImportSummary,
    RowError,
    TabularFile,
    file_sha256,
)
from cordon.core.models import ImportRun
from cordon.core.readahead import read_ahead
from cordon.core.scoping import jurisdiction_prefix
from cordon.people.models import Person
from cordon.people.validation import (
    COMPARED_FIELDS,
    PERSON_FIELDS,
    FieldError,
    clean_person,
    parse_date,
    parse_sex,
)
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
# PostgreSQL types of INSERT_COLUMNS, for the binary COPY.
INSERT_TYPES = (
    "varchar", "varchar", "varchar", "varchar", "date", "varchar", "varchar", "varchar",
    "varchar", "bool", "timestamptz", "timestamptz", "int8",
)  # fmt: skip
DUPLICATE_REASON = "same name, birth date and phone"
logger = logging.getLogger(__name__)


# Where a cleaned row's fields sit in the tuples the importer passes around (PERSON_FIELDS order).
_FIELD = {f: i for i, f in enumerate(PERSON_FIELDS)}
_COMPARED_AT = tuple(_FIELD[f] for f in COMPARED)
_DOC_TYPE, _DOC_NUMBER, _REGION = _FIELD["document_type"], _FIELD["document_number"], _FIELD["region_id"]
# The number alone: three times cheaper to sort by than the (type, number) pair, and as good for the
# index, where one type holds nearly every row and numbers of different types rarely interleave.
_DOCUMENT_KEY = operator.itemgetter(_DOC_NUMBER)
# The file's columns as the reader hands them over (a record per line, no dict); ``_RowCleaner._fast``
# unpacks a record in this order.
RECORD_KEYS = tuple(c.key for c in COLUMNS)
# The fast path builds its tuple in this order; if validation ever changes PERSON_FIELDS it switches off.
_FAST_ORDER = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region_id")
_MOBILE_SECOND = frozenset("3456789")
_REGION_LENGTHS = frozenset((6, 9, 12, 15))
_CACHE_LIMIT = 65_536  # distinct dates in a century: ~36,500
_MISSING = object()
# GB 11643-1999 check character (ISO 7064 MOD 11-2): weight 2^(17-i) mod 11 for the i-th of the first 17
# digits; the character is _CHECK_CHARS[sum % 11]. The 3-digit sequence part has only 1000 values.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"
_SEQUENCE_SUMS = {
    f"{n:03d}": sum(w * int(d) for w, d in zip(_ID_WEIGHTS[14:], f"{n:03d}", strict=True)) for n in range(1000)
}


class _RegionCache:
    """Region codes seen in this run; the registry's region table is small next to the file."""

    def __init__(self, prefix: str | None) -> None:
        self.prefix = prefix
        self.known: dict[str, bool] = {}

    def prefetch(self, codes: Iterable[str]) -> None:
        """Look up, in one query per 900 codes, the codes of a chunk of rows not seen before."""
        todo = sorted({c for c in codes if c and c not in self.known})
        for start in range(0, len(todo), 900):
            chunk = todo[start : start + 900]
            found = set(Region.objects.filter(code__in=chunk).values_list("code", flat=True))
            for code in chunk:
                self.known[code] = code in found

    def check(self, code: str) -> str | None:
        if code not in self.known:
            self.known[code] = Region.objects.filter(code=code).exists()
        if not self.known[code]:
            return "unknown region code"
        if self.prefix is not None and not code.startswith(self.prefix):
            return "outside your jurisdiction"
        return None


class _RowCleaner:
    """``clean_person`` for a file, as a tuple in PERSON_FIELDS order.

    A row with a resident ID in its canonical form (18 ASCII characters), a name of letters only, and
    sex, birth date and phone that agree with the number or are empty is checked here directly: the
    same GB 11643 rules (province prefix, real date from 1900 to today, check character) and the same
    normalised values, without re-parsing the number three times, ``strptime`` per row and the regular
    expressions. Anything else, and any row that may be refused, goes to ``clean_person`` itself.

    What repeats is computed once: parsed document types, sexes and dates (pure functions of the text),
    and the weighted check sums of the region part (digits 1-6) and the birth-date part (7-14) of the
    number, so that a check character costs three look-ups instead of seventeen multiplications.
    """

    def __init__(self, today: date) -> None:
        self.today = today
        self.fast = PERSON_FIELDS == _FAST_ORDER
        self.doc_types: dict[str, DocumentType | None] = {}
        self.sexes: dict[str, str | None] = {}
        self.dates: dict[str, date | None] = {}
        self.id_regions: dict[str, int] = {}
        # digits 7-14 -> (birth date, its ISO text, weighted sum), or None if not a date from 1900 to today
        self.id_dates: dict[str, tuple[date, str, int] | None] = {}

    def clean(self, record: tuple[str, ...]) -> tuple:
        """One file record (``RECORD_KEYS`` order, "" for a column the file lacks)."""
        if self.fast:
            fast = self._fast(record)
            if fast is not None:
                return fast
        return self.general(record)

    def general(self, record: tuple[str, ...]) -> tuple:
        """``clean_person`` itself, for a record the fast path does not vouch for."""
        clean = clean_person(dict(zip(RECORD_KEYS, record, strict=True)), today=self.today)
        return tuple(clean[f] for f in PERSON_FIELDS)

    def fast_path(self) -> Callable[[tuple[str, ...]], tuple | None]:
        """The fast check alone (None: ask ``general``), for a loop that calls it per line without the extra
        call through ``clean``."""
        return self._fast if self.fast else _not_vouched

    def _id_date(self, digits: str) -> tuple[date, str, int] | None:
        try:
            born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            found = None
        else:
            ok = MIN_BIRTH_DATE <= born <= self.today
            found = (born, f"{digits[:4]}-{digits[4:6]}-{digits[6:]}", _weighted(digits, 6)) if ok else None
        if len(self.id_dates) < _CACHE_LIMIT:
            self.id_dates[digits] = found
        return found

    def _fast(self, record: tuple[str, ...]) -> tuple | None:
        name, raw_type, number, raw_sex, raw_birth, phone, address, region = record
        if (
            type(number) is not str
            or len(number) != 18
            or not number.isascii()
            or not number[:17].isdigit()
            or number[:2] not in PROVINCE_CODES
        ):
            return None
        digits = number[6:14]
        born = self.id_dates.get(digits, _MISSING)
        if born is _MISSING:
            born = self._id_date(digits)
        if born is None:
            return None
        region_part = self.id_regions.get(number[:6])
        if region_part is None:
            region_part = _weighted(number[:6], 0)
            if len(self.id_regions) < _CACHE_LIMIT:
                self.id_regions[number[:6]] = region_part
        if _CHECK_CHARS[(region_part + born[2] + _SEQUENCE_SUMS[number[14:17]]) % 11] != number[17]:
            return None
        if not name.isalpha() or len(name) > 100:
            return None  # whitespace to squeeze, punctuation (·), too long, missing: the general path
        if raw_type:
            kind = self.doc_types.get(raw_type, _MISSING)
            if kind is _MISSING:
                kind = _remember(self.doc_types, raw_type, _document_kind, IdentityError, 256)
            if kind is not DocumentType.RESIDENT_ID:
                return None
        sex = "M" if number[16] in "13579" else "F"
        if raw_sex:
            given = self.sexes.get(raw_sex, _MISSING)
            if given is _MISSING:
                given = _remember(self.sexes, raw_sex, parse_sex, FieldError, 256)
            if given != sex and given != "":
                return None  # not a sex, a mismatch, or "unknown" which a resident ID never is
        if raw_birth and raw_birth != born[1]:
            given_birth = self.dates.get(raw_birth, _MISSING)
            if given_birth is _MISSING:
                given_birth = _remember(self.dates, raw_birth, parse_date, FieldError, _CACHE_LIMIT)
            if given_birth != born[0]:
                return None  # not a date, or another date than the number's
        if phone:
            phone = phone.strip()
            if not (len(phone) == 11 and phone[0] == "1" and phone[1] in _MOBILE_SECOND and phone.isdecimal()
                    and phone.isascii()):  # fmt: skip
                try:
                    phone = normalise_phone(phone) if phone else ""
                except IdentityError:
                    return None
        else:
            phone = ""
        address = address.strip()
        if len(address) > 200:
            return None
        region = region.strip()
        if not region.isdigit() or len(region) not in _REGION_LENGTHS:
            return None
        return (name, "resident_id", number, sex, born[0], phone, address, region)


def _not_vouched(record: tuple[str, ...]) -> None:
    return None


def _remember(cache: dict, raw: str, parse: Any, error: type[Exception], limit: int) -> Any:
    """A cache miss of the row cleaner: parse once, remember the answer (None when the value is refused),
    up to ``limit`` distinct values. Only misses come here; a hit stays an inline dict lookup."""
    try:
        value = parse(raw)
    except error:
        value = None
    if len(cache) < limit:
        cache[raw] = value
    return value


def _document_kind(raw: str) -> Any:
    stripped = str(raw).strip()
    return parse_document_type(stripped) if stripped else DocumentType.RESIDENT_ID


def _weighted(digits: str, start: int) -> int:
    """GB 11643 weighted sum of ASCII ``digits`` standing at ``start`` in the 17-digit body."""
    return sum(w * (ord(c) - 48) for w, c in zip(_ID_WEIGHTS[start:], digits, strict=False))


def _cleaned_chunks(
    source: TabularFile,
    cleaner: _RowCleaner,
    chunk_size: int,
    prepare: Callable[[list[tuple[int, Any]]], _Prepared | None] | None = None,
) -> Iterator[_Chunk]:
    """The file read and cleaned in chunks, for ``read_ahead``: parsing, validating and formatting COPY
    data only (no database, no report). The writes wait on PostgreSQL most of the time (COPY into seven
    indexes, the foreign-key checks at commit), and the next chunk is cleaned meanwhile. The lines read
    before an error reading the file are handed over before that error."""
    chunk_size = max(1, chunk_size)
    chunk = _Chunk()
    # The loop runs once per line of a file of millions: the chunk's list and the checks are local names.
    items, add = chunk.items, chunk.items.append
    fast, general = cleaner.fast_path(), cleaner.general
    try:
        for line, row in source.records(RECORD_KEYS, strip=False):
            try:
                clean = fast(row)
                if clean is None:
                    clean = general(row)
            except FieldError as exc:
                add((line, exc))
                chunk.errors += 1
            else:
                add((line, clean))
            if len(items) >= chunk_size:
                _hand_over(chunk, chunk_size, prepare)
                yield chunk
                chunk = _Chunk()
                items, add = chunk.items, chunk.items.append
    except Exception:
        if chunk.items:
            _hand_over(chunk, chunk_size, prepare)  # a part chunk: its regions only
            yield chunk
        raise
    if chunk.items:
        _hand_over(chunk, chunk_size, prepare)
        yield chunk


def _hand_over(chunk: _Chunk, batch: int, prepare: Callable[[list[tuple[int, Any]]], _Prepared | None] | None) -> None:
    """The chunk's region codes, and for a whole batch without errors its COPY data."""
    chunk.regions = _regions(chunk.items)
    if prepare is not None and not chunk.errors and len(chunk.items) >= batch:
        chunk.prepared = prepare(chunk.items)


def _regions(items: list[tuple[int, Any]]) -> set[str]:
    """The region codes of a chunk's cleaned lines (a FieldError stands in for a refused one)."""
    return {clean[_REGION] for _, clean in items if type(clean) is tuple}


class _Chunk:
    """Consecutive lines of the file: (line, cleaned tuple or FieldError), how many of them are errors,
    the region codes of the cleaned ones, and, for a whole batch without errors, its COPY data."""

    __slots__ = ("errors", "items", "prepared", "regions")

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []
        self.errors = 0
        self.regions: set[str] = set()
        self.prepared: _Prepared | None = None


class _Prepared:
    """A batch's rows as binary COPY data (signature, rows sorted by document, trailer), the time
    stamped on them as created_at and updated_at, and the digest of its documents for the audit event."""

    __slots__ = ("data", "digest", "now")

    def __init__(self, data: bytes, now: Any, digest: str) -> None:
        self.data = data
        self.now = now
        self.digest = digest


def import_people(
    path: str | Path,
    *,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
    today: date | None = None,
    defer_indexes: bool | None = None,
) -> ImportSummary:
    """Import a person file. Raises FileUnusable when the file itself cannot be read (exit code 2).

    ``defer_indexes`` (PostgreSQL): None lets a first load into a registry much smaller than the file
    build the secondary indexes at the end instead of row by row (see ``_DeferredIndexes``); True does
    so whatever the sizes, False never.

    ``batch_size`` rows make one transaction and one COPY, sorted by document: the larger the sorted batch,
    the more of its rows land on neighbouring pages of the document index, and the fewer commits and audit
    events per row; at 50,000 the reader holds about 200 MB at its peak, whatever the file's length."""
    path = Path(path)
    source = TabularFile(path, COLUMNS)
    prefix = jurisdiction_prefix(user) if user is not None else None
    if user is not None and prefix is None:
        raise PermissionError("the importing user has no jurisdiction")
    regions = _RegionCache(prefix)
    report = ErrorReport(errors_path)
    summary = ImportSummary()
    # One day for the whole run, so that a file imported across midnight is judged by one rule.
    cleaner = _RowCleaner(today or date.today())
    with transaction.atomic():
        run = ImportRun.objects.create(
            kind="people", file_name=path.name, file_sha256=file_sha256(path), user_id=getattr(user, "pk", None)
        )
    writer = _BatchWriter(run, user, summary, report)
    restore_registry_indexes()
    deferred = _DeferredIndexes.for_file(path, defer_indexes)
    try:
        _load(source, cleaner, regions, writer, summary, report, batch_size, progress)
    except BaseException:
        deferred.finish(failing=True)
        raise
    flagged = _finish_and_flag(deferred, run.pk, summary.accepted + summary.updated)
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


def _finish_and_flag(deferred: DeferredIndexes, run_id: int, rows_written: int) -> int:
    """Build the deferred indexes and flag the run's likely duplicates; returns the pairs flagged.

    After a first load both are server work over the whole table with the importer idle. The index
    builds already use the server's parallel workers, but the duplicate grouping is one hashed pass on
    one core; run beside the builds on a second connection it takes about a second less per million
    people. The grouping needs no index and no lock the builds hold. The pairs are joined only once the
    indexes are there: planned without the (name, birth date) index, on a table never analysed, that join
    is estimated at one row and run as a nested loop over the whole registry, minutes instead of a
    fraction of a second. If the builds fail, the flagging is abandoned and their error raised."""
    if not deferred.definitions:
        deferred.finish(failing=False)
        return flag_duplicates(run_id, rows_written=rows_written)
    built = threading.Event()
    state: dict[str, Any] = {"built": False}

    def indexes_built() -> None:
        built.wait()
        if not state["built"]:
            raise _Abandoned

    def flag() -> None:
        try:
            state["pairs"] = flag_duplicates(run_id, rows_written=rows_written, before_pairs=indexes_built)
        except _Abandoned:
            pass
        except BaseException as exc:
            state["error"] = exc
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=flag, name="cordon-import-duplicates", daemon=True)
    thread.start()
    try:
        deferred.finish(failing=False)
        state["built"] = True
    finally:
        built.set()
        thread.join()
    if "error" in state:
        raise state["error"]
    return state["pairs"]


class _Abandoned(Exception):
    """The index builds the duplicate pairs wait for failed."""


def _load(
    source: TabularFile,
    cleaner: _RowCleaner,
    regions: _RegionCache,
    writer: _BatchWriter,
    summary: ImportSummary,
    report: ErrorReport,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Read, check and write every line of the file, a batch at a time."""
    batch: list[tuple[int, tuple]] = []
    done = 0
    prepare = writer.prepare if writer.optimistic else None
    with read_ahead(_cleaned_chunks(source, cleaner, batch_size, prepare)) as chunks:
        for chunk in chunks:
            regions.prefetch(chunk.regions)
            if not chunk.errors and not any(regions.check(code) for code in chunk.regions):
                if not batch and chunk.prepared is not None and len(chunk.items) == batch_size:
                    writer.write(chunk.items, chunk.prepared)  # a whole batch, its COPY data ready
                    done += batch_size
                    if progress:
                        progress(done)
                    continue
                # Every line of the chunk is accepted (the usual case): into the batches in slices.
                items, start = chunk.items, 0
                while start < len(items):
                    take = batch_size - len(batch)
                    batch.extend(items[start : start + take])
                    start += take
                    if len(batch) >= batch_size:
                        writer.write(batch)
                        done += len(batch)
                        batch = []
                        if progress:
                            progress(done)
                continue
            for line, clean in chunk.items:
                if type(clean) is not tuple:
                    report.add(RowError(line, _column_label(clean.field), clean.value, clean.reason))
                    summary.rejected += 1
                    continue
                problem = regions.check(clean[_REGION])
                if problem:
                    report.add(RowError(line, "region_code", clean[_REGION], problem))
                    summary.rejected += 1
                    continue
                batch.append((line, clean))
                if len(batch) >= batch_size:
                    writer.write(batch)
                    done += len(batch)
                    batch = []
                    if progress:
                        progress(done)
    if batch:
        writer.write(batch)
        done += len(batch)
        if progress:
            progress(done)


def _column_label(field: str) -> str:
    return "region_code" if field == "region_id" else field


def _existing(rows: list[tuple[int, tuple]]) -> dict[tuple[str, str], tuple]:
    """(document_type, document_number) -> (id, import_run, *COMPARED values) of the people already
    registered, found through the unique (document_type, document_number) index.

    Numbers go 1000 to a query on PostgreSQL (an array parameter): with the 50,000 of a whole batch the
    planner prefers a sequential scan of the registry once it has a few hundred thousand rows, and a
    scan per batch makes the import quadratic. The same happens at any size while the table has no
    statistics (a new registry filled by its first import: each number is then assumed to match 0.5% of
    the rows), so the table is analysed once it has rows and no statistics on document_number. SQLite
    takes 900 numbers at a time (its variable limit).
    """
    by_type: dict[str, list[str]] = {}
    for _, c in rows:
        by_type.setdefault(c[_DOC_TYPE], []).append(c[_DOC_NUMBER])
    columns = ("id", "import_run", "document_number", *COMPARED)
    found: dict[tuple[str, str], tuple] = {}
    if connection.vendor == "postgresql":
        _ensure_statistics()
        sql = (
            f"SELECT {', '.join(columns)} FROM {Person._meta.db_table} "
            "WHERE document_type = %s AND document_number = ANY(%s)"
        )
        with connection.cursor() as cur:
            for doc_type, numbers in by_type.items():
                for start in range(0, len(numbers), 1000):
                    cur.execute(sql, [doc_type, numbers[start : start + 1000]])
                    for r in cur.fetchall():
                        found[(doc_type, r[2])] = (r[0], r[1], *r[3:])
        return found
    for doc_type, numbers in by_type.items():
        for start in range(0, len(numbers), 900):
            qs = Person.objects.filter(document_type=doc_type, document_number__in=numbers[start : start + 900])
            for r in qs.values_list(*columns):
                found[(doc_type, r[2])] = (r[0], r[1], *r[3:])
    return found


def _ensure_statistics() -> None:
    """ANALYZE the registry if it has rows but the planner knows nothing about document_number yet.
    Once known, the number is unique (n_distinct -1, a fraction of the rows) however much the table grows,
    so this runs at most once per table, not once per import."""
    table = Person._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = ANY(current_schemas(false)) "
            "AND tablename = %s AND attname = 'document_number')",
            [table],
        )
        if cur.fetchone()[0]:
            return
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
        if cur.fetchone()[0]:
            cur.execute(f"ANALYZE {table}")


# Session advisory lock held by a load that has dropped the registry's secondary indexes: the repair in
# ``restore_registry_indexes`` leaves them to that load while it runs, and a second load does not defer.
_INDEX_LOCK = 0x636F_7264_6F6E_0001
# Deferring pays off when the file is large and the registry much smaller: the indexes are then rebuilt
# over a table the file mostly makes up. A file's rows are estimated from its size with a generous line
# length (the estimate errs low), and a registry of at most a quarter of that counts as much smaller.
_DEFER_MIN_ROWS = 100_000
_BYTES_PER_LINE = 256
# Hash memory for counting the (name, birth date, phone) groups of a first load: 10^6 people take ~170 MB.
_GROUPING_MEMORY = 256 * 2**20


class _DeferredIndexes(DeferredIndexes):
    """A first load of the registry with its secondary indexes built at the end (``core.bulkindex``).

    Maintaining the (name, birth date), region and import-run indexes row by row costs a COPY about as
    much as the rows themselves. The primary key and the unique document constraint stay: they check
    every row, and the lookups of the careful path use the latter. The partial guardian index is
    nearly empty and costs nothing per row, so it stays too. The region foreign key goes with the
    indexes: checked per row it looks up and locks a region for every person (a quarter of the load),
    while the loader has already refused every unknown code; it comes back checked in one pass over the
    table (NOT VALID, then VALIDATE), so the database's guarantee holds again when the load ends.
    """

    @classmethod
    def for_file(cls, path: Path, wanted: bool | None) -> DeferredIndexes:
        """``wanted`` None: defer for a file much larger than the registry; True: whatever the sizes."""
        return cls.begin([Person], lock=_INDEX_LOCK, wanted=wanted, rows=path.stat().st_size // _BYTES_PER_LINE,
                         min_rows=_DEFER_MIN_ROWS, drop_keys=_drop_region_keys, add_keys=_add_region_keys)  # fmt: skip


def _region_keys(cur: Any, table: str = "") -> dict[str, str]:
    """name -> definition of the registry's foreign keys to the region table (one, as the model declares)."""
    cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = to_regclass(%s) AND confrelid = to_regclass(%s)",
        [table or Person._meta.db_table, Region._meta.db_table],
    )
    return dict(cur.fetchall())


def _drop_region_keys(cur: Any) -> dict[str, str]:
    keys = _region_keys(cur)
    for name in sorted(keys):
        cur.execute(f'ALTER TABLE {Person._meta.db_table} DROP CONSTRAINT "{name}"')
    return keys


def _add_region_keys(cur: Any, keys: dict[str, str], table: str = "", using: str = DEFAULT_DB_ALIAS) -> None:
    """Add the region key again, checked in one pass over the table (NOT VALID, then VALIDATE) instead of a
    lookup and a row lock per person; each step its own short transaction. The load only wrote region codes
    it had looked up, so the check finds nothing; should it, the key stays in force for new rows and the
    failure is raised."""
    table = table or Person._meta.db_table
    present = _region_keys(cur, table)
    for name, definition in sorted(keys.items()):
        if name not in present:
            with transaction.atomic(using=using):
                cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition} NOT VALID')
        with transaction.atomic(using=using):
            cur.execute(f'ALTER TABLE {table} VALIDATE CONSTRAINT "{name}"')


def restore_registry_indexes(using: str = DEFAULT_DB_ALIAS, model: Any = Person) -> list[str]:
    """Create the registry's secondary indexes, and its region key, that are missing, unless a load deferring
    them is running; returns their names. Runs at the start of each import and after ``migrate``."""
    conn = connections[using]
    table = model._meta.db_table

    def region_key(cur: Any) -> dict[str, str]:
        if _region_keys(cur, table):
            return {}
        # A first load that died left the region key out too: add it as the model declares it.
        field = model._meta.get_field("region")
        editor = conn.schema_editor(collect_sql=True)
        name = editor._fk_constraint_name(model, field, "_fk_%(to_table)s_%(to_column)s")
        fk = str(editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))
        definition = fk.split(f"ADD CONSTRAINT {name} ", 1)[1]
        logger.warning("adding the missing region key of %s", table)
        _add_region_keys(cur, {str(name).strip('"'): definition}, table, using)
        return {str(name).strip('"'): definition}

    return restore_indexes(model, lock=_INDEX_LOCK, using=using, repair=region_key)


class _BatchWriter:
    """Writes the batches of one run, each in one transaction with its audit event.

    On PostgreSQL a batch is first offered to the registry as it is: a binary COPY of every row, in a
    savepoint. When none of its documents is registered yet or repeated within the batch (the first
    load of a district, a file of newcomers), that is the whole write: the unique (document_type,
    document_number) constraint has just checked every row, and the per-batch lookup, an index probe
    per row that on a registry of millions costs a good part of the insert itself, is skipped. The
    first batch that meets a taken document rolls back and is written the careful way (first line of
    each document, look up, compare, insert the new, update the changed), and so is every later batch
    of the run: a file that overlaps the registry once usually goes on doing so, and a re-import then
    costs one refused COPY, not one per batch. Both ways give the same rows, counts, report lines and
    audit event.

    The first line of a document in a file wins, in every import of that file: a later line with other
    details is refused, however many batches apart. The registry itself remembers the documents the
    run inserted or updated (their ``import_run``); those it found unchanged leave no trace there, so the
    run keeps them in a set (``_document_key``: a resident ID as one integer, about 65 MB per 10^6 such
    rows; nothing on a first load, where every row is new). Without it a re-import would take the later
    line for a change to a person an earlier run registered, and write it. The set is exact: no document
    is ever mistaken for another, so the same file meets the same answers every time.
    """

    def __init__(self, run: ImportRun, user: Any, summary: ImportSummary, report: ErrorReport) -> None:
        self.run = run
        self.user = user
        self.summary = summary
        self.report = report
        self.optimistic = connection.vendor == "postgresql"
        self.kept: set[int | tuple[str, str]] = set()  # _document_key of the documents found unchanged
        self._raw = connection.connection if self.optimistic else None

    def prepare(self, items: list[tuple[int, Any]]) -> _Prepared | None:
        """The binary COPY data of a batch for ``_copy_all``, built on the reader thread while this one
        waits for the server: formatting the rows is the writing thread's largest own cost. A psycopg
        ``Copy`` with a ``FileWriter`` formats without talking to the server; it only reads the
        connection's type adapters. Nothing once a batch has been refused (the rows then go the careful
        way, formatted there)."""
        if not self.optimistic or self._raw is None:
            return None
        now = timezone.now()
        run_id = self.run.pk
        out = io.BytesIO()
        with psycopg.Cursor(self._raw) as cur, Copy(cur, binary=True, writer=FileWriter(out)) as copy:
            copy.set_types(list(INSERT_TYPES))
            tail = _tail(now, run_id)
            for row in _in_document_order([clean + tail for _, clean in items]):
                copy.write_row(row)
        return _Prepared(out.getvalue(), now, _documents_digest(items))

    def write(self, batch: list[tuple[int, tuple]], prepared: _Prepared | None = None) -> None:
        run, summary = self.run, self.summary
        now = timezone.now() if prepared is None else prepared.now
        run_id = run.pk
        changed: list[Person] = []
        unchanged = 0
        with transaction.atomic():
            digest = None
            if self.optimistic and self._copy_all(batch, now, prepared):
                # The constraint accepted every row: none was registered, none appears twice in the batch.
                rows = batch
                new_rows = [clean for _, clean in batch]
                digest = prepared.digest if prepared is not None else None
            else:
                rows = self._first_of_each_document(batch)
                new_rows, changed, unchanged = self._classify(rows, now)
                tail = _tail(now, run_id)
                _insert_values(_in_document_order([r + tail for r in new_rows]))
            if changed:
                Person.objects.bulk_update(changed, [*COMPARED, "import_run", "updated_at"], batch_size=500)
            audit.record(
                self.user or "import",
                "people.import_batch",
                object_type="core.importrun",
                object_id=run_id,
                region_code=getattr(getattr(self.user, "region", None), "code", ""),
                changes={
                    "file": run.file_name,
                    "lines": [batch[0][0], batch[-1][0]],
                    "inserted": len(new_rows),
                    "updated": [p.pk for p in changed],
                    "unchanged": unchanged,
                    "documents_sha256": digest or _documents_digest(rows),
                },
            )
        summary.accepted += len(new_rows)
        summary.updated += len(changed)
        summary.unchanged += unchanged

    def _copy_all(self, batch: list[tuple[int, tuple]], now: Any, prepared: _Prepared | None) -> bool:
        """COPY the whole batch in a savepoint; False (and careful from now on) if a document is taken."""
        try:
            with transaction.atomic():
                if prepared is not None:
                    copy_data(Person._meta.db_table, INSERT_COLUMNS, prepared.data)
                    return True
                tail = _tail(now, self.run.pk)
                copy_rows(
                    Person._meta.db_table,
                    INSERT_COLUMNS,
                    _in_document_order([clean + tail for _, clean in batch]),
                    types=INSERT_TYPES,
                )
        except IntegrityError:
            self.optimistic = False
            return False
        return True

    def _first_of_each_document(self, batch: list[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
        """Within one batch a document seen twice keeps its first line; later lines are judged against it:
        the same details count as unchanged, other details are refused."""
        first: dict[tuple[str, str], tuple[int, tuple]] = {}
        rows: list[tuple[int, tuple]] = []
        for line, clean in batch:
            key = (clean[_DOC_TYPE], clean[_DOC_NUMBER])
            if key in first:
                other_line, other = first[key]
                if any(other[i] != clean[i] for i in _COMPARED_AT):
                    self.report.add(
                        RowError(
                            line, "document_number", key[1], f"same document as line {other_line} with other details"
                        )
                    )
                    self.summary.rejected += 1
                else:
                    self.summary.unchanged += 1
                continue
            first[key] = (line, clean)
            rows.append((line, clean))
        return rows

    def _classify(self, rows: list[tuple[int, tuple]], now: Any) -> tuple[list[tuple], list[Person], int]:
        """Split the rows into new people, changed people (as Person objects ready for bulk_update) and a
        count of unchanged ones; a document an earlier line of this run wrote or found unchanged, with other
        details, is refused."""
        existing = _existing(rows)
        run_id = self.run.pk
        kept = self.kept
        new_rows: list[tuple] = []
        changed: list[Person] = []
        unchanged = 0
        for line, clean in rows:
            current = existing.get((clean[_DOC_TYPE], clean[_DOC_NUMBER])) if existing else None
            if current is None:
                new_rows.append(clean)
                continue
            if all(current[2 + k] == clean[i] for k, i in enumerate(_COMPARED_AT)):
                unchanged += 1
                if current[1] != run_id:
                    kept.add(_document_key(clean[_DOC_TYPE], clean[_DOC_NUMBER]))
                continue
            if current[1] == run_id or (kept and _document_key(clean[_DOC_TYPE], clean[_DOC_NUMBER]) in kept):
                self.report.add(
                    RowError(
                        line,
                        "document_number",
                        clean[_DOC_NUMBER],
                        "same document as an earlier line with other details",
                    )
                )
                self.summary.rejected += 1
                continue
            # The stored row with every compared field set to the file's value (the changed ones differ).
            values = {f: clean[i] for f, i in zip(COMPARED, _COMPARED_AT, strict=True)}
            changed.append(Person(pk=current[0], import_run=run_id, updated_at=now, **values))
        return new_rows, changed, unchanged


def _documents_digest(rows: list[tuple[int, Any]]) -> str:
    """SHA-256 of the documents a batch event covers, in line order."""
    return hashlib.sha256("\n".join(f"{c[_DOC_TYPE]}|{c[_DOC_NUMBER]}" for _, c in rows).encode()).hexdigest()


def _document_key(doc_type: str, number: str) -> int | tuple[str, str]:
    """A document, compactly and exactly: a resident ID as the integer of its first 17 digits (the 18th
    is their check character, so they name the document alone), any other as (type, number)."""
    if doc_type == "resident_id" and len(number) == 18 and number[:17].isdigit():
        return int(number[:17])
    return (doc_type, number)


def _tail(now: Any, run_id: int) -> tuple:
    """The values after a cleaned row's own (INSERT_COLUMNS order), the same for a whole batch: appended by
    one tuple concatenation, which costs half of unpacking the row into a new tuple."""
    return ("CHN", True, now, now, run_id)


def _in_document_order(values: list[tuple]) -> list[tuple]:
    """The rows of a batch sorted by document, the order they are written in.

    A file comes in no useful order, so each row lands on a random page of the unique document index
    (and, since a resident ID begins with its county, of the region indexes too). Sorted, consecutive
    rows land on the same or the next pages: on a registry of a million, about a fifth less work for
    the server per batch. The ids then follow the documents within a batch; nothing reads meaning into
    that order (line numbers stay in the report and the audit event).
    """
    values.sort(key=_DOCUMENT_KEY)
    return values


def insert_people_rows(rows: list[dict[str, Any]], run_id: int, now: Any) -> None:
    if not rows:
        return
    tail = _tail(now, run_id)
    values = [
        (r["name"], r["document_type"], r["document_number"], r["sex"], r["birth_date"], r["phone"], r["address"],
         r["region_id"], *tail)
        for r in rows
    ]  # fmt: skip
    _insert_values(values)


def _insert_values(values: list[tuple]) -> None:
    """Rows already in INSERT_COLUMNS order."""
    if not values:
        return
    table = Person._meta.db_table
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                copy_rows(table, INSERT_COLUMNS, values, types=INSERT_TYPES)
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


def copy_data(table: str, columns: tuple[str, ...], data: bytes) -> None:
    """COPY ready binary COPY data (signature to trailer) into a PostgreSQL table; errors as Django's."""
    with connection.cursor() as cur, connection.wrap_database_errors:
        with cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data)


def copy_rows(table: str, columns: tuple[str, ...], values: list[tuple], types: tuple[str, ...] | None = None) -> None:
    """COPY rows into a PostgreSQL table through psycopg 3: binary when the column types are given (no
    text formatting or parsing per value, the fastest way in), text COPY with typed rows otherwise.

    psycopg's own errors are turned into Django's (a duplicate document raises django.db.IntegrityError),
    as for any query, so that callers can catch them: the raw cursor's COPY bypasses Django's wrapper.
    """
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cur, connection.wrap_database_errors:
        raw = cur.cursor
        if types is None:
            with raw.copy(statement) as copy:
                for row in values:
                    copy.write_row(row)
            return
        with raw.copy(f"{statement} (FORMAT BINARY)") as copy:
            copy.set_types(list(types))
            for row in values:
                copy.write_row(row)


def flag_duplicates(
    run_id: int, *, rows_written: int | None = None, before_pairs: Callable[[], None] | None = None
) -> int:
    """Flag likely duplicates among the people this run wrote: set-based, not a lookup per row.

    ``rows_written`` (what the importer wrote in this run) chooses the plan on PostgreSQL. A run that is
    a small part of the registry joins its own rows to the rest through the (name, birth date) index.
    When the run is most of the registry (a first load), that self-join of the whole table sorts it
    twice on disk; instead the (name, birth date, phone) groups with more than one person, one of them
    from this run, are found with one hashed pass over the table (usually a few hundred among a million)
    and only their members are joined. Both give the same pairs.

    ``before_pairs`` is called just before the pairs are joined: an import flagging beside its index
    builds waits there for them.
    """
    table = Person._meta.db_table
    now = timezone.now()
    pairs = """
        INSERT INTO people_duplicateflag (person_id, other_id, reason, status, region_id, created_at)
        SELECT n.id, o.id, %s, 'open', n.region_id, %s
        FROM {source}
          ON o.name = n.name AND o.birth_date = n.birth_date AND o.phone = n.phone AND o.id <> n.id
        WHERE n.import_run = %s AND n.phone <> ''
          AND (o.import_run IS NULL OR o.import_run <> n.import_run OR o.id < n.id)
          AND NOT EXISTS (SELECT 1 FROM people_duplicateflag f
                          WHERE (f.person_id = n.id AND f.other_id = o.id) OR (f.person_id = o.id AND f.other_id = n.id))
    """
    with transaction.atomic(), connection.cursor() as cur:
        if rows_written and connection.vendor == "postgresql" and _most_of_registry(cur, table, rows_written):
            # The groups are counted in one hash table: with the default work_mem the planner sorts the whole
            # registry through the (name, birth date) index instead, which takes about twice as long.
            cur.execute(f"SET LOCAL work_mem = '{_GROUPING_MEMORY // 2**20}MB'")
            cur.execute(
                f"""CREATE TEMP TABLE cordon_duplicate_keys ON COMMIT DROP AS
                    SELECT name, birth_date, phone FROM {table}
                    WHERE phone <> '' AND birth_date IS NOT NULL
                    GROUP BY name, birth_date, phone
                    HAVING count(*) > 1 AND bool_or(import_run = %s)""",
                [run_id],
            )
            cur.execute("ANALYZE cordon_duplicate_keys")
            if before_pairs is not None:
                before_pairs()
            source = (
                f"cordon_duplicate_keys g JOIN {table} n"
                " ON n.name = g.name AND n.birth_date = g.birth_date AND n.phone = g.phone"
                f" JOIN {table} o"
            )
            cur.execute(pairs.format(source=source), [DUPLICATE_REASON, now, run_id])
            count = cur.rowcount
            cur.execute("DROP TABLE cordon_duplicate_keys")
        else:
            if before_pairs is not None:
                before_pairs()
            cur.execute(pairs.format(source=f"{table} n JOIN {table} o"), [DUPLICATE_REASON, now, run_id])
            count = cur.rowcount
        if count:
            audit.record("import", "people.duplicates_flagged", object_type="core.importrun", object_id=run_id,
                         changes={"pairs": count})  # fmt: skip
    return max(count, 0)


def _most_of_registry(cur: Any, table: str, rows_written: int) -> bool:
    """Whether a run's rows are at least an eighth of the registry (by the planner's row estimate; a
    table never analysed counts as holding only the run's rows)."""
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
    estimate = cur.fetchone()[0]
    return rows_written * 8 >= max(estimate, 0)
