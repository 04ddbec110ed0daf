"""Lab result files: CSV (UTF-8/GBK) or XLSX, Chinese or English headers.

A round's results are almost all first-time negatives; those are written set-based a batch at a time (one
INSERT of result versions, one UPDATE of tubes, one audit event). The first results of positive pools and
invalid tubes are set-based too, all of a batch together (``services.record_first_results``: one statement per
kind of row for the holds and retests, whatever the number of pools). Corrections, single-tube positives and
retest tubes are few and go one by one through ``services.record_result``. Idempotent: the same file again
finds every row unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cordon.core import audit
from cordon.core.importing import Column, ErrorReport, ImportSummary, RowError, TabularFile, file_sha256
from cordon.core.readahead import read_ahead
from cordon.core.scoping import jurisdiction_prefix
from cordon.screening.ingest import parse_time
from cordon.screening.models import Lab, Result, Tube, TubeResult

RESULT_COLUMNS = [
    Column("tube", ("试管编码", "tube_barcode", "tube", "试管条码", "样本编号"), required=True),
    Column("result", ("检测结果", "result", "结果"), required=True),
    Column("ct_orf1ab", ("ORF1ab基因Ct值", "ct_orf1ab", "ORF1ab", "ORF1ab基因")),
    Column("ct_n", ("N基因Ct值", "ct_n", "N基因", "N")),
    Column("tested_at", ("检测时间", "tested_at", "报告时间")),
]
_RESULTS = {
    "阴性": Result.NEGATIVE, "negative": Result.NEGATIVE, "neg": Result.NEGATIVE, "-": Result.NEGATIVE,
    "阳性": Result.POSITIVE, "positive": Result.POSITIVE, "pos": Result.POSITIVE, "+": Result.POSITIVE,
    "无效": Result.INVALID, "invalid": Result.INVALID, "无效样本": Result.INVALID,
}  # fmt: skip


def parse_result(text: str) -> str:
    key = str(text or "").strip().lower()
    if key not in _RESULTS:
        raise ValueError("expected 阴性/阳性/无效 or negative/positive/invalid")
    return _RESULTS[key]


def parse_ct(text: str) -> float | None:
    s = str(text or "").strip()
    if not s or s in ("-", "/", "NA", "N/A", "无"):
        return None
    v = float(s)
    if not 0 < v < 50:
        raise ValueError("a Ct value is between 0 and 50")
    return round(v, 2)


def _parse_fields(result_text: str, ct1_text: str, ct2_text: str, tested_text: str) -> tuple:
    """(result, Ct ORF1ab, Ct N, tested at), or (None, (column, value, reason)) for the first bad cell."""
    try:
        result = parse_result(result_text)
    except ValueError as exc:
        return None, ("result", result_text, str(exc))
    cts = []
    for column, text in (("ct_orf1ab", ct1_text), ("ct_n", ct2_text)):
        try:
            cts.append(parse_ct(text))
        except ValueError as exc:
            return None, (column, text, str(exc) if "Ct" in str(exc) else "not a number")
    tested = None
    if tested_text:
        try:
            tested = parse_time(tested_text)
        except ValueError:
            return None, ("tested_at", tested_text, "not a time")
    return result, cts[0], cts[1], tested


def import_results(
    path: str | Path,
    *,
    lab: Lab,
    user: Any = None,
    errors_path: str | Path | None = None,
    batch_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    from cordon.core.models import ImportRun

    path = Path(path)
    source = TabularFile(path, RESULT_COLUMNS)
    prefix = jurisdiction_prefix(user) if user is not None else None
    if user is not None and prefix is None:
        raise PermissionError("the importing user has no jurisdiction")
    with transaction.atomic():
        run = ImportRun.objects.create(kind="screening_results", file_name=path.name, file_sha256=file_sha256(path),
                                       user_id=getattr(user, "pk", None))  # fmt: skip
    report = ErrorReport(errors_path)
    summary = ImportSummary()
    summary.extra.update({"positive": 0, "invalid": 0, "corrections": 0})
    done = 0
    # The file is parsed a batch ahead, in a background thread, while the database writes the batch before.
    with read_ahead(_parsed_batches(source, batch_size)) as batches:
        for batch, errors, unchanged in batches:
            for err in errors:
                report.add(err)
            summary.rejected += len(errors)
            summary.unchanged += unchanged
            if batch:
                _write(batch, lab, user, prefix, run.pk, summary, report)
                done += len(batch)
                if progress:
                    progress(done)
    summary.errors = report.close()
    ImportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), accepted=summary.accepted,
                                               updated=summary.updated, unchanged=summary.unchanged,
                                               rejected=summary.rejected, errors_path=summary.errors or "",
                                               status="done")  # fmt: skip
    return summary


def _parsed_batches(source: TabularFile, batch_size: int) -> Iterator[tuple[list[tuple], list[RowError], int]]:
    """(batch of rows to write, the errors met since the batch before, rows that repeat an earlier line) for
    ``read_ahead``: parsing only, no database. A row is (line, barcode, result, Ct ORF1ab, Ct N, tested at)."""
    seen: dict[str, tuple[int, tuple]] = {}
    batch: list[tuple[int, str, str, float | None, float | None, datetime | None]] = []
    errors: list[RowError] = []
    unchanged = 0
    parsed: dict[tuple[str, str, str, str], tuple] = {}
    for line, (barcode, *cells) in source.records(("tube", "result", "ct_orf1ab", "ct_n", "tested_at")):
        # A lab file repeats a handful of distinct results, Ct values and times: each is parsed once.
        fields = tuple(cells)
        got = parsed.get(fields)
        if got is None:
            got = parsed[fields] = _parse_fields(*fields)
        if got[0] is None:
            errors.append(RowError(line, *got[1]))
            continue
        result, ct1, ct2, tested = got
        if not barcode:
            errors.append(RowError(line, "tube", "", "required"))
            continue
        key = (result, ct1, ct2)
        if barcode in seen:
            first_line, first_key = seen[barcode]
            if first_key != key:
                errors.append(RowError(line, "tube", barcode, f"same tube as line {first_line} with another result"))
            else:
                unchanged += 1
            continue
        seen[barcode] = (line, key)
        batch.append((line, barcode, result, ct1, ct2, tested))
        if len(batch) >= batch_size:
            yield batch, errors, unchanged
            batch, errors, unchanged = [], [], 0
    if batch or errors or unchanged:
        yield batch, errors, unchanged


def _write(batch: list, lab: Lab, user: Any, prefix: str | None, run_id: int, summary: ImportSummary,
           report: ErrorReport) -> None:  # fmt: skip
    """One batch in one transaction. First-time negatives (nearly every row) are written set-based: on
    PostgreSQL entirely in SQL (``_stage``), which hands back only the rows that need more than that. Positive
    pools and invalid tubes seen for the first time go through the set-based cascade
    (``record_first_results``); corrections, single-tube positives and retest tubes through ``record_result``."""
    from cordon.screening.services import record_first_results, record_result

    now = timezone.now()
    with transaction.atomic():
        written = 0  # first negatives the stage wrote itself
        if connection.vendor == "postgresql":
            written, unchanged, rest = _stage(batch, lab, user, prefix, run_id, now)
            summary.unchanged += unchanged
        else:
            tubes = _tubes([b[1] for b in batch])
            rest = [(*b, tubes.get(b[1])) for b in batch]
        fast: list[tuple] = []
        first: list[tuple] = []
        slow: list[tuple] = []
        for line, barcode, result, ct1, ct2, tested, t in rest:
            # t: id, result, ct_orf1ab, ct_n, region, is_retest, capacity
            if t is None or (prefix is not None and not t[4].startswith(prefix)):
                report.add(RowError(line, "tube", barcode, "unknown tube"))
                summary.rejected += 1
                continue
            if t[1] == result and t[2] == ct1 and t[3] == ct2:
                summary.unchanged += 1
                continue
            if t[1] or t[5]:  # a correction, or a retest tube (resolves its retests)
                slow.append((line, t[0], result, ct1, ct2, tested))
            elif result == Result.NEGATIVE:
                fast.append((t[0], result, ct1, ct2, tested or now))
            elif result == Result.INVALID or t[6] > 1:  # a positive pool or an invalid tube: set-based cascade
                first.append((t[0], result, ct1, ct2, tested))
            else:  # a single-tube positive opens a case
                slow.append((line, t[0], result, ct1, ct2, tested))
        if fast:
            _fast_negatives(fast, lab, user, run_id, now)
        negatives = written + len(fast)
        if negatives:
            summary.accepted += negatives
            audit.record(user or "lab", "screening.results_batch", lab, region_code=lab.region_id,
                         changes={"negative": negatives, "import_run": run_id})  # fmt: skip
        if first:
            record_first_results(user, first, lab=lab, import_run=run_id)
            summary.accepted += len(first)
            summary.extra["positive"] += sum(1 for r in first if r[1] == Result.POSITIVE)
            summary.extra["invalid"] += sum(1 for r in first if r[1] == Result.INVALID)
        for _line, tube_id, result, ct1, ct2, tested in slow:
            tube = Tube.objects.select_for_update().get(pk=tube_id)
            was = tube.result
            outcome = record_result(user, tube, result, ct_orf1ab=ct1, ct_n=ct2, tested_at=tested, lab=lab,
                                    import_run=run_id)  # fmt: skip
            if outcome == "accepted":
                summary.accepted += 1
            elif outcome == "updated":
                summary.updated += 1
                if was:
                    summary.extra["corrections"] += 1
            else:
                summary.unchanged += 1
            if outcome != "unchanged" and result == Result.POSITIVE:
                summary.extra["positive"] += 1
            if outcome != "unchanged" and result == Result.INVALID:
                summary.extra["invalid"] += 1


_TUBE_FIELDS = ("id", "result", "ct_orf1ab", "ct_n", "region_id", "is_retest", "capacity")


def _tubes(codes: list[str]) -> dict[str, tuple]:
    """The batch's tubes by barcode, with what sorting a row needs."""
    out: dict[str, tuple] = {}
    for i in range(0, len(codes), 900):
        for row in Tube.objects.filter(barcode__in=codes[i : i + 900]).values_list("barcode", *_TUBE_FIELDS):
            out[row[0]] = row[1:]
    return out


