"""Registrations from sampling terminals: the API's small batches (typically 100 scans) in one statement.

Why a second path beside ``ingest.write_batch``: a city round is ten million swabs in a day from thousands
of terminals, so the API must take ten thousand scans a second on two cores; a batch of 100 may cost the
server only a few milliseconds. The file engine stages into a temporary table and runs a dozen statements,
which is right for a million rows and far too many round trips for a hundred. Here the batch travels as one
JSON parameter and a single PostgreSQL statement, its steps chained as CTEs, applies exactly the same rules
in the same order (re-sends, duplicates in the batch, unknown people added unverified in the site's grid,
guardians, tubes opened by their first swab, resulted / other-campaign / sealed / already-in-tube / full)
and writes people, tubes and registrations. The outcomes and rows are those of ``ingest.write_batch``.

Concurrency is optimistic: a tube's swab count is only advanced if no other batch moved it since the
statement's snapshot, and every insert is counted. If another terminal got in between (the same new tube,
person or scan at the same instant), the transaction is rolled back and the batch is run again, this time
holding its tubes' row locks first; after repeated collisions it goes through the file engine.

On SQLite (the embedded single-user deployment) the batch goes through ``ingest.write_batch``: correct,
with no throughput target.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import psycopg.errors
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from cordon.core import audit
from cordon.screening.ingest import (
    ALREADY_IN_TUBE,
    DUPLICATE_DIFFERENT,
    MAX_BATCH,
    OTHER_HOUSEHOLD,
    TUBE_FULL,
    TUBE_OTHER_CAMPAIGN,
    TUBE_RESULTED,
    TUBE_SEALED,
    UNKNOWN_GUARDIAN,
    ScanOutcome,
    SiteResolver,
    StagedRow,
    stage_scan,
    write_batch,
)
from cordon.screening.models import Campaign, CampaignArea, Site

# How long a process trusts what it learnt about a site (its grid, the running campaign covering it, the
# pool size). A change saved in this process clears it at once; other workers honour a site closed or a
# round finished within these seconds.
SITE_TTL_S = 5.0

_FIELD = {TUBE_FULL: "tube", TUBE_RESULTED: "tube", TUBE_SEALED: "tube", TUBE_OTHER_CAMPAIGN: "tube",
          ALREADY_IN_TUBE: "document_number", UNKNOWN_GUARDIAN: "guardian_document", OTHER_HOUSEHOLD: "tube"}

_sites: dict[tuple, tuple[float, Any]] = {}
_sites_lock = threading.Lock()


def forget_sites() -> None:
    """Drop the per-process site cache (after a site or campaign changed in this process, and in tests)."""
    with _sites_lock:
        _sites.clear()


def _forget_on_change(sender: Any, **kwargs: Any) -> None:
    forget_sites()


for _model in (Campaign, CampaignArea, Site):
    post_save.connect(_forget_on_change, sender=_model, dispatch_uid=f"terminal-sites-{_model.__name__}")
    post_delete.connect(_forget_on_change, sender=_model, dispatch_uid=f"terminal-sites-del-{_model.__name__}")


class _CachedSites:
    """``SiteResolver`` answers kept per process for ``SITE_TTL_S`` seconds, behind the resolver's own
    interface (``cache``, ``resolve``, ``today``, ``times``), so ``ingest.stage_scan`` checks each scan by the very
    rules the file engine uses."""

    def __init__(self, user: Any, campaign: Any) -> None:
        from cordon.core.scoping import jurisdiction_prefix

        self.user = user
        self.campaign = campaign
        self.resolver: SiteResolver | None = None
        self.cache: dict[str, Any] = {}
        self.today = timezone.localdate()
        self.times: dict[str, Any] = {}  # this batch's collection times, parsed once each
        self.key = (jurisdiction_prefix(user) if user is not None else "",
                    getattr(campaign, "pk", None), getattr(campaign, "status", None))  # fmt: skip

    def resolve(self, code: str) -> Any:
        if code in self.cache:
            return self.cache[code]
        key = (*self.key, code)
        now = time.monotonic()
        cached = _sites.get(key)
        if cached is not None and cached[0] > now:
            out = cached[1]
        else:
            if self.resolver is None:
                self.resolver = SiteResolver(self.user, self.campaign)
            out = self.resolver.resolve(code)
            with _sites_lock:
                if len(_sites) > 10_000:
                    _sites.clear()
                _sites[key] = (now + SITE_TTL_S, out)
        self.cache[code] = out
        return out


def register_scans(user: Any, scans: list[dict[str, Any]], *, campaign: Any = None) -> list[ScanOutcome]:
    """A sampling terminal's batch; every scan gets an outcome, in the order sent (as ``ingest_scans``)."""
    from cordon.core.scoping import require

    require(user, "scan")
    if len(scans) > MAX_BATCH:
        from cordon.people.validation import FieldError

        raise FieldError("scans", str(len(scans)), f"at most {MAX_BATCH} scans per batch")
    sites = _CachedSites(user, campaign)
    staged: list[StagedRow] = []
    outcomes: dict[int, ScanOutcome] = {}
    for i, scan in enumerate(scans):
        s = stage_scan(i, scan, sites)  # type: ignore[arg-type]
        if isinstance(s, ScanOutcome):
            outcomes[i] = s
        else:
            staged.append(s)
    if staged:
        outcomes.update(_write(staged, user))
    return [outcomes.get(i) or ScanOutcome(str(scans[i].get("scan_id")), "accepted") for i in range(len(scans))]


