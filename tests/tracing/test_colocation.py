"""Co-location engine: semantics, bad rows, output format, CLI, and DuckDB/Spark parity."""

from __future__ import annotations

import csv
import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from cordon.tracing.colocation import (
    OUTPUT_COLUMNS,
    run_colocation,
    spark_available,
)
from cordon.tracing.commands import register

SH = ZoneInfo("Asia/Shanghai")
CHECKIN_HEADER = ["person_id", "venue_code", "checkin_at", "checkout_at"]
INDEX_HEADER = ["person_id", "infectious_from", "infectious_to"]
WIDE = ("2022-04-01 00:00", "2022-06-01 00:00")


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def colocate(tmp_path: Path, checkins: list[tuple], index: list[tuple], *, min_overlap: float = 15,
             default_stay: float = 30, tz: str = "Asia/Shanghai", out: bool = True) -> tuple[list[dict], object]:
    """Run the DuckDB engine over CSVs built from tuples; return the output CSV rows and result."""
    c = write_csv(tmp_path / "checkins.csv", CHECKIN_HEADER, checkins)
    i = write_csv(tmp_path / "index.csv", INDEX_HEADER, index)
    target = tmp_path / "out.csv" if out else None
    result = run_colocation(c, i, target, min_overlap_minutes=min_overlap,
                            default_stay_minutes=default_stay, tz=tz)
    if target is None:
        return result.records or [], result
    with open(target, encoding="utf-8") as fh:
        return list(csv.DictReader(fh)), result


def pairs(rows: list[dict]) -> dict[tuple[str, str, str], tuple[str, int]]:
    return {(r["index_person_id"], r["contact_person_id"], r["venue_code"]):
            (r["first_overlap_start"], int(r["overlap_minutes"])) for r in rows}


# ---------------------------------------------------------------------------------------------
# Semantics
# ---------------------------------------------------------------------------------------------

def test_basic_overlap_and_output_format(tmp_path: Path) -> None:
    rows, result = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 12:00"),
    ], [("A", *WIDE)])
    assert list(rows[0].keys()) == list(OUTPUT_COLUMNS)
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:30:00+08:00", 30)}
    assert result.rows == 1
    assert {"scan", "index", "join", "merge", "write", "total"} <= set(result.timings)


def test_touching_stays_merge_and_touching_people_do_not_meet(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        # B's two visits touch (10:30 = 10:30): one continuous hour together with A.
        ("B", "V1", "2022-05-01 10:00", "2022-05-01 10:30"),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 11:00"),
        # C arrives exactly when A leaves: no time together.
        ("C", "V1", "2022-05-01 11:00", "2022-05-01 12:00"),
    ], [("A", *WIDE)], min_overlap=0)
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 60)}


def test_exact_duplicates_count_once(tmp_path: Path) -> None:
    stay = ("B", "V1", "2022-05-01 10:00", "2022-05-01 10:30")
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 12:00"),
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 12:00"),
        stay, stay, stay,
    ], [("A", *WIDE)])
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 30)}


def test_overlapping_own_stays_are_merged_on_both_sides(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        # Index A: 10:00-10:40 and 10:20-11:00 is one visit of 60 minutes, not 80.
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 10:40"),
        ("A", "V1", "2022-05-01 10:20", "2022-05-01 11:00"),
        # Contact B: 09:00-10:30 and 10:10-10:50, together with A 10:00-10:50 = 50 minutes.
        ("B", "V1", "2022-05-01 09:00", "2022-05-01 10:30"),
        ("B", "V1", "2022-05-01 10:10", "2022-05-01 10:50"),
        # Contact C: a stay inside another stay.
        ("C", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("C", "V1", "2022-05-01 10:15", "2022-05-01 10:20"),
    ], [("A", *WIDE)])
    assert pairs(rows) == {
        ("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 50),
        ("A", "C", "V1"): ("2022-05-01T10:00:00+08:00", 60),
    }


def test_separate_visits_add_up(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 10:10"),
        ("A", "V1", "2022-05-01 18:00", "2022-05-01 18:10"),
        ("B", "V1", "2022-05-01 09:00", "2022-05-01 19:00"),
    ], [("A", *WIDE)])
    # Two 10-minute stretches: 20 minutes together, first at 10:00.
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 20)}