# A batch is a few thousand tubes of a round that may have millions. Once the tube table is many times the
# batch, the statements below find the batch's tubes by index, one probe per line (LATERAL ... LIMIT 1 for
# the barcode; hash and merge joins off for the update by id): a hash join would read the whole tube table
# once per statement per batch, which on a city round costs more than the writes themselves. On a smaller
# table that hash join is the cheaper plan, and it is left to the planner.
_PROBE_FROM = 10  # tube table rows (the planner's estimate) per batch row
# A row the stage writes itself: a tube in reach without a result, not a retest tube, reported negative.
# ``_UNCHANGED``: a tube in reach that already holds this very result. Rows that are neither come back to Python.
_IN_REACH = "(%(prefix)s::text IS NULL OR left(t.region_id, length(%(prefix)s::text)) = %(prefix)s::text)"
_FAST = f"({_IN_REACH} AND t.result = '' AND NOT t.is_retest AND s.result = 'negative')"
_UNCHANGED = (f"({_IN_REACH} AND t.result = s.result AND t.ct_orf1ab IS NOT DISTINCT FROM s.ct1"
              " AND t.ct_n IS NOT DISTINCT FROM s.ct2)")  # fmt: skip
_PROBE_JOIN = {"tubes": """LATERAL (SELECT id, result, ct_orf1ab, ct_n, region_id, is_retest, capacity
                                     FROM screening_tube WHERE barcode = s.barcode LIMIT 1)""", "on": "true"}
