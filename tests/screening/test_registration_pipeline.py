"""The registration file engine's lean paths give the answers of the reference rules: the inline resident-ID
check against ``clean_document``, positional file records against dict rows, and the two-worker pipeline on
PostgreSQL (one worker reads batch k+1 while the other writes batch k) against the rules a single worker
applies, including what happens when a batch fails."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from cordon.core.identity import check_digit
from cordon.core.importing import TabularFile
from cordon.screening import ingest
from cordon.screening.models import Registration, Tube
from tests.conftest import rid

HEADER = ["扫码编号", "试管编码", "证件号码", "姓名", "联系电话", "采样时间", "采样点"]
AT = "2022-05-01 09:00"


class _Sites:
    """The resolver interface with one known site, for checking rows without a database."""

    class _Obj:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    def __init__(self) -> None:
        site = self._Obj(id=1, region_id="430102001001001")
        self.cache = {"S1": (site, self._Obj(id=2), 10, False)}
        self.today = date(2026, 11, 30)
        self.times: dict = {}

    def resolve(self, code: str) -> object:
        return self.cache.get(code, ingest.UNKNOWN_SITE)


def _reference(number: str) -> tuple | str:
    try:
        return ingest.clean_document("", number, date(2026, 11, 30))
    except ValueError as exc:
        return f"{ingest.INVALID_DOCUMENT}: {exc}"


def _fast(number: str) -> tuple | str:
    out = ingest.clean_fields(2, "s1", "T1", "", number, "张三", "", "2022-05-01T09:00:00+08:00", "S1", "", _Sites())
    if isinstance(out, ingest.ScanOutcome):
        return out.reason
    return out[3], out[4], out[12], out[13]


@settings(max_examples=300, deadline=None)
@given(region=st.sampled_from(["430102", "110101", "440305", "650102"]),
       born=st.dates(min_value=date(1890, 1, 1), max_value=date(2026, 11, 30)),
       seq=st.integers(min_value=0, max_value=999), pos=st.integers(min_value=0, max_value=17),
       char=st.sampled_from(list("0123456789Xx１a ")), corrupt=st.booleans())  # fmt: skip
def test_inline_resident_id_check_agrees_with_the_full_rules(region, born, seq, pos, char, corrupt):
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    number = first17 + check_digit(first17)
    if corrupt:
        number = number[:pos] + char + number[pos + 1 :]
    assert _fast(number) == _reference(number)


def test_inline_check_refuses_what_the_full_rules_refuse():
    good = rid("430102", 1990, 1, 1, 5)
    assert _fast(good)[:2] == ("resident_id", good)
    assert _fast(good.lower()) == _fast(good)
    # Full-width digits (typed on a Chinese keyboard) are normalised by the full rules, never a crash.
    assert _fast("４" + good[1:]) == _reference("４" + good[1:]) == _fast(good)
    for bad in (good[:-1] + ("0" if good[-1] != "0" else "1"), "43010219900230001X", "430102" + "2099" + "0101" + "0011",
                good[:17], good + "1"):  # fmt: skip
        assert _fast(bad) == _reference(bad)
        assert isinstance(_fast(bad), str) and _fast(bad).startswith(ingest.INVALID_DOCUMENT)


def test_records_match_rows(tmp_path):
    path = tmp_path / "f.csv"
    with path.open("w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["姓名", "无关列", "扫码编号", "试管编码", "证件号码", "采样时间", "采样点"])
        w.writerow([" 张三 ", "x", "a1", "T1", "430102199001010051", AT, "S1"])
        w.writerow([])
        w.writerow(["", "", "", "", "", "", ""])
        w.writerow([" ", "\t", "", "  ", "", "", ""])  # blank but for whitespace
        w.writerow(["李四", "y", "a2"])  # short row
        w.writerow(["王五", "z", "a3", "T3", "1", AT, "S1", "extra", "more"])  # long row
    rows = list(TabularFile(path, ingest.REGISTRATION_COLUMNS).rows())
    records = list(TabularFile(path, ingest.REGISTRATION_COLUMNS).records(ingest.REGISTRATION_KEYS))
    raw = list(TabularFile(path, ingest.REGISTRATION_COLUMNS).records(ingest.REGISTRATION_KEYS, strip=False))
    assert [line for line, _ in records] == [line for line, _ in rows] == [line for line, _ in raw] == [2, 6, 7]
    for (_, row), (_, rec), (_, unstripped) in zip(rows, records, raw, strict=True):
        assert rec == tuple(row.get(k, "") for k in ingest.REGISTRATION_KEYS)
        assert tuple(v.strip() for v in unstripped) == rec
    assert records[0][1][ingest.REGISTRATION_KEYS.index("name")] == "张三"
    assert raw[0][1][ingest.REGISTRATION_KEYS.index("name")] == " 张三 "
    assert records[1][1][ingest.REGISTRATION_KEYS.index("phone")] == ""


def _write(path, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for r in rows:
            w.writerow(r)
    return path


def _errors(path) -> dict[int, str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {int(r["line"]): r["reason"] for r in csv.DictReader(fh)}


pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the two-worker pipeline is PostgreSQL's")


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_pipelined_batches_apply_the_rules_in_file_order(tmp_path, campaign, site, tester, person_factory, batch_size,
                                                        monkeypatch):  # fmt: skip
    threads = []
    real = ingest._Worker.run_in_thread

    def spy(self):
        threads.append(1)
        return real(self)

    monkeypatch.setattr(ingest._Worker, "run_in_thread", spy)
    d = [person_factory(name=f"人{i}").document_number for i in range(12)]
    rows = [(f"F-{i}", "P1", d[i], f"人{i}", "", AT, "S-FR-1") for i in range(11)]  # lines 2-12: 11th is one too many
    rows += [
        ("F-0", "P1", d[0], "人0", "", AT, "S-FR-1"),  # 13: re-sent, same content
        ("F-1", "P2", d[1], "人1", "", AT, "S-FR-1"),  # 14: same scan_id, other content
        ("G-1", "P3", d[2], "人2", "", AT, "S-FR-1"),  # 15
        ("G-2", "P3", d[2], "人2", "", AT, "S-FR-1"),  # 16: same person again in that tube, a batch later
        ("G-3", "P4", "123", "无名", "", AT, "S-FR-1"),  # 17: invalid document
        ("G-4", "P4", d[3], "人3", "", AT, "S-NOPE"),  # 18: unknown site
        ("G-5", "P4", d[4], "人4", "", AT, "S-FR-1"),  # 19
    ]
    f = _write(tmp_path / "reg.csv", rows)
    err = tmp_path / "err.csv"
    assert not connection.in_atomic_block
    s = ingest.import_registrations(f, campaign=campaign, user=tester, errors_path=err, batch_size=batch_size)
    assert threads, "the second worker ran"
    reasons = _errors(err)
    assert list(reasons) == sorted(reasons)  # the report reads in line order
    assert reasons == {12: ingest.TUBE_FULL, 14: ingest.DUPLICATE_DIFFERENT, 16: ingest.ALREADY_IN_TUBE,
                       17: reasons[17], 18: ingest.UNKNOWN_SITE}  # fmt: skip
    assert reasons[17].startswith(ingest.INVALID_DOCUMENT)
    assert (s.accepted, s.unchanged, s.rejected) == (12, 1, 5)
    p1 = Tube.objects.get(barcode="P1")
    assert (p1.members, p1.capacity) == (10, 10) and p1.sealed_at is not None
    assert set(Registration.objects.values_list("scan_id", flat=True)) == {f"F-{i}" for i in range(10)} | {"G-1", "G-5"}
    again = ingest.import_registrations(f, campaign=campaign, user=tester, batch_size=batch_size)
    assert (again.accepted, again.unchanged, again.rejected) == (0, 13, 5)


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_newcomer_added_by_the_batch_before_is_found_in_turn(tmp_path, campaign, site, tester, monkeypatch):
    """The next batch looks its people up while the batch before it is still being written: a newcomer that
    batch adds is not there yet, and must be found when the next batch's turn comes, not dropped."""
    import threading

    newcomer = rid("430102", 1990, 3, 3, 77)
    rows = [("N-1", "Q1", newcomer, "新来", "", AT, "S-FR-1"), ("N-2", "Q2", newcomer, "新来", "", AT, "S-FR-1")]
    second_prepared = threading.Event()
    prepared, real_prepare, real_resolve = [], ingest._prepare, ingest._resolve

    def prepare(cur, rows):
        known = real_prepare(cur, rows)
        prepared.append(known)
        if len(prepared) == 2:
            second_prepared.set()
        return known

    def resolve(cur, **kw):
        if not prepared or len(prepared) == 1:
            assert second_prepared.wait(10), "the second batch was staged while the first waited"
        return real_resolve(cur, **kw)

    monkeypatch.setattr(ingest, "_prepare", prepare)
    monkeypatch.setattr(ingest, "_resolve", resolve)
    s = ingest.import_registrations(_write(tmp_path / "reg.csv", rows), campaign=campaign, user=tester, batch_size=1)
    assert prepared == [0, 0]  # neither batch found the newcomer before its turn
    assert (s.accepted, s.rejected, s.extra["people_added"]) == (2, 0, 1)
    assert set(Registration.objects.filter(person__document_number=newcomer).values_list("tube__barcode", flat=True)) \
        == {"Q1", "Q2"}


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_keeps_the_batches_before_it_and_writes_none_after(tmp_path, campaign, site, tester,
                                                                           person_factory, monkeypatch):  # fmt: skip
    d = [person_factory(name=f"人{i}").document_number for i in range(12)]
    rows = [(f"F-{i}", f"P{i // 3}", d[i], f"人{i}", "", AT, "S-FR-1") for i in range(12)]  # lines 2-13
    f = _write(tmp_path / "reg.csv", rows)
    real = ingest.clean_fields

    def failing(line, *args):
        if line == 9:  # in the third batch of three
            raise RuntimeError("disk on fire")
        return real(line, *args)

    monkeypatch.setattr(ingest, "clean_fields", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest.import_registrations(f, campaign=campaign, user=tester, batch_size=3)
    assert set(Registration.objects.values_list("scan_id", flat=True)) == {f"F-{i}" for i in range(6)}
    from cordon.core.audit import verify_chain

    assert [problem for _n, problem in verify_chain()][-1] is None


def test_collection_times_are_parsed_once_per_text_and_sign_the_same_digest():
    sites = _Sites()
    good = rid("430102", 1990, 1, 1, 5)

    def row(line: int, at: object) -> tuple | ingest.ScanOutcome:
        return ingest.clean_fields(line, f"s{line}", "T1", "", good, "张三", "", at, "S1", "", sites)

    a, b = row(2, "2022-05-01T09:00:00+08:00"), row(3, "2022-05-01T09:00:00+08:00")
    assert a[7] == b[7] == datetime(2022, 5, 1, 1, 0, tzinfo=UTC)
    assert a[14] == b[14] == ingest.scan_digest("T1", "resident_id", good, "张三", "", a[7], "S1", "")
    # A naive time reads in the configured zone (Asia/Shanghai), slashes and a missing second as well.
    assert row(4, "2022/05/01 09:00")[7] == a[7]
    assert row(5, datetime(2022, 5, 1, 1, 0, tzinfo=UTC))[14] == a[14]
    for line in (6, 7):
        refused = row(line, "yesterday")
        assert (refused.status, refused.reason, refused.field) == ("refused", ingest.BAD_TIME, "collected_at")
    assert row(8, None).reason == ingest.BAD_TIME
    assert sites.times["yesterday"] is None and len(sites.times) == 3


def _spy_resolve(monkeypatch) -> list[tuple[bool, bool]]:
    """(offered optimistically, still optimistic after) for each batch written."""
    calls: list[tuple[bool, bool]] = []
    real = ingest._resolve

    def spy(cur, **kw):
        out = real(cur, **kw)
        calls.append((kw.get("optimistic", False), out[2]))
        return out

    monkeypatch.setattr(ingest, "_resolve", spy)
    return calls


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("batch_size", "expected_calls", "reasons", "unchanged"),
    [
        # Batches [2, 3] [4, 5] [6, 7] [8]: the third meets a stored scan_id on a refused line and is redone.
        (2, [(True, True), (True, True), (True, False), (False, False)],
         {5: ingest.TUBE_RESULTED, 6: ingest.TUBE_RESULTED}, 1),
        # One batch: the repeated line 6 is judged against line 5, as the careful rules do.
        (100, [(True, False)], {5: ingest.TUBE_RESULTED}, 2),
    ],
)  # fmt: skip
def test_optimistic_batches_redo_the_careful_way_what_repeats_a_scan(tmp_path, campaign, site, tester, person_factory,
                                                                    monkeypatch, batch_size, expected_calls, reasons,
                                                                    unchanged):  # fmt: skip
    d = [person_factory(name=f"人{i}").document_number for i in range(8)]
    ingest.import_registrations(_write(tmp_path / "first.csv", [("E-0", "R", d[0], "人0", "", AT, "S-FR-1")]),
                                campaign=campaign, user=tester)  # fmt: skip
    Tube.objects.filter(barcode="R").update(result="negative")
    calls = _spy_resolve(monkeypatch)
    rows = [
        ("A-0", "Q1", d[1], "人1", "", AT, "S-FR-1"),  # 2
        ("A-1", "Q1", d[2], "人2", "", AT, "S-FR-1"),  # 3
        ("A-2", "Q1", d[3], "人3", "", AT, "S-FR-1"),  # 4
        ("X-1", "R", d[4], "人4", "", AT, "S-FR-1"),  # 5: a tube already resulted
        ("X-1", "R", d[4], "人4", "", AT, "S-FR-1"),  # 6: the same scan again, refused like line 5
        ("E-0", "R", d[0], "人0", "", AT, "S-FR-1"),  # 7: stored before its tube was resulted: a re-send
        ("A-3", "Q1", d[5], "人5", "", AT, "S-FR-1"),  # 8
    ]
    err = tmp_path / "err.csv"
    s = ingest.import_registrations(_write(tmp_path / "reg.csv", rows), campaign=campaign, user=tester,
                                    errors_path=err, batch_size=batch_size)  # fmt: skip
    assert calls == expected_calls
    assert _errors(err) == reasons
    assert (s.accepted, s.unchanged, s.rejected) == (4, unchanged, len(reasons))
    assert Tube.objects.get(barcode="Q1").members == 4
    assert Registration.objects.filter(scan_id__in=["X-1", "E-0"]).count() == 1
    again = ingest.import_registrations(_write(tmp_path / "reg.csv", rows), campaign=campaign, user=tester,
                                        batch_size=batch_size)  # fmt: skip
    assert (again.accepted, again.unchanged) == (0, 4 + unchanged)


