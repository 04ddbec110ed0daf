"""Writes for sites, placements, tests, restarts, releases and transfers. Each runs in one transaction with
its audit event; every number comes from the active policy.

Rules, as implemented (the policy keys named are in ``[quarantine_site]``, ``[contacts]``, ``[deadlines]``):

- Schedule. A placement's days come from ``quarantine_schedule(policy, subject, clock_start)``: day 0 is the
  last exposure (contacts) or the departure day (travellers), day 1 the next calendar day. The placement
  covers one phase (centralized, then a follow-on home phase created at release); one PlacementTest row per
  test day of the phase. If a person arrives after some scheduled test days, those rows are kept as
  "before arrival" and one arrival test is added on the entry day (unless a test is due that day anyway).
  A person whose centralized phase is already over when placed goes straight into the home phase.
- Make-up (``makeup_missed_tests``, 缺几天补几天): a test day that passes without a sample is marked missed;
  each missed day extends the placement's end by one day and adds one make-up test on the new last day. So
  missing days 2 and 3 of 7 makes the stay 9 days, with make-up tests on days 8 and 9. Without the rule a
  missed day is only recorded. Missed tests do not block release; make-up tests do until negative.
- Release (``release_requires_own_test_negative``, ``release_requires_environment_negative``): every test due
  up to the release day is negative (none pending, none positive), and for a site placement the room's
  latest environment sample taken on or after the entry day is negative. Releasing before or after the end
  day needs a reason, which is audited; an early release cancels the remaining tests.
- Cross-infection: a positive person in a site becomes a case (``report_case``, found under control) and
  goes to hospital; everyone else under centralized management on the same floor and the floors within
  ``restart_scope_floors_below``/``above`` restarts: the clock starts again on the day of the positive
  sample. A positive environment sample restarts ``environment_positive_restarts`` (site, floor or room).
  Each restart is a Restart row listing the placements affected, and an audit event.
- A contact's quarantine end date follows its placement: when a make-up day or a restart moves the placement's
  end, the contact's end becomes that day plus the policy's later phases, audited in the same transaction.
- Transfers: the deadline is ``close_contact_transfer_hours`` / ``secondary_contact_transfer_hours`` from the
  contact's identification; trips group requests by pick-up area up to
  ``transfer_vehicle_seats``; a household rides together.
  The pick-up area is the person's township (street): one vehicle tours its communities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from cordon.core import audit, events
from cordon.core.policy import Policy, PolicyError, active_policy, quarantine_schedule
from cordon.core.scoping import in_jurisdiction, require
from cordon.isolation.models import (
    OPEN_TRANSFER,
    EnvironmentSample,
    IsolationSite,
    Placement,
    PlacementStatus,
    PlacementTest,
    Restart,
    RestartCause,
    Room,
    SampleResult,
    SiteKind,
    SiteStatus,
    TestKind,
    TestStatus,
    Transfer,
    TransferStatus,
    Trip,
    TripStatus,
)
from cordon.people.validation import FieldError
from cordon.regions.models import Region

CENTRALIZED = "centralized_quarantine"
TRANSFERABLE_STATUSES = ("identified", "notified", "located")
DONE_TESTS = (TestStatus.NEGATIVE, TestStatus.POSITIVE, TestStatus.MISSED, TestStatus.BEFORE_ARRIVAL,
              TestStatus.CANCELLED)  # fmt: skip


class ReleaseBlocked(FieldError):
    """Release refused: ``blockers`` lists every unmet condition."""

    def __init__(self, blockers: list[str]) -> None:
        super().__init__("release", "", "; ".join(blockers))
        self.blockers = blockers


def _actor(user: Any) -> Any:
    return user if user is not None else "system"


def _require_write(user: Any) -> None:
    if user is not None:
        require(user, "write_isolation")


def _check_jurisdiction(user: Any, *codes: str, field_name: str = "region_code") -> None:
    """A person acting must hold at least one of the regions concerned (None = the platform itself)."""
    if user is None:
        return
    if not any(in_jurisdiction(user, c) for c in codes if c):
        raise FieldError(field_name, next((c for c in codes if c), ""), "outside your jurisdiction")


def _local(at: datetime | None) -> date:
    return timezone.localdate(at) if at is not None else timezone.localdate()


# ----------------------------------------------------------------------------------------------------------
# Calls into the tracing and cases modules (imported lazily: they sit below isolation, and load in parallel).
# ----------------------------------------------------------------------------------------------------------


def _advance_contact(user: Any, contact: Any, status: str, at: datetime, note: str = "") -> None:
    """Move the contact forward to ``status`` unless it is there or beyond already (a contact that became a
    case, was released by the secondary-contact rule or dismissed is left as it is)."""
    if contact is None:
        return
    from cordon.tracing.models import PIPELINE
    from cordon.tracing.services import advance_contact

    contact.refresh_from_db(fields=["status"])
    if contact.status not in PIPELINE or PIPELINE.index(contact.status) >= PIPELINE.index(status):
        return

    advance_contact(user, contact, status, at=at, note=note)


def _follow_contact_end(user: Any, placement: Placement, policy: Policy, cause: str) -> None:
    """A made-up test day or a restart lengthens the stay; the contact's last day under management (what the
    tracing pages count down to and the secondary-contact rule waits for) moves with it: the placement's new
    end plus the policy's later phases (home monitoring after centralized quarantine), which follow it."""
    contact = placement.contact
    if contact is None:
        return
    try:
        phases = quarantine_schedule(policy, placement.subject, placement.clock_start).phases
    except (PolicyError, ValueError):
        phases = ()
    later = sum(ph.days for ph in phases[placement.phase + 1:])
    end = placement.end_date + timedelta(days=later)
    contact.refresh_from_db(fields=["quarantine_end_date"])
    old = contact.quarantine_end_date
    if old == end:
        return
    contact.quarantine_end_date = end
    contact.save(update_fields=["quarantine_end_date"])
    audit.record(_actor(user), "isolation.contact_end_moved", contact, region_code=contact.index_region_id,
                 changes={"placement": placement.pk, "cause": cause, "from": str(old) if old else None,
                          "to": str(end)})  # fmt: skip