_HASH_JOIN = {"tubes": "screening_tube", "on": "t.barcode = s.barcode"}
_STAGE_SQL = {
    "create": """CREATE TEMP TABLE screening_result_stage (line integer, barcode text, result text,
                 ct1 double precision, ct2 double precision, tested timestamptz) ON COMMIT DROP""",
    # One pass over the batch: each line finds its tube once (``f``); the first negatives are written (``u``,
    # ``i``), the lines that need more come back with their tube, and the unchanged ones only as a count (the
    # first row, line -1): a lab file sent twice is a million of them.
    "write": f"""WITH f AS MATERIALIZED (
                   SELECT s.line, s.result AS new_result, s.ct1, s.ct2, COALESCE(s.tested, %(now)s) AS tested,
                          t.id, t.result, t.ct_orf1ab, t.ct_n, t.region_id, t.is_retest, t.capacity,
                          COALESCE({_FAST}, false) AS fast, COALESCE({_UNCHANGED}, false) AS same
                   FROM screening_result_stage s LEFT JOIN {{tubes}} t ON {{on}}
                 ), u AS (
                   UPDATE screening_tube t SET result = f.new_result, ct_orf1ab = f.ct1, ct_n = f.ct2,
                     resulted_at = f.tested, lab_id = COALESCE(t.lab_id, %(lab)s),
                     received_at = COALESCE(t.received_at, f.tested), sealed_at = COALESCE(t.sealed_at, f.tested)
                   FROM f WHERE f.fast AND t.id = f.id
                 ), i AS (
                   INSERT INTO screening_tuberesult (tube_id, version, result, ct_orf1ab, ct_n, tested_at, lab_id,
                                                     by_id, at, import_run, is_correction)
                   SELECT f.id, 1, f.new_result, f.ct1, f.ct2, f.tested, %(lab)s, %(by)s, %(now)s, %(run)s, false
                   FROM f WHERE f.fast
                 )
                 SELECT f.line, f.id, f.result, f.ct_orf1ab, f.ct_n, f.region_id, f.is_retest, f.capacity
                 FROM f WHERE NOT f.fast AND NOT f.same
                 UNION ALL SELECT -1, COUNT(*) FILTER (WHERE f.same), NULL, NULL, NULL, NULL, NULL, NULL FROM f
                 ORDER BY 1""",
}


