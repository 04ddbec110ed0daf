"""The venue check-in log store (场所码 scans from partner departments).

Check-ins are big and append-only, so they live as Parquet beside the database, not in it:

    <data_dir>/checkins/day=YYYY-MM-DD/part-<uuid>.parquet   hive-partitioned by check-in day
    <data_dir>/checkins/_days.json                           per-day statistics for pruning
    <data_dir>/checkins/_manifest.jsonl                      one line per imported source file

Decisions, and why:

* The day of a check-in is its calendar date in the deployment zone (DESIGN §4), so a day's
  folder is what investigators mean by "that day".
* Columns: ``person_id, venue_code, checkin_at, checkout_at`` with the times as UTC instants
  (Parquet TIMESTAMP, adjusted to UTC, whole seconds). A missing checkout stays NULL: the default
  stay is applied when querying, so a policy change reaches old data too.
* Idempotent twice over: a file whose SHA-256 is in the manifest is skipped, and every import
  rewrites the days it touches de-duplicated on (person_id, venue_code, checkin_at). When copies
  disagree about the checkout, the latest non-empty checkout wins (longer stays are the
  conservative reading for contact tracing), so the store does not depend on import order.
* Inside a day, rows are sorted by venue then check-in time, in row groups of ``ROW_GROUP_ROWS``
  with a bloom filter on person_id. A case page finds the index person's rows through the bloom
  filters and everyone else's at those venues and times through the row-group statistics, so it
  reads a few row groups out of thousands.
* ``_days.json`` records, per day, the earliest check-in and the latest check-in and checkout:
  that is what lets an interactive query open only the days its window can reach.
* Imports take a lock file (one writer per store). A day is replaced by two folder renames, after
  its statistics are written; a reader sees the old day or the new one (or, for the instant
  between the renames, none: re-run the query).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.parquet as pq

from cordon.tracing.colocation import (
    BAD_FIELD,
    BAD_REASON,
    BAD_VALUE,
    BAD_VALUE_S,
    DEFAULT_TZ,
    IS_BAD,
    IS_BLANK,
    MAX_BAD_ROWS_KEPT,
    BadRow,
    DuckDBBackend,
    SourceGroup,
    StageCallback,
    arrow_table,
    bad_rows_from_table,
    bad_rows_sql,
    core_steps,
    duckdb_connect,
    expand_sources,
    group_parquet,
    offset_case,
    run_sql,
    stage_csv,
    validate_tz,
    zone_segments,
)

CHECKINS_DIR = "checkins"
MANIFEST_NAME = "_manifest.jsonl"
DAYS_NAME = "_days.json"
LOCK_NAME = ".lock"
ROW_GROUP_ROWS = 8192
#: DuckDB's memory budget for an import (it spills beyond it); $CORDON_IMPORT_MEMORY overrides.
IMPORT_MEMORY = os.environ.get("CORDON_IMPORT_MEMORY", "2GB")


@dataclass
class ImportSummary:
    """What an import did, for the CLI, the UI and the audit trail."""

    files: list[str]
    skipped_files: list[str]  # already imported (same content hash)
    rows_read: int = 0
    rows_added: int = 0
    duplicates: int = 0  # rows already in the store or repeated within the import
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_row_count: int = 0
    days: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bad_rows"] = [b.as_dict() for b in self.bad_rows]
        return d


@dataclass(frozen=True)
class DayStats:
    """Per-day bounds (epoch seconds) that decide whether a query needs the day at all."""

    rows: int
    min_checkin: int
    max_checkin: int
    max_checkout: int | None


def store_dir(data_dir: str | Path) -> Path:
    """The check-in store inside a data directory."""
    return Path(data_dir) / CHECKINS_DIR


def read_manifest(data_dir: str | Path) -> list[dict[str, Any]]:
    """Every import recorded in the store, oldest first."""
    path = store_dir(data_dir) / MANIFEST_NAME
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_day_stats(data_dir: str | Path) -> dict[str, DayStats]:
    """Per-day statistics; empty when the store has none."""
    path = store_dir(data_dir) / DAYS_NAME
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    return {day: DayStats(**v) for day, v in raw.items()}


def day_files(data_dir: str | Path, days: Sequence[str] | None = None) -> list[Path]:
    """Parquet files of the given days (all days if None), in day order."""
    root = store_dir(data_dir)
    if not root.exists():
        return []
    if days is None:
        dirs = sorted(p for p in root.glob("day=*") if p.is_dir())
    else:
        dirs = [root / f"day={d}" for d in sorted(days)]
    return [f for d in dirs if d.is_dir() for f in sorted(d.glob("*.parquet"))]


def file_sha256(path: Path) -> str:
    """Content hash of a source file, streamed (files can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _store_lock(root: Path) -> Iterator[None]:
    """One writer at a time per store (two imports rewriting one day would lose rows)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = run_sql(con, sql)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def import_checkins(
    src: str | Path,
    data_dir: str | Path,
    *,
    tz: str = DEFAULT_TZ,
    default_stay_minutes: int | float | None = None,
    threads: int | None = None,
    on_stage: StageCallback | None = None,
) -> ImportSummary:
    """Import a CSV or Parquet file (or a folder of them) into the check-in store.

    Streams through DuckDB (CSV is staged to Parquet first, in batches); never loads the file
    into Python. Bad rows are reported with file, line, field, value and reason and left out;
    the rest is kept. ``default_stay_minutes`` is only recorded in the manifest: missing
    checkouts are stored as missing, and the policy in force when querying fills them in.
    """
    t0 = time.perf_counter()
    tz = validate_tz(tz)
    root = store_dir(data_dir)
    csvs, parquets = expand_sources(src)
    summary = ImportSummary(files=[], skipped_files=[])

    def stage(name: str) -> None:
        if on_stage:
            on_stage(name)

    with _store_lock(root):
        stage("hash")
        known = {m["sha256"] for m in read_manifest(data_dir)}
        todo: list[tuple[Path, str]] = []
        for f in csvs + parquets:
            digest = file_sha256(f)
            if digest in known:
                summary.skipped_files.append(str(f))
            else:
                known.add(digest)  # the same content twice in one folder counts once
                todo.append((f, digest))
        if not todo:
            summary.seconds = time.perf_counter() - t0
            return summary
        summary.files = [str(f) for f, _ in todo]

        with tempfile.TemporaryDirectory(prefix="cordon-import-") as tmp:
            stage("read")
            staged: list[Path] = []
            staged_bad: list[BadRow] = []
            for n, (f, _) in enumerate(todo):
                if f.suffix.lower() in {".csv", ".txt"}:
                    target = Path(tmp) / f"staged-{n}.parquet"
                    _, bad = stage_csv(f, target)
                    staged.append(target)
                    staged_bad.extend(bad)
            groups = group_parquet(staged) + group_parquet(
                [f for f, _ in todo if f.suffix.lower() not in {".csv", ".txt"}])

            con = duckdb_connect(tz, threads)
            run_sql(con, f"SET memory_limit = '{IMPORT_MEMORY}'")
            try:
                summary_days = _import_groups(con, groups, root, tz, summary, stage)
            finally:
                con.close()
            summary.bad_rows = sorted(staged_bad + summary.bad_rows,
                                      key=lambda b: (b.file, b.line or 0))[:MAX_BAD_ROWS_KEPT]
            summary.bad_row_count += len(staged_bad)
            summary.days = summary_days

        stage("manifest")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with open(root / MANIFEST_NAME, "a", encoding="utf-8") as fh:
            for f, digest in todo:
                fh.write(json.dumps({
                    "sha256": digest, "source": str(f), "imported_at": now, "tz": tz,
                    "default_stay_minutes": default_stay_minutes,
                    "rows_read": summary.rows_read, "rows_added": summary.rows_added,
                    "bad_rows": summary.bad_row_count,
                }, ensure_ascii=False) + "\n")
    summary.seconds = time.perf_counter() - t0
    return summary


def _import_groups(
    con: duckdb.DuckDBPyConnection, groups: Sequence[SourceGroup], root: Path, tz: str,
    summary: ImportSummary, stage: StageCallback,
) -> list[str]:
    """Parse with the engine's own SQL, report bad rows, merge the touched days, swap them in."""
    backend = DuckDBBackend(tz, con=con)
    backend.register_groups(groups)
    backend.run_step(core_steps(groups, default_stay_s=0, min_overlap_s=0)["scan"][0])  # checkins_parsed

    stage("validate")
    # One pass over the source: every non-blank row, checked, in seconds; reports for bad rows only.
    run_sql(con, f"""CREATE TEMPORARY TABLE parsed AS
        SELECT person_id, venue_code, checkin_s, CASE WHEN has_checkout THEN checkout_s END AS checkout_s,
               is_bad,
               CASE WHEN is_bad THEN src_file END AS src_file, CASE WHEN is_bad THEN src_line END AS src_line,
               CASE WHEN is_bad THEN {BAD_FIELD} END AS field, CASE WHEN is_bad THEN {BAD_VALUE} END AS value,
               CASE WHEN is_bad THEN {BAD_VALUE_S} END AS value_s,
               CASE WHEN is_bad THEN {BAD_REASON} END AS reason
        FROM (SELECT *, {IS_BAD} AS is_bad FROM checkins_parsed WHERE NOT {IS_BLANK}) x""")
    counts = run_sql(con, """SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT is_bad),
                                    MIN(checkin_s) FILTER (WHERE NOT is_bad), MAX(checkin_s) FILTER (WHERE NOT is_bad)
                             FROM parsed""")[0]
    summary.rows_read, good, lo, hi = int(counts[0]), int(counts[1]), counts[2], counts[3]
    bad, total = bad_rows_from_table(backend.fetch(bad_rows_sql(
        ["SELECT src_file, src_line, field, value, value_s, reason FROM parsed WHERE is_bad"])), tz)
    summary.bad_rows, summary.bad_row_count = bad, total
    if not good:
        return []

    # The local day of a check-in, from the zone's offsets over the imported span (not a zone
    # lookup per row); two days of margin cover the existing rows of the same days.
    segments = zone_segments(tz, int(lo) - 2 * 86400, int(hi) + 2 * 86400)
    day = f"CAST(make_timestamp((checkin_s + {offset_case('checkin_s', segments)}) * 1000000) AS DATE)"
    days = [str(r[0]) for r in run_sql(
        con, f"SELECT DISTINCT {day} FROM parsed WHERE NOT is_bad ORDER BY 1")]
    existing = day_files(root.parent, days)
    union = "SELECT person_id, venue_code, checkin_s, checkout_s FROM parsed WHERE NOT is_bad"
    before = 0
    if existing:
        run_sql(con, f"""CREATE TEMPORARY TABLE existing AS
            SELECT person_id, venue_code, unix_seconds(checkin_at) AS checkin_s,
                   unix_seconds(checkout_at) AS checkout_s
            FROM read_parquet({_sql_list(existing)}, hive_partitioning = false)""")
        before = _scalar(con, "SELECT COUNT(*) FROM existing")
        union += " UNION ALL SELECT * FROM existing"

    stage("merge")
    # De-duplicate on the natural key; MAX keeps the latest non-empty checkout.
    run_sql(con, f"""CREATE TEMPORARY TABLE merged AS
        SELECT person_id, venue_code, checkin_s, MAX(checkout_s) AS checkout_s
        FROM ({union}) u GROUP BY person_id, venue_code, checkin_s""")
    run_sql(con, "DROP TABLE parsed")
    if existing:
        run_sql(con, "DROP TABLE existing")
    after = _scalar(con, "SELECT COUNT(*) FROM merged")
    summary.rows_added = after - before
    summary.duplicates = good - summary.rows_added

    stage("write")
    staging = root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        ordered = con.sql(f"""
            SELECT CAST({day} AS VARCHAR) AS day, person_id, venue_code,
                   to_timestamp(checkin_s) AS checkin_at, to_timestamp(checkout_s) AS checkout_at
            FROM merged ORDER BY day, venue_code, checkin_s, person_id""")
        _write_days(ordered, staging)
        stats = {
            str(r[0]): DayStats(int(r[1]), int(r[2]), int(r[3]), None if r[4] is None else int(r[4]))
            for r in run_sql(con, f"""
                SELECT {day}, COUNT(*), MIN(checkin_s), MAX(checkin_s), MAX(checkout_s)
                FROM merged GROUP BY 1""")
        }
        run_sql(con, "DROP TABLE merged")
        # Statistics first: a merged day only widens its bounds, so if the swap below stops half
        # way, the pruning of case-page queries stays on the safe side.
        all_stats = {d: asdict(st) for d, st in read_day_stats(root.parent).items()}
        all_stats.update({d: asdict(st) for d, st in stats.items()})
        _write_json_atomic(root / DAYS_NAME, all_stats)

        stage("swap")
        _swap_days(root, staging, days)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return days


def _swap_days(root: Path, staging: Path, days: Sequence[str]) -> None:
    """Replace each day folder by its rewritten version (a rename each). On failure, days moved
    aside but not yet replaced are put back; replaced days hold a superset of the old rows."""
    trash = root / f".trash-{uuid.uuid4().hex}"
    trash.mkdir()
    try:
        for day in days:
            final = root / f"day={day}"
            if final.exists():
                final.rename(trash / final.name)
            (staging / f"day={day}").rename(final)
    except BaseException:
        for old in trash.iterdir():
            if not (root / old.name).exists():
                old.rename(root / old.name)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


STORE_SCHEMA = pa.schema([
    ("person_id", pa.string()), ("venue_code", pa.string()),
    ("checkin_at", pa.timestamp("us", tz="UTC")), ("checkout_at", pa.timestamp("us", tz="UTC")),
])


def _write_days(ordered: duckdb.DuckDBPyRelation, staging: Path) -> None:
    """Stream rows sorted by day into one Parquet file per day folder.

    Written with pyarrow rather than DuckDB's COPY for two column-level choices DuckDB does not
    offer: a bloom filter on person_id (the case page's lookup then reads about one row group in
    a hundred) without dictionary-encoding the timestamps, and a dictionary on venue_code.
    """
    reader = (getattr(ordered, "to_arrow_reader", None) or ordered.fetch_record_batch)(1 << 16)
    writer: pq.ParquetWriter | None = None
    current = None
    try:
        for batch in reader:
            days = batch.column(0)
            start = 0
            while start < batch.num_rows:
                day = days[start].as_py()
                # Rows are sorted by day: the run of this day ends where the value changes.
                end = start + 1
                if day != days[batch.num_rows - 1].as_py():
                    same = pa_compute.equal(days.slice(start), pa.scalar(day))
                    end = start + int(pa_compute.index(same, False).as_py())
                else:
                    end = batch.num_rows
                if day != current:
                    if writer is not None:
                        writer.close()
                    folder = staging / f"day={day}"
                    folder.mkdir()
                    writer = pq.ParquetWriter(
                        folder / f"part-{uuid.uuid4()}.parquet", STORE_SCHEMA, compression="zstd",
                        use_dictionary=["venue_code"],
                        bloom_filter_options={"person_id": {"ndv": ROW_GROUP_ROWS, "fpp": 0.01}},
                    )
                    current = day
                chunk = pa.Table.from_batches([batch.slice(start, end - start)]).drop_columns(["day"])
                assert writer is not None
                writer.write_table(chunk.cast(STORE_SCHEMA), row_group_size=ROW_GROUP_ROWS)
                start = end
    finally:
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------------------------
# Interactive co-location for one index person (the case page)
# --------------------------------------------------------------------------------------------

_DB: duckdb.DuckDBPyConnection | None = None
_DB_LOCK = threading.Lock()
_LOCAL = threading.local()


def _shared_db(tz: str) -> duckdb.DuckDBPyConnection:
    """One in-process DuckDB database for page requests. Page queries are small: one thread each,
    parallelism comes from concurrent requests."""
    global _DB
    with _DB_LOCK:
        if _DB is None:
            _DB = duckdb_connect(tz, threads=1)
            run_sql(_DB, "SET GLOBAL parquet_metadata_cache = true")
        return _DB


def _page_cursor(tz: str) -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the shared page database (a cursor is not thread-safe)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = _shared_db(tz).cursor()
    duckdb_connect(tz, con=con)  # the zone is per connection: set it on every call
    return con


def to_epoch(value: datetime | str, tz: str) -> int:
    """Seconds since the epoch; naive values (and strings without offset) are in ``tz``."""
    dt = datetime.fromisoformat(value.strip()) if isinstance(value, str) else value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return int(dt.timestamp() // 1)


def _latest_end(st: DayStats, default_stay_s: int) -> int:
    return max(st.max_checkout or st.min_checkin, st.max_checkin + default_stay_s)


def _spans(stays: Sequence[tuple[str, int, int]], gap_s: int = 3600) -> list[tuple[str, int, int]]:
    """A person's stays as few (venue, start, end) spans: stays at one venue less than
    ``gap_s`` apart are looked up together (one scan instead of several)."""
    out: list[list[Any]] = []
    for venue, s, e in sorted(stays):
        if out and out[-1][0] == venue and s <= out[-1][2] + gap_s:
            out[-1][2] = max(out[-1][2], e)
        else:
            out.append([venue, s, e])
    return [(v, s, e) for v, s, e in out]


def days_for_window(stats: dict[str, DayStats], wf: int, wt: int, default_stay_s: int) -> list[str]:
    """Days holding a stay that can overlap [wf, wt]: one that starts before the window ends
    and ends (checkout, or check-in plus the default stay) after it starts."""
    return sorted(d for d, st in stats.items() if st.min_checkin < wt and _latest_end(st, default_stay_s) > wf)


def colocation_for_index(
    data_dir: str | Path,
    person_id: str,
    window_from: datetime | str,
    window_to: datetime | str,
    *,
    min_overlap: int | float,
    default_stay: int | float,
    tz: str = DEFAULT_TZ,
) -> list[dict[str, Any]]:
    """Contacts of one index person over the stored check-ins, fast enough for a page view.

    Same rows as ``run_colocation`` (``min_overlap`` and ``default_stay`` in minutes; the tests
    hold the two to each other). Only the day partitions the window touches are opened; inside
    them the person's venues are looked up first, and only the row groups of those venues are
    read; the time together is then counted in memory (``colocation_pairs``).
    Returns dicts with index_person_id, contact_person_id, venue_code, first_overlap_start
    (aware datetime in ``tz``), overlap_minutes and overlap_seconds, sorted like the CSV.
    """
    tz = validate_tz(tz)
    zone = ZoneInfo(tz)
    wf, wt = to_epoch(window_from, tz), to_epoch(window_to, tz)
    default_stay_s = round(float(default_stay) * 60)
    min_overlap_s = round(float(min_overlap) * 60)
    if wt < wf:
        raise ValueError("window_to is before window_from")
    stats = read_day_stats(data_dir)
    if stats:
        days = days_for_window(stats, wf, wt, default_stay_s)
    else:  # a store without statistics: correct, just slower
        days = [p.name.removeprefix("day=") for p in sorted(store_dir(data_dir).glob("day=*"))]
    files_by_day = {d: fs for d in days if (fs := day_files(data_dir, [d]))}
    if not files_by_day:
        return []

    con = _page_cursor(tz)
    # 1. The person's stays inside the window (clipped to it). The person_id bloom filters let
    #    DuckDB skip nearly every row group.
    all_files = [f for fs in files_by_day.values() for f in fs]
    stays = run_sql(con, f"""
        SELECT venue_code, GREATEST(s, ?), LEAST(e, ?) FROM (
          SELECT venue_code, unix_seconds(checkin_at) AS s,
                 COALESCE(unix_seconds(checkout_at), unix_seconds(checkin_at) + ?) AS e
          FROM read_parquet({_sql_list(all_files)}, hive_partitioning = false) WHERE person_id = ?
        ) t WHERE s < ? AND e > ?""",
        [wf, wt, default_stay_s, person_id, wt, wf])
    if not stays:
        return []
    # 2. Everyone's check-ins that can overlap one of those stays: same venue, checked in before
    #    the stay ends, still there after it starts; only from days that can reach it. Files are
    #    sorted by venue then check-in time, so each scan's row-group statistics skip nearly all
    #    the rest (cheaper, measured, than one scan with an IN list and a join on the spans).
    parts, params = [], []
    for venue, lo, hi in _spans(stays):
        for day, fs in files_by_day.items():
            st = stats.get(day)
            if st is not None and not (st.min_checkin < hi and _latest_end(st, default_stay_s) > lo):
                continue
            parts.append(
                f"SELECT person_id, venue_code, unix_seconds(checkin_at) AS s, "
                f"COALESCE(unix_seconds(checkout_at), unix_seconds(checkin_at) + {default_stay_s}) AS e "
                f"FROM read_parquet({_sql_list(fs)}, hive_partitioning = false) "
                f"WHERE venue_code = ? AND checkin_at < to_timestamp(?) "
                f"AND COALESCE(unix_seconds(checkout_at), unix_seconds(checkin_at) + {default_stay_s}) > ?")
            params += [venue, hi, lo]
    if not parts:
        return []
    # DISTINCT: a long stay can match two spans of its venue.
    found = arrow_table(con.sql(f"SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)}) v", params=params))
    # 3. The time together, counted as the engine counts it (see ``colocation_pairs``).
    rows = colocation_pairs(person_id, [(v, int(s), int(e)) for v, s, e in stays], found,
                            min_overlap_s=min_overlap_s)
    return [
        {"index_person_id": person_id, "contact_person_id": contact, "venue_code": venue,
         "first_overlap_start": datetime.fromtimestamp(first, zone), "overlap_minutes": total // 60,
         "overlap_seconds": total}
        for contact, venue, first, total in rows
    ]


def _islands(stays: Sequence[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    """An index person's stays merged per venue: in order of start, a stay that begins at or
    before the latest end seen so far joins the island (so touching stays merge)."""
    out: dict[str, list[list[int]]] = {}
    for venue, s, e in sorted(stays):
        islands = out.setdefault(venue, [])
        if islands and s <= islands[-1][1]:
            islands[-1][1] = max(islands[-1][1], e)
        else:
            islands.append([s, e])
    return {v: [(s, e) for s, e in isl] for v, isl in out.items()}


def colocation_pairs(
    person_id: str, stays: Sequence[tuple[str, int, int]], found: pa.Table, *, min_overlap_s: int,
) -> list[tuple[str, str, int, int]]:
    """The engine's co-location rule for one index person, on the few thousand rows a case page
    reads: (contact, venue, first overlap second, seconds together), sorted like the CSV.

    ``stays`` are the index person's stays clipped to the window, as (venue, start, end);
    ``found`` has ``person_id, venue_code, s, e`` (end with the default stay applied) for the
    check-ins at those venues. The same steps as ``core_steps`` (index stays merged into islands;
    each contact stay cut to each island it overlaps; a contact's pieces at a venue united, in
    order of start, each adding only what lies beyond the latest end before it; kept when the
    total reaches the minimum), computed with NumPy: running the full engine statement costs
    several times more than this whole query on one person's venues.
    """
    if found.num_rows == 0 or not stays:
        return []
    persons = pa_compute.dictionary_encode(found.column("person_id")).combine_chunks()
    venues_enc = pa_compute.dictionary_encode(found.column("venue_code")).combine_chunks()
    person_names = persons.dictionary.to_pylist()
    venue_names = venues_enc.dictionary.to_pylist()
    p_idx = persons.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    v_idx = venues_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    cs = found.column("s").to_numpy().astype(np.int64)
    ce = found.column("e").to_numpy().astype(np.int64)
    # Contact stays: everyone but the index person, positive length.
    usable = cs < ce
    if person_id in person_names:
        usable &= p_idx != person_names.index(person_id)
    venue_pos = {v: n for n, v in enumerate(venue_names)}
    piece_v, piece_p, piece_s, piece_e = [], [], [], []
    for venue, islands in _islands(stays).items():
        code = venue_pos.get(venue)
        if code is None:
            continue
        at = usable & (v_idx == code)
        for i_s, i_e in islands:
            hit = at & (cs < i_e) & (ce > i_s)
            if not hit.any():
                continue
            piece_v.append(v_idx[hit])
            piece_p.append(p_idx[hit])
            piece_s.append(np.maximum(cs[hit], i_s))
            piece_e.append(np.minimum(ce[hit], i_e))
    if not piece_v:
        return []
    pv, pp = np.concatenate(piece_v), np.concatenate(piece_p)
    ps, pe = np.concatenate(piece_s), np.concatenate(piece_e)
    order = np.lexsort((pe, ps, pp, pv))
    pv, pp, ps, pe = pv[order], pp[order], ps[order], pe[order]
    starts = np.flatnonzero(np.r_[True, (pv[1:] != pv[:-1]) | (pp[1:] != pp[:-1])])
    group = np.cumsum(np.r_[True, (pv[1:] != pv[:-1]) | (pp[1:] != pp[:-1])]) - 1
    # The latest end before each piece within its group: ends shifted by the group number times
    # a span wider than all of them, so one running maximum never carries over between groups
    # (a carried value lands below the group's own base, which no piece starts before).
    base = int(min(ps.min(), pe.min()))
    width = int(pe.max()) - base + 1
    key = group * width + (pe - base)
    prev = np.r_[np.int64(-1), np.maximum.accumulate(key)[:-1]] - group * width
    gained = np.maximum((pe - base) - np.maximum(ps - base, prev), 0)
    totals = np.add.reduceat(gained, starts)
    firsts = np.minimum.reduceat(ps, starts)
    keep = np.flatnonzero(totals >= min_overlap_s)
    rows = [(person_names[int(pp[starts[k]])], venue_names[int(pv[starts[k]])], int(firsts[k]), int(totals[k]))
            for k in keep]
    rows.sort(key=lambda r: (r[0], r[1]))  # code point order is UTF-8 byte order
    return rows
