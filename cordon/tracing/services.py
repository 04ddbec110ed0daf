"""Writes for contacts, manifests, co-location proposals and clusters. Each write runs in one transaction with
its audit event and, where other modules listen, a domain event.

Public entry points other modules call:

- ``advance_contact(user, contact, status, *, at=None, note="")`` — isolation moves a contact to
  "transfer_requested", "quarantined", "released".
- ``record_close_contact_test(user, contact, positive, at)`` — isolation / screening record a contact's test;
  the secondary-contact upgrade and release rules of the policy are applied here.
- ``rebuild_clusters(region)`` — recompute clusters below a region.

``user`` may be ``None`` for the platform acting on its own (audited as "system").

Check-in logs identify people by their document number (``person_id`` in the Parquet store is the resident
ID number); :func:`people_by_document` maps them to registry entries of type ``resident_id``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict, deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from cordon.cases.models import Case, Exposure
from cordon.cases.services import actor, check_case_access, infectious_window, require_any
from cordon.core import audit, events
from cordon.core.importing import Column, FileUnusable, TabularFile
from cordon.core.policy import Policy, PolicyError, active_policy, colocation_follow_up, quarantine_schedule
from cordon.core.scoping import in_jurisdiction, prefix_range
from cordon.people.models import Person
from cordon.people.services import DuplicateDocument, create_person
from cordon.people.validation import FieldError, clean_person
from cordon.regions.models import Region
from cordon.tracing.models import (
    PIPELINE,
    Cluster,
    ColocationRun,
    Contact,
    ContactEvent,
    ContactKind,
    ContactStatus,
    ContactTest,
    IdentifiedHow,
)

# Statuses of a contact still being worked: a report of the person as a case converts these.
OPEN_STATUSES = [ContactStatus.PROPOSED, *[s for s in PIPELINE if s != ContactStatus.RELEASED]]
STAMPS = {
    ContactStatus.IDENTIFIED: "identified_at",
    ContactStatus.NOTIFIED: "notified_at",
    ContactStatus.LOCATED: "located_at",
    ContactStatus.TRANSFER_REQUESTED: "transfer_requested_at",
    ContactStatus.QUARANTINED: "quarantined_at",
    ContactStatus.RELEASED: "released_at",
}
CONTACT_WRITERS = ("write_cases", "write_isolation")
TEST_WRITERS = ("write_cases", "write_isolation", "write_screening", "lab_results")


# ---- helpers ----------------------------------------------------------------------------------------


def check_contact_access(user: Any, contact: Contact) -> None:
    """A contact is worked by the jurisdiction where the person lives and the one investigating the case."""
    if user is None:
        return
    if not (in_jurisdiction(user, contact.region_id) or in_jurisdiction(user, contact.index_region_id)):
        raise PermissionDenied("this contact is outside your jurisdiction")


def setting_codes(policy: Policy) -> list[str]:
    return [s.code for s in policy.contacts.settings]


def transfer_hours(policy: Policy, kind: str) -> int:
    d = policy.deadlines
    return d.secondary_contact_transfer_hours if kind == ContactKind.SECONDARY else d.close_contact_transfer_hours


def end_date_for(policy: Policy, kind: str, last_exposure_date: Any) -> Any:
    """Last day under management, from the policy and the last exposure (day 0)."""
    if kind == ContactKind.CLOSE:
        return quarantine_schedule(policy, "close_contact", last_exposure_date).end_date
    if kind == ContactKind.SECONDARY:
        return quarantine_schedule(policy, "secondary_contact", last_exposure_date).end_date
    fu = colocation_follow_up(policy)  # space-time companions: tests within the follow-up period
    return last_exposure_date + timedelta(days=fu.within_days)


def schedule_for(contact: Contact, policy: Policy | None = None) -> Any:
    policy = policy or active_policy()
    kind = {"close": "close_contact", "secondary": "secondary_contact"}.get(contact.kind)
    if kind is None:
        return None
    try:
        return quarantine_schedule(policy, kind, contact.last_exposure_date)
    except PolicyError:
        return None


def _event(user: Any, contact: Contact, status: str, at: datetime, note: str = "") -> None:
    ContactEvent.objects.create(contact=contact, status=status, at=at, by=user, note=note[:200])


def people_by_document(numbers: list[str]) -> dict[str, Person]:
    """Check-in logs carry the resident ID number; the registry holds it as a resident_id document."""
    out: dict[str, Person] = {}
    numbers = sorted({n.strip().upper() for n in numbers if n})
    for i in range(0, len(numbers), 900):
        chunk = numbers[i : i + 900]
        for p in Person.objects.filter(document_type="resident_id", document_number__in=chunk):
            out[p.document_number] = p
    return out


def match_or_create_person(user: Any, data: dict[str, Any], *, default_region: str = "") -> tuple[Person, bool]:
    """Find a person by document, or register them unverified (they come from an interview or a manifest).
    Returns (person, created). Near-duplicates are flagged by the registry for review."""
    data = dict(data)
    data.setdefault("region_code", default_region)
    if not data.get("region_code") and not data.get("region_id"):
        data["region_code"] = default_region
    clean = clean_person({**data, "region_id": data.get("region_id") or data.get("region_code") or default_region})
    existing = Person.objects.filter(document_type=clean["document_type"],
                                     document_number=clean["document_number"]).first()  # fmt: skip
    if existing is not None:
        return existing, False
    try:
        return create_person(user, {**data, "region_id": clean["region_id"]}, verified=False), True
    except DuplicateDocument as exc:  # registered concurrently
        return Person.objects.get(pk=exc.person_id), False


# ---- contacts ---------------------------------------------------------------------------------------


def add_contact(
    user: Any,
    case: Case,
    person: Person,
    *,
    last_exposure_at: datetime,
    setting: str = "",
    kind: str = ContactKind.CLOSE,
    first_exposure_at: datetime | None = None,
    via: Contact | None = None,
    identified_how: str = IdentifiedHow.INTERVIEW,
    status: str = ContactStatus.IDENTIFIED,
    exposure: Exposure | None = None,
    provenance: dict | None = None,
    note: str = "",
    emit: bool = True,
) -> Contact:
    """Record one contact of a case, applying the policy: the look-back window (refused with the reason),
    the settings list, the secondary-contact rule, the transfer deadline and the quarantine end."""
    require_any(user, ("write_cases",))
    check_case_access(user, case)
    policy = active_policy()
    if kind not in ContactKind.values:
        raise FieldError("kind", kind, f"expected one of {', '.join(ContactKind.values)}")
    if status not in (ContactStatus.IDENTIFIED, ContactStatus.PROPOSED):
        raise FieldError("status", status, "a new contact is identified or proposed")
    if person.pk == case.person_id:
        raise FieldError("person", str(person.pk), "the case cannot be their own contact")
    now = timezone.now()
    if last_exposure_at > now + timedelta(minutes=5):
        raise FieldError("last_exposure_at", last_exposure_at.isoformat(), "in the future")
    if first_exposure_at is not None and first_exposure_at > last_exposure_at:
        raise FieldError("first_exposure_at", first_exposure_at.isoformat(), "after the last exposure")
    last_date = timezone.localdate(last_exposure_at)
    inv = case.investigation
    if kind == ContactKind.SECONDARY:
        sec = policy.contacts.secondary
        if not sec.enabled:
            raise FieldError("kind", kind, f"secondary contacts are not determined under policy {policy.name}")
        if via is None or via.kind != ContactKind.CLOSE or via.index_case_id != case.pk:
            raise FieldError("via", str(getattr(via, "pk", "")), "a secondary contact is linked to a close contact of this case")
        if setting not in sec.settings:
            raise FieldError("setting", setting,
                             f"a secondary contact shares home, meals, a closed workplace or entertainment: {', '.join(sec.settings)}")  # fmt: skip
        opens = via.first_exposure_at or datetime.combine(inv.lookback_from, datetime.min.time(),
                                                          tzinfo=timezone.get_current_timezone())  # fmt: skip
        if last_exposure_at < opens:
            raise FieldError("last_exposure_at", last_exposure_at.isoformat(),
                             f"before the close contact's first exposure ({timezone.localtime(opens):%Y-%m-%d %H:%M})")  # fmt: skip
        if via.quarantined_at and last_exposure_at > via.quarantined_at:
            raise FieldError("last_exposure_at", last_exposure_at.isoformat(),
                             "after the close contact was isolated: no exposure through them")  # fmt: skip
    else:
        if via is not None:
            raise FieldError("via", str(via.pk), "only a secondary contact is linked through a close contact")
        if kind == ContactKind.CLOSE and setting not in setting_codes(policy):
            raise FieldError("setting", setting, f"expected one of {', '.join(setting_codes(policy))}")
        if last_date < inv.lookback_from:
            days = policy.contacts.close.lookback_days
            raise FieldError("last_exposure_at", last_exposure_at.isoformat(),
                             f"before the look-back window, which starts {inv.lookback_from.isoformat()} "
                             f"({days} days before onset or first positive sample, policy {policy.name})")  # fmt: skip
    if Contact.objects.filter(index_case=case, person=person, kind=kind).exists():
        raise FieldError("person", str(person.pk), f"already a {kind} contact of this case")
    with transaction.atomic():
        c = Contact.objects.create(
            index_case=case, via=via, person=person, kind=kind, setting=setting, status=status,
            identified_how=identified_how, first_exposure_at=first_exposure_at, last_exposure_at=last_exposure_at,
            last_exposure_date=last_date, identified_at=now,
            transfer_due_at=now + timedelta(hours=transfer_hours(policy, kind)),
            quarantine_end_date=end_date_for(policy, kind, last_date), region_id=person.region_id,
            index_region_id=case.region_id, provenance=provenance or {}, exposure=exposure, note=note[:200],
            created_by=user,
        )  # fmt: skip
        _event(user, c, status, now, note)
        audit.record(actor(user), "tracing.contact_add", c, region_code=case.region_id,
                     changes={"case": case.pk, "kind": kind, "setting": setting, "how": identified_how,
                              "status": status, "policy": policy.name})  # fmt: skip
        if emit and status == ContactStatus.IDENTIFIED:
            events.emit("contacts.identified", contacts=[c], user=user)
    return c


def advance_contact(user: Any, contact: Contact, status: str, *, at: datetime | None = None, note: str = "") -> Contact:
    """Move a contact forward in the pipeline (identified → notified → located → transfer requested → in
    quarantine → released; skipping steps forward is allowed, going back is not), or dismiss a proposal.
    Stamps the time, writes a ContactEvent, audits and emits ``contact.status_changed``."""
    require_any(user, CONTACT_WRITERS)
    check_contact_access(user, contact)
    old = contact.status
    if status not in ContactStatus.values:
        raise FieldError("status", status, f"expected one of {', '.join(ContactStatus.values)}")
    if old in (ContactStatus.RELEASED, ContactStatus.BECAME_CASE, ContactStatus.DISMISSED):
        raise FieldError("status", status, f"the contact is already {old}")
    if status == ContactStatus.BECAME_CASE:
        raise FieldError("status", status, "report the person as a case: the contact is linked automatically")
    if status == ContactStatus.PROPOSED:
        raise FieldError("status", status, "a contact cannot go back to proposed")
    if status == ContactStatus.DISMISSED:
        if old not in (ContactStatus.PROPOSED, ContactStatus.IDENTIFIED, ContactStatus.NOTIFIED, ContactStatus.LOCATED):
            raise FieldError("status", status, "a contact already in transfer or quarantine cannot be dismissed")
    elif old == ContactStatus.PROPOSED:
        if status != ContactStatus.IDENTIFIED:
            raise FieldError("status", status, "confirm the proposed contact first (identified)")
    elif PIPELINE.index(status) <= PIPELINE.index(old):
        raise FieldError("status", status, f"the pipeline only moves forward (now {old})")
    now = timezone.now()
    at = at or now
    policy = active_policy()
    with transaction.atomic():
        contact.status = status
        fields = ["status"]
        if status in STAMPS:
            setattr(contact, STAMPS[status], at)
            fields.append(STAMPS[status])
        if old == ContactStatus.PROPOSED and status == ContactStatus.IDENTIFIED:
            contact.transfer_due_at = at + timedelta(hours=transfer_hours(policy, contact.kind))
            fields.append("transfer_due_at")
        if note:
            contact.note = note[:200]
            fields.append("note")
        contact.save(update_fields=fields)
        _event(user, contact, status, at, note)
        audit.record(actor(user), "tracing.contact_status", contact, region_code=contact.index_region_id,
                     changes={"from": old, "to": status})  # fmt: skip
        events.emit("contact.status_changed", contact=contact, old=old, new=status, user=user)
        if old == ContactStatus.PROPOSED and status == ContactStatus.IDENTIFIED:
            events.emit("contacts.identified", contacts=[contact], user=user)
    return contact


def convert_contacts_to_case(user: Any, case: Case) -> Case | None:
    """Open contact records of the case's person become "became a case" (called by report_case inside its
    transaction). Returns the most likely source case: the index case of the latest close contact, else the
    case a secondary contact's close contact became, else a space-time companion's index case."""
    open_contacts = list(Contact.objects.filter(person_id=case.person_id, status__in=OPEN_STATUSES)
                         .exclude(index_case=case).select_related("via", "index_case"))  # fmt: skip
    if not open_contacts:
        return None
    at = max(timezone.now(), case.reported_at)
    for c in open_contacts:
        old = c.status
        c.status = ContactStatus.BECAME_CASE
        c.became_case = case
        c.save(update_fields=["status", "became_case"])
        _event(user, c, c.status, at, f"reported as case {case.number}")
        audit.record(actor(user), "tracing.contact_became_case", c, region_code=c.index_region_id,
                     changes={"case": case.pk, "from": old})  # fmt: skip
        events.emit("contact.status_changed", contact=c, old=old, new=c.status, user=user)
    rank = {ContactKind.CLOSE: 0, ContactKind.SECONDARY: 1, ContactKind.SPACETIME: 2}
    best = sorted(open_contacts, key=lambda c: (rank.get(c.kind, 9), -c.last_exposure_at.timestamp()))[0]
    if best.kind == ContactKind.SECONDARY:
        return best.via.became_case if best.via and best.via.became_case_id else best.index_case
    return best.index_case


# ---- tests of contacts: the secondary-contact rule ----------------------------------------------------


def _first_tests(contact: Contact, n: int) -> list[ContactTest]:
    return list(contact.tests.order_by("sampled_at", "pk")[:n])


def secondary_release_check(contact: Contact, at: datetime, policy: Policy | None = None) -> tuple[bool, str]:
    """Released on the last day if their own tests are negative AND the close contact's first N are."""
    policy = policy or active_policy()
    sec = policy.contacts.secondary
    if contact.status not in OPEN_STATUSES or contact.status == ContactStatus.PROPOSED:
        return False, f"status is {contact.status}"
    end = contact.quarantine_end_date
    if end and timezone.localdate(at) < end:
        return False, f"management runs until {end.isoformat()}"
    own = list(contact.tests.all())
    if sec.release_requires_own_tests_negative:
        if any(t.positive for t in own):
            return False, "an own test was positive"
        sched = schedule_for(contact, policy)
        last_test = sched.test_dates[-1] if sched and sched.test_dates else end
        if last_test and not any(timezone.localdate(t.sampled_at) >= last_test for t in own):
            return False, f"no negative own test on or after {last_test.isoformat()}"
    n = sec.release_requires_close_contact_negative_tests
    if n:
        if contact.via is None:
            return False, "no close contact linked"
        first = _first_tests(contact.via, n)
        if len(first) < n or any(t.positive for t in first):
            return False, f"the close contact's first {n} tests are not all negative yet"
    return True, ""