@pg_only
@pytest.mark.django_db(transaction=True)
def test_an_optimistic_batch_refused_by_the_scan_index_is_redone(tmp_path, campaign, site, tester, person_factory,
                                                                 monkeypatch):  # fmt: skip
    d = [person_factory(name=f"人{i}").document_number for i in range(4)]
    ingest.import_registrations(_write(tmp_path / "first.csv", [("E-7", "Q3", d[0], "人0", "", AT, "S-FR-1")]),
                                campaign=campaign, user=tester)  # fmt: skip
    calls = _spy_resolve(monkeypatch)
    rows = [("B-1", "Q4", d[1], "人1", "", AT, "S-FR-1"),
            ("E-7", "Q4", d[2], "人2", "", AT, "S-FR-1"),  # a stored scan_id, other content, passing every rule
            ("B-2", "Q4", d[3], "人3", "", AT, "S-FR-1")]  # fmt: skip
    err = tmp_path / "err.csv"
    s = ingest.import_registrations(_write(tmp_path / "reg.csv", rows), campaign=campaign, user=tester,
                                    errors_path=err)  # fmt: skip
    assert calls == [(True, False)]
    assert _errors(err) == {3: ingest.DUPLICATE_DIFFERENT}
    assert (s.accepted, s.rejected) == (2, 1)
    assert Registration.objects.get(scan_id="E-7").tube.barcode == "Q3"
    assert Tube.objects.get(barcode="Q4").members == 2
    from cordon.people.models import Person

    assert Person.objects.filter(document_number__in=d).count() == 4  # nothing added twice by the undone attempt


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_file_import_summarises_the_time_index_ranges_it_filled(tmp_path, campaign, site, tester):
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = 'reg_collected_brin'")
        assert "autosummarize=off" in cur.fetchone()[0]
    rows = [(f"B-{i}", f"BT{i // 10}", rid("430102", 1950 + i % 60, 1 + i % 12, 1 + i % 28, i // 720), f"人{i}", "",
             AT, "S-FR-1") for i in range(5000)]  # fmt: skip
    s = ingest.import_registrations(_write(tmp_path / "reg.csv", rows), campaign=campaign, user=tester)
    assert s.accepted == 5000
    with connection.cursor() as cur:
        cur.execute("SELECT pg_relation_size('screening_registration') / current_setting('block_size')::int")
        assert cur.fetchone()[0] > 64  # more than two block ranges of 32 pages
        cur.execute("SELECT brin_summarize_new_values('reg_collected_brin'::regclass)")
        assert cur.fetchone()[0] == 0  # nothing left for autovacuum: the import summarised what it added
