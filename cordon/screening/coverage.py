"""Pre-aggregated coverage (应检尽检): target population, people sampled and households sampled per campaign and
leaf region, so the board and the coverage page read a few thousand small rows instead of anti-joining the
whole registry against the round's registrations on every request.

The registration write path is not touched. Counting is keyed on watermarks: the stored rows
(``CoverageCount``) cover registrations up to ``reg_watermark`` and people up to ``person_watermark``; a
refresh folds in only the newer rows (a newer registration adds its person once, and only if that person had
no counted registration in the round); readers add whatever is above the watermarks live, which is small, so
what they see equals a straight recount at any moment. People who move between regions (a registry import
run, an edit) make the stored rows stale: they are then recounted at the same watermarks.

On PostgreSQL ids are handed out before transactions commit, so a watermark moves past an id only once every
transaction that was writing when that id was read has ended; SQLite has a single writer, and a refresh
takes the write lock before reading the highest ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from cordon.core.models import ImportRun
from cordon.core.scoping import prefix_range
from cordon.people.models import Person
from cordon.screening.models import Campaign, CoverageCount, CoverageState, Registration

# Import runs that rewrite existing people in bulk (no model signals fire): a new or finished one means people
# may have moved between regions since the stored rows were counted.
REGISTRY_IMPORT_KINDS = ("people",)
# A read refreshes at most this often; in between, readers add the rows above the watermarks live.
REFRESH_INTERVAL = timedelta(seconds=15)
_CHUNK = 500


@dataclass(frozen=True)
class Group:
    """A code range to count, keyed either by the range start (``child_len`` None) or by the code prefix of
    that length (one row per child region)."""

    lo: str
    hi: str
    child_len: int | None = None


def campaign_ranges(campaign: Campaign) -> list[tuple[str, str]]:
    """The code ranges of every region the campaign covers (not narrowed to anyone's jurisdiction: the stored
    rows serve every reader, and each read narrows its own ranges)."""
    out = []
    for prefix in campaign.areas.order_by("region_id").values_list("region__prefix", flat=True):
        r = prefix_range("x", prefix)
        out.append((r["x__gte"], r["x__lt"]))
    return out


def _ranges_sql(alias: str, ranges: list[tuple[str, str]]) -> tuple[str, list[Any]]:
    if not ranges:
        return "1 = 0", []
    parts, params = [], []
    for lo, hi in ranges:
        parts.append(f"({alias}.region_id >= %s AND {alias}.region_id < %s)")
        params += [lo, hi]
    return "(" + " OR ".join(parts) + ")", params


def _household_key(alias: str) -> str:
    """People with the same address in the same grid are one household; a person with no address is their
    own."""
    return _bytewise(f"CASE WHEN {alias}.address = '' THEN '#' || CAST({alias}.id AS VARCHAR(20)) ELSE {alias}.address END")


def _bytewise(expr: str) -> str:
    """A text compared byte by byte on PostgreSQL. Counting households and grouping by region sort every
    swabbed person of a round; under the database's own collation each comparison goes through the C
    library and the sort cannot use abbreviated keys, and a city's first count took half as long again.
    Only equality and grouping depend on it, which no collation changes."""
    return f'({expr}) COLLATE "C"' if connection.vendor == "postgresql" else expr


def registry_signature(campaign: Campaign) -> str:
    """Changes when an import run that rewrites people starts or finishes, or when the covered areas change."""
    runs = ImportRun.objects.filter(kind__in=REGISTRY_IMPORT_KINDS).aggregate(
        last=Max("id"), done=Count("id", filter=Q(finished_at__isnull=False))
    )
    areas = hashlib.sha1(repr(campaign_ranges(campaign)).encode()).hexdigest()[:16]
    return f"{runs['last'] or 0}:{runs['done']}:{areas}"


def _tables() -> tuple[str, str, str]:
    return Registration._meta.db_table, Person._meta.db_table, CoverageCount._meta.db_table


_OTHER_DATABASES_XIDS = """ARRAY(SELECT backend_xid::text FROM pg_stat_activity
                                 WHERE datname IS DISTINCT FROM current_database() AND backend_xid IS NOT NULL)"""


def _ours(snapshot: str, others: list[str] | None) -> set[str]:
    """Transactions in flight in this database: a snapshot lists the whole cluster's, and a writer in another
    database cannot hold ids of these tables. Sessions whose details are hidden from us stay in the set."""
    xip = {x for x in snapshot.split(":")[2].split(",") if x}
    other = {int(x) for x in (others or [])}
    return {x for x in xip if int(x) % 2**32 not in other}


def _current_marks() -> tuple[int, int, set[str]]:
    """Highest registration and person ids visible now, and (PostgreSQL) the transactions still writing."""
    reg, per, _cc = _tables()
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(f"""SELECT pg_current_snapshot()::text, (SELECT MAX(id) FROM {reg}), (SELECT MAX(id) FROM {per}),
                                   {_OTHER_DATABASES_XIDS}""")
            snap, r, p, others = cur.fetchone()
            xip = _ours(snap, others)
        else:
            cur.execute(f"SELECT (SELECT MAX(id) FROM {reg}), (SELECT MAX(id) FROM {per})")
            r, p = cur.fetchone()
            xip = set()
    return int(r or 0), int(p or 0), xip


def _in_flight() -> set[str]:
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute(f"SELECT pg_current_snapshot()::text, {_OTHER_DATABASES_XIDS}")
        snap, others = cur.fetchone()
    return _ours(snap, others)


def _safe_marks(state: CoverageState) -> tuple[int, int]:
    """How far the watermarks may move now; records a new candidate when they cannot move all the way."""
    reg_max, person_max, xip = _current_marks()
    if not xip:
        state.reg_candidate = state.person_candidate = None
        state.candidate_xids = ""
        return max(reg_max, state.reg_watermark), max(person_max, state.person_watermark)
    reg_safe, person_safe = state.reg_watermark, state.person_watermark
    if state.reg_candidate is not None:
        waited = set(filter(None, state.candidate_xids.split(",")))
        if not (waited & xip):
            reg_safe = max(reg_safe, state.reg_candidate)
            person_safe = max(person_safe, state.person_candidate or 0)
            state.reg_candidate = None
    if state.reg_candidate is None and (reg_max > reg_safe or person_max > person_safe):
        state.reg_candidate, state.person_candidate = reg_max, person_max
        state.candidate_xids = ",".join(sorted(xip))
    return reg_safe, person_safe


def _grouped(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def _households(campaign_id: int, regions: Iterable[str], reg_wm: int) -> dict[str, int]:
    reg, per, _cc = _tables()
    regions = sorted(set(regions))
    out: dict[str, int] = {}
    for i in range(0, len(regions), _CHUNK):
        chunk = regions[i : i + _CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        for region_id, n in _grouped(
            f"""SELECT {_bytewise('p.region_id')}, COUNT(DISTINCT {_household_key('p')}) FROM {per} p
                WHERE p.region_id IN ({marks})
                  AND EXISTS (SELECT 1 FROM {reg} r WHERE r.campaign_id = %s AND r.person_id = p.id AND r.id <= %s)
                GROUP BY 1""",
            [*chunk, campaign_id, reg_wm],
        ):
            out[region_id] = n
    return out


def _rebuild(campaign: Campaign, ranges: list[tuple[str, str]], reg_wm: int, person_wm: int) -> None:
    reg, per, _cc = _tables()
    where, params = _ranges_sql("p", ranges)
    rows: dict[str, list[int]] = {}
    for region_id, n in _grouped(
        f"SELECT p.region_id, COUNT(*) FROM {per} p WHERE p.id <= %s AND {where} GROUP BY p.region_id",
        [person_wm, *params],
    ):
        rows.setdefault(region_id, [0, 0, 0])[0] = n
    for region_id, n, households in _grouped(
        f"""SELECT {_bytewise('p.region_id')}, COUNT(*), COUNT(DISTINCT {_household_key('p')}) FROM {per} p
            WHERE {where}
              AND EXISTS (SELECT 1 FROM {reg} r WHERE r.campaign_id = %s AND r.person_id = p.id AND r.id <= %s)
            GROUP BY 1""",
        [*params, campaign.pk, reg_wm],
    ):
        row = rows.setdefault(region_id, [0, 0, 0])
        row[1], row[2] = n, households
    CoverageCount.objects.filter(campaign=campaign).delete()
    CoverageCount.objects.bulk_create(
        [CoverageCount(campaign=campaign, region_id=k, target=t, sampled=s, households_sampled=h)
         for k, (t, s, h) in rows.items()],
        batch_size=1000,
    )  # fmt: skip


def _fold(campaign: Campaign, ranges: list[tuple[str, str]], state: CoverageState, reg_wm: int, person_wm: int) -> None:
    """Add the rows between the old and the new watermarks to the stored counts."""
    reg, per, _cc = _tables()
    where, params = _ranges_sql("p", ranges)
    delta: dict[str, list[int]] = {}
    if person_wm > state.person_watermark:
        for region_id, n in _grouped(
            f"""SELECT p.region_id, COUNT(*) FROM {per} p WHERE p.id > %s AND p.id <= %s AND {where}
                GROUP BY p.region_id""",
            [state.person_watermark, person_wm, *params],
        ):
            delta.setdefault(region_id, [0, 0])[0] += n
    touched: list[str] = []
    if reg_wm > state.reg_watermark:
        for region_id, n in _grouped(
            f"""SELECT p.region_id, COUNT(DISTINCT r.person_id) FROM {reg} r JOIN {per} p ON p.id = r.person_id
                WHERE r.campaign_id = %s AND r.id > %s AND r.id <= %s AND {where}
                  AND NOT EXISTS (SELECT 1 FROM {reg} r2 WHERE r2.campaign_id = %s AND r2.person_id = r.person_id
                                  AND r2.id <= %s)
                GROUP BY p.region_id""",
            [campaign.pk, state.reg_watermark, reg_wm, *params, campaign.pk, state.reg_watermark],
        ):
            delta.setdefault(region_id, [0, 0])[1] += n
            touched.append(region_id)
    if not delta:
        return
    households = _households(campaign.pk, touched, reg_wm) if touched else {}
    keys = sorted(delta)
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        existing = {c.region_id: c for c in CoverageCount.objects.filter(campaign=campaign, region_id__in=chunk)}
        new, changed = [], []
        for k in chunk:
            t, s = delta[k]
            c = existing.get(k)
            if c is None:
                new.append(CoverageCount(campaign=campaign, region_id=k, target=t, sampled=s,
                                         households_sampled=households.get(k, 0)))  # fmt: skip
            else:
                c.target += t
                c.sampled += s
                if k in households:
                    c.households_sampled = households[k]
                changed.append(c)
        CoverageCount.objects.bulk_create(new)
        if changed:
            CoverageCount.objects.bulk_update(changed, ["target", "sampled", "households_sampled"])


def refresh(campaign: Campaign, *, rebuild: bool = False, wait: bool = True) -> CoverageState | None:
    """Bring the stored counts of one campaign forward. Returns None when another refresh holds the campaign
    (only with ``wait=False``): the reader then adds the rows above the current watermarks live."""
    ranges = campaign_ranges(campaign)
    signature = registry_signature(campaign)
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                CoverageState.objects.get_or_create(campaign=campaign)
        except IntegrityError:
            pass
        qs = CoverageState.objects.filter(campaign=campaign)
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=not wait)
        else:
            # Take SQLite's write lock before reading the highest ids, so no other writer is in flight.
            qs.update(refreshed_at=now)
        state = qs.first()
        if state is None:
            return None
        if connection.vendor == "postgresql":
            # The counts hash every person and swab of a round: keep those hashes in memory.
            with connection.cursor() as cur:
                cur.execute("SET LOCAL work_mem = '256MB'")
        reg_wm, person_wm = _safe_marks(state)
        if rebuild or state.dirty or state.rebuilt_at is None or state.registry_signature != signature:
            _rebuild(campaign, ranges, reg_wm, person_wm)
            state.rebuilt_at = now
            state.dirty = False
            state.registry_signature = signature
        else:
            _fold(campaign, ranges, state, reg_wm, person_wm)
        state.reg_watermark, state.person_watermark = reg_wm, person_wm
        state.refreshed_at = now
        state.save()
    return state


def needs_refresh(campaign: Campaign, state: CoverageState | None) -> bool:
    if state is None or state.rebuilt_at is None or state.dirty:
        return True
    if state.registry_signature != registry_signature(campaign):
        return True
    if state.reg_candidate is not None and not (set(filter(None, state.candidate_xids.split(","))) & _in_flight()):
        return True
    return state.refreshed_at is None or timezone.now() - state.refreshed_at >= REFRESH_INTERVAL


def current_state(campaign: Campaign) -> CoverageState:
    """The campaign's coverage state, refreshed first when stale (never waiting on a refresh in progress)."""
    state = CoverageState.objects.filter(campaign=campaign).first()
    if needs_refresh(campaign, state):
        fresh = refresh(campaign, wait=state is None)
        if fresh is not None:
            return fresh
        state = CoverageState.objects.filter(campaign=campaign).first() or CoverageState(campaign=campaign)
    return state