def _upgrade(user: Any, s: Contact, at: datetime, reason: str, policy: Policy) -> Contact | None:
    """A secondary contact becomes a close contact of the same case (clock from their last exposure)."""
    if s.status not in OPEN_STATUSES:
        return None
    if Contact.objects.filter(index_case_id=s.index_case_id, person_id=s.person_id, kind=ContactKind.CLOSE).exists():
        return None
    s.kind = ContactKind.CLOSE
    s.quarantine_end_date = end_date_for(policy, ContactKind.CLOSE, s.last_exposure_date)
    s.transfer_due_at = at + timedelta(hours=policy.deadlines.close_contact_transfer_hours)
    s.provenance = {**(s.provenance or {}), "upgraded_from": "secondary", "upgraded_at": at.isoformat(),
                    "upgrade_reason": reason}  # fmt: skip
    s.note = f"upgraded to close contact: {reason}"[:200]
    s.save(update_fields=["kind", "quarantine_end_date", "transfer_due_at", "provenance", "note"])
    _event(user, s, s.status, at, s.note)
    audit.record(actor(user), "tracing.contact_upgrade", s, region_code=s.index_region_id,
                 changes={"to": "close", "reason": reason, "policy": policy.name})  # fmt: skip
    events.emit("contacts.identified", contacts=[s], user=user)
    return s