def test_missing_checkout_means_default_stay(tmp_path: Path) -> None:
    data = [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 12:00"),
        ("B", "V1", "2022-05-01 10:00", ""),
    ]
    rows, _ = colocate(tmp_path, data, [("A", *WIDE)], default_stay=30)
    assert pairs(rows)[("A", "B", "V1")][1] == 30
    rows, _ = colocate(tmp_path, data, [("A", *WIDE)], default_stay=45)
    assert pairs(rows)[("A", "B", "V1")][1] == 45
    # The index person's own missing checkout uses the default too.
    rows, _ = colocate(tmp_path, [("A", "V1", "2022-05-01 10:00", ""),
                                  ("B", "V1", "2022-05-01 09:00", "2022-05-01 12:00")],
                       [("A", *WIDE)], default_stay=20)
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 20)}


def test_index_stays_are_clipped_to_the_infectious_window(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 08:00", "2022-05-01 12:00"),
        ("B", "V1", "2022-05-01 08:00", "2022-05-01 12:00"),
        ("C", "V1", "2022-05-01 08:00", "2022-05-01 09:30"),  # only before the window
    ], [("A", "2022-05-01 10:00", "2022-05-01 11:00")], min_overlap=0)
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 60)}


def test_several_windows_for_one_index_person_are_united(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 08:00", "2022-05-01 12:00"),
        ("B", "V1", "2022-05-01 08:00", "2022-05-01 12:00"),
    ], [("A", "2022-05-01 09:00", "2022-05-01 10:00"),
        ("A", "2022-05-01 09:30", "2022-05-01 10:30")])  # overlapping windows: 09:00-10:30
    assert pairs(rows) == {("A", "B", "V1"): ("2022-05-01T09:00:00+08:00", 90)}


def test_index_to_index_both_directions_and_nobody_is_their_own_contact(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("A", "V1", "2022-05-01 10:30", "2022-05-01 11:30"),  # A overlaps A: still not a contact
        ("B", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
    ], [("A", *WIDE), ("B", *WIDE)])
    assert pairs(rows) == {
        ("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 60),
        ("B", "A", "V1"): ("2022-05-01T10:00:00+08:00", 60),
    }
    # B infectious only later: B is A's contact, but A is not B's.
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
    ], [("A", *WIDE), ("B", "2022-05-02 00:00", "2022-05-05 00:00")])
    assert set(pairs(rows)) == {("A", "B", "V1")}


def test_min_overlap_boundary(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00:00", "2022-05-01 12:00:00"),
        ("EQ", "V1", "2022-05-01 10:00:00", "2022-05-01 10:15:00"),     # exactly 15 min: counts
        ("LT", "V1", "2022-05-01 10:00:00", "2022-05-01 10:14:59"),     # 14:59: does not
        ("GT", "V1", "2022-05-01 10:00:00", "2022-05-01 10:15:59"),     # 15:59: shows 15 (floor)
    ], [("A", *WIDE)], min_overlap=15)
    assert pairs(rows) == {
        ("A", "EQ", "V1"): ("2022-05-01T10:00:00+08:00", 15),
        ("A", "GT", "V1"): ("2022-05-01T10:00:00+08:00", 15),
    }


def test_naive_times_are_in_the_deployment_zone_and_offsets_are_honoured(tmp_path: Path) -> None:
    data = [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),               # naive: Shanghai
        ("B", "V1", "2022-05-01T02:00:00Z", "2022-05-01T02:30:00Z"),       # = 10:00-10:30 +08
        ("C", "V1", "2022-05-01T11:00:00+09:00", "2022-05-01T11:20+09:00"),  # = 10:00-10:20 +08
        ("D", "V1", "2022-05-01T10:00:00+00:00", "2022-05-01T11:00:00+00:00"),  # 18:00 +08: no
    ]
    rows, _ = colocate(tmp_path, data, [("A", *WIDE)], min_overlap=1)
    assert pairs(rows) == {
        ("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 30),
        ("A", "C", "V1"): ("2022-05-01T10:00:00+08:00", 20),
    }
    # Deployed in UTC, the naive times mean UTC: A is at 10:00Z and meets D, and output is +00:00.
    rows, _ = colocate(tmp_path, data, [("A", *WIDE)], min_overlap=1, tz="UTC")
    assert pairs(rows) == {("A", "D", "V1"): ("2022-05-01T10:00:00+00:00", 60)}


def test_multiple_venues_give_one_row_each(tmp_path: Path) -> None:
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("A", "V2", "2022-05-01 12:00", "2022-05-01 13:00"),
        ("B", "V1", "2022-05-01 10:00", "2022-05-01 10:20"),
        ("B", "V2", "2022-05-01 12:00", "2022-05-01 12:20"),
        ("C", "V2", "2022-05-01 10:00", "2022-05-01 11:00"),  # at V2 while A was at V1
    ], [("A", *WIDE)])
    assert pairs(rows) == {
        ("A", "B", "V1"): ("2022-05-01T10:00:00+08:00", 20),
        ("A", "B", "V2"): ("2022-05-01T12:00:00+08:00", 20),
    }