def _contact_result(user: Any, placement: Placement, positive: bool, at: datetime) -> None:
    """Tracing keeps the contact's tests and applies the secondary-contact rule (release or upgrade). When
    that rule releases this placement's secondary contact, the placement ends with it, audited."""
    contact = placement.contact
    if contact is None or contact.kind not in ("close", "secondary"):
        return
    from cordon.tracing.services import record_close_contact_test

    record_close_contact_test(user, contact, positive, at)
    contact.refresh_from_db(fields=["status"])
    if not positive and contact.status == "released" and placement.status == PlacementStatus.ACTIVE:
        placement.status, placement.released_at = PlacementStatus.RELEASED, at
        placement.release_reason = "secondary-contact rule"
        placement.save(update_fields=["status", "released_at", "release_reason"])
        audit.record(_actor(user), "isolation.release", placement, region_code=placement.site_region or placement.region_id,
                     changes={"timing": "rule", "reason": "secondary-contact rule"})  # fmt: skip
        events.emit("placement.released", placement=placement, user=user)


# ----------------------------------------------------------------------------------------------------------
# Sites and rooms.
# ----------------------------------------------------------------------------------------------------------


def create_site(user: Any, *, code: str, name: str, region_code: str, floors: int, rooms_per_floor: int,
                beds_per_room: int | Sequence[int] = 1, kind: str = SiteKind.HOTEL, address: str = "",
                staff_count: int = 0, contact_name: str = "", contact_phone: str = "",
                first_floor: int = 1) -> IsolationSite:  # fmt: skip
    """A site with its rooms numbered floor + two digits (3rd floor: 301, 302, …). ``beds_per_room`` may be a
    list giving the beds of each room on a floor (e.g. [2, 1, 1, 1] for a family room at the end)."""
    _require_write(user)
    code = (code or "").strip()
    if not code:
        raise FieldError("code", code, "required")
    if not (name or "").strip():
        raise FieldError("name", name, "required")
    if kind not in SiteKind.values:
        raise FieldError("kind", kind, f"one of {', '.join(SiteKind.values)}")
    if not Region.objects.filter(code=region_code).exists():
        raise FieldError("region_code", region_code, "unknown region code")
    _check_jurisdiction(user, region_code)
    if floors < 1 or floors > 99:
        raise FieldError("floors", str(floors), "between 1 and 99")
    if rooms_per_floor < 1 or rooms_per_floor > 99:
        raise FieldError("rooms_per_floor", str(rooms_per_floor), "between 1 and 99")
    beds = [beds_per_room] * rooms_per_floor if isinstance(beds_per_room, int) else list(beds_per_room)
    if len(beds) != rooms_per_floor or any(b < 1 or b > 12 for b in beds):
        raise FieldError("beds_per_room", str(beds_per_room), "one number (1–12) or one per room of a floor")
    if IsolationSite.objects.filter(code=code).exists():
        raise FieldError("code", code, "a site with this code exists")
    with transaction.atomic():
        site = IsolationSite.objects.create(code=code, name=name.strip(), kind=kind, region_id=region_code,
                                            address=address, floors=floors, staff_count=staff_count,
                                            contact_name=contact_name, contact_phone=contact_phone)  # fmt: skip
        Room.objects.bulk_create([
            Room(site=site, floor=f, number=f"{f}{n:02d}", beds=beds[n - 1])
            for f in range(first_floor, first_floor + floors) for n in range(1, rooms_per_floor + 1)
        ])  # fmt: skip
        audit.record(_actor(user), "isolation.site_create", site, region_code=region_code,
                     changes={"code": code, "floors": floors, "rooms": floors * rooms_per_floor,
                              "beds": floors * sum(beds)})  # fmt: skip
    return site


def _refresh_full(site: IsolationSite | None) -> None:
    """An open site with no free bed becomes full; a full one with a free bed again opens."""
    if site is None or site.status not in (SiteStatus.OPEN, SiteStatus.FULL):
        return
    free = sum(max(0, s.beds - s.occupants) for s in site_slots(site))
    status = SiteStatus.FULL if free == 0 else SiteStatus.OPEN
    if status != site.status:
        IsolationSite.objects.filter(pk=site.pk).update(status=status)
        site.status = status


def set_site_status(user: Any, site: IsolationSite, status: str) -> IsolationSite:
    _require_write(user)
    _check_jurisdiction(user, site.region_id)
    if status not in SiteStatus.values:
        raise FieldError("status", status, f"one of {', '.join(SiteStatus.values)}")
    if status == site.status:
        return site
    with transaction.atomic():
        old, site.status = site.status, status
        site.save(update_fields=["status"])
        audit.record(_actor(user), "isolation.site_status", site, region_code=site.region_id,
                     changes={"from": old, "to": status})  # fmt: skip
    return site


# ----------------------------------------------------------------------------------------------------------
# Placements and their schedule.
# ----------------------------------------------------------------------------------------------------------


def subject_for_contact(contact: Any) -> str:
    if contact.kind == "close":
        return "close_contact"
    if contact.kind == "secondary":
        return "secondary_contact"
    raise FieldError("kind", contact.kind, "space-time companions are followed up by testing, not placed")