def record_close_contact_test(user: Any, contact: Contact, positive: bool, at: datetime) -> dict[str, Any]:
    """Record a contact's test and apply the policy's secondary-contact rule.

    - A close contact's test among their first ``upgrade_if_close_contact_positive_within_tests`` is positive:
      their secondary contacts are upgraded to close contacts.
    - A close contact's first ``release_requires_close_contact_negative_tests`` are all negative: their
      secondary contacts are released once their own period is over and their own tests are negative.
    - A secondary contact's own positive test upgrades them (``upgrade_if_own_test_positive``); a negative one
      may complete their release.

    Returns ``{"test": id, "upgraded": [contact ids], "released": [contact ids]}``. A positive test does not
    open a case by itself: the caller reports it (``cordon.cases.services.report_case``)."""
    require_any(user, TEST_WRITERS)
    check_contact_access(user, contact)
    if at > timezone.now() + timedelta(minutes=5):
        raise FieldError("at", at.isoformat(), "in the future")
    policy = active_policy()
    sec = policy.contacts.secondary
    upgraded: list[int] = []
    released: list[int] = []
    now = timezone.now()  # release is decided (and stamped) when the rule is evaluated
    with transaction.atomic():
        t = ContactTest.objects.create(contact=contact, sampled_at=at, positive=bool(positive), recorded_by=user)
        audit.record(actor(user), "tracing.contact_test", contact, region_code=contact.index_region_id,
                     changes={"test": t.pk, "positive": bool(positive)})  # fmt: skip
        if contact.kind == ContactKind.CLOSE:
            seconds = list(contact.secondaries.filter(kind=ContactKind.SECONDARY, status__in=OPEN_STATUSES))
            if positive:
                position = list(contact.tests.order_by("sampled_at", "pk").values_list("pk", flat=True)).index(t.pk) + 1
                if position <= sec.upgrade_if_close_contact_positive_within_tests:
                    for s in seconds:
                        if _upgrade(user, s, at, f"close contact's test #{position} positive", policy):
                            upgraded.append(s.pk)
            else:
                for s in seconds:
                    if secondary_release_check(s, now, policy)[0]:
                        advance_contact(user, s, ContactStatus.RELEASED, at=now, note="secondary-contact rule")
                        released.append(s.pk)
        elif contact.kind == ContactKind.SECONDARY:
            if positive and sec.upgrade_if_own_test_positive:
                if _upgrade(user, contact, at, "own test positive", policy):
                    upgraded.append(contact.pk)
            elif not positive and secondary_release_check(contact, now, policy)[0]:
                advance_contact(user, contact, ContactStatus.RELEASED, at=now, note="secondary-contact rule")
                released.append(contact.pk)
    return {"test": t.pk, "upgraded": upgraded, "released": released}