def test_long_stays_and_long_windows(tmp_path: Path) -> None:
    # Stays longer than the bucketed path's limit, across midnight, and a multi-day window.
    rows, _ = colocate(tmp_path, [
        ("A", "HOTEL", "2022-05-01 20:00", "2022-05-03 08:00"),
        ("B", "HOTEL", "2022-05-02 21:00", "2022-05-04 09:00"),
        ("C", "HOTEL", "2022-05-02 23:50", "2022-05-03 00:20"),
    ], [("A", *WIDE)])
    assert pairs(rows) == {
        ("A", "B", "HOTEL"): ("2022-05-02T21:00:00+08:00", 660),
        ("A", "C", "HOTEL"): ("2022-05-02T23:50:00+08:00", 30),
    }


def test_output_is_sorted_and_records_match_csv(tmp_path: Path) -> None:
    data = [("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
            ("B", "V1", "2022-05-01 10:00", "2022-05-01 11:00")]
    data += [(f"P{n:02d}", f"V{n % 3}", "2022-05-01 10:00", "2022-05-01 11:00") for n in range(20, 0, -1)]
    data += [("A", "V0", "2022-05-01 10:00", "2022-05-01 11:00"), ("B", "V2", "2022-05-01 10:00", "")]
    rows, _ = colocate(tmp_path, data, [("B", *WIDE), ("A", *WIDE)])
    keys = [(r["index_person_id"], r["contact_person_id"], r["venue_code"]) for r in rows]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    records, result = colocate(tmp_path, data, [("B", *WIDE), ("A", *WIDE)], out=False)
    assert result.out is None
    assert [(r["index_person_id"], r["contact_person_id"], r["venue_code"]) for r in records] == keys
    assert [r["first_overlap_start"].isoformat() for r in records] == [r["first_overlap_start"] for r in rows]
    assert [r["overlap_minutes"] for r in records] == [int(r["overlap_minutes"]) for r in rows]


# ---------------------------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------------------------

def test_bad_rows_are_reported_with_line_and_field_and_the_rest_is_kept(tmp_path: Path) -> None:
    rows, result = colocate(tmp_path, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),       # line 2
        ("B", "V1", "yesterday at ten", ""),                       # line 3: unparseable checkin
        ("C", "V1", "2022-05-01 10:00", "2022-05-01 09:00"),       # line 4: checkout before checkin
        ("", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),        # line 5: missing person
        ("E", "V1", "2022-05-01 10:00", "soon"),                   # line 6: unparseable checkout
        ("F", "V1", "2022-05-01 10:00", "2022-05-01 10:30"),       # line 7: fine
    ], [("A", *WIDE), ("Z", "not a date", "2022-05-02")])
    assert pairs(rows) == {("A", "F", "V1"): ("2022-05-01T10:00:00+08:00", 30)}
    got = [(Path(b.file).name, b.line, b.field, b.value, b.reason) for b in result.bad_rows]
    assert got == [
        ("checkins.csv", 3, "checkin_at", "yesterday at ten", "unparseable time"),
        ("checkins.csv", 4, "checkout_at", "2022-05-01 09:00", "checkout before checkin"),
        ("checkins.csv", 5, "person_id", None, "missing"),
        ("checkins.csv", 6, "checkout_at", "soon", "unparseable time"),
        ("index.csv", 3, "infectious_from", "not a date", "unparseable time"),
    ]
    assert result.bad_row_count == 5


