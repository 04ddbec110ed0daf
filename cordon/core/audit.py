"""The audit chain: every write and every view of unmasked personal data leaves a hash-linked event.

Each event's hash covers its own fields and the previous event's hash, so altering, deleting or inserting
a row out of band breaks the chain at that row, and ``verify_chain`` names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from cordon.core.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _middle(at: datetime, actor_id: int | None, actor_label: str, action: str, object_type: str, object_id: str,
            region_code: str, changes: Any) -> str:
    """The hashed JSON list without its first item (seq) and last (prev_hash), which only the locked head
    knows: ``append`` lets PostgreSQL put them in place, so both ways hash the very same text."""
    return json.dumps(
        [at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), actor_id, actor_label, action, object_type, object_id,
         region_code, _canonical(changes)],
        ensure_ascii=False,
        separators=(",", ":"),
    )[1:-1]  # fmt: skip


def compute_hash(
    *,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor_label: str,
    action: str,
    object_type: str,
    object_id: str,
    region_code: str,
    changes: dict,
    prev_hash: str,
) -> str:
    middle = _middle(at, actor_id, actor_label, action, object_type, object_id, region_code, changes)
    payload = f'[{int(seq)},{middle},{json.dumps(prev_hash)}]'
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _actor(actor: Any) -> tuple[int | None, str]:
    actor_id = getattr(actor, "pk", None) if getattr(actor, "is_authenticated", False) else None
    return actor_id, str(getattr(actor, "username", None) or (actor if isinstance(actor, str) else "system"))


def record(
    actor: Any,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: str | int | None = None,
    region_code: str = "",
    changes: dict | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction, so the write and its record commit together."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
    item = (object_type or "", "" if object_id is None else str(object_id), region_code, changes)
    return _chain(actor, action, [item], "audit.record")[0]


def record_many(actor: Any, action: str, events: list[tuple[Any, str, dict | None]]) -> None:
    """``record`` for many events of one actor and action, each (object, region code, changes), with the
    chain's head locked once and one INSERT of them all. For writers that issue a batch at once (a lab file's
    positive pools each get a task), where one ``record`` per event held the head lock across three
    statements each."""
    if events:
        _chain(actor, action, [(obj._meta.label_lower, str(obj.pk), region_code, changes)
                               for obj, region_code, changes in events], "audit.record_many")  # fmt: skip


def _chain(actor: Any, action: str, items: list[tuple[str, str, str, dict | None]], caller: str) -> list[AuditEvent]:
    """Events (object type, object id, region code, changes) appended to the chain in the caller's transaction:
    the head row locked, each event hashed over the one before it, the head moved to the last."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{caller} must run inside the transaction of the write it records")
    actor_id, actor_label = _actor(actor)
    head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
    at = timezone.now()
    events = []
    for object_type, object_id, region_code, changes in items:
        fields = dict(seq=head.seq + 1, at=at, actor_id=actor_id, actor_label=actor_label, action=action,
                      object_type=object_type, object_id=object_id, region_code=region_code or "",
                      changes=_canonical(changes or {}), prev_hash=head.hash)  # fmt: skip
        head.seq, head.hash = fields["seq"], compute_hash(**fields)
        events.append(AuditEvent(hash=head.hash, **fields))
    AuditEvent.objects.bulk_create(events, batch_size=500)
    head.save(update_fields=["seq", "hash"])
    return events


# The one-statement append, for writers whose batch rate the chain bounds (sampling terminals): every
# event takes the chain's head row lock, and ``record`` holds it across three statements and the Python
# between them (with a worker's threads sharing one interpreter, across waits for it too). Here it is held
# for one statement and the commit. PostgreSQL computes ``compute_hash`` itself once the head is locked,
# from the same ``_middle`` text with the sequence number and previous hash put in their places, so
# ``verify_chain`` checks these events like any other.
_APPEND_SQL = """
WITH old AS (
  SELECT seq, hash FROM core_audithead WHERE id = 1 FOR UPDATE
), head AS (
  UPDATE core_audithead h SET seq = old.seq + 1,
    hash = encode(sha256(convert_to('[' || (old.seq + 1)::text || ',' || %(middle)s::text || ',"' || old.hash || '"]',
                                    'UTF8')), 'hex')
  FROM old WHERE h.id = 1
  RETURNING h.seq, h.hash, old.hash AS prev_hash
)
INSERT INTO core_auditevent (seq, at, actor_id, actor_label, action, object_type, object_id, region_code, changes,
                             prev_hash, hash)
SELECT seq, %(at)s::timestamptz, %(actor_id)s::bigint, %(actor_label)s::text, %(action)s::text,
       %(object_type)s::text, %(object_id)s::text, %(region_code)s::text, %(changes)s::jsonb, prev_hash, hash
FROM head
RETURNING seq
"""


def append(actor: Any, action: str, *, object_type: str, object_id: str, region_code: str = "",
           changes: dict | None = None) -> None:  # fmt: skip
    """``record`` in one statement on PostgreSQL (elsewhere, and for the chain's first event, ``record``)."""
    import psycopg

    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        record(actor, action, object_type=object_type, object_id=object_id, region_code=region_code, changes=changes)
        return
    if not connection.in_atomic_block:
        raise RuntimeError("audit.append must run inside the transaction of the write it records")
    actor_id, actor_label = _actor(actor)
    at = timezone.now()
    canonical = _canonical(changes or {})
    middle = _middle(at, actor_id, actor_label, action, object_type, object_id, region_code, canonical)
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(_APPEND_SQL, {"middle": middle, "at": at, "actor_id": actor_id, "actor_label": actor_label,
                                  "action": action, "object_type": object_type, "object_id": object_id,
                                  "region_code": region_code, "changes": json.dumps(canonical, ensure_ascii=False)},
                    prepare=True)  # fmt: skip
        appended = cur.fetchone() is not None
    if not appended:  # no head row yet: the chain's first event
        record(actor, action, object_type=object_type, object_id=object_id, region_code=region_code, changes=changes)


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    event_id: int | None
    reason: str


def verify_chain(batch: int = 5000) -> Iterator[tuple[int, ChainProblem | None]]:
    """Walk the chain in order; yields (events checked, first problem or None) as it goes so the CLI can
    show progress on a long chain. Stops at the first problem."""
    prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    qs = AuditEvent.objects.order_by("seq")
    while True:
        rows = list(qs.filter(seq__gte=expected_seq)[:batch])
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                yield checked, ChainProblem(ev.seq, ev.pk, f"sequence gap: expected #{expected_seq}, found #{ev.seq}")
                return
            if ev.prev_hash != prev:
                yield checked, ChainProblem(ev.seq, ev.pk, "previous-hash link does not match the event before it")
                return
            digest = compute_hash(
                seq=ev.seq,
                at=ev.at,
                actor_id=ev.actor_id,
                actor_label=ev.actor_label,
                action=ev.action,
                object_type=ev.object_type,
                object_id=ev.object_id,
                region_code=ev.region_code,
                changes=ev.changes,
                prev_hash=ev.prev_hash,
            )
            if digest != ev.hash:
                yield checked, ChainProblem(ev.seq, ev.pk, "content altered: stored hash does not match its fields")
                return
            prev = ev.hash
            last_seq = ev.seq
            expected_seq += 1
            checked += 1
        yield checked, None
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and (head.seq != last_seq or head.hash != prev):
        yield (
            checked,
            ChainProblem(
                last_seq + 1,
                None,
                f"chain ends at #{last_seq} but its head records #{head.seq}: events missing at the end",
            ),
        )
        return
    yield checked, None