# ---- manifests ---------------------------------------------------------------------------------------

MANIFEST_COLUMNS = [
    Column("name", ("姓名", "name", "旅客姓名", "乘客姓名"), required=True),
    Column("document_type", ("证件类型", "document_type", "doc_type")),
    Column("document_number", ("证件号码", "document_number", "证件号", "身份证号", "id_number"), required=True),
    Column("phone", ("联系电话", "phone", "手机号", "电话")),
    Column("seat", ("座位号", "seat", "座位", "row", "排号", "铺位")),
    Column("carriage", ("车厢", "carriage", "车厢号", "舱室", "cabin")),
    Column("crew", ("机组", "crew", "是否机组", "乘务", "crew_flag")),
]
_TRUE = {"1", "y", "yes", "true", "是", "机组", "乘务", "crew"}


def seat_row(seat: str) -> int | None:
    m = re.match(r"\s*0*(\d+)", seat or "")
    return int(m.group(1)) if m else None


def _norm_carriage(value: str) -> str:
    return (value or "").strip().lstrip("0").upper()


def vehicle_selects(rule: Any, case_seat: str, case_carriage: str, seat: str, carriage: str, crew: bool) -> bool:
    """Whether the policy's vehicle rule makes this passenger (or crew member) a close contact."""
    scope = rule.scope
    if scope == "all":
        return True
    if scope in ("carriage", "cabin"):
        return bool(_norm_carriage(carriage)) and _norm_carriage(carriage) == _norm_carriage(case_carriage)
    if scope == "rows":
        row, case_row = seat_row(seat), seat_row(case_seat)
        if crew and rule.get("include_crew", False):
            return row is None or case_row is None or case_row - rule.rows_before <= row <= case_row + rule.rows_after
        if row is None or case_row is None:
            return False
        if row == case_row:
            return bool(rule.get("same_row", True))
        return case_row - rule.rows_before <= row <= case_row + rule.rows_after
    return False