def test_rows_with_the_wrong_number_of_fields_keep_line_numbers_exact(tmp_path: Path) -> None:
    path = tmp_path / "checkins.csv"
    path.write_text(
        "person_id,venue_code,checkin_at,checkout_at\n"
        "A,V1,2022-05-01 10:00,2022-05-01 11:00\n"
        "B,V1,2022-05-01 10:00,2022-05-01 11:00,extra\n"
        "\n"
        "C,V1,never,\n", encoding="utf-8")
    index = write_csv(tmp_path / "index.csv", INDEX_HEADER, [("A", *WIDE)])
    errors = tmp_path / "errors.csv"
    result = run_colocation(path, index, tmp_path / "out.csv", min_overlap_minutes=15,
                            default_stay_minutes=30, errors_out=errors)
    got = [(b.line, b.field, b.reason) for b in result.bad_rows]
    assert got == [(3, "*", "expected 4 fields, found 5"), (5, "checkin_at", "unparseable time")]
    with open(errors, encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_parquet_with_typed_times_matches_csv_and_reports_rows(tmp_path: Path) -> None:
    data = [
        ("A", "V1", datetime(2022, 5, 1, 10, 0, tzinfo=SH), datetime(2022, 5, 1, 11, 0, tzinfo=SH)),
        ("B", "V1", datetime(2022, 5, 1, 10, 30, tzinfo=SH), None),
        ("C", "V1", datetime(2022, 5, 1, 10, 0, tzinfo=SH), datetime(2022, 5, 1, 9, 0, tzinfo=SH)),
    ]
    table = pa.table({
        "person_id": [r[0] for r in data], "venue_code": [r[1] for r in data],
        "checkin_at": pa.array([r[2] for r in data], pa.timestamp("us", tz="UTC")),
        "checkout_at": pa.array([r[3] for r in data], pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, tmp_path / "c.parquet")
    index = write_csv(tmp_path / "index.csv", INDEX_HEADER, [("A", *WIDE)])
    result = run_colocation(tmp_path / "c.parquet", index, None, min_overlap_minutes=15,
                            default_stay_minutes=30)
    assert [(r["contact_person_id"], r["overlap_minutes"]) for r in result.records or []] == [("B", 30)]
    assert [(b.line, b.field, b.value, b.reason) for b in result.bad_rows] == [
        (3, "checkout_at", "2022-05-01T09:00:00+08:00", "checkout before checkin")]


def test_gbk_exports_and_chinese_codes(tmp_path: Path) -> None:
    path = tmp_path / "checkins.csv"
    path.write_bytes((
        "person_id,venue_code,checkin_at,checkout_at\r\n"
        "甲,长沙火车站,2022-05-01 10:00,2022-05-01 11:00\r\n"
        "乙,长沙火车站,2022-05-01 10:30,\r\n"
    ).encode("gbk"))
    index = write_csv(tmp_path / "index.csv", INDEX_HEADER, [("甲", *WIDE)])
    result = run_colocation(path, index, tmp_path / "out.csv", min_overlap_minutes=15, default_stay_minutes=30)
    assert result.rows == 1
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1] == (
        "甲,乙,长沙火车站,2022-05-01T10:30:00+08:00,30")


def test_folder_input_and_python_index_rows(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_csv(folder / "a.csv", CHECKIN_HEADER, [("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00")])
    write_csv(folder / "b.csv", CHECKIN_HEADER, [("B", "V1", "2022-05-01 10:00", "2022-05-01 10:20")])
    result = run_colocation(folder, [{"person_id": "A", "infectious_from": datetime(2022, 5, 1),
                                      "infectious_to": "2022-05-02"}], None,
                            min_overlap_minutes=15, default_stay_minutes=30)
    assert [(r["index_person_id"], r["contact_person_id"], r["overlap_minutes"])
            for r in result.records or []] == [("A", "B", 20)]


def test_unknown_engine_and_zone_are_refused(tmp_path: Path) -> None:
    c = write_csv(tmp_path / "c.csv", CHECKIN_HEADER, [])
    i = write_csv(tmp_path / "i.csv", INDEX_HEADER, [])
    with pytest.raises(ValueError, match="engine"):
        run_colocation(c, i, None, engine="oracle", min_overlap_minutes=1, default_stay_minutes=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        run_colocation(c, i, None, min_overlap_minutes=1, default_stay_minutes=1, tz="Mars/Olympus")
    result = run_colocation(c, i, tmp_path / "o.csv", min_overlap_minutes=1, default_stay_minutes=1)
    assert result.rows == 0
    assert (tmp_path / "o.csv").read_text().strip() == ",".join(OUTPUT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Against a brute-force reference
# ---------------------------------------------------------------------------------------------

def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def reference(checkins: list[tuple], index: list[tuple], min_overlap_s: int, default_stay_s: int) -> dict:
    """Straightforward Python: union the stays, intersect, measure (the semantics, spelled out)."""
    def ts(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=SH).timestamp())

    stays: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for p, v, cin, cout in checkins:
        s = ts(cin)
        e = ts(cout) if cout else s + default_stay_s
        stays.setdefault((p, v), []).append((s, e))
    windows: dict[str, list[tuple[int, int]]] = {}
    for p, f, t in index:
        windows.setdefault(p, []).append((ts(f), ts(t)))
    out = {}
    for ip, wins in windows.items():
        for (p, v), ivs in stays.items():
            if p != ip:
                continue
            clipped = _union([(max(s, wf), min(e, wt)) for s, e in ivs for wf, wt in wins])
            for (cp, cv), cvs in stays.items():
                if cv != v or cp == ip:
                    continue
                pieces = [(max(a, c), min(b, d)) for a, b in clipped for c, d in _union(cvs)]
                pieces = [x for x in pieces if x[1] > x[0]]
                total = sum(e - s for s, e in pieces)
                if pieces and total >= min_overlap_s:
                    first = datetime.fromtimestamp(min(s for s, _ in pieces), SH).isoformat()
                    out[(ip, cp, v)] = (first, total // 60)
    return out


def random_checkins(rng: random.Random, n: int, people: int, venues: int) -> list[tuple]:
    base = datetime(2022, 5, 1, 8, 0)
    rows = []
    for _ in range(n):
        start = base + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 5))
        stay = rng.choice([0, 5, 10, 15, 30, 45, 60, 120, 300, 600])
        row = (f"P{rng.randrange(people)}", f"V{rng.randrange(venues)}",
               start.strftime("%Y-%m-%d %H:%M:%S"),
               "" if rng.random() < 0.15 else (start + timedelta(minutes=stay)).strftime("%Y-%m-%d %H:%M:%S"))
        rows.append(row)
        if rng.random() < 0.1:
            rows.append(row)  # duplicates happen
    return rows


def random_index(rng: random.Random, people: int, k: int) -> list[tuple]:
    base = datetime(2022, 5, 1, 0, 0)
    out = []
    for p in rng.sample(range(people), k):
        f = base + timedelta(hours=rng.randrange(0, 60))
        out.append((f"P{p}", f.strftime("%Y-%m-%d %H:%M"),
                    (f + timedelta(hours=rng.randrange(1, 48))).strftime("%Y-%m-%d %H:%M")))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_matches_brute_force_reference(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    checkins = random_checkins(rng, 400, people=40, venues=4)
    index = random_index(rng, 40, 6)
    rows, _ = colocate(tmp_path, checkins, index, min_overlap=10, default_stay=25)
    assert pairs(rows) == reference(checkins, index, 600, 1500)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def cli_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_colocation_writes_the_csv(tmp_path: Path) -> None:
    c = write_csv(tmp_path / "c.csv", CHECKIN_HEADER, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01 10:30", ""),
        ("C", "V1", "bad", ""),
    ])
    i = write_csv(tmp_path / "i.csv", INDEX_HEADER, [("A", *WIDE)])
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli_app(), [
        "trace", "colocation", "--checkins", str(c), "--index", str(i), "--out", str(out),
        "--min-overlap", "15", "--default-stay", "20", "--engine", "duckdb", "--tz", "Asia/Shanghai",
    ])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").splitlines() == [
        ",".join(OUTPUT_COLUMNS),
        "A,B,V1,2022-05-01T10:30:00+08:00,20",
    ]
    assert "1 bad row" in res.output


def test_cli_colocation_takes_its_defaults_from_the_policy(tmp_path: Path) -> None:
    pytest.importorskip("cordon.core.policy")
    c = write_csv(tmp_path / "c.csv", CHECKIN_HEADER, [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 14:00"),
        ("B", "V1", "2022-05-01 10:00", "2022-05-01 14:00"),
    ])
    i = write_csv(tmp_path / "i.csv", INDEX_HEADER, [("A", *WIDE)])
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli_app(), ["trace", "colocation", "--checkins", str(c), "--index", str(i),
                                         "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").splitlines()[1] == "A,B,V1,2022-05-01T10:00:00+08:00,240"


def test_cli_colocation_reports_missing_input(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli_app(), [
        "trace", "colocation", "--checkins", str(tmp_path / "nope.csv"), "--index", str(tmp_path / "i.csv"),
        "--out", str(tmp_path / "o.csv"), "--min-overlap", "15", "--default-stay", "30",
    ])
    assert res.exit_code == 1
    assert "no such file" in res.output


# ---------------------------------------------------------------------------------------------
# Spark parity
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spark_ready() -> None:
    ok, why = spark_available()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"Spark parity must run in CI: {why}")
        pytest.skip(f"Spark parity skipped: {why}")


