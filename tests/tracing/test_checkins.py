"""Check-in store: day partitions, idempotent imports, bad rows, and the case-page query."""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from cordon.tracing.checkins import (
    colocation_for_index,
    day_files,
    days_for_window,
    import_checkins,
    read_day_stats,
    read_manifest,
    store_dir,
)
from cordon.tracing.colocation import run_colocation
from cordon.tracing.commands import register

SH = ZoneInfo("Asia/Shanghai")
HEADER = ["person_id", "venue_code", "checkin_at", "checkout_at"]


def write_csv(path: Path, rows: list[tuple], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def stored_rows(data_dir: Path) -> list[tuple]:
    files = day_files(data_dir)
    if not files:
        return []
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return sorted(
        (r["person_id"], r["venue_code"], r["checkin_at"].astimezone(SH).strftime("%Y-%m-%d %H:%M"),
         r["checkout_at"].astimezone(SH).strftime("%Y-%m-%d %H:%M") if r["checkout_at"] else "")
        for r in table.to_pylist())


def test_check_ins_are_partitioned_by_local_day(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", [
        ("A", "V1", "2022-05-01 23:30", "2022-05-02 00:30"),   # May 1 in Shanghai (15:30Z)
        ("B", "V1", "2022-05-02 00:30", ""),                   # May 2 in Shanghai (16:30Z May 1)
        ("C", "V2", "2022-05-01T20:00:00Z", ""),               # 04:00 May 2 in Shanghai
    ])
    summary = import_checkins(src, tmp_path / "data", tz="Asia/Shanghai")
    assert summary.rows_added == 3 and summary.days == ["2022-05-01", "2022-05-02"]
    root = store_dir(tmp_path / "data")
    assert sorted(p.name for p in root.glob("day=*")) == ["day=2022-05-01", "day=2022-05-02"]
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in day_files(tmp_path / "data"))
    may1 = pq.read_table(day_files(tmp_path / "data", ["2022-05-01"])[0])
    assert may1.column("person_id").to_pylist() == ["A"]
    assert str(may1.schema.field("checkin_at").type) == "timestamp[us, tz=UTC]"
    stats = read_day_stats(tmp_path / "data")
    assert stats["2022-05-02"].rows == 2 and stats["2022-05-02"].max_checkout is None
    assert stats["2022-05-01"].max_checkout == int(datetime(2022, 5, 2, 0, 30, tzinfo=SH).timestamp())


def test_reimporting_the_same_file_adds_nothing(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),   # duplicate inside the file
        ("B", "V1", "2022-05-01 10:30", ""),
    ])
    first = import_checkins(src, tmp_path / "data")
    assert (first.rows_read, first.rows_added, first.duplicates) == (3, 2, 1)
    before = stored_rows(tmp_path / "data")
    second = import_checkins(src, tmp_path / "data")
    assert second.skipped_files == [str(src.resolve())] and second.rows_added == 0
    assert stored_rows(tmp_path / "data") == before
    assert len(read_manifest(tmp_path / "data")) == 1


def test_overlapping_exports_merge_on_the_natural_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    import_checkins(write_csv(tmp_path / "a.csv", [
        ("A", "V1", "2022-05-01 10:00", ""),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 11:00"),
    ]), data)
    # A later export repeats B, fills in A's checkout, and adds C on another day.
    summary = import_checkins(write_csv(tmp_path / "b.csv", [
        ("A", "V1", "2022-05-01T02:00:00Z", "2022-05-01 10:45"),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 11:00"),
        ("C", "V2", "2022-05-03 09:00", ""),
    ]), data)
    assert (summary.rows_read, summary.rows_added, summary.duplicates) == (3, 1, 2)
    assert stored_rows(data) == [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 10:45"),
        ("B", "V1", "2022-05-01 10:30", "2022-05-01 11:00"),
        ("C", "V2", "2022-05-03 09:00", ""),
    ]
    # Importing the older export again (new content hash: a copy with another name) changes nothing.
    (tmp_path / "a2.csv").write_text((tmp_path / "a.csv").read_text() + "\n", encoding="utf-8")
    again = import_checkins(tmp_path / "a2.csv", data)
    assert again.rows_added == 0
    assert stored_rows(data)[0] == ("A", "V1", "2022-05-01 10:00", "2022-05-01 10:45")
    assert not list(store_dir(data).glob(".staging-*")) and not list(store_dir(data).glob(".trash-*"))


def test_import_reports_bad_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "", "2022-05-01 10:00", ""),
        ("C", "V1", "31/04/2022 10:00", ""),
        ("D", "V1", "2022-05-01 10:00", "2022-05-01 09:59"),
    ])
    summary = import_checkins(src, tmp_path / "data")
    assert summary.rows_added == 1 and summary.bad_row_count == 3
    assert [(b.line, b.field, b.value, b.reason) for b in summary.bad_rows] == [
        (3, "venue_code", None, "missing"),
        (4, "checkin_at", "31/04/2022 10:00", "unparseable time"),
        (5, "checkout_at", "2022-05-01 09:59", "checkout before checkin"),
    ]
    assert json.loads(json.dumps(summary.as_dict()))["bad_row_count"] == 3