def _key(alias: str, group: Group) -> tuple[str, list[Any]]:
    if group.child_len:
        return f"SUBSTR({alias}.region_id, 1, {int(group.child_len)})", []
    return "CAST(%s AS VARCHAR(15))", [group.lo]


def counts(campaign: Campaign, groups: list[Group], state: CoverageState | None = None) -> list[dict[str, Any]]:
    """Target, sampled and households sampled per group key: the stored rows plus the rows above the
    watermarks, counted live. Households are as of the last refresh."""
    state = state or current_state(campaign)
    reg, per, cc = _tables()
    merged: dict[str, dict[str, int]] = {}

    def add(key: str, field: str, n: int) -> None:
        row = merged.setdefault(key, {"target": 0, "sampled": 0, "households": 0})
        row[field] += int(n or 0)

    for g in groups:
        key, kp = _key("c", g)
        for k, t, s, h in _grouped(
            f"""SELECT {key}, SUM(c.target), SUM(c.sampled), SUM(c.households_sampled) FROM {cc} c
                WHERE c.campaign_id = %s AND c.region_id >= %s AND c.region_id < %s GROUP BY 1""",
            [*kp, campaign.pk, g.lo, g.hi],
        ):
            add(k, "target", t)
            add(k, "sampled", s)
            add(k, "households", h)
        key, kp = _key("p", g)
        for k, n in _grouped(
            f"""SELECT {key}, COUNT(*) FROM {per} p
                WHERE p.id > %s AND p.region_id >= %s AND p.region_id < %s GROUP BY 1""",
            [*kp, state.person_watermark, g.lo, g.hi],
        ):
            add(k, "target", n)
        for k, n in _grouped(
            f"""SELECT {key}, COUNT(DISTINCT r.person_id) FROM {reg} r JOIN {per} p ON p.id = r.person_id
                WHERE r.campaign_id = %s AND r.id > %s AND p.region_id >= %s AND p.region_id < %s
                  AND NOT EXISTS (SELECT 1 FROM {reg} r2 WHERE r2.campaign_id = %s AND r2.person_id = r.person_id
                                  AND r2.id <= %s)
                GROUP BY 1""",
            [*kp, campaign.pk, state.reg_watermark, g.lo, g.hi, campaign.pk, state.reg_watermark],
        ):
            add(k, "sampled", n)
    return [{"key": k, **v} for k, v in sorted(merged.items())]


def refresh_all(*, rebuild: bool = False) -> int:
    """Every running or planned campaign; for a scheduled task."""
    n = 0
    for c in Campaign.objects.exclude(status=Campaign.Status.FINISHED).order_by("pk"):
        if refresh(c, rebuild=rebuild, wait=False) is not None:
            n += 1
    return n


def request_rebuild(campaign: Campaign) -> None:
    """Mark the stored rows stale: the next refresh (the background task or the next read) recounts them."""
    CoverageState.objects.filter(campaign=campaign).update(dirty=True)