def _phase_for(policy: Policy, subject: str, clock_start: date, entry: date, phase: int | None = None):
    """(index, Phase) of the phase the person enters: the given one, else the first not yet over."""
    try:
        sched = quarantine_schedule(policy, subject, clock_start)
    except PolicyError as e:
        raise FieldError("subject", subject, e.errors[0][1] if e.errors else str(e)) from None
    except ValueError as e:
        raise FieldError("subject", subject, str(e)) from None
    if sched.tests_in_period:
        raise FieldError("subject", subject, "this rule is testing only (tests within a period), not a placement")
    if phase is not None:
        return phase, sched.phases[phase]
    for i, ph in enumerate(sched.phases):
        if ph.last_day >= entry:
            return i, ph
    raise FieldError("clock_start", str(clock_start),
                     f"management under {policy.name} ended on {sched.end_date}: nothing to place")  # fmt: skip


def _write_tests(placement: Placement, test_days: Iterable[int], start: date, entry: date) -> None:
    rows = []
    for d in test_days:
        due = start + timedelta(days=d - 1)
        rows.append(PlacementTest(placement=placement, day=d, due_date=due,
                                  status=TestStatus.BEFORE_ARRIVAL if due < entry else TestStatus.PENDING))  # fmt: skip
    skipped = any(r.status == TestStatus.BEFORE_ARRIVAL for r in rows)
    if skipped and entry <= placement.end_date and not any(r.due_date == entry for r in rows):
        rows.append(PlacementTest(placement=placement, day=(entry - start).days + 1, due_date=entry,
                                  kind=TestKind.ARRIVAL))  # fmt: skip
    PlacementTest.objects.bulk_create(rows)


@dataclass
class Candidate:
    """Someone to place: a contact (subject from its kind) or a registry person (a traveller)."""

    person: Any
    subject: str
    clock_start: date
    contact: Any = None
    household: str = ""

    @classmethod
    def from_contact(cls, contact: Any) -> Candidate:
        person = contact.person
        addr = (person.address or "").strip()
        return cls(person=person, subject=subject_for_contact(contact), clock_start=contact.last_exposure_date,
                   contact=contact, household=f"{contact.index_case_id}:{addr}" if addr else "")  # fmt: skip

    @classmethod
    def traveller(cls, person: Any, level: str, departure: date) -> Candidate:
        addr = (person.address or "").strip()
        return cls(person=person, subject=f"traveller_{level}", clock_start=departure,
                   household=f"t:{addr}" if addr else "")  # fmt: skip


