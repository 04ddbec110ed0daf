"""Space-time co-location ("时空伴随") over venue check-in logs.

Who shared a venue with an index person while that person was infectious, and for how long?
The question is asked over tens of millions of check-ins, so it is answered by an analytics
engine, never by the ORM. This module holds the engine; it imports nothing from Django so that
the tracing app, the CLI and the benchmarks can all call it.

Semantics (decided here, relied upon by the tests and by both engines):

* A stay is ``[checkin_at, checkout_at)`` in whole seconds (sub-second parts are dropped). An
  empty checkout means ``checkin_at + default stay``. A checkout before the check-in is a bad row;
  a checkout equal to the check-in is a zero-length stay that overlaps nothing.
* A time without an offset is wall-clock time in the deployment zone (``tz``, default
  Asia/Shanghai); a time with an offset (``+08:00``, ``Z``) is taken as given.
* A person's stays at one venue are merged before time is counted, so overlapping or duplicated
  stays count once. Touching stays (one ends exactly when the next starts) merge too; it changes
  nothing in the minutes counted and gives one continuous visit.
* Only the index person's stays inside the infectious window count: index stays are clipped to
  ``[infectious_from, infectious_to]`` (several windows for one person are united).
* Time together for (index, contact, venue) is the measure of the intersection of both merged
  stay sets; it must be positive (touching is not contact) and at least the minimum overlap
  (exactly equal counts). An index person can be another index person's contact; nobody is
  their own contact.
* Output, sorted by (index_person_id, contact_person_id, venue_code), byte order:
  ``index_person_id, contact_person_id, venue_code, first_overlap_start, overlap_minutes`` where
  ``first_overlap_start`` is ISO 8601 in the deployment zone with its offset
  (``2022-05-01T10:00:00+08:00``) and ``overlap_minutes`` is the whole number of minutes, floored
  (a row with 15 min 59 s shows 15). DuckDB and Spark give byte-identical files.

How it runs: the co-location query is written once, as a list of SQL ``SELECT`` steps that both
DuckDB and Spark SQL accept (``core_steps``). Each step becomes a temporary view, or, for the
results worth computing once, a materialised relation; the only dialect-specific text is that
wrapper (``CREATE TEMPORARY TABLE`` on DuckDB, a view plus ``CACHE TABLE`` on Spark) and two
DuckDB definitions that give it Spark's names (type ``TIMESTAMP_LTZ``, function
``unix_seconds``). The check-ins are read twice: once for the index persons' own stays (a join
the engines push into the scan), and once for the contact search and the bad-row report
together. The contact search is an equi-join on ``(venue_code, hour bucket)`` with the overlap
as a filter, so a popular venue does not pair every visitor with every index stay of the
fortnight; stays longer than ``LONG_STAY_S`` take a bucket-free key on the same join. The CSV is
formatted by DuckDB for both engines (zone offsets looked up once per offset change, not per
row), which is what makes the two engines' files byte-identical.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

DEFAULT_TZ = "Asia/Shanghai"
CHECKIN_COLUMNS = ("person_id", "venue_code", "checkin_at", "checkout_at")
INDEX_COLUMNS = ("person_id", "infectious_from", "infectious_to")
OUTPUT_COLUMNS = (
    "index_person_id",
    "contact_person_id",
    "venue_code",
    "first_overlap_start",
    "overlap_minutes",
)
BAD_ROW_COLUMNS = ("file", "line", "field", "value", "reason")

#: Width of the time buckets of the contact join, in seconds.
BUCKET_S = 3600
#: Contact stays longer than this are joined per venue without buckets (they are few).
LONG_STAY_S = 4 * 3600
#: How many bad rows a result carries in memory; the total is always counted, and
#: ``errors_out`` receives all of them.
MAX_BAD_ROWS_KEPT = 1000
#: Environment variable capping DuckDB's memory (e.g. "3GB"; it spills to disk beyond it).
MEMORY_ENV = "CORDON_DUCKDB_MEMORY"

Engine = Literal["duckdb", "spark"]
StageCallback = Callable[[str], None]
IndexInput = str | Path | Iterable[Mapping[str, Any] | Sequence[Any]]
CheckinsInput = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class BadRow:
    """One rejected input row: where it is, which field, what it held, and why."""

    file: str
    line: int | None
    field: str
    value: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "value": self.value,
                "reason": self.reason}


@dataclass
class ColocationResult:
    """What a run produced: the row count, where it went, how long each stage took, bad rows."""

    rows: int
    engine: str
    out: Path | None
    timings: dict[str, float]
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_row_count: int = 0
    #: The rows themselves when no ``out`` file was asked for (Python API, case pages).
    records: list[dict[str, Any]] | None = None


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

_CSV_SUFFIXES = {".csv", ".txt"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


def validate_tz(tz: str) -> str:
    """Refuse unknown zones early: a typo would otherwise shift every naive time silently."""
    try:
        ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError on odd keys
        raise ValueError(f"unknown time zone: {tz!r}") from exc
    return tz


def expand_sources(src: CheckinsInput) -> tuple[list[Path], list[Path]]:
    """Resolve files and folders to (csv_files, parquet_files), sorted for determinism.

    Folders are searched recursively; names starting with ``.`` or ``_`` (manifests, staging
    folders of the check-in store) are skipped.
    """
    items = [src] if isinstance(src, str | Path) else list(src)
    csvs: list[Path] = []
    parquets: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        candidates = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        for p in candidates:
            suffix = p.suffix.lower()
            if suffix in _CSV_SUFFIXES:
                csvs.append(p.resolve())
            elif suffix in _PARQUET_SUFFIXES:
                parquets.append(p.resolve())
            elif path.is_file():
                raise ValueError(f"{p}: expected a .csv or .parquet file")
    if not csvs and not parquets:
        raise ValueError(f"no CSV or Parquet files found in {src}")
    return sorted(set(csvs)), sorted(set(parquets))


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) unless the first bytes say otherwise; partner exports from
    older systems are often GBK, for which GB18030 is the safe superset."""
    with open(path, "rb") as fh:
        sample = fh.read(1 << 16)
    cut = sample.rfind(b"\n")
    if cut > 0:
        sample = sample[:cut]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(sample).best()
        if best is not None and best.encoding.lower().replace("_", "") not in {"ascii", "utf8"}:
            return "gb18030" if best.encoding.lower() in {"gbk", "gb2312", "gb18030"} else best.encoding
    except ImportError:  # pragma: no cover - charset-normalizer is a dependency
        pass
    return "gb18030"