@pytest.mark.spark
def test_spark_gives_identical_rows_and_bad_rows(tmp_path: Path, spark_ready: None) -> None:
    rng = random.Random(7)
    checkins = [
        *random_checkins(rng, 600, people=50, venues=5),
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01T02:00:00Z", "2022-05-01T02:30:00Z"),
        ("C", "V1", "2022-05-01T11:00:00+09:00", ""),
        ("A", "V1", "2022-05-01 10:30", "2022-05-01 11:30"),
        ("D", "V1", "whenever", ""),
        ("E", "V1", "2022-05-01 12:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 11:00"),
        ("F", "V2", "2022-05-01 09:00", "2022-05-03 09:00"),
        ("A", "V2", "2022-05-02 09:00", "2022-05-02 09:15"),
    ]
    index = [*random_index(rng, 50, 8), ("A", *WIDE), ("B", "2022-05-01 10:15", "2022-05-01 10:45")]
    c = write_csv(tmp_path / "checkins.csv", CHECKIN_HEADER, checkins)
    i = write_csv(tmp_path / "index.csv", INDEX_HEADER, index)
    # Also a typed Parquet source in the same run, so both reading paths are compared.
    pq.write_table(pa.table({
        "person_id": ["G", "H"], "venue_code": ["V1", "V1"],
        "checkin_at": pa.array([datetime(2022, 5, 1, 10, 5, tzinfo=SH)] * 2, pa.timestamp("us", tz="UTC")),
        "checkout_at": pa.array([datetime(2022, 5, 1, 10, 40, tzinfo=SH), None], pa.timestamp("us", tz="UTC")),
    }), tmp_path / "extra.parquet")
    results = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.csv"
        results[engine] = run_colocation([c, tmp_path / "extra.parquet"], i, out, engine=engine,
                                         min_overlap_minutes=10, default_stay_minutes=25, threads=2)
    duck, spark = (tmp_path / "duckdb.csv").read_bytes(), (tmp_path / "spark.csv").read_bytes()
    assert duck == spark
    assert results["duckdb"].rows == results["spark"].rows > 10
    assert results["duckdb"].bad_rows == results["spark"].bad_rows
    assert results["duckdb"].bad_row_count == results["spark"].bad_row_count == 2


def test_offsets_follow_daylight_saving_time(tmp_path: Path) -> None:
    # New York moved from -05:00 to -04:00 at 2022-03-13 02:00 local time.
    rows, _ = colocate(tmp_path, [
        ("A", "V1", "2022-03-12 10:00", "2022-03-12 11:00"),
        ("A", "V2", "2022-03-14 10:00", "2022-03-14 11:00"),
        ("B", "V1", "2022-03-12 10:00", "2022-03-12 10:30"),
        ("B", "V2", "2022-03-14T14:00:00Z", "2022-03-14T14:30:00Z"),
    ], [("A", "2022-03-01 00:00", "2022-03-31 00:00")], tz="America/New_York")
    assert pairs(rows) == {
        ("A", "B", "V1"): ("2022-03-12T10:00:00-05:00", 30),
        ("A", "B", "V2"): ("2022-03-14T10:00:00-04:00", 30),
    }