def _create_placement(user: Any, policy: Policy, cand: Candidate, *, at: datetime, room: Room | None = None,
                      phase: int | None = None, previous: Placement | None = None,
                      phase_start: date | None = None) -> Placement:  # fmt: skip
    entry = _local(at)
    idx, ph = _phase_for(policy, cand.subject, cand.clock_start, entry, phase)
    start, end = ph.first_day, ph.last_day
    if phase_start is not None:  # a follow-on phase starts when the previous one actually ended
        end = phase_start + timedelta(days=ph.days - 1)
        start = phase_start
    if (ph.kind == CENTRALIZED) != (room is not None):
        raise FieldError("room", "", "a centralized phase needs a room; a home phase must not have one")
    if Placement.objects.filter(person=cand.person, status=PlacementStatus.ACTIVE).exists():
        raise FieldError("person", str(cand.person.pk), "already under management")
    p = Placement.objects.create(
        person=cand.person, contact=cand.contact, subject=cand.subject, kind=ph.kind, phase=idx,
        site=room.site if room else None, room=room, floor=room.floor if room else None,
        region_id=cand.person.region_id, site_region=room.site.region_id if room else "",
        household=cand.household[:64], clock_start=start - timedelta(days=1), start_date=start, end_date=end,
        entry_date=max(entry, start) if previous else entry, placed_at=at, policy_name=policy.name,
        previous=previous, created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    _write_tests(p, ph.test_days, start, p.entry_date)
    _advance_contact(user, cand.contact, "quarantined", at, note=f"placement {p.pk}")
    audit.record(_actor(user), "isolation.place", p, region_code=p.site_region or p.region_id,
                 changes={"kind": p.kind, "subject": p.subject, "site": room.site.code if room else None,
                          "room": room.number if room else None, "from": str(start), "until": str(end),
                          "policy": policy.name})  # fmt: skip
    events.emit("placement.created", placement=p, user=user)
    return p


def place_at_home(user: Any, cand: Candidate, *, at: datetime | None = None) -> Placement:
    """Home quarantine / isolation / monitoring, when the policy's phase for this person is a home phase."""
    _require_write(user)
    _check_jurisdiction(user, cand.person.region_id)
    at = at or timezone.now()
    policy = active_policy()
    with transaction.atomic():
        return _create_placement(user, policy, cand, at=at)


def _blocking_tests(placement: Placement, on: date) -> list[str]:
    out = []
    for t in placement.tests.all():
        if t.status == TestStatus.POSITIVE:
            out.append(f"test of {t.due_date} is positive")
        elif t.status == TestStatus.PENDING and t.due_date <= on:
            out.append(f"test of {t.due_date} has no result")
    return out


def release_blockers(placement: Placement, on: date | None = None, policy: Policy | None = None) -> list[str]:
    """Every unmet release condition on day ``on`` (empty: may be released)."""
    policy = policy or active_policy()
    on = on or timezone.localdate()
    if placement.status != PlacementStatus.ACTIVE:
        return [f"placement is {placement.status}"]
    qs = policy.quarantine_site
    out = _blocking_tests(placement, on) if qs.release_requires_own_test_negative else []
    if placement.room_id and qs.release_requires_environment_negative:
        latest = (EnvironmentSample.objects.filter(room_id=placement.room_id,
                                                   sampled_at__date__gte=placement.entry_date - timedelta(days=1))
                  .order_by("-sampled_at", "-pk").first())  # fmt: skip
        if latest is None or _local(latest.sampled_at) < placement.entry_date:
            out.append(f"no environment sample of room {placement.room.number} since entry")
        elif latest.result != SampleResult.NEGATIVE:
            out.append(f"room {placement.room.number} environment sample is {latest.result}")
    return out


def release(user: Any, placement: Placement, *, at: datetime | None = None, reason: str = "") -> Placement:
    """Release on or after the end day once every condition holds; off the end day only with a reason.
    After a centralized phase the policy's next phase (home monitoring / isolation) starts at once."""
    _require_write(user)
    _check_jurisdiction(user, placement.region_id, placement.site_region)
    at = at or timezone.now()
    on = _local(at)
    policy = active_policy()
    reason = (reason or "").strip()
    timing = "on_time" if on == placement.end_date else ("early" if on < placement.end_date else "late")
    if timing != "on_time" and not reason:
        raise FieldError("reason", "", f"a {timing} release (end day {placement.end_date}) needs a reason")
    with transaction.atomic():
        placement = Placement.objects.select_for_update().get(pk=placement.pk)
        blockers = release_blockers(placement, on, policy)
        if blockers:
            raise ReleaseBlocked(blockers)
        if timing == "early":
            placement.tests.filter(status=TestStatus.PENDING, due_date__gt=on).update(status=TestStatus.CANCELLED)
        follow = None
        try:
            sched = quarantine_schedule(policy, placement.subject, placement.clock_start)
            has_next = placement.phase + 1 < len(sched.phases) and timing != "early"
        except PolicyError:
            has_next = False
        placement.status = PlacementStatus.ENDED if has_next else PlacementStatus.RELEASED
        placement.released_at = at
        placement.release_reason = reason
        placement.save(update_fields=["status", "released_at", "release_reason"])
        _refresh_full(placement.site)
        audit.record(_actor(user), "isolation.release", placement, region_code=placement.site_region or placement.region_id,
                     changes={"timing": timing, "reason": reason, "end_date": str(placement.end_date),
                              "next_phase": has_next})  # fmt: skip
        if has_next:
            cand = Candidate(person=placement.person, subject=placement.subject,
                             clock_start=placement.clock_start, contact=placement.contact,
                             household=placement.household)  # fmt: skip
            follow = _create_placement(user, policy, cand, at=at, phase=placement.phase + 1, previous=placement,
                                       phase_start=max(placement.end_date, on) + timedelta(days=1))  # fmt: skip
        else:
            _advance_contact(user, placement.contact, "released", at, note=f"placement {placement.pk}")
        events.emit("placement.released", placement=placement, user=user)
    return follow or placement


def mark_missed(user: Any, test: PlacementTest, *, at: datetime | None = None) -> PlacementTest:
    """缺几天补几天: the day is missed; with the rule on, one more day and one make-up test at the new end."""
    _require_write(user)
    placement = test.placement
    _check_jurisdiction(user, placement.region_id, placement.site_region)
    if test.status != TestStatus.PENDING:
        raise FieldError("test", str(test.pk), f"test is {test.status}, not due")
    policy = active_policy()
    with transaction.atomic():
        test.status = TestStatus.MISSED
        test.save(update_fields=["status"])
        changes: dict[str, Any] = {"due_date": str(test.due_date), "makeup": False}
        if policy.quarantine_site.makeup_missed_tests and placement.status == PlacementStatus.ACTIVE:
            placement.end_date += timedelta(days=1)
            placement.missed_days += 1
            placement.save(update_fields=["end_date", "missed_days"])
            PlacementTest.objects.create(placement=placement, day=(placement.end_date - placement.start_date).days + 1,
                                         due_date=placement.end_date, kind=TestKind.MAKEUP)  # fmt: skip
            changes.update(makeup=True, new_end_date=str(placement.end_date))
            _follow_contact_end(user, placement, policy, "makeup")
        audit.record(_actor(user), "isolation.test_missed", placement,
                     region_code=placement.site_region or placement.region_id, changes=changes)  # fmt: skip
    return test


def sweep_missed(user: Any = None, *, as_of: date | None = None) -> int:
    """Mark every still-due test of a past day as missed (and apply the make-up rule); returns how many."""
    as_of = as_of or timezone.localdate()
    n = 0
    qs = PlacementTest.objects.filter(status=TestStatus.PENDING, due_date__lt=as_of,
                                      placement__status=PlacementStatus.ACTIVE).select_related("placement")  # fmt: skip
    for t in qs.order_by("due_date", "pk"):
        p = t.placement
        if user is not None and not (in_jurisdiction(user, p.region_id) or in_jurisdiction(user, p.site_region)):
            continue
        mark_missed(user, t)
        n += 1
    return n


def _test_on(placement: Placement, on: date) -> PlacementTest:
    t = placement.tests.filter(due_date=on, status=TestStatus.PENDING).order_by("pk").first()
    if t is None:
        t = placement.tests.filter(due_date=on).exclude(status__in=[TestStatus.CANCELLED]).order_by("pk").first()
        if t is not None and t.status != TestStatus.PENDING:
            raise FieldError("date", str(on), f"the test of this day is already {t.status}")
    if t is None:  # an extra test (a symptom, a request): recorded on its own row
        t = PlacementTest(placement=placement, day=max(1, (on - placement.start_date).days + 1), due_date=on,
                          kind=TestKind.SCHEDULED)  # fmt: skip
    return t


def record_test(user: Any, placement: Placement, *, positive: bool, at: datetime | None = None,
                classification: str = "asymptomatic") -> PlacementTest:  # fmt: skip
    """A nucleic-acid result for the test day of ``at``. A positive opens a case (found under control),
    sends the person to hospital and, in a site, restarts the floors around them."""
    _require_write(user)
    _check_jurisdiction(user, placement.region_id, placement.site_region)
    at = at or timezone.now()
    if at > timezone.now() + timedelta(minutes=5):
        raise FieldError("at", at.isoformat(), "in the future")
    if placement.status != PlacementStatus.ACTIVE:
        raise FieldError("placement", str(placement.pk), f"placement is {placement.status}")
    on = _local(at)
    if on < placement.entry_date:
        raise FieldError("at", at.isoformat(), "before the person was placed")
    policy = active_policy()
    with transaction.atomic():
        test = _test_on(placement, on)
        test.status = TestStatus.POSITIVE if positive else TestStatus.NEGATIVE
        test.sampled_at = at
        test.recorded_by = user if getattr(user, "is_authenticated", False) else None
        test.save()
        audit.record(_actor(user), "isolation.test_result", placement,
                     region_code=placement.site_region or placement.region_id,
                     changes={"due_date": str(test.due_date), "kind": test.kind, "result": test.status})  # fmt: skip
        _contact_result(user, placement, positive, at)
        if positive:
            _to_hospital(user, placement, at, classification, policy)
    return test


def _to_hospital(user: Any, placement: Placement, at: datetime, classification: str, policy: Policy) -> None:
    from cordon.cases.services import report_case

    region_code = placement.site.region_id if placement.site_id else placement.person.region_id[:6]
    case = report_case(user, placement.person, classification=classification, region_code=region_code,
                       found_by="under_control", found_under_control=True, sampled_at=at, first_positive_at=at)  # fmt: skip
    placement.refresh_from_db()
    placement.status = PlacementStatus.TO_HOSPITAL
    placement.case = case
    placement.released_at = at
    placement.save(update_fields=["status", "case", "released_at"])
    placement.tests.filter(status=TestStatus.PENDING).update(status=TestStatus.CANCELLED)
    _refresh_full(placement.site)
    audit.record(_actor(user), "isolation.to_hospital", placement,
                 region_code=placement.site_region or placement.region_id, changes={"case": case.pk})  # fmt: skip
    if placement.site_id:
        qs = policy.quarantine_site
        floors = list(range(placement.floor - qs.restart_scope_floors_below,
                            placement.floor + qs.restart_scope_floors_above + 1))  # fmt: skip
        if not qs.same_floor:
            floors.remove(placement.floor)
        existing = set(placement.site.rooms.values_list("floor", flat=True))
        floors = [f for f in floors if f in existing]
        _restart(user, placement.site, policy, cause=RestartCause.PERSON_POSITIVE, scope="floor", floors=floors,
                 clock_start=_local(at), at=at, source_placement=placement)  # fmt: skip


def _restart(user: Any, site: IsolationSite, policy: Policy, *, cause: str, scope: str, floors: list[int],
             clock_start: date, at: datetime, source_placement: Placement | None = None,
             source_sample: EnvironmentSample | None = None, room: Room | None = None) -> Restart:  # fmt: skip
    """Start the clock again on ``clock_start`` for everyone under centralized management in scope."""
    qs = Placement.objects.filter(site=site, status=PlacementStatus.ACTIVE)
    if scope == "floor":
        qs = qs.filter(floor__in=floors)
    elif scope == "room" and room is not None:
        qs = qs.filter(room=room)
    affected = list(qs.select_for_update().order_by("pk"))
    for p in affected:
        _, ph = _phase_for(policy, p.subject, clock_start, clock_start, p.phase)
        p.tests.filter(status=TestStatus.PENDING).delete()
        p.clock_start, p.start_date, p.end_date = clock_start, ph.first_day, ph.last_day
        p.restarts += 1
        p.missed_days = 0
        p.policy_name = policy.name
        p.save(update_fields=["clock_start", "start_date", "end_date", "restarts", "missed_days", "policy_name"])
        _write_tests(p, ph.test_days, ph.first_day, ph.first_day)
        _follow_contact_end(user, p, policy, "restart")
    r = Restart.objects.create(site=site, cause=cause, scope=scope, floors=sorted(floors), clock_start=clock_start,
                               at=at, people_affected=len(affected), source_placement=source_placement,
                               source_sample=source_sample, by=user if getattr(user, "is_authenticated", False) else None)  # fmt: skip
    r.placements.set(affected)
    audit.record(_actor(user), "isolation.restart", r, region_code=site.region_id,
                 changes={"site": site.code, "cause": cause, "scope": scope, "floors": sorted(floors),
                          "clock_start": str(clock_start), "people_affected": len(affected),
                          "placements": [p.pk for p in affected]})  # fmt: skip
    return r


def record_environment_sample(user: Any, site: IsolationSite, *, result: str, room: Room | None = None,
                              sampled_at: datetime | None = None) -> EnvironmentSample:  # fmt: skip
    """An environment swab; a positive one restarts what ``environment_positive_restarts`` says."""
    _require_write(user)
    _check_jurisdiction(user, site.region_id)
    if result not in SampleResult.values:
        raise FieldError("result", result, f"one of {', '.join(SampleResult.values)}")
    if room is not None and room.site_id != site.pk:
        raise FieldError("room", room.number, "not a room of this site")
    at = sampled_at or timezone.now()
    policy = active_policy()
    with transaction.atomic():
        s = EnvironmentSample.objects.create(site=site, room=room, sampled_at=at, result=result,
                                             recorded_by=user if getattr(user, "is_authenticated", False) else None)  # fmt: skip
        audit.record(_actor(user), "isolation.environment_sample", s, region_code=site.region_id,
                     changes={"site": site.code, "room": room.number if room else None, "result": result})  # fmt: skip
        scope = policy.quarantine_site.environment_positive_restarts
        if result == SampleResult.POSITIVE and scope != "none":
            if scope in ("floor", "room") and room is None:
                scope = "site"  # a common-area sample: the whole site
            floors = [room.floor] if (room is not None and scope == "floor") else []
            if scope == "site":
                floors = sorted(set(site.rooms.values_list("floor", flat=True)))
            _restart(user, site, policy, cause=RestartCause.ENVIRONMENT_POSITIVE, scope=scope, floors=floors,
                     clock_start=_local(at), at=at, source_sample=s, room=room)  # fmt: skip
    return s


def emit_due_for_release(on: date | None = None) -> int:
    """``placement.due_for_release`` for each active placement whose last day is ``on`` (the command module
    turns these into release tasks). Run daily by the worker or ``cordon isolation release-list --notify``."""
    on = on or timezone.localdate()
    n = 0
    for p in Placement.objects.filter(status=PlacementStatus.ACTIVE, end_date=on).order_by("pk"):
        with transaction.atomic():
            events.emit("placement.due_for_release", placement=p)
        n += 1
    return n


# ----------------------------------------------------------------------------------------------------------
# Bed assignment.
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Slot:
    room_id: int
    floor: int
    number: str
    beds: int
    occupants: int = 0
    cohorts: set = field(default_factory=set)


@dataclass
class Plan:
    """Rooms for each unit (a household or a single person), by unit index; ``unplaced``: units that did
    not fit. ``cost``: people restarted if each occupied floor had one positive (sum over occupied floors of
    the people on that floor and the floors directly above and below), the site as a whole after the plan."""

    rooms: dict[int, list[int]]
    unplaced: list[int]
    cost: int
    strategy: str


def restart_cost(per_floor: dict[int, int], above: int = 1, below: int = 1) -> int:
    return sum(sum(per_floor.get(g, 0) for g in range(f - below, f + above + 1))
               for f, n in per_floor.items() if n > 0)  # fmt: skip


def _fit(free: list[Slot], size: int, share: bool) -> list[Slot] | None:
    """Empty rooms on one floor for a unit of ``size``: one room big enough (smallest such) when the
    household may share, else one room per person; never more people than beds."""
    if share:
        fitting = [s for s in free if s.beds >= size]
        if fitting:
            return [min(fitting, key=lambda s: (s.beds, s.number))]
        picked, beds = [], 0
        for s in sorted(free, key=lambda s: (-s.beds, s.number)):
            picked.append(s)
            beds += s.beds
            if beds >= size:
                return picked
        return None
    return free[:size] if len(free) >= size else None


def plan_beds(slots: list[Slot], units: list[int], cohort: date, *, share: bool = True, strategy: str = "cohort",
              above: int = 1, below: int = 1) -> Plan:  # fmt: skip
    """Assign units (sizes, in order given) to empty rooms. ``first_fit``: lowest floor and room that fits.
    ``cohort``: a floor already holding this cohort (same entry day) first, then an empty floor, fewest
    people of other cohorts within the restart scope first, then fewest people at all; only then a floor
    holding another cohort; households
    (larger units) first. Falls back to first-fit if that would cost less, so it never costs more."""
    work = [Slot(s.room_id, s.floor, s.number, s.beds, s.occupants, set(s.cohorts)) for s in slots]
    by_floor: dict[int, list[Slot]] = defaultdict(list)
    for s in sorted(work, key=lambda s: (s.floor, s.number)):
        by_floor[s.floor].append(s)
    floor_people = {f: sum(s.occupants for s in rs) for f, rs in by_floor.items()}
    floor_cohorts = {f: set().union(*(s.cohorts for s in rs)) for f, rs in by_floor.items()}
    order = list(range(len(units)))
    if strategy == "cohort":
        order.sort(key=lambda i: -units[i])
    out: dict[int, list[int]] = {}
    unplaced: list[int] = []

    def rank(f: int) -> tuple:
        if strategy == "first_fit":
            return (f,)
        if floor_cohorts[f] and floor_cohorts[f] != {cohort}:
            return (3, 0, 0, f)
        if floor_people[f] > 0:
            return (0, 0, 0, f)
        near = [g for g in range(f - below, f + above + 1) if g != f and floor_people.get(g, 0) > 0]
        other = sum(floor_people[g] for g in near if floor_cohorts[g] - {cohort})
        same = sum(floor_people[g] for g in near) - other
        return (1, other, same, f)  # an empty floor: away from other cohorts first, then from anyone

    for i in order:
        size = units[i]
        for f in sorted(by_floor, key=rank):
            free = [s for s in by_floor[f] if s.occupants == 0]
            got = _fit(free, size, share)
            if got is None:
                continue
            left = size
            for s in got:
                take = min(s.beds, left) if share else 1
                s.occupants += take
                s.cohorts.add(cohort)
                left -= take
                out.setdefault(i, []).extend([s.room_id] * take)
            floor_people[f] += size
            floor_cohorts[f].add(cohort)
            break
        else:
            unplaced.append(i)
    plan = Plan(out, unplaced, restart_cost(floor_people, above, below), strategy)
    if strategy == "cohort":
        base = plan_beds(slots, units, cohort, share=share, strategy="first_fit", above=above, below=below)
        left_plan, left_base = sum(units[i] for i in plan.unplaced), sum(units[i] for i in base.unplaced)
        if left_base < left_plan or (left_base == left_plan and base.cost < plan.cost):
            return Plan(base.rooms, base.unplaced, base.cost, "first_fit")
    return plan


def site_slots(site: IsolationSite) -> list[Slot]:
    rooms = list(site.rooms.filter(in_service=True).order_by("floor", "number"))
    occ: dict[int, list[date]] = defaultdict(list)
    for room_id, entry in Placement.objects.filter(site=site, status=PlacementStatus.ACTIVE).values_list(
        "room_id", "entry_date"
    ):
        occ[room_id].append(entry)
    return [Slot(r.pk, r.floor, r.number, r.beds, len(occ[r.pk]), set(occ[r.pk])) for r in rooms]


@dataclass
class Assignment:
    placements: list[Placement]
    at_home: list[Placement]
    unplaced: list[Candidate]
    errors: list[tuple[int, str]]
    cost: int
    baseline_cost: int
    strategy: str


def assign_beds(user: Any, site: IsolationSite, candidates: Sequence[Candidate], *, at: datetime | None = None,
                dry_run: bool = False) -> Assignment:  # fmt: skip
    """Place a batch: households kept together, single occupancy otherwise, each floor one cohort. Those
    whose current phase is a home phase are placed at home. Capacity-aware: whoever does not fit is
    returned in ``unplaced``, never over-filled."""
    _require_write(user)
    _check_jurisdiction(user, site.region_id, field_name="site")
    if site.status in (SiteStatus.CLOSED, SiteStatus.DISINFECTING):
        raise FieldError("site", site.code, f"site is {site.status}")
    at = at or timezone.now()
    entry = _local(at)
    policy = active_policy()
    qs = policy.quarantine_site
    errors: list[tuple[int, str]] = []
    central: list[Candidate] = []
    home: list[Candidate] = []
    for n, c in enumerate(candidates):
        try:
            _check_jurisdiction(user, c.person.region_id, c.contact.index_region_id if c.contact else "",
                                site.region_id)  # fmt: skip
            _, ph = _phase_for(policy, c.subject, c.clock_start, entry)
        except FieldError as e:
            errors.append((n, f"{e.field}: {e.reason}"))
            continue
        (central if ph.kind == CENTRALIZED else home).append(c)
    groups: dict[str, list[Candidate]] = {}
    for i, c in enumerate(central):
        groups.setdefault(c.household or f"single:{i}", []).append(c)
    units = list(groups.values())
    with transaction.atomic():
        IsolationSite.objects.select_for_update().get(pk=site.pk)  # one batch at a time per site
        slots = site_slots(site)
        plan = plan_beds(slots, [len(u) for u in units], entry, share=qs.households_share_room,
                         above=qs.restart_scope_floors_above, below=qs.restart_scope_floors_below)  # fmt: skip
        base = plan_beds(slots, [len(u) for u in units], entry, share=qs.households_share_room, strategy="first_fit",
                         above=qs.restart_scope_floors_above, below=qs.restart_scope_floors_below)  # fmt: skip
        placed: list[Placement] = []
        at_home: list[Placement] = []
        if not dry_run:
            rooms = {r.pk: r for r in site.rooms.all()}
            for i, unit in enumerate(units):
                for cand, room_id in zip(unit, plan.rooms.get(i, []), strict=False):
                    placed.append(_create_placement(user, policy, cand, at=at, room=rooms[room_id]))
                    _close_transfer(cand, placed[-1], at)
            for cand in home:
                at_home.append(_create_placement(user, policy, cand, at=at))
                _close_transfer(cand, at_home[-1], at)
            _refresh_full(site)
            audit.record(_actor(user), "isolation.assign", site, region_code=site.region_id,
                         changes={"placed": len(placed), "at_home": len(at_home),
                                  "unplaced": sum(len(units[i]) for i in plan.unplaced), "cost": plan.cost,
                                  "baseline_cost": base.cost, "strategy": plan.strategy})  # fmt: skip
    unplaced = [c for i in plan.unplaced for c in units[i]]
    return Assignment(placed, at_home, unplaced, errors, plan.cost, base.cost, plan.strategy)


def _close_transfer(cand: Candidate, placement: Placement, at: datetime) -> None:
    t = Transfer.objects.filter(person=cand.person, status__in=OPEN_TRANSFER).order_by("-pk").first()
    if t is not None:
        t.status, t.arrived_at, t.placement = TransferStatus.ARRIVED, at, placement
        t.site = placement.site or t.site
        t.site_region = t.site.region_id if t.site else t.site_region
        t.save(update_fields=["status", "arrived_at", "placement", "site", "site_region"])


# ----------------------------------------------------------------------------------------------------------
# Transfers.
# ----------------------------------------------------------------------------------------------------------


def transfer_hours(policy: Policy, contact_kind: str) -> float:
    d = policy.deadlines
    return d.secondary_contact_transfer_hours if contact_kind == "secondary" else d.close_contact_transfer_hours


def pickup_area(person: Any) -> str:
    """Where a vehicle collects the person: their township / street (one vehicle tours its communities)."""
    code = person.region_id or ""
    return code[:9] if len(code) >= 9 else code


def request_transfers(user: Any, contacts: Iterable[Any], *, at: datetime | None = None
                      ) -> tuple[list[Transfer], list[tuple[int, str]]]:  # fmt: skip
    """A transfer request for each contact that is due for transfer (identified, notified or located — or
    marked "transfer requested" elsewhere without a request here — with no placement and no open request);
    the deadline counts from identification. Returns (created, skipped)."""
    _require_write(user)
    at = at or timezone.now()
    policy = active_policy()
    created: list[Transfer] = []
    skipped: list[tuple[int, str]] = []
    with transaction.atomic():
        for c in contacts:
            if c.status not in (*TRANSFERABLE_STATUSES, "transfer_requested"):
                skipped.append((c.pk, f"status is {c.status}"))
                continue
            if c.kind not in ("close", "secondary"):
                skipped.append((c.pk, "space-time companions are not transferred"))
                continue
            try:
                _check_jurisdiction(user, c.region_id, c.index_region_id)
                _, ph = _phase_for(policy, subject_for_contact(c), c.last_exposure_date, _local(at))
            except FieldError as e:
                skipped.append((c.pk, e.reason))
                continue
            if ph.kind != CENTRALIZED:
                skipped.append((c.pk, f"managed at home ({ph.kind}), no transfer"))
                continue
            if Placement.objects.filter(person_id=c.person_id, status=PlacementStatus.ACTIVE).exists() or \
                    Transfer.objects.filter(person_id=c.person_id, status__in=OPEN_TRANSFER).exists():  # fmt: skip
                skipped.append((c.pk, "already placed or requested"))
                continue
            t = Transfer.objects.create(
                person_id=c.person_id, contact=c, contact_kind=c.kind, region_id=c.person.region_id,
                pickup_area=pickup_area(c.person), identified_at=c.identified_at, requested_at=at,
                due_at=c.identified_at + timedelta(hours=transfer_hours(policy, c.kind)),
            )
            _advance_contact(user, c, "transfer_requested", at, note=f"transfer {t.pk}")
            audit.record(_actor(user), "isolation.transfer_request", t, region_code=t.region_id,
                         changes={"contact": c.pk, "kind": c.kind, "due_at": t.due_at.isoformat()})  # fmt: skip
            created.append(t)
    return created, skipped


def plan_trips(user: Any, site: IsolationSite, transfers: Iterable[Transfer], *, seats: int | None = None,
               at: datetime | None = None) -> list[Trip]:  # fmt: skip
    """Group requested transfers (not yet on a trip) into vehicle trips to ``site``: by pick-up area, most
    urgent first, a household never split across vehicles (unless larger than a vehicle)."""
    _require_write(user)
    _check_jurisdiction(user, site.region_id, field_name="site")
    at = at or timezone.now()
    seats = seats or active_policy().quarantine_site.transfer_vehicle_seats
    if seats < 1:
        raise FieldError("seats", str(seats), "at least 1")
    by_area: dict[str, list[Transfer]] = defaultdict(list)
    for t in transfers:
        if t.status == TransferStatus.REQUESTED and t.trip_id is None:
            by_area[t.pickup_area].append(t)
    trips: list[Trip] = []
    with transaction.atomic():
        for area in sorted(by_area):
            households: dict[str, list[Transfer]] = defaultdict(list)
            for t in sorted(by_area[area], key=lambda t: (t.due_at, t.pk)):
                key = f"{t.contact.index_case_id}:{t.person.address}" if t.contact_id and t.person.address else f"t{t.pk}"
                households[key].append(t)
            loads: list[list[Transfer]] = []
            for members in households.values():  # first-fit in order of urgency
                for load in loads:
                    if len(load) + len(members) <= seats:
                        load.extend(members)
                        break
                else:
                    for k in range(0, len(members), seats):
                        loads.append(list(members[k:k + seats]))
            for load in loads:
                trip = Trip.objects.create(site=site, pickup_area_id=area, seats=seats, created_at=at)
                Transfer.objects.filter(pk__in=[t.pk for t in load]).update(trip=trip, site=site,
                                                                             site_region=site.region_id)  # fmt: skip
                audit.record(_actor(user), "isolation.trip_plan", trip, region_code=site.region_id,
                             changes={"site": site.code, "area": area, "transfers": [t.pk for t in load]})  # fmt: skip
                trips.append(trip)
    return trips


TRIP_ORDER = [TripStatus.PLANNED, TripStatus.DISPATCHED, TripStatus.PICKED_UP, TripStatus.ARRIVED]


def advance_trip(user: Any, trip: Trip, status: str, *, at: datetime | None = None, vehicle: str = ""
                 ) -> Trip | Assignment:  # fmt: skip
    """planned → dispatched → picked_up → arrived, with times; on arrival the riders get beds (one batch)."""
    _require_write(user)
    _check_jurisdiction(user, trip.site.region_id, field_name="site")
    if status not in TRIP_ORDER or TRIP_ORDER.index(status) <= TRIP_ORDER.index(trip.status):
        raise FieldError("status", status, f"trip is {trip.status}; next is one of "
                         f"{', '.join(TRIP_ORDER[TRIP_ORDER.index(trip.status) + 1:]) or 'none'}")
    at = at or timezone.now()
    with transaction.atomic():
        trip.status = status
        setattr(trip, f"{status}_at", at)
        if vehicle:
            trip.vehicle = vehicle[:32]
        trip.save()
        open_rows = trip.transfers.filter(status__in=OPEN_TRANSFER)
        if status != TripStatus.ARRIVED:
            open_rows.update(status=status, **{f"{status}_at": at})
        audit.record(_actor(user), "isolation.trip_status", trip, region_code=trip.site.region_id,
                     changes={"status": status, "vehicle": trip.vehicle})  # fmt: skip
        if status == TripStatus.ARRIVED:
            cands = [Candidate.from_contact(t.contact) for t in open_rows.select_related("contact__person")
                     if t.contact_id]  # fmt: skip
            result = assign_beds(user, trip.site, cands, at=at)
            trip.transfers.filter(status__in=OPEN_TRANSFER).update(status=TransferStatus.ARRIVED, arrived_at=at)
            return result
    return trip


def cancel_transfer(user: Any, transfer: Transfer, reason: str) -> Transfer:
    _require_write(user)
    _check_jurisdiction(user, transfer.region_id, transfer.site_region)
    if not (reason or "").strip():
        raise FieldError("reason", "", "a cancellation needs a reason")
    if transfer.status not in OPEN_TRANSFER:
        raise FieldError("status", transfer.status, "only an open transfer can be cancelled")
    with transaction.atomic():
        transfer.status = TransferStatus.CANCELLED
        transfer.save(update_fields=["status"])
        audit.record(_actor(user), "isolation.transfer_cancel", transfer, region_code=transfer.region_id,
                     changes={"reason": reason.strip()})  # fmt: skip
    return transfer


def occupancy_by_room(site: IsolationSite) -> dict[int, int]:
    rows = Placement.objects.filter(site=site, status=PlacementStatus.ACTIVE).values("room_id").annotate(n=Count("pk"))
    return {r["room_id"]: r["n"] for r in rows}