def import_manifest(user: Any, exposure: Exposure, path: str | Path) -> dict[str, Any]:
    """A transport manifest (CSV/XLSX: name, document type/number, phone, seat/row, carriage, crew flag) for a
    journey of the case: propose the close contacts the policy's vehicle rule implies. Idempotent: people
    already contacts of the case are not proposed twice. Bad rows are reported by line, field and reason."""
    require_any(user, ("write_cases",))
    case = exposure.case
    check_case_access(user, case)
    policy = active_policy()
    rules = policy.contacts.vehicle_rules
    if exposure.transport not in rules:
        raise FieldError("transport", exposure.transport or "", "this stop is not a journey on a vehicle the policy has a rule for")
    rule = rules[exposure.transport]
    try:
        table = TabularFile(path, MANIFEST_COLUMNS)
        rows = list(table.rows())
    except FileUnusable as exc:
        raise FieldError("file", Path(path).name, str(exc)) from exc
    errors: list[dict[str, Any]] = []
    case_seat, case_carriage = exposure.seat, exposure.carriage
    if not case_seat or not case_carriage:  # the case may be on the manifest: take their seat from it
        for _line, r in rows:
            if r.get("document_number", "").strip().upper() == case.person.document_number:
                case_seat = case_seat or r.get("seat", "")
                case_carriage = case_carriage or r.get("carriage", "")
    if rule.scope == "rows" and seat_row(case_seat) is None:
        raise FieldError("seat", case_seat, "the case's seat (row) is needed to apply the rows rule")
    if rule.scope in ("carriage", "cabin") and not case_carriage:
        raise FieldError("carriage", case_carriage, "the case's carriage or cabin is needed to apply the rule")
    summary = {"rows": len(rows), "proposed": 0, "already": 0, "outside_rule": 0, "rejected": 0,
               "rule": rule.scope, "errors": errors}  # fmt: skip
    existing = set(Contact.objects.filter(index_case=case).values_list("person_id", flat=True))
    for line, r in rows:
        crew = str(r.get("crew", "")).strip().lower() in _TRUE
        if not vehicle_selects(rule, case_seat, case_carriage, r.get("seat", ""), r.get("carriage", ""), crew):
            summary["outside_rule"] += 1
            continue
        doc = r.get("document_number", "").strip().upper()
        if doc == case.person.document_number:
            continue
        region = case.region_id
        if re.fullmatch(r"\d{17}[\dX]", doc) and Region.objects.filter(code=doc[:6]).exists() and in_jurisdiction(user, doc[:6]):
            region = doc[:6]
        try:
            person, _created = match_or_create_person(user, {k: r.get(k, "") for k in ("name", "document_type",
                                                      "document_number", "phone")}, default_region=region)  # fmt: skip
        except FieldError as exc:
            summary["rejected"] += 1
            errors.append({"line": line, "field": exc.field, "value": str(exc.value)[:60], "reason": exc.reason})
            continue
        if person.pk in existing or person.pk == case.person_id:
            summary["already"] += 1
            continue
        add_contact(user, case, person, last_exposure_at=exposure.end, first_exposure_at=exposure.start,
                    setting="same_vehicle", identified_how=IdentifiedHow.MANIFEST, status=ContactStatus.PROPOSED,
                    exposure=exposure, provenance={"transport": exposure.transport, "number": exposure.transport_number,
                                                   "seat": r.get("seat", ""), "carriage": r.get("carriage", ""),
                                                   "crew": crew, "rule": rule.scope, "line": line})  # fmt: skip
        existing.add(person.pk)
        summary["proposed"] += 1
    with transaction.atomic():
        audit.record(actor(user), "tracing.manifest_import", exposure, region_code=case.region_id,
                     changes={k: v for k, v in summary.items() if k != "errors"})  # fmt: skip
    return summary