def _header_map(path: Path, encoding: str, required: Sequence[str]) -> dict[str, str]:
    """Map required column names to the header's spelling (case, spaces and BOM forgiven)."""
    with open(path, encoding=encoding, newline="") as fh:
        header = next(csv.reader([fh.readline()]), [])
    found = {h.strip().lstrip("\ufeff").strip().lower(): h for h in header}
    missing = [c for c in required if c not in found]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (header: {header})")
    return {c: found[c] for c in required}


_STAGED_SCHEMA = pa.schema(
    [("src_file", pa.string()), ("src_line", pa.int64())] + [(c, pa.string()) for c in CHECKIN_COLUMNS]
)


def stage_csv(path: Path, out: Path, *, batch_rows: int = 1 << 16) -> tuple[int, list[BadRow]]:
    """Stream one check-in CSV into a Parquet file of strings with its line numbers.

    Both engines then read the same staged file, which is how a Spark run and a DuckDB run
    report the same line for the same bad row. Line numbers are physical lines (header = 1) as
    long as no quoted field spans lines. Rows with the wrong number of fields are reported and
    dropped; because the fast reader cannot say where they were, such a file is re-read with
    the exact (slower) Python reader.
    """
    encoding = detect_encoding(path)
    names = _header_map(path, encoding, CHECKIN_COLUMNS)
    malformed: list[str] = []

    def on_invalid(row: Any) -> str:
        malformed.append(row.text)
        return "skip"

    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(encoding=encoding, block_size=1 << 24),
        parse_options=pa_csv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pa_csv.ConvertOptions(
            include_columns=[names[c] for c in CHECKIN_COLUMNS],
            column_types={names[c]: pa.string() for c in CHECKIN_COLUMNS},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    src = str(path)
    rows = 0
    with pq.ParquetWriter(out, _STAGED_SCHEMA) as writer:
        for batch in reader:
            n = batch.num_rows
            if not n:
                continue
            cols = [pa.repeat(pa.scalar(src, pa.string()), n),
                    pa.array(np.arange(rows + 2, rows + 2 + n, dtype=np.int64))]
            cols += [pa_compute.utf8_trim_whitespace(batch.column(names[c])) for c in CHECKIN_COLUMNS]
            writer.write_batch(pa.record_batch(cols, schema=_STAGED_SCHEMA))
            rows += n
    if not malformed:
        return rows, []
    return _stage_csv_exact(path, out, encoding, batch_rows)


def _stage_csv_exact(path: Path, out: Path, encoding: str, batch_rows: int) -> tuple[int, list[BadRow]]:
    """Slow path for files with malformed rows: Python's csv module knows every line number."""
    bad: list[BadRow] = []
    src = str(path)
    rows = 0
    with open(path, encoding=encoding, newline="") as fh, pq.ParquetWriter(out, _STAGED_SCHEMA) as writer:
        reader = csv.reader(fh)
        header = next(reader)
        norm = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
        pos = [norm.index(c) for c in CHECKIN_COLUMNS]
        width = len(header)
        buf: dict[str, list[Any]] = {k: [] for k in _STAGED_SCHEMA.names}

        def flush() -> None:
            if buf["src_line"]:
                writer.write_batch(pa.record_batch([pa.array(buf[k], t) for k, t in
                                                    zip(_STAGED_SCHEMA.names, _STAGED_SCHEMA.types,
                                                        strict=True)], schema=_STAGED_SCHEMA))
                for v in buf.values():
                    v.clear()

        for record in reader:
            line = reader.line_num
            if not record:
                continue  # blank line
            if len(record) != width:
                bad.append(BadRow(src, line, "*", ",".join(record)[:200],
                                  f"expected {width} fields, found {len(record)}"))
                continue
            buf["src_file"].append(src)
            buf["src_line"].append(line)
            for c, p in zip(CHECKIN_COLUMNS, pos, strict=True):
                buf[c].append(record[p].strip())
            rows += 1
            if len(buf["src_line"]) >= batch_rows:
                flush()
        flush()
    return rows, bad


def _ts_kind(arrow_type: pa.DataType | None) -> str:
    if arrow_type is None:
        raise ValueError("missing column")
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "typed"
    return "text"


@dataclass(frozen=True)
class SourceGroup:
    """Files an engine reads as one relation: same column kinds, same way to locate a row."""

    files: tuple[Path, ...]
    checkin_kind: str  # "typed" (a timestamp column) or "text" (ISO 8601 strings)
    checkout_kind: str
    staged: bool  # staged CSV: carries src_file/src_line columns
    #: A relation already registered in the DuckDB session instead of files (case pages).
    relation: str | None = None


def group_parquet(files: Sequence[Path]) -> list[SourceGroup]:
    """Group Parquet files by the kinds of their time columns (read from the footers only)."""
    groups: dict[tuple[str, str, bool], list[Path]] = {}
    for f in files:
        schema = pq.read_schema(f)
        names = set(schema.names)
        missing = [c for c in CHECKIN_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{f}: missing column(s) {', '.join(missing)}")
        key = (
            _ts_kind(schema.field("checkin_at").type),
            _ts_kind(schema.field("checkout_at").type),
            {"src_file", "src_line"} <= names,
        )
        groups.setdefault(key, []).append(f)
    return [SourceGroup(tuple(v), k[0], k[1], k[2]) for k, v in sorted(groups.items())]


def read_index_rows(index: IndexInput) -> list[tuple[str, int, str | None, str | None, str | None]]:
    """Index persons as (file, line, person_id, from, to) strings; the engine parses the times.

    The index list is small (people, not check-ins), so it is read here rather than staged.
    Datetimes given through the Python API are passed on in ISO form: naive stays naive (it
    means the deployment zone), aware keeps its offset.
    """
    if isinstance(index, str | Path):
        path = Path(index)
        encoding = detect_encoding(path)
        names = _header_map(path, encoding, INDEX_COLUMNS)
        rows: list[tuple[str, int, str | None, str | None, str | None]] = []
        with open(path, encoding=encoding, newline="") as fh:
            reader = csv.DictReader(fh)
            for rec in reader:
                if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                    continue
                rows.append((str(path.resolve()), reader.line_num,
                             *(rec.get(names[c]) for c in INDEX_COLUMNS)))
        return rows

    out: list[tuple[str, int, str | None, str | None, str | None]] = []
    for i, item in enumerate(index, start=1):
        if isinstance(item, Mapping):
            values = [item.get(c) for c in INDEX_COLUMNS]
        else:
            values = list(item)[:3]
        out.append(("<index>", i, *(_as_text(v) for v in values)))
    return out


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------------------------
# The shared SQL
# --------------------------------------------------------------------------------------------

def _text(col: str) -> str:
    return f"NULLIF(TRIM(CAST({col} AS STRING)), '')"


def _source_select(view: str, group: SourceGroup) -> str:
    """Parse one source relation into the common shape. Same text on both engines.

    No TRIM here: it costs more than the whole Parquet decode at ten million rows. Staged CSVs
    are trimmed while staging (vectorised), and Parquet producers are expected to write clean
    identifiers; an empty string counts as missing.
    """
    parts = ["src_file", "src_line", "CAST(person_id AS STRING) AS person_id",
             "CAST(venue_code AS STRING) AS venue_code"]
    for col, kind, short in (("checkin_at", group.checkin_kind, "checkin"),
                             ("checkout_at", group.checkout_kind, "checkout")):
        if kind == "typed":
            # The report shows a typed time from its seconds (formatted once, in Python), so no
            # engine has to turn ten million timestamps into text.
            parts += [
                f"CAST(NULL AS STRING) AS {short}_raw",
                f"{col} IS NOT NULL AS has_{short}",
                f"unix_seconds(CAST({col} AS TIMESTAMP_LTZ)) AS {short}_s",
            ]
        else:
            parts += [
                f"CAST({col} AS STRING) AS {short}_raw",
                f"COALESCE(CAST({col} AS STRING) <> '', FALSE) AS has_{short}",
                f"unix_seconds(TRY_CAST(CAST({col} AS STRING) AS TIMESTAMP_LTZ)) AS {short}_s",
            ]
    return f"SELECT {', '.join(parts)} FROM {view}"


_MISSING_PERSON = "COALESCE(person_id, '') = ''"
_MISSING_VENUE = "COALESCE(venue_code, '') = ''"
IS_BAD = (
    f"({_MISSING_PERSON} OR {_MISSING_VENUE} OR checkin_s IS NULL"
    " OR (has_checkout AND (checkout_s IS NULL OR checkout_s < checkin_s)))"
)
#: End of a stay in seconds: the checkout, or the check-in plus the default stay ``d``.
STAY_END = "CASE WHEN has_checkout THEN checkout_s ELSE checkin_s + {d} END"
IS_BLANK = f"({_MISSING_PERSON} AND {_MISSING_VENUE} AND NOT has_checkin AND NOT has_checkout)"

#: The bad-row report of a parsed check-in row, as (field, value, value_s, reason) expressions.
#: ``value_s`` carries a typed time (seconds) that the caller renders, see ``bad_rows_from_table``.
BAD_FIELD = f"""CASE WHEN {_MISSING_PERSON} THEN 'person_id'
              WHEN {_MISSING_VENUE} THEN 'venue_code'
              WHEN checkin_s IS NULL THEN 'checkin_at'
              ELSE 'checkout_at' END"""
BAD_VALUE = f"""CASE WHEN {_MISSING_PERSON} OR {_MISSING_VENUE} THEN NULL
              WHEN checkin_s IS NULL THEN checkin_raw
              ELSE checkout_raw END"""
BAD_VALUE_S = f"""CASE WHEN {_MISSING_PERSON} OR {_MISSING_VENUE} OR checkin_s IS NULL THEN NULL
              ELSE checkout_s END"""
BAD_REASON = f"""CASE WHEN {_MISSING_PERSON} OR {_MISSING_VENUE} OR NOT has_checkin THEN 'missing'
              WHEN checkin_s IS NULL OR checkout_s IS NULL THEN 'unparseable time'
              ELSE 'checkout before checkin' END"""


@dataclass(frozen=True)
class Step:
    """One named SELECT of the shared query; ``materialize`` marks results computed once."""

    name: str
    sql: str
    materialize: bool = False


def core_steps(
    groups: Sequence[SourceGroup], *, default_stay_s: int, min_overlap_s: int,
    bucket_s: int = BUCKET_S, long_stay_s: int = LONG_STAY_S,
) -> dict[str, list[Step]]:
    """The co-location query as ordered SQL steps, identical text for DuckDB and Spark.

    Returned in phases so that the driver can time them: ``scan`` (parse; the index persons'
    stays), ``index`` (clip and merge index stays, spread them over time buckets) and
    ``contacts`` (one pass over all check-ins: the venue join and the bad rows, then the time
    together counted once and the minimum-overlap filter). The relations ``checkins_src_<n>``,
    ``index_src`` and ``bucket_offsets(k)`` are registered by the engine.
    """
    for value in (default_stay_s, min_overlap_s, bucket_s, long_stay_s):
        if not isinstance(value, int) or value < 0:
            raise ValueError("durations must be non-negative integers (seconds)")
    if bucket_s <= 0:
        raise ValueError("bucket_s must be positive")
    union = "\nUNION ALL\n".join(_source_select(f"checkins_src_{n}", g) for n, g in enumerate(groups))
    d, b, lo = default_stay_s, bucket_s, long_stay_s
    scan = [
        Step("checkins_parsed", union),
        # Validity and, for bad rows only, the report (CASE evaluates its branch only for them).
        Step("checkins_checked", f"""
SELECT src_file, src_line, person_id, venue_code, is_bad, s, e,
       CASE WHEN is_bad THEN {BAD_FIELD} END AS bad_field,
       CASE WHEN is_bad THEN {BAD_VALUE} END AS bad_value,
       CASE WHEN is_bad THEN {BAD_VALUE_S} END AS bad_value_s,
       CASE WHEN is_bad THEN {BAD_REASON} END AS bad_reason
FROM (
  SELECT *, {IS_BAD} AS is_bad, checkin_s AS s, {STAY_END.format(d=d)} AS e
  FROM checkins_parsed WHERE NOT {IS_BLANK}
) x"""),
        # Zero-length stays overlap nothing; they are not errors either.
        Step("stays", """
SELECT person_id, venue_code, s, e FROM checkins_checked WHERE NOT is_bad AND e > s"""),
        Step("index_parsed", f"""
SELECT src_file, src_line, {_text('person_id')} AS person_id,
       {_text('infectious_from')} AS from_raw, {_text('infectious_to')} AS to_raw,
       unix_seconds(TRY_CAST({_text('infectious_from')} AS TIMESTAMP_LTZ)) AS wf,
       unix_seconds(TRY_CAST({_text('infectious_to')} AS TIMESTAMP_LTZ)) AS wt
FROM index_src"""),
        Step("index_windows", """
SELECT person_id, wf, wt FROM index_parsed
WHERE person_id IS NOT NULL AND wf IS NOT NULL AND wt IS NOT NULL AND wt >= wf"""),
        # A plain join on the few index persons, before any per-row work: engines push it into the
        # scan as a filter, so little more than the person column is decoded for everyone else.
        Step("index_rows", """
SELECT c.person_id, c.venue_code, c.checkin_s, c.checkout_s, c.has_checkin, c.has_checkout
FROM checkins_parsed c JOIN (SELECT DISTINCT person_id FROM index_windows) w ON c.person_id = w.person_id""",
             materialize=True),
    ]
    index = [
        Step("index_clipped", f"""
SELECT st.person_id, st.venue_code, GREATEST(st.s, w.wf) AS s, LEAST(st.e, w.wt) AS e
FROM (
  SELECT person_id, venue_code, checkin_s AS s, {STAY_END.format(d=d)} AS e
  FROM index_rows WHERE NOT {IS_BAD}
) st
JOIN index_windows w ON st.person_id = w.person_id
WHERE st.s < w.wt AND st.e > w.wf"""),
        # Gaps-and-islands: a stay starts a new island unless it begins at or before the latest
        # end seen so far (so touching stays merge); exact duplicates merge in any order.
        Step("index_flagged", """
SELECT person_id, venue_code, s, e,
       CASE WHEN s <= MAX(e) OVER (PARTITION BY person_id, venue_code ORDER BY s, e
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            THEN 0 ELSE 1 END AS new_island
FROM index_clipped"""),
        Step("index_islands", """
SELECT person_id, venue_code, s, e,
       SUM(new_island) OVER (PARTITION BY person_id, venue_code ORDER BY s, e
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS island
FROM index_flagged"""),
        # iv_id numbers the (index person, venue) pairs so that later keys are integers; the
        # ranks give the output order (byte order of person, then venue) without string sorts.
        Step("index_merged", """
SELECT person_id, venue_code, s, e,
       DENSE_RANK() OVER (ORDER BY person_id, venue_code) AS iv_id,
       DENSE_RANK() OVER (ORDER BY person_id) AS person_rank,
       DENSE_RANK() OVER (ORDER BY venue_code) AS venue_rank
FROM (
  SELECT person_id, venue_code, MIN(s) AS s, MAX(e) AS e
  FROM index_islands GROUP BY person_id, venue_code, island
) m""", materialize=True),
        Step("index_bucket_span", f"""
SELECT COALESCE(MAX(((e - 1) - (e - 1) % {b} - ((s - {lo}) - (s - {lo}) % {b})) / {b}), 0) AS k
FROM index_merged"""),
        # Each merged index stay is listed once per bucket in which a short contact stay that
        # overlaps it can start, plus once under bucket -1 for the long contact stays.
        Step("index_buckets", f"""
SELECT i.iv_id, i.person_id, i.venue_code, i.s, i.e,
       ((i.s - {lo}) - (i.s - {lo}) % {b}) + o.k * {b} AS bucket
FROM index_merged i JOIN bucket_offsets o
  ON o.k * {b} <= (i.e - 1) - (i.e - 1) % {b} - ((i.s - {lo}) - (i.s - {lo}) % {b})
UNION ALL
SELECT iv_id, person_id, venue_code, s, e, -1 AS bucket FROM index_merged""", materialize=True),
    ]
    contacts = [
        # The one pass over every check-in: each good stay against the index stays of its venue
        # and time bucket (an equi-join; the overlap is a filter), and every bad row kept with
        # its report. Index stays are disjoint, so a (contact stay, index stay) pair is one piece.
        Step("probe", f"""
SELECT i.iv_id, c.person_id AS contact_person_id,
       GREATEST(c.s, i.s) AS s, LEAST(c.e, i.e) AS e, c.is_bad,
       CASE WHEN c.is_bad THEN c.src_file END AS src_file,
       CASE WHEN c.is_bad THEN c.src_line END AS src_line,
       c.bad_field AS field, c.bad_value AS value, c.bad_value_s AS value_s, c.bad_reason AS reason
FROM checkins_checked c
LEFT JOIN index_buckets i
  ON c.venue_code = i.venue_code
 AND (CASE WHEN c.e - c.s <= {lo} THEN c.s - c.s % {b} ELSE -1 END) = i.bucket
 AND c.s < i.e AND c.e > i.s AND c.s < c.e AND c.person_id <> i.person_id AND NOT c.is_bad
WHERE i.iv_id IS NOT NULL OR c.is_bad""", materialize=True),
        Step("pieces", """
SELECT iv_id, contact_person_id, s, e FROM probe WHERE iv_id IS NOT NULL"""),
        Step("piece_groups", """
SELECT iv_id, contact_person_id, COUNT(*) AS n, MIN(s) AS first_s, SUM(e - s) AS total
FROM pieces GROUP BY iv_id, contact_person_id""", materialize=True),
        # Pieces of one group overlap only when the contact's own stays overlap; those few groups
        # get their time counted once: in order of start, each piece adds only what lies beyond
        # the latest end seen before it.
        Step("overlapping_pieces", """
SELECT p.iv_id, p.contact_person_id, p.s, p.e,
       MAX(p.e) OVER (PARTITION BY p.iv_id, p.contact_person_id ORDER BY p.s, p.e
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
FROM pieces p
JOIN piece_groups g ON p.iv_id = g.iv_id AND p.contact_person_id = g.contact_person_id
WHERE g.n > 1"""),
        Step("merged_totals", """
SELECT iv_id, contact_person_id, SUM(GREATEST(e - GREATEST(s, COALESCE(prev_end, s)), 0)) AS total
FROM overlapping_pieces GROUP BY iv_id, contact_person_id""", materialize=True),
        Step("colocation", f"""
SELECT v.person_id AS index_person_id, g.contact_person_id, v.venue_code,
       g.first_s AS first_overlap_s, COALESCE(m.total, g.total) AS overlap_s,
       v.person_rank, v.venue_rank
FROM piece_groups g
LEFT JOIN merged_totals m ON g.iv_id = m.iv_id AND g.contact_person_id = m.contact_person_id
JOIN (SELECT DISTINCT iv_id, person_id, venue_code, person_rank, venue_rank FROM index_merged) v
  ON g.iv_id = v.iv_id
WHERE COALESCE(m.total, g.total) >= {min_overlap_s}"""),
    ]
    return {"scan": scan, "index": index, "contacts": contacts}


#: Output order: index person, contact, venue, each in byte order (the ranks follow byte order).
RESULT_ORDER = "person_rank, contact_person_id, venue_rank"

RESULT_SQL = f"""
SELECT index_person_id, contact_person_id, venue_code, first_overlap_s, overlap_s,
       person_rank, venue_rank
FROM colocation ORDER BY {RESULT_ORDER}"""


_PROBE_BAD_ROWS = """
  SELECT src_file, src_line, field, value, value_s, reason FROM probe WHERE is_bad"""

_INDEX_BAD_ROWS = """
  SELECT src_file, src_line,
         CASE WHEN person_id IS NULL THEN 'person_id'
              WHEN wf IS NULL THEN 'infectious_from'
              ELSE 'infectious_to' END AS field,
         CASE WHEN person_id IS NULL THEN NULL WHEN wf IS NULL THEN from_raw ELSE to_raw END AS value,
         CAST(NULL AS BIGINT) AS value_s,
         CASE WHEN person_id IS NULL OR (wf IS NULL AND from_raw IS NULL)
                   OR (wf IS NOT NULL AND wt IS NULL AND to_raw IS NULL) THEN 'missing'
              WHEN wf IS NULL OR wt IS NULL THEN 'unparseable time'
              ELSE 'infectious_to before infectious_from' END AS reason
  FROM index_parsed
  WHERE person_id IS NULL OR wf IS NULL OR wt IS NULL OR wt < wf"""


def bad_rows_sql(parts: Sequence[str], limit: int | None = MAX_BAD_ROWS_KEPT) -> str:
    """All bad rows of ``parts`` in file order, each with the total count (for the summary)."""
    union = "\n  UNION ALL\n".join(parts)
    sql = f"""
SELECT src_file, src_line, field, value, value_s, reason, COUNT(*) OVER () AS total FROM (
{union}
) b
ORDER BY src_file, src_line, field"""
    return sql + (f"\nLIMIT {int(limit)}" if limit else "")


BAD_ROWS_SQL = bad_rows_sql([_PROBE_BAD_ROWS, _INDEX_BAD_ROWS])
ALL_BAD_ROWS_SQL = bad_rows_sql([_PROBE_BAD_ROWS, _INDEX_BAD_ROWS], None)
WINDOW_BOUNDS_SQL = "SELECT MIN(wf) AS lo, MAX(wt) AS hi FROM index_windows"

#: DuckDB gets Spark's names for the two things the shared SQL needs from the dialect.
DUCKDB_PRELUDE = (
    "CREATE TYPE IF NOT EXISTS timestamp_ltz AS TIMESTAMPTZ",
    "CREATE MACRO IF NOT EXISTS unix_seconds(ts) AS epoch_us(ts) // 1000000",
)


def zone_segments(tz: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """UTC offsets of ``tz`` over [lo, hi] as (from_second, offset_seconds), first from -inf.

    Looking the zone up once per offset change instead of once per output row is what makes
    writing a million timestamps with their offset cheap.
    """
    zone = ZoneInfo(tz)

    def offset(t: int) -> int:
        delta = datetime.fromtimestamp(t, zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    lo, hi = min(lo, hi), max(lo, hi)
    segments = [(lo, offset(lo))]
    t = lo
    while t < hi:
        nxt = min(t + 3600, hi)
        if offset(nxt) != segments[-1][1]:
            a, z = t, nxt  # offset(a) is the current one, offset(z) the next: bisect the change
            while z - a > 1:
                mid = (a + z) // 2
                if offset(mid) == segments[-1][1]:
                    a = mid
                else:
                    z = mid
            segments.append((z, offset(z)))
        t = nxt
    return segments


def offset_case(column: str, segments: Sequence[tuple[int, int]]) -> str:
    """SQL for the UTC offset (seconds) at ``column`` (epoch seconds), given ``zone_segments``."""
    if len(segments) == 1:
        return str(segments[0][1])
    whens = " ".join(f"WHEN {column} < {start} THEN {prev}"
                     for (start, _), (_, prev) in zip(segments[1:], segments[:-1], strict=True))
    return f"(CASE {whens} ELSE {segments[-1][1]} END)"


def format_sql(source: str, tz: str, lo: int | None, hi: int | None) -> str:
    """The CSV rows of a result relation, times in ``tz`` with their offset. DuckDB only: both
    engines' results are formatted here, so their files agree byte for byte."""
    segments = zone_segments(tz, lo, hi) if lo is not None and hi is not None else [(0, 0)]
    variants = [
        "strftime(make_timestamp((first_overlap_s + {}) * 1000000), '%Y-%m-%dT%H:%M:%S{}{:02d}:{:02d}')".format(
            off, "-" if off < 0 else "+", abs(off) // 3600, abs(off) % 3600 // 60)
        for _, off in segments]
    if len(variants) == 1:
        local = variants[0]
    else:
        whens = " ".join(f"WHEN first_overlap_s < {start} THEN {v}"
                         for (start, _), v in zip(segments[1:], variants[:-1], strict=True))
        local = f"CASE {whens} ELSE {variants[-1]} END"
    return f"""
SELECT index_person_id, contact_person_id, venue_code, {local} AS first_overlap_start,
       overlap_s // 60 AS overlap_minutes
FROM {source} ORDER BY {RESULT_ORDER}"""


def arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB relation as an Arrow table (``fetch_arrow_table`` became ``to_arrow_table``)."""
    method = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return method()


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    """Execute and drain: DuckDB keeps an unread result pending, which blocks the next query."""
    return con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------

class _Backend(Protocol):
    name: str

    def register_groups(self, groups: Sequence[SourceGroup]) -> None: ...
    def register_index(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    def register_offsets(self, k: int) -> None: ...
    def run_step(self, step: Step) -> None: ...
    def fetch(self, sql: str) -> pa.Table: ...
    def write_result(self, out: Path | None,
                     bounds: tuple[int | None, int | None]) -> tuple[int, pa.Table | None]: ...
    def write_bad_rows(self, out: Path) -> None: ...
    def drop(self, name: str) -> None: ...
    def close(self) -> None: ...


_INDEX_SCHEMA = pa.schema([
    ("src_file", pa.string()), ("src_line", pa.int64()), ("person_id", pa.string()),
    ("infectious_from", pa.string()), ("infectious_to", pa.string()),
])


def duckdb_connect(tz: str, threads: int | None = None,
                   con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that speaks the shared SQL in the deployment zone.

    Pass ``con`` (a cursor of a shared database) to reuse a database; the zone is a
    per-connection setting so it is set every time.
    """
    if con is None:
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = int(threads)
        con = duckdb.connect(config=config)
        run_sql(con, f"SET temp_directory = {_sql_str(tempfile.gettempdir() + '/cordon-duckdb')}")
        if memory := os.environ.get(MEMORY_ENV):
            run_sql(con, f"SET memory_limit = {_sql_str(memory)}")
        for stmt in DUCKDB_PRELUDE:
            run_sql(con, stmt)
    run_sql(con, f"SET TimeZone = {_sql_str(validate_tz(tz))}")
    return con


class DuckDBBackend:
    """Runs the shared SQL on an embedded DuckDB."""

    name = "duckdb"

    def __init__(self, tz: str, threads: int | None = None,
                 con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.tz = tz
        self._owned = con is None
        self.con = duckdb_connect(tz, threads, con)

    def register_groups(self, groups: Sequence[SourceGroup]) -> None:
        for n, g in enumerate(groups):
            files = "[" + ", ".join(_sql_str(str(f)) for f in g.files) + "]"
            if g.relation:
                body = f"SELECT * FROM {g.relation}"
            elif g.staged:
                body = f"SELECT * FROM read_parquet({files}, hive_partitioning = false)"
            else:
                body = (f"SELECT filename AS src_file, file_row_number + 1 AS src_line, "
                        f"{', '.join(CHECKIN_COLUMNS)} FROM read_parquet({files}, filename = true, "
                        f"file_row_number = true, hive_partitioning = false, union_by_name = true)")
            run_sql(self.con, f"CREATE OR REPLACE TEMPORARY VIEW checkins_src_{n} AS {body}")

    def register_index(self, rows: Sequence[tuple[Any, ...]]) -> None:
        table = pa.Table.from_pylist([dict(zip(_INDEX_SCHEMA.names, r, strict=True)) for r in rows],
                                     schema=_INDEX_SCHEMA)
        self.con.register("index_src_arrow", table)
        run_sql(self.con, "CREATE OR REPLACE TEMPORARY TABLE index_src AS SELECT * FROM index_src_arrow")
        self.con.unregister("index_src_arrow")

    def register_offsets(self, k: int) -> None:
        run_sql(self.con, f"CREATE OR REPLACE TEMPORARY TABLE bucket_offsets AS "
                         f"SELECT CAST(range AS BIGINT) AS k FROM range({int(k) + 1})")

    def run_step(self, step: Step) -> None:
        kind = "TABLE" if step.materialize else "VIEW"
        run_sql(self.con, f"CREATE OR REPLACE TEMPORARY {kind} {step.name} AS {step.sql}")

    def fetch(self, sql: str) -> pa.Table:
        return arrow_table(self.con.sql(sql))

    def write_result(self, out: Path | None, bounds: tuple[int | None, int | None]) -> tuple[int, pa.Table | None]:
        if out is None:
            table = self.fetch(RESULT_SQL)
            return table.num_rows, table
        query = format_sql("colocation", self.tz, *bounds)
        # COPY reports its row count as the statement result.
        count = run_sql(self.con, f"COPY ({query}) TO {_sql_str(str(out))} (FORMAT csv, HEADER true)")
        return int(count[0][0]), None

    def write_bad_rows(self, out: Path) -> None:
        _copy_bad_rows(self.con, f"({ALL_BAD_ROWS_SQL}) b", out)

    def drop(self, name: str) -> None:
        run_sql(self.con, f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        if self._owned:
            self.con.close()


def spark_available() -> tuple[bool, str]:
    """Whether ``--engine spark`` can run here, and if not, why (for skips and CLI errors)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False, "pyspark is not installed (pip install 'cordon[spark]')"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return False, "no Java runtime found (java on PATH or JAVA_HOME)"
    return True, ""


_SPARK: Any = None


def spark_session(threads: int | None = None) -> Any:
    """One local-mode Spark session per process (it takes seconds to start)."""
    global _SPARK
    if _SPARK is None:
        from pyspark.sql import SparkSession

        n = int(threads) if threads else (os.cpu_count() or 2)
        _SPARK = (
            SparkSession.builder.master(f"local[{n}]")
            .appName("cordon-colocation")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(max(2, 2 * n)))
            .config("spark.sql.adaptive.enabled", "true")
            .config("spark.driver.memory", os.environ.get("CORDON_SPARK_DRIVER_MEMORY", "2g"))
            .getOrCreate()
        )
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


class SparkBackend:
    """Runs the same SQL text on Apache Spark (local mode here, a cluster in production)."""

    name = "spark"

    def __init__(self, tz: str, threads: int | None = None) -> None:
        ok, why = spark_available()
        if not ok:
            raise RuntimeError(f"Spark engine unavailable: {why}")
        self.spark = spark_session(threads)
        self.spark.conf.set("spark.sql.session.timeZone", validate_tz(tz))
        self.tz = tz
        self._cached: list[str] = []
        self._duck = duckdb_connect(tz)

    def register_groups(self, groups: Sequence[SourceGroup]) -> None:
        from pyspark.sql import functions as F

        for n, g in enumerate(groups):
            df = self.spark.read.parquet(*[str(f) for f in g.files])
            if g.staged:
                df = df.select("src_file", "src_line", *CHECKIN_COLUMNS)
            else:
                df = df.select(F.col("_metadata.file_path").alias("src_file"),
                               (F.col("_metadata.row_index") + 1).alias("src_line"), *CHECKIN_COLUMNS)
            df.createOrReplaceTempView(f"checkins_src_{n}")

    def register_index(self, rows: Sequence[tuple[Any, ...]]) -> None:
        from pyspark.sql.types import LongType, StringType, StructField, StructType

        schema = StructType([StructField(n, LongType() if n == "src_line" else StringType())
                             for n in _INDEX_SCHEMA.names])
        self.spark.createDataFrame(list(rows), schema).createOrReplaceTempView("index_src")

    def register_offsets(self, k: int) -> None:
        self.spark.range(int(k) + 1).withColumnRenamed("id", "k").createOrReplaceTempView("bucket_offsets")

    def run_step(self, step: Step) -> None:
        self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {step.name} AS {step.sql}")
        if step.materialize:
            self.spark.sql(f"CACHE TABLE {step.name}")
            self._cached.append(step.name)

    def fetch(self, sql: str) -> pa.Table:
        df = self.spark.sql(sql)
        if hasattr(df, "toArrow"):
            return df.toArrow()
        rows = [r.asDict() for r in df.collect()]  # pyspark 3.5 has no toArrow
        return pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in df.columns})

    def write_result(self, out: Path | None, bounds: tuple[int | None, int | None]) -> tuple[int, pa.Table | None]:
        table = _normalise_result(self.fetch(RESULT_SQL))
        if out is None:
            return table.num_rows, table
        self._duck.register("result_arrow", table)
        query = format_sql("result_arrow", self.tz, *bounds)
        run_sql(self._duck, f"COPY ({query}) TO {_sql_str(str(out))} (FORMAT csv, HEADER true)")
        self._duck.unregister("result_arrow")
        return table.num_rows, None

    def write_bad_rows(self, out: Path) -> None:
        self._duck.register("bad_arrow", self.fetch(ALL_BAD_ROWS_SQL))
        _copy_bad_rows(self._duck, "bad_arrow", out)
        self._duck.unregister("bad_arrow")

    def drop(self, name: str) -> None:
        self.spark.sql(f"UNCACHE TABLE IF EXISTS {name}")

    def close(self) -> None:
        for name in self._cached:
            self.spark.sql(f"UNCACHE TABLE IF EXISTS {name}")
        self._duck.close()


_RESULT_SCHEMA = pa.schema([
    ("index_person_id", pa.string()), ("contact_person_id", pa.string()), ("venue_code", pa.string()),
    ("first_overlap_s", pa.int64()), ("overlap_s", pa.int64()),
    ("person_rank", pa.int64()), ("venue_rank", pa.int64()),
])


def _normalise_result(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return _RESULT_SCHEMA.empty_table()
    return table.select(list(_RESULT_SCHEMA.names)).cast(_RESULT_SCHEMA)


def _copy_bad_rows(con: duckdb.DuckDBPyConnection, source: str, out: Path) -> None:
    """Every bad row to a CSV (file, line, field, value, reason); typed times as ISO 8601."""
    iso = ("regexp_replace(strftime(to_timestamp(value_s), '%Y-%m-%dT%H:%M:%S%z'), "
           "'([+-][0-9][0-9])$', '\\1:00')")
    run_sql(con, f"COPY (SELECT src_file AS file, src_line AS line, field, COALESCE(value, {iso}) AS value, "
                 f"reason FROM {source}) TO {_sql_str(str(out))} (FORMAT csv, HEADER true)")


def records_from_table(table: pa.Table, tz: str) -> list[dict[str, Any]]:
    """Result rows as dicts with an aware ``first_overlap_start`` (for pages and the API), in
    the order of the CSV (``RESULT_SQL`` sorts; converted column by column, which is what keeps
    a case page with thousands of contacts fast)."""
    zone = ZoneInfo(tz)
    t = _normalise_result(table)
    starts = [datetime.fromtimestamp(x, zone) for x in t.column("first_overlap_s").to_pylist()]
    seconds = t.column("overlap_s").to_pylist()
    keys = ("index_person_id", "contact_person_id", "venue_code", "first_overlap_start",
            "overlap_minutes", "overlap_seconds")
    columns = zip(t.column("index_person_id").to_pylist(), t.column("contact_person_id").to_pylist(),
                  t.column("venue_code").to_pylist(), starts, [x // 60 for x in seconds], seconds,
                  strict=True)
    return [dict(zip(keys, row, strict=True)) for row in columns]


def bad_rows_from_table(table: pa.Table, tz: str) -> tuple[list[BadRow], int]:
    """Turn a fetched ``bad_rows_sql`` result into BadRows and the total count."""
    zone = ZoneInfo(tz)
    rows: list[BadRow] = []
    total = 0
    for r in table.to_pylist():
        total = int(r["total"])
        value = r["value"]
        if value is None and r["value_s"] is not None:
            value = datetime.fromtimestamp(r["value_s"], zone).isoformat()
        rows.append(BadRow(_path_of(r["src_file"]), r["src_line"], r["field"], value, r["reason"]))
    return rows, total


def _path_of(uri: str) -> str:
    if uri.startswith("file:"):
        return urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    return uri


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def execute(
    backend: _Backend,
    groups: Sequence[SourceGroup],
    index_rows: Sequence[tuple[Any, ...]],
    out: Path | None,
    *,
    min_overlap_s: int,
    default_stay_s: int,
    tz: str,
    report_bad_rows: bool = True,
    errors_out: Path | None = None,
    timings: dict[str, float] | None = None,
    on_stage: StageCallback | None = None,
) -> tuple[int, pa.Table | None, list[BadRow], int]:
    """Run the shared steps on one backend. Returns (rows, table or None, bad rows, bad count)."""
    timings = timings if timings is not None else {}
    steps = core_steps(groups, default_stay_s=default_stay_s, min_overlap_s=min_overlap_s)

    def stage(name: str) -> None:
        if on_stage:
            on_stage(name)

    t = time.perf_counter()
    stage("scan")
    backend.register_groups(groups)
    backend.register_index(index_rows)
    for s in steps["scan"]:
        backend.run_step(s)
    timings["scan"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("index")
    for s in steps["index"]:
        if s.name == "index_buckets":
            # How many buckets the longest index stay spans decides the size of the offsets table.
            k = backend.fetch("SELECT k FROM index_bucket_span").column(0)[0].as_py()
            backend.register_offsets(int(k or 0))
        backend.run_step(s)
    timings["index"] = time.perf_counter() - t

    contact_steps = steps["contacts"]
    t = time.perf_counter()
    stage("join")
    backend.run_step(contact_steps[0])  # probe: the pass over all check-ins
    timings["join"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("merge")
    for s in contact_steps[1:]:
        backend.run_step(s)
    timings["merge"] = time.perf_counter() - t

    bad: list[BadRow] = []
    bad_total = 0
    if report_bad_rows:
        t = time.perf_counter()
        stage("bad rows")
        bad, bad_total = bad_rows_from_table(backend.fetch(BAD_ROWS_SQL), tz)
        if errors_out is not None:
            backend.write_bad_rows(errors_out)
        timings["bad_rows"] = time.perf_counter() - t
    # Everything the output needs is in piece_groups and merged_totals now: free the pass's
    # result before the final sort (at a hundred million check-ins it is the largest relation).
    backend.drop("probe")

    t = time.perf_counter()
    stage("write")
    bounds = backend.fetch(WINDOW_BOUNDS_SQL).to_pylist()[0] if out is not None else {"lo": None, "hi": None}
    rows, table = backend.write_result(out, (bounds["lo"], bounds["hi"]))
    timings["write"] = time.perf_counter() - t
    return rows, table, bad, bad_total


def run_colocation(
    checkins: CheckinsInput,
    index: IndexInput,
    out: Path | str | None,
    *,
    engine: Engine = "duckdb",
    min_overlap_minutes: int | float,
    default_stay_minutes: int | float,
    tz: str = DEFAULT_TZ,
    threads: int | None = None,
    errors_out: Path | str | None = None,
    on_stage: StageCallback | None = None,
) -> ColocationResult:
    """Find the contacts of the index persons in check-in logs; write them to ``out`` (CSV).

    ``checkins`` is a CSV or Parquet file, a folder of them (e.g. the check-in store), or a
    list of those. ``index`` is a CSV of ``person_id, infectious_from, infectious_to`` or rows
    of the same. With ``out=None`` the rows come back in ``ColocationResult.records``.
    Bad rows are kept out of the computation and reported (first 1000 in the result, all of
    them in ``errors_out``). See the module docstring for the exact semantics.
    """
    t0 = time.perf_counter()
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"unknown engine {engine!r}; use 'duckdb' or 'spark'")
    tz = validate_tz(tz)
    min_overlap_s = _seconds(min_overlap_minutes, "min_overlap_minutes")
    default_stay_s = _seconds(default_stay_minutes, "default_stay_minutes")
    timings: dict[str, float] = {}
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)

    csvs, parquets = expand_sources(checkins)
    index_rows = read_index_rows(index)
    staged_bad: list[BadRow] = []
    with tempfile.TemporaryDirectory(prefix="cordon-coloc-") as tmp:
        t = time.perf_counter()
        staged: list[Path] = []
        if csvs and on_stage:
            on_stage("stage")
        for n, f in enumerate(csvs):
            target = Path(tmp) / f"staged-{n}.parquet"
            _, bad = stage_csv(f, target)
            staged.append(target)
            staged_bad.extend(bad)
        groups = group_parquet(staged) + group_parquet(parquets)
        timings["stage"] = time.perf_counter() - t

        t = time.perf_counter()
        backend: _Backend = SparkBackend(tz, threads) if engine == "spark" else DuckDBBackend(tz, threads)
        timings["engine_start"] = time.perf_counter() - t
        try:
            rows, table, bad, bad_total = execute(
                backend, groups, index_rows, out_path,
                min_overlap_s=min_overlap_s, default_stay_s=default_stay_s, tz=tz,
                errors_out=Path(errors_out) if errors_out else None,
                timings=timings, on_stage=on_stage,
            )
        finally:
            backend.close()
    if staged_bad and errors_out:
        _append_bad_rows(Path(errors_out), staged_bad)
    all_bad = sorted(staged_bad + bad, key=lambda b: (b.file, b.line or 0, b.field))[:MAX_BAD_ROWS_KEPT]
    timings["total"] = time.perf_counter() - t0
    return ColocationResult(
        rows=rows, engine=backend.name, out=out_path, timings=timings, bad_rows=all_bad,
        bad_row_count=bad_total + len(staged_bad),
        records=records_from_table(table, tz) if table is not None else None,
    )


def _append_bad_rows(path: Path, rows: Sequence[BadRow]) -> None:
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for b in rows:
            w.writerow([b.file, b.line, b.field, b.value, b.reason])


def _seconds(minutes: int | float, name: str) -> int:
    if minutes is None or minutes < 0:
        raise ValueError(f"{name} must be a non-negative number of minutes")
    return round(float(minutes) * 60)


def bad_rows_csv(rows: Sequence[BadRow]) -> str:
    """The bad-row report as CSV text (file, line, field, value, reason) for CLI and UI."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(BAD_ROW_COLUMNS)
    for b in rows:
        w.writerow([b.file, b.line, b.field, b.value, b.reason])
    return buf.getvalue()