_ATTEMPTS = 5


class _Collided(Exception):
    """Another writer changed a row this batch relied on between the snapshot and the write."""


def _write(rows: list[StagedRow], user: Any) -> dict[int, ScanOutcome]:
    if connection.vendor == "postgresql":
        for attempt in range(_ATTEMPTS):
            try:
                with transaction.atomic():
                    return _write_pg(rows, user, lock=attempt > 0)
            except (_Collided, psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                # Two batches growing the same tubes in opposite orders: one is chosen to give way.
                continue
    return write_batch(rows, user=user).outcomes


def _json_rows(rows: list[StagedRow]) -> str:
    return json.dumps([{"line": r.line, "scan_id": r.scan_id, "barcode": r.barcode, "doc_type": r.doc_type,
                        "doc_number": r.doc_number, "name": r.name, "phone": r.phone,
                        "collected_at": r.collected_at.isoformat(), "site_id": r.site_id, "campaign_id": r.campaign_id,
                        "capacity": r.capacity, "region": r.person_region, "tube_region": r.tube_region,
                        "birth_date": r.birth_date.isoformat() if r.birth_date else None, "sex": r.sex,
                        "digest": r.digest, "g_doc_type": r.g_doc_type, "g_doc_number": r.g_doc_number,
                        "household": r.household}
                       for r in rows], ensure_ascii=False)  # fmt: skip


# One statement per batch. The CTEs follow ``ingest.write_batch`` step by step; each step only sees the
# lines that no earlier step refused. Everything stored that a rule needs (an earlier registration of the
# scan, the person, the guardian, the tube, the person's swab in that tube) is looked up once per line by
# index in the first CTE; the steps after it are window functions over the batch, so no step joins two
# intermediate results. People and new tubes are keyed by document and barcode (the same identity as their
# ids), so every rule is decided before anything is written and new tubes are inserted with their final
# swab count. PostgreSQL runs every data-modifying CTE even where the final SELECT does not read it.
_SQL = """
WITH s AS (
  SELECT j.*, r.digest AS stored_digest, r.digest IS NOT NULL AS stored, p.id AS known_id,
         p.region_id AS known_region, p.address AS known_address, g.id AS known_guardian, x.id AS stored_tube, x.campaign_id AS t_campaign,
         x.capacity AS t_capacity, x.members AS t_members, x.result AS t_result, x.sealed_at AS t_sealed,
         (x.id IS NOT NULL AND p.id IS NOT NULL AND EXISTS (
            SELECT 1 FROM screening_registration rr WHERE rr.tube_id = x.id AND rr.person_id = p.id)) AS in_tube
  FROM json_to_recordset(%(rows)s::json) AS j(line int, scan_id text, barcode text, doc_type text,
    doc_number text, name text, phone text, collected_at timestamptz, site_id bigint, campaign_id bigint,
    capacity int, region text, tube_region text, birth_date date, sex text, digest text, g_doc_type text,
    g_doc_number text, household boolean)
  -- LIMIT 1 keeps each lookup a per-line index probe whatever the table statistics say (a round starts
  -- with an empty tube table, and a hash join over a table that has since grown would read all of it).
  LEFT JOIN LATERAL (SELECT digest FROM screening_registration WHERE scan_id = j.scan_id LIMIT 1) r ON true
  LEFT JOIN LATERAL (SELECT id, region_id, address FROM people_person
                     WHERE document_type = j.doc_type AND document_number = j.doc_number LIMIT 1) p ON true
  LEFT JOIN LATERAL (SELECT id FROM people_person
                     WHERE j.g_doc_number <> '' AND document_type = j.g_doc_type
                       AND document_number = j.g_doc_number LIMIT 1) g ON true
  LEFT JOIN LATERAL (SELECT id, campaign_id, capacity, members, result, sealed_at FROM screening_tube
                     WHERE barcode = j.barcode LIMIT 1) x ON true
), dup AS (
  SELECT s.*,
    CASE WHEN stored THEN CASE WHEN stored_digest = digest THEN 'duplicate' ELSE %(different)s::text END
         -- The same scan_id again in the batch: judged against the first line's content.
         WHEN line > FIRST_VALUE(line) OVER w THEN CASE WHEN digest = FIRST_VALUE(digest) OVER w THEN 'duplicate'
                                                        ELSE %(different)s::text END
    END AS status
  FROM s WINDOW w AS (PARTITION BY scan_id, stored ORDER BY line)
), new_people AS (
  INSERT INTO people_person (name, document_type, document_number, sex, birth_date, phone, address, region_id,
                             nationality, verified, created_at, updated_at, import_run)
  SELECT DISTINCT ON (doc_type, doc_number) name, doc_type, doc_number, sex, birth_date, phone, '', region,
         'CHN', false, %(now)s::timestamptz, %(now)s::timestamptz, NULL
  FROM dup WHERE status IS NULL AND known_id IS NULL
  ORDER BY doc_type, doc_number, line
  ON CONFLICT (document_type, document_number) DO NOTHING
  RETURNING id, document_type, document_number
), who AS (
  SELECT d.*,
    COALESCE(known_id, (SELECT n.id FROM new_people n
                        WHERE n.document_type = d.doc_type AND n.document_number = d.doc_number)) AS person_id,
    COALESCE(known_region, region) AS person_region, COALESCE(known_address, '') AS person_address,
    CASE WHEN g_doc_number <> '' THEN
      COALESCE(known_guardian, (SELECT n.id FROM new_people n
                                WHERE n.document_type = d.g_doc_type AND n.document_number = d.g_doc_number))
    END AS guardian_id
  FROM dup d WHERE status IS NULL
), ok AS (
  SELECT * FROM who WHERE g_doc_number = '' OR guardian_id IS NOT NULL
), ruled AS (
  SELECT ok.*, stored_tube IS NULL AS fresh,
    COALESCE(t_capacity, FIRST_VALUE(capacity) OVER w) AS cap, COALESCE(t_members, 0) AS members0,
    CASE WHEN t_result <> '' THEN %(resulted)s::text
         WHEN COALESCE(t_campaign, FIRST_VALUE(campaign_id) OVER w) <> campaign_id THEN %(other_campaign)s::text
         WHEN t_sealed IS NOT NULL AND t_members < t_capacity THEN %(sealed)s::text
         WHEN in_tube THEN %(already)s::text
    END AS status3
  FROM ok WINDOW w AS (PARTITION BY barcode ORDER BY line)
), once AS (
  SELECT ruled.*, ROW_NUMBER() OVER (PARTITION BY barcode, doc_type, doc_number ORDER BY line) AS nth
  FROM ruled WHERE status3 IS NULL
), anchors AS (
  -- A household tube takes the household of its first stored member, else of the batch's first line for it.
  -- Looked up for the household lines only: most batches have none.
  SELECT DISTINCT ON (o.barcode) o.barcode, pp.id AS h_id, pp.region_id AS h_region, pp.address AS h_address
  FROM once o JOIN screening_registration rr ON rr.tube_id = o.stored_tube
  JOIN people_person pp ON pp.id = rr.person_id
  WHERE o.household AND o.nth = 1
  ORDER BY o.barcode, rr.id
), hh AS (
  SELECT o.*,
    (o.household AND o.person_id <> COALESCE(a.h_id, FIRST_VALUE(o.person_id) OVER w)
     AND NOT (COALESCE(a.h_address, FIRST_VALUE(o.person_address) OVER w) <> ''
              AND o.person_address = COALESCE(a.h_address, FIRST_VALUE(o.person_address) OVER w)
              AND o.person_region = COALESCE(a.h_region, FIRST_VALUE(o.person_region) OVER w))) AS other_household
  FROM once o LEFT JOIN anchors a ON o.household AND a.barcode = o.barcode
  WHERE o.nth = 1 WINDOW w AS (PARTITION BY o.barcode, o.household ORDER BY o.line)
), counted AS (
  SELECT hh.*, members0 + ROW_NUMBER() OVER (PARTITION BY barcode ORDER BY line) AS filled
  FROM hh WHERE other_household IS NOT TRUE
), acc AS (
  SELECT * FROM counted WHERE filled <= cap
), first_swabs AS (
  SELECT DISTINCT ON (barcode) barcode, campaign_id, site_id, tube_region, capacity, collected_at
  FROM ok WHERE stored_tube IS NULL ORDER BY barcode, line
), per_tube AS (
  SELECT barcode, stored_tube, members0, COUNT(*) AS n, MAX(collected_at) AS last FROM acc
  GROUP BY barcode, stored_tube, members0
), new_tubes AS (
  INSERT INTO screening_tube (barcode, campaign_id, site_id, region_id, capacity, members, collector, opened_at,
                              sealed_at, result, is_retest)
  SELECT f.barcode, f.campaign_id, f.site_id, f.tube_region, f.capacity, COALESCE(a.n, 0), %(collector)s::text,
         f.collected_at, CASE WHEN COALESCE(a.n, 0) >= f.capacity THEN a.last END, '', false
  FROM first_swabs f LEFT JOIN per_tube a ON a.barcode = f.barcode AND a.stored_tube IS NULL
  ON CONFLICT (barcode) DO NOTHING
  RETURNING id, barcode
), grown AS (
  UPDATE screening_tube x SET members = x.members + a.n,
         sealed_at = CASE WHEN x.members + a.n >= x.capacity THEN a.last ELSE x.sealed_at END
  FROM per_tube a
  WHERE x.id = a.stored_tube AND x.members = a.members0
  RETURNING x.id
), registered AS (
  INSERT INTO screening_registration (scan_id, campaign_id, tube_id, person_id, site_id, region_id, guardian_id,
                                      collected_at, digest, created_at)
  SELECT * FROM (
    SELECT a.scan_id, a.campaign_id,
           COALESCE(a.stored_tube, (SELECT nt.id FROM new_tubes nt WHERE nt.barcode = a.barcode)) AS tube_id,
           a.person_id, a.site_id, a.person_region, a.guardian_id, a.collected_at, a.digest,
           %(now)s::timestamptz
    FROM acc a WHERE a.person_id IS NOT NULL) q
  WHERE q.tube_id IS NOT NULL
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT line, status, NULL::bigint, NULL::bigint FROM dup WHERE status IS NOT NULL
UNION ALL SELECT line, %(no_guardian)s::text, NULL, NULL FROM who WHERE g_doc_number <> '' AND guardian_id IS NULL
UNION ALL SELECT line, status3, NULL, NULL FROM ruled WHERE status3 IS NOT NULL
UNION ALL SELECT line, %(already)s::text, NULL, NULL FROM once WHERE nth > 1
UNION ALL SELECT line, %(household)s::text, NULL, NULL FROM hh WHERE other_household
UNION ALL SELECT line, %(full)s::text, NULL, NULL FROM counted WHERE filled > cap
UNION ALL SELECT line, '=guardian', person_id, guardian_id FROM acc WHERE guardian_id IS NOT NULL
UNION ALL SELECT -1, '=accepted', (SELECT COUNT(*) FROM acc), (SELECT COUNT(*) FROM registered)
UNION ALL SELECT -1, '=people', (SELECT COUNT(*) FROM new_people),
                 (SELECT COUNT(*) FROM who WHERE person_id IS NULL)
UNION ALL SELECT -1, '=opened', (SELECT COUNT(*) FROM first_swabs), (SELECT COUNT(*) FROM new_tubes)
UNION ALL SELECT -1, '=grown', (SELECT COUNT(*) FROM per_tube WHERE stored_tube IS NOT NULL),
                 (SELECT COUNT(*) FROM grown)
"""


def _write_pg(rows: list[StagedRow], user: Any, *, lock: bool = False) -> dict[int, ScanOutcome]:
    """``lock``: after a collision, take the batch's stored tubes first, in id order, so that busy tubes
    are waited for instead of lost to again (and two such batches cannot deadlock)."""
    now = timezone.now()
    params = {"rows": _json_rows(rows), "now": now, "collector": getattr(user, "username", "") or "",
              "different": DUPLICATE_DIFFERENT, "no_guardian": UNKNOWN_GUARDIAN, "resulted": TUBE_RESULTED,
              "other_campaign": TUBE_OTHER_CAMPAIGN, "sealed": TUBE_SEALED, "already": ALREADY_IN_TUBE,
              "full": TUBE_FULL, "household": OTHER_HOUSEHOLD}  # fmt: skip
    # A server-side prepared statement: planning this statement costs more than running it.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        if lock:
            cur.execute("SELECT id FROM screening_tube WHERE barcode = ANY(%s) ORDER BY id FOR UPDATE",
                        [sorted({r.barcode for r in rows})])
        cur.execute(_SQL, params, prepare=True)
        result = cur.fetchall()
        flagged: list[tuple[int, str]] = []
        guardians: list[tuple[int, int]] = []
        figures: dict[str, tuple[int, int]] = {}
        for line, status, a, b in result:
            if line < 0:
                figures[status] = (a, b)
            elif status == "=guardian":
                guardians.append((a, b))
            else:
                flagged.append((line, status))
        accepted = figures["=accepted"]
        people = figures["=people"]
        if (accepted[0] != accepted[1] or people[1] or figures["=opened"][0] != figures["=opened"][1]
                or figures["=grown"][0] != figures["=grown"][1]):  # fmt: skip
            raise _Collided
        if guardians:
            # A minor registered under a guardian: the registry remembers the guardian (the first one given).
            cur.execute("""UPDATE people_person p SET guardian_id = g.guardian_id
                           FROM (SELECT DISTINCT ON (person_id) person_id, guardian_id
                                 FROM unnest(%s::bigint[], %s::bigint[]) WITH ORDINALITY AS g(person_id, guardian_id, n)
                                 ORDER BY person_id, n) g
                           WHERE p.id = g.person_id AND p.guardian_id IS NULL""",
                        [[p for p, _g in guardians], [g for _p, g in guardians]])  # fmt: skip
    by_line = {r.line: r for r in rows}
    outcomes: dict[int, ScanOutcome] = {}
    duplicate = refused = 0
    for line, status in flagged:
        r = by_line[line]
        if status == "duplicate":
            outcomes[line] = ScanOutcome(r.scan_id, "duplicate")
            duplicate += 1
        else:
            outcomes[line] = ScanOutcome(r.scan_id, "refused", status, _FIELD.get(status, "scan_id"))
            refused += 1
    campaigns = sorted({r.campaign_id for r in rows})
    _audit(user or "import", object_id=",".join(map(str, campaigns)), region_code=getattr(user, "region_id", "") or "",
           changes={"scans": len(rows), "accepted": accepted[1], "duplicate": duplicate, "refused": refused,
                    "people_added": people[0], "tubes_opened": figures["=opened"][1], "import_run": None})  # fmt: skip
    return outcomes


def _audit(actor: Any, *, object_id: str, region_code: str, changes: dict) -> None:
    audit.append(actor, "screening.registrations", object_type="screening.campaign", object_id=object_id,
                 region_code=region_code, changes=changes)  # fmt: skip