def _stage(batch: list, lab: Lab, user: Any, prefix: str | None, run_id: int, now: datetime) -> tuple:
    """PostgreSQL: the batch is copied into a temporary table and joined to the tubes there, so the first
    negatives are one statement (tubes and result versions) and only the other rows travel back, with their
    tube. Returns (negatives written, rows unchanged, the other rows as ``_write`` sorts them)."""
    import psycopg

    params = {"prefix": prefix, "now": now, "lab": lab.pk, "by": getattr(user, "pk", None), "run": run_id}
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute("DROP TABLE IF EXISTS pg_temp.screening_result_stage")
        cur.execute(_STAGE_SQL["create"])
        with cur.copy("COPY screening_result_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "text", "float8", "float8", "timestamptz"])
            for row in batch:
                copy.write_row(row)
        cur.execute("ANALYZE screening_result_stage")
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'screening_tube'::regclass")
        probe = cur.fetchone()[0] > _PROBE_FROM * len(batch)
        join = _PROBE_JOIN if probe else _HASH_JOIN
        if probe:
            # Compiling the statement (JIT) costs more than the few microseconds a row it could save.
            cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off")
        cur.execute(_STAGE_SQL["write"].format(**join), params)  # a failure rolls the settings back with it
        back = cur.fetchall()
        if probe:  # the rest of the batch's transaction (the cascade) plans as usual
            cur.execute("RESET enable_hashjoin; RESET enable_mergejoin; RESET jit")
        cur.execute("DROP TABLE screening_result_stage")
    unchanged, handed = back[0][1], back[1:]  # the count row, then the lines that need more (few)
    by_line = {b[0]: b for b in batch} if handed else {}
    rest = [(*by_line[r[0]], None if r[1] is None else r[1:]) for r in handed]
    # Every staged row is exactly one of: written here, unchanged, or handed back.
    return len(batch) - unchanged - len(rest), unchanged, rest


def _fast_negatives(rows: list[tuple], lab: Lab, user: Any, run_id: int, now: datetime) -> None:
    """First negatives where ``_stage`` does not run (SQLite): bulk statements through the ORM."""
    by = getattr(user, "pk", None)
    TubeResult.objects.bulk_create(
        [TubeResult(tube_id=r[0], version=1, result=r[1], ct_orf1ab=r[2], ct_n=r[3], tested_at=r[4], lab=lab,
                    by_id=by, at=now, import_run=run_id) for r in rows],
        batch_size=2000,
    )  # fmt: skip
    objs = list(Tube.objects.filter(pk__in=[r[0] for r in rows]))
    got = {r[0]: r for r in rows}
    for t in objs:
        r = got[t.pk]
        t.result, t.ct_orf1ab, t.ct_n, t.resulted_at = r[1], r[2], r[3], r[4]
        t.lab_id = t.lab_id or lab.pk
        t.received_at = t.received_at or r[4]
        t.sealed_at = t.sealed_at or r[4]
    Tube.objects.bulk_update(objs, ["result", "ct_orf1ab", "ct_n", "resulted_at", "lab", "received_at", "sealed_at"],
                             batch_size=500)  # fmt: skip