def test_parquet_import(tmp_path: Path) -> None:
    pq.write_table(pa.table({
        "person_id": ["A", "B"], "venue_code": ["V1", "V1"],
        "checkin_at": ["2022-05-01 10:00", "2022-05-01T02:30:00Z"],
        "checkout_at": ["2022-05-01 11:00", None],
    }), tmp_path / "c.parquet")
    summary = import_checkins(tmp_path / "c.parquet", tmp_path / "data")
    assert summary.rows_added == 2
    assert stored_rows(tmp_path / "data") == [
        ("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
        ("B", "V1", "2022-05-01 10:30", ""),
    ]


def random_rows(rng: random.Random, n: int) -> list[tuple]:
    base = datetime(2022, 5, 1, 6, 0)
    rows = []
    for _ in range(n):
        start = base + timedelta(minutes=rng.randrange(0, 4 * 24 * 60, 5))
        stay = rng.choice([5, 15, 30, 60, 240, 900])
        rows.append((f"P{rng.randrange(30)}", f"V{rng.randrange(5)}", start.strftime("%Y-%m-%d %H:%M"),
                     "" if rng.random() < 0.2 else (start + timedelta(minutes=stay)).strftime("%Y-%m-%d %H:%M")))
    return rows


@pytest.mark.parametrize("person", ["P1", "P2", "P7"])
def test_interactive_query_equals_the_batch_engine(tmp_path: Path, person: str) -> None:
    rng = random.Random(11)
    rows = [
        *random_rows(rng, 600),
        # An overnight stay that starts the day before the window: its day must not be pruned.
        (person, "V9", "2022-05-02 22:00", "2022-05-03 09:00"),
        ("Q", "V9", "2022-05-03 08:00", "2022-05-03 12:00"),
    ]
    import_checkins(write_csv(tmp_path / "c.csv", rows), tmp_path / "data")
    window = ("2022-05-03 00:00", "2022-05-04 12:00")
    index = write_csv(tmp_path / "i.csv", [(person, *window)], ["person_id", "infectious_from", "infectious_to"])
    batch = run_colocation(store_dir(tmp_path / "data"), index, None, min_overlap_minutes=10,
                           default_stay_minutes=40)
    page = colocation_for_index(tmp_path / "data", person, window[0], datetime(2022, 5, 4, 12, 0),
                                min_overlap=10, default_stay=40)
    assert page == batch.records
    assert any(r["venue_code"] == "V9" and r["contact_person_id"] == "Q" for r in page)


def test_day_pruning_uses_the_day_statistics(tmp_path: Path) -> None:
    import_checkins(write_csv(tmp_path / "c.csv", [
        ("A", "V1", "2022-05-01 22:00", "2022-05-02 02:00"),   # May 1, ends after midnight
        ("B", "V1", "2022-05-03 10:00", ""),
        ("C", "V1", "2022-05-05 10:00", "2022-05-05 11:00"),
    ]), tmp_path / "data")
    stats = read_day_stats(tmp_path / "data")

    def ts(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=SH).timestamp())

    assert days_for_window(stats, ts("2022-05-02 01:00"), ts("2022-05-02 23:00"), 1800) == ["2022-05-01"]
    assert days_for_window(stats, ts("2022-05-02 03:00"), ts("2022-05-03 09:00"), 1800) == []
    # B has no checkout: the default stay decides whether May 3 reaches into the window.
    assert days_for_window(stats, ts("2022-05-03 10:20"), ts("2022-05-04 00:00"), 1800) == ["2022-05-03"]
    assert days_for_window(stats, ts("2022-05-03 10:20"), ts("2022-05-04 00:00"), 600) == []
    assert colocation_for_index(tmp_path / "data", "nobody", "2022-05-01", "2022-05-09",
                                min_overlap=1, default_stay=30) == []


