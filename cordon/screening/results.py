"""Lab result files: CSV (UTF-8/GBK) or XLSX, Chinese or English headers.

A round's results are almost all first-time negatives; those are written set-based a batch at a time (one
INSERT of result versions, one UPDATE of tubes, one audit event). Positives, invalids and corrections are
few and each needs its cascade (holds, retests, cases), so they go one by one through
``services.record_result``. Idempotent: the same file again finds every row unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cordon.core import audit
from cordon.core.importing import Column, ErrorReport, ImportSummary, RowError, TabularFile, file_sha256
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
    seen: dict[str, tuple[int, tuple]] = {}
    batch: list[tuple[int, str, str, float | None, float | None, datetime | None]] = []
    done = 0
    for line, row in source.rows():
        barcode = row.get("tube", "").strip()
        try:
            result = parse_result(row.get("result", ""))
        except ValueError as exc:
            report.add(RowError(line, "result", row.get("result", ""), str(exc)))
            summary.rejected += 1
            continue
        try:
            ct1 = parse_ct(row.get("ct_orf1ab", ""))
        except ValueError as exc:
            report.add(RowError(line, "ct_orf1ab", row.get("ct_orf1ab", ""), str(exc) if "Ct" in str(exc)
                                else "not a number"))  # fmt: skip
            summary.rejected += 1
            continue
        try:
            ct2 = parse_ct(row.get("ct_n", ""))
        except ValueError as exc:
            report.add(RowError(line, "ct_n", row.get("ct_n", ""), str(exc) if "Ct" in str(exc) else "not a number"))
            summary.rejected += 1
            continue
        tested = None
        if row.get("tested_at"):
            try:
                tested = parse_time(row["tested_at"])
            except ValueError:
                report.add(RowError(line, "tested_at", row["tested_at"], "not a time"))
                summary.rejected += 1
                continue
        if not barcode:
            report.add(RowError(line, "tube", "", "required"))
            summary.rejected += 1
            continue
        key = (result, ct1, ct2)
        if barcode in seen:
            first_line, first_key = seen[barcode]
            if first_key != key:
                report.add(RowError(line, "tube", barcode, f"same tube as line {first_line} with another result"))
                summary.rejected += 1
            else:
                summary.unchanged += 1
            continue
        seen[barcode] = (line, key)
        batch.append((line, barcode, result, ct1, ct2, tested))
        if len(batch) >= batch_size:
            _write(batch, lab, user, prefix, run.pk, summary, report)
            done += len(batch)
            batch = []
            if progress:
                progress(done)
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


def _write(batch: list, lab: Lab, user: Any, prefix: str | None, run_id: int, summary: ImportSummary,
           report: ErrorReport) -> None:  # fmt: skip
    from cordon.screening.services import record_result

    tubes: dict[str, tuple] = {}
    codes = [b[1] for b in batch]
    for i in range(0, len(codes), 900):
        for row in Tube.objects.filter(barcode__in=codes[i : i + 900]).values_list(
            "barcode", "id", "result", "ct_orf1ab", "ct_n", "region_id", "is_retest", "capacity", "received_at",
            "sealed_at",
        ):
            tubes[row[0]] = row
    now = timezone.now()
    fast: list[tuple] = []
    slow: list[tuple] = []
    for line, barcode, result, ct1, ct2, tested in batch:
        t = tubes.get(barcode)
        if t is None or (prefix is not None and not t[5].startswith(prefix)):
            report.add(RowError(line, "tube", barcode, "unknown tube"))
            summary.rejected += 1
            continue
        if t[2] == result and t[3] == ct1 and t[4] == ct2:
            summary.unchanged += 1
            continue
        if not t[2] and result == Result.NEGATIVE and not t[6]:
            fast.append((t[1], result, ct1, ct2, tested or now))
        else:
            slow.append((line, t[1], result, ct1, ct2, tested))
    with transaction.atomic():
        if fast:
            _fast_negatives(fast, lab, user, run_id, now)
            summary.accepted += len(fast)
            audit.record(user or "lab", "screening.results_batch", lab, region_code=lab.region_id,
                         changes={"negative": len(fast), "import_run": run_id})  # fmt: skip
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


def _fast_negatives(rows: list[tuple], lab: Lab, user: Any, run_id: int, now: datetime) -> None:
    by = getattr(user, "pk", None)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS pg_temp.screening_result_stage")
            cur.execute("""CREATE TEMP TABLE screening_result_stage (tube_id bigint, result varchar(10),
                           ct1 double precision, ct2 double precision, tested timestamptz) ON COMMIT DROP""")
            with cur.cursor.copy("COPY screening_result_stage FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            cur.execute("""INSERT INTO screening_tuberesult (tube_id, version, result, ct_orf1ab, ct_n, tested_at,
                               lab_id, by_id, at, import_run, is_correction)
                           SELECT tube_id, 1, result, ct1, ct2, tested, %s, %s, %s, %s, false
                           FROM screening_result_stage""", [lab.pk, by, now, run_id])  # fmt: skip
            cur.execute("""UPDATE screening_tube t SET result = s.result, ct_orf1ab = s.ct1, ct_n = s.ct2,
                               resulted_at = s.tested, lab_id = COALESCE(t.lab_id, %s),
                               received_at = COALESCE(t.received_at, s.tested),
                               sealed_at = COALESCE(t.sealed_at, s.tested)
                           FROM screening_result_stage s WHERE t.id = s.tube_id""", [lab.pk])
            cur.execute("DROP TABLE screening_result_stage")
        return
    TubeResult.objects.bulk_create(
        [TubeResult(tube_id=r[0], version=1, result=r[1], ct_orf1ab=r[2], ct_n=r[3], tested_at=r[4], lab=lab,
                    by_id=by, at=now, import_run=run_id) for r in rows],
        batch_size=2000,
    )
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