# ---- co-location ---------------------------------------------------------------------------------------


def checkins_dir() -> Path:
    return Path(settings.CORDON_DATA_DIR) / "checkins"


def colocation_rows(person_doc: str, window_from: datetime, window_to: datetime, policy: Policy) -> list[dict]:
    """The engine's matches for one person over the stored check-in logs. A thin wrapper: the store and
    the engine are ``cordon.tracing.checkins`` / ``cordon.tracing.colocation``; the policy gives the minimum
    overlap and the stay assumed when a check-in has no check-out."""
    from cordon.tracing import checkins

    col = policy.colocation
    if not checkins_dir().exists():
        return []
    return list(checkins.colocation_for_index(
        Path(settings.CORDON_DATA_DIR), person_doc, window_from, window_to,
        min_overlap=col.min_overlap_minutes, default_stay=col.default_stay_minutes, tz=settings.TIME_ZONE))


def request_colocation(user: Any, case: Case, *, run_now: bool = False) -> ColocationRun:
    """Queue a co-location run for the case's infectious window (look-back start → isolation); the background
    task (``cordon worker``) runs it. ``run_now`` runs it in this process instead (demo, scripts)."""
    require_any(user, ("write_cases",))
    check_case_access(user, case)
    start, end = infectious_window(case)
    with transaction.atomic():
        run = ColocationRun.objects.create(case=case, window_from=start, window_to=end, requested_by=user)
        audit.record(actor(user), "tracing.colocation_request", run, region_code=case.region_id,
                     changes={"case": case.pk})  # fmt: skip
    if run_now:
        return run_colocation_for(run)
    from cordon.tracing.tasks import colocation_task

    result = colocation_task.enqueue(run.pk)
    ColocationRun.objects.filter(pk=run.pk, task_id="").update(task_id=str(result.id)[:64])
    run.refresh_from_db()
    return run