def test_cli_import_checkins(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    src = write_csv(tmp_path / "c.csv", [("A", "V1", "2022-05-01 10:00", ""), ("B", "V1", "x", "")])
    runner = CliRunner()
    res = runner.invoke(app, ["trace", "import-checkins", str(src), "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    assert "1 new check-in" in res.output and "1 bad" in res.output
    res = runner.invoke(app, ["trace", "import-checkins", str(src), "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 0 and "already imported" in res.output
    assert len(stored_rows(tmp_path / "data")) == 1


def test_cli_zone_defaults_to_the_deployment_zone(tmp_path: Path, settings) -> None:
    settings.TIME_ZONE = "Europe/London"
    app = typer.Typer()
    register(app)
    src = write_csv(tmp_path / "c.csv", [("A", "V1", "2022-05-01 23:30", "")])
    runner = CliRunner()
    res = runner.invoke(app, ["trace", "import-checkins", str(src), "--data-dir", str(tmp_path / "london")])
    assert res.exit_code == 0, res.output
    # 23:30 in London (BST) is 22:30Z; in the literal Asia/Shanghai it would be 15:30Z on May 1.
    table = pq.read_table(day_files(tmp_path / "london")[0])
    assert table.column("checkin_at")[0].as_py() == datetime(2022, 5, 1, 22, 30, tzinfo=ZoneInfo("UTC"))
    assert read_day_stats(tmp_path / "london").keys() == {"2022-05-01"}
    # An explicit --tz still wins.
    res = runner.invoke(app, ["trace", "import-checkins", str(src), "--data-dir", str(tmp_path / "sh"),
                              "--tz", "Asia/Shanghai"])
    assert res.exit_code == 0, res.output
    table = pq.read_table(day_files(tmp_path / "sh")[0])
    assert table.column("checkin_at")[0].as_py() == datetime(2022, 5, 1, 15, 30, tzinfo=ZoneInfo("UTC"))


def test_cli_colocation_reads_naive_times_in_the_deployment_zone(tmp_path: Path, settings) -> None:
    settings.TIME_ZONE = "Europe/London"
    app = typer.Typer()
    register(app)
    src = write_csv(tmp_path / "c.csv", [("A", "V1", "2022-05-01 10:00", "2022-05-01 11:00"),
                                         ("B", "V1", "2022-05-01 10:00", "2022-05-01 11:00")])
    index = write_csv(tmp_path / "i.csv", [("A", "2022-05-01 00:00", "2022-05-02 00:00")],
                      ["person_id", "infectious_from", "infectious_to"])
    res = CliRunner().invoke(app, ["trace", "colocation", "--checkins", str(src), "--index", str(index),
                                   "--out", str(tmp_path / "o.csv"), "--min-overlap", "15",
                                   "--default-stay", "30"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o.csv", encoding="utf-8") as fh:
        out = list(csv.DictReader(fh))
    assert [(r["contact_person_id"], r["first_overlap_start"]) for r in out] == [("B", "2022-05-01T10:00:00+01:00")]


def edge_rows(rng: random.Random, n: int) -> list[tuple]:
    """Stays on a coarse grid, so that touching, duplicated, zero-length and nested stays are common."""
    base = datetime(2022, 5, 2, 20, 0)
    rows = []
    for _ in range(n):
        start = base + timedelta(minutes=10 * rng.randrange(0, 40))
        checkout = ("" if rng.random() < 0.2 else
                    (start + timedelta(minutes=10 * rng.choice([0, 1, 2, 3, 6, 30]))).strftime("%Y-%m-%d %H:%M"))
        rows.append((f"P{rng.randrange(8)}", f"V{rng.randrange(3)}", start.strftime("%Y-%m-%d %H:%M"), checkout))
    return rows


@pytest.mark.parametrize(("seed", "min_overlap"), [(1, 0), (2, 10), (3, 30), (4, 1)])
def test_interactive_query_equals_the_batch_engine_on_edge_cases(tmp_path: Path, seed: int, min_overlap: int) -> None:
    rng = random.Random(seed)
    import_checkins(write_csv(tmp_path / "c.csv", edge_rows(rng, 300)), tmp_path / "data")
    # Windows that cut stays, a zero-length window, and one that holds everything.
    windows = [("2022-05-02 21:05", "2022-05-03 01:35"), ("2022-05-02 22:00", "2022-05-02 22:00"),
               ("2022-05-01 00:00", "2022-05-05 00:00")]
    checked = 0
    for person in ("P0", "P3", "P7"):
        for window in windows:
            index = write_csv(tmp_path / "i.csv", [(person, *window)], ["person_id", "infectious_from", "infectious_to"])
            batch = run_colocation(store_dir(tmp_path / "data"), index, None, min_overlap_minutes=min_overlap,
                                   default_stay_minutes=20)
            page = colocation_for_index(tmp_path / "data", person, *window, min_overlap=min_overlap, default_stay=20)
            assert page == batch.records, (person, window)
            checked += len(page)
    assert checked > 0


def test_colocation_pairs_counts_time_together_once() -> None:
    from cordon.tracing.checkins import colocation_pairs

    found = pa.table({
        "person_id": ["I", "B", "B", "B", "C", "C", "D", "E"],
        "venue_code": ["V1", "V1", "V1", "V1", "V1", "V2", "V1", "V1"],
        # B: two overlapping stays inside the first island, one in the second; C: a touching stay
        # at V1 (no contact) and one at V2; D: zero-length; E: 10 s short of the minimum.
        "s": [0, 100, 200, 5000, 1000, 0, 500, 0],
        "e": [1000, 700, 900, 5600, 2000, 900, 500, 290],
    })
    stays = [("V1", 0, 1000), ("V1", 1000, 1000), ("V1", 5000, 6000), ("V2", 100, 400)]
    rows = colocation_pairs("I", stays, found, min_overlap_s=300)
    # B: [100, 900) in the first island (800 s) + [5000, 5600) in the second (600 s).
    assert rows == [("B", "V1", 100, 1400), ("C", "V2", 100, 300)]
    assert colocation_pairs("I", stays, found.slice(0, 0), min_overlap_s=0) == []
    assert colocation_pairs("I", [], found, min_overlap_s=0) == []
    # Nobody is their own contact, even at minimum zero.
    assert all(r[0] != "I" for r in colocation_pairs("I", stays, found, min_overlap_s=0))