def run_colocation_for(run: ColocationRun) -> ColocationRun:
    """The task body: run the engine, propose space-time companions, de-duplicated against known contacts."""
    ColocationRun.objects.filter(pk=run.pk).update(status=ColocationRun.Status.RUNNING)
    case = Case.objects.select_related("person", "investigation").get(pk=run.case_id)
    user = run.requested_by
    policy = active_policy()
    try:
        rows = colocation_rows(case.person.document_number, run.window_from, run.window_to, policy)
        by_person: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            pid = str(r.get("contact_person_id") or r.get("person_id") or "").strip().upper()
            if pid:
                by_person[pid].append(r)
        people = people_by_document(list(by_person))
        known = set(Contact.objects.filter(index_case=case).values_list("person_id", flat=True))
        proposed = 0
        for doc, matches in by_person.items():
            person = people.get(doc)
            if person is None or person.pk in known or person.pk == case.person_id:
                continue
            venues = []
            last_end = None
            for m in sorted(matches, key=lambda m: m["first_overlap_start"]):
                first = m["first_overlap_start"]
                if isinstance(first, str):
                    first = datetime.fromisoformat(first)
                minutes = int(m["overlap_minutes"])
                venues.append({"venue_code": m["venue_code"], "overlap_minutes": minutes,
                               "first_overlap": first.isoformat()})  # fmt: skip
                end = first + timedelta(minutes=minutes)
                last_end = end if last_end is None or end > last_end else last_end
            first_at = datetime.fromisoformat(venues[0]["first_overlap"])
            add_contact(user, case, person, kind=ContactKind.SPACETIME, last_exposure_at=min(last_end, timezone.now()),
                        first_exposure_at=first_at, identified_how=IdentifiedHow.COMPUTED,
                        status=ContactStatus.PROPOSED, setting="",
                        provenance={"venues": venues, "overlap_minutes": sum(v["overlap_minutes"] for v in venues),
                                    "first_overlap": venues[0]["first_overlap"], "venue_code": venues[0]["venue_code"],
                                    "run": run.pk})  # fmt: skip
            known.add(person.pk)
            proposed += 1
        ColocationRun.objects.filter(pk=run.pk).update(
            status=ColocationRun.Status.DONE, finished_at=timezone.now(), matches=len(rows), proposed=proposed,
            unknown_people=sum(1 for d in by_person if d not in people))  # fmt: skip
    except Exception as exc:
        ColocationRun.objects.filter(pk=run.pk).update(status=ColocationRun.Status.FAILED, finished_at=timezone.now(),
                                                       error=f"{type(exc).__name__}: {exc}"[:2000])  # fmt: skip
        raise
    run.refresh_from_db()
    return run


# ---- clusters ------------------------------------------------------------------------------------------


def _components(edges: dict[int, int | None]) -> list[set[int]]:
    adj: dict[int, set[int]] = defaultdict(set)
    for child, parent in edges.items():
        adj.setdefault(child, set())
        if parent is not None and parent in edges:
            adj[child].add(parent)
            adj[parent].add(child)
    seen: set[int] = set()
    out = []
    for node in adj:
        if node in seen:
            continue
        comp = set()
        queue = deque([node])
        seen.add(node)
        while queue:
            n = queue.popleft()
            comp.add(n)
            for m in adj[n]:
                if m not in seen:
                    seen.add(m)
                    queue.append(m)
        out.append(comp)
    return out


def generations(members: set[int], parent_of: dict[int, int | None]) -> dict[int, int]:
    """Generation 0 = cases with no source inside the group; each infected case is one more than its source."""
    children: dict[int, list[int]] = defaultdict(list)
    roots = []
    for c in members:
        p = parent_of.get(c)
        if p is None or p not in members:
            roots.append(c)
        else:
            children[p].append(c)
    gen: dict[int, int] = {}
    queue = deque((r, 0) for r in sorted(roots))
    while queue:
        n, g = queue.popleft()
        if n in gen:
            continue
        gen[n] = g
        queue.extend((k, g + 1) for k in sorted(children[n]))
    for c in members:  # a cycle (bad data) has no root: put its members at generation 0
        gen.setdefault(c, 0)
    return gen


def common_region(codes: list[str]) -> str:
    """The deepest region whose subtree holds every code (county, else city, else province)."""
    for n, pad in ((6, 6), (4, 6), (2, 6)):
        stems = {c[:n] for c in codes}
        if len(stems) == 1:
            code = next(iter(stems)).ljust(pad, "0")
            if Region.objects.filter(code=code).exists():
                return code
    return codes[0][:2].ljust(6, "0")


def rebuild_clusters(region: Region | str, *, user: Any = None) -> list[Cluster]:
    """Clusters = connected groups (≥ 2) of linked cases with at least one case below ``region``; their setting
    is the most common setting of the contacts that linked them. Replaces the clusters it recomputes."""
    code = region.code if isinstance(region, Region) else str(region)
    reg = Region.objects.get(code=code)
    parent_of: dict[int, int | None] = dict(Case.objects.values_list("pk", "source_case_id"))
    comps = [c for c in _components(parent_of) if len(c) >= 2]
    info = {pk: (rc, at, num) for pk, rc, at, num in Case.objects.values_list("pk", "region_id", "reported_at", "number")}
    comps = [c for c in comps if any(info[pk][0].startswith(reg.prefix) for pk in c)]
    all_members = set().union(*comps) if comps else set()
    settings_of: dict[int, str] = {}
    for became, setting in (Contact.objects.filter(became_case__isnull=False, became_case_id__in=all_members)
                            .exclude(setting="").values_list("became_case_id", "setting")):  # fmt: skip
        settings_of[became] = setting
    labels = {s.code: s for s in active_policy().contacts.settings}
    out = []
    with transaction.atomic():
        stale = Cluster.objects.filter(**prefix_range("region_id", reg.prefix))
        stale_ids = set(stale.values_list("pk", flat=True))
        stale_ids |= set(Cluster.objects.filter(cases__in=all_members).values_list("pk", flat=True))
        Cluster.objects.filter(pk__in=stale_ids).delete()
        for comp in sorted(comps, key=lambda c: min(info[pk][1] for pk in c)):
            gen = generations(comp, parent_of)
            root = min((pk for pk in comp if gen[pk] == 0), key=lambda pk: (info[pk][1], pk))
            counts = Counter(settings_of[pk] for pk in comp if pk in settings_of)
            setting = counts.most_common(1)[0][0] if counts else ""
            label = labels[setting].zh if setting in labels else ""
            times = [info[pk][1] for pk in comp]
            cl = Cluster.objects.create(
                name=f"{info[root][2]} {label}".strip()[:100], setting=setting,
                region_id=common_region([info[pk][0] for pk in comp]), root_case_id=root, size=len(comp),
                generations=max(gen.values()) + 1, first_reported_at=min(times), last_reported_at=max(times))  # fmt: skip
            cl.cases.set(comp)
            out.append(cl)
        audit.record(actor(user), "tracing.clusters_rebuild", object_type="tracing.cluster", object_id=code,
                     region_code=code, changes={"clusters": len(out), "cases": len(all_members)})  # fmt: skip
    return out
