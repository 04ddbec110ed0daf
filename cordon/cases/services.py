"""Writes for cases and investigations. Each runs in one transaction with its audit event and domain event.

Other modules call these: screening reports a case for a positive single-tube retest, isolation for a
positive found in quarantine. ``user`` may be ``None`` for automatic work (the audit trail then names
"system"); a person acting is checked for capability and jurisdiction.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from cordon.cases.models import (
    Case,
    CaseStatus,
    CaseTest,
    Classification,
    FoundBy,
    Investigation,
    Origin,
    Reclassification,
    Severity,
)
from cordon.core import audit, events
from cordon.core.policy import Policy, active_policy, lookback_start, quarantine_schedule
from cordon.core.roles import has_capability
from cordon.core.scoping import in_jurisdiction
from cordon.people.models import Person
from cordon.people.validation import FieldError
from cordon.regions.models import Region

# Who may report a case: investigators, and the modules that find cases (screening, isolation).
REPORT_CAPABILITIES = ("write_cases", "lab_results", "write_screening", "write_isolation")


def actor(user: Any) -> Any:
    return user if user is not None else "system"


def require_any(user: Any, capabilities: tuple[str, ...]) -> None:
    """``None`` is the platform acting on its own (an automatic rule); a person needs one capability."""
    if user is None:
        return
    if not any(has_capability(user, c) for c in capabilities):
        raise PermissionDenied(f"missing capability: one of {', '.join(capabilities)}")


def check_region(user: Any, code: str, field: str = "region_code") -> Region:
    region = Region.objects.filter(code=code).first()
    if region is None:
        raise FieldError(field, code, "unknown region code")
    if user is not None and not in_jurisdiction(user, code):
        raise FieldError(field, code, "outside your jurisdiction")
    return region


def check_case_access(user: Any, case: Case) -> None:
    if user is not None and not in_jurisdiction(user, case.region_id):
        raise PermissionDenied("this case is managed outside your jurisdiction")


def _choice(field: str, value: Any, choices: Any) -> str:
    if value not in choices.values:
        raise FieldError(field, str(value), f"expected one of {', '.join(choices.values)}")
    return value


def _local_date(value: datetime | None) -> date | None:
    return timezone.localdate(value) if value is not None else None


def anchor_date(case: Case) -> date:
    """The date the look-back counts from: symptom onset, or (asymptomatic, or no onset known) the first
    positive sample, else sampling, else the report."""
    if case.onset_date and case.classification != Classification.ASYMPTOMATIC:
        return case.onset_date
    for value in (case.first_positive_at, case.sampled_at):
        if value is not None:
            return timezone.localdate(value)
    if case.onset_date:
        return case.onset_date
    return timezone.localdate(case.reported_at)


def lookback_from(case: Case, policy: Policy | None = None) -> date:
    return lookback_start(policy or active_policy(), anchor_date(case))


def infectious_window(case: Case) -> tuple[datetime, datetime]:
    """From the start of the look-back day (local midnight) to isolation: the report, or the moment the
    case was found under control if earlier (the first positive sample)."""
    start_day = case.investigation.lookback_from if hasattr(case, "investigation") else lookback_from(case)
    start = timezone.make_aware(datetime.combine(start_day, datetime.min.time()))
    end = case.reported_at
    if case.found_under_control and case.first_positive_at and case.first_positive_at < end:
        end = case.first_positive_at
    return start, end


def _next_number(region_code: str, reported_at: datetime) -> str:
    stem = f"{region_code[:6]}-{timezone.localdate(reported_at):%Y%m%d}-"
    last = Case.objects.filter(number__startswith=stem).order_by("-number").values_list("number", flat=True).first()
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{stem}{seq:04d}"


def _deadlines(policy: Policy, opened: datetime) -> dict[str, datetime]:
    d = policy.deadlines
    return {
        "trajectory_due_at": opened + timedelta(hours=d.trajectory_hours),
        "preliminary_due_at": opened + timedelta(hours=d.preliminary_report_hours),
        "contacts_due_at": opened + timedelta(hours=d.close_contact_transfer_hours),
        "complete_due_at": opened + timedelta(hours=d.investigation_complete_hours),
    }


def report_case(
    user: Any,
    person: Person,
    *,
    classification: str,
    region_code: str,
    found_by: str,
    found_under_control: bool = False,
    origin: str = "local",
    origin_detail: str = "",
    onset_date: date | None = None,
    sampled_at: datetime | None = None,
    first_positive_at: datetime | None = None,
    reported_at: datetime | None = None,
    diagnosed_at: datetime | None = None,
    severity: str | None = None,
    hospital: str = "",
    source_case: Case | None = None,
) -> Case:
    """Open a case: its number, the first classification row, the investigation with the policy's clocks;
    open contact records of the person become "became a case" and link the chain; emits ``case.reported``."""
    require_any(user, REPORT_CAPABILITIES)
    _choice("classification", classification, Classification)
    if classification == Classification.EXCLUDED:
        raise FieldError("classification", classification, "a case is reported as suspected, confirmed or asymptomatic")
    _choice("found_by", found_by, FoundBy)
    _choice("origin", origin, Origin)
    if origin != Origin.LOCAL and not origin_detail.strip():
        raise FieldError("origin_detail", origin_detail, "an imported case needs where it came from")
    severity = severity or (Severity.NONE if classification == Classification.ASYMPTOMATIC else Severity.MILD)
    _choice("severity", severity, Severity)
    if classification == Classification.ASYMPTOMATIC and onset_date is not None:
        raise FieldError("onset_date", str(onset_date), "an asymptomatic case has no symptom onset")
    region = check_region(user, region_code)
    now = timezone.now()
    reported_at = reported_at or now
    if reported_at > now + timedelta(minutes=5):
        raise FieldError("reported_at", reported_at.isoformat(), "in the future")
    if onset_date and onset_date > timezone.localdate(reported_at):
        raise FieldError("onset_date", str(onset_date), "after the report")
    for name, value in (("sampled_at", sampled_at), ("first_positive_at", first_positive_at),
                        ("diagnosed_at", diagnosed_at)):  # fmt: skip
        if value is not None and value > reported_at + timedelta(minutes=5):
            raise FieldError(name, value.isoformat(), "after the report")
    if source_case is not None and source_case.person_id == person.pk:
        raise FieldError("source_case", source_case.number, "a case cannot be its own source")
    if Case.objects.filter(person=person).exclude(
        status__in=[CaseStatus.CLOSED, CaseStatus.DISCHARGED, CaseStatus.DIED]
    ).exists():
        raise FieldError("person", str(person.pk), "this person already has an open case")
    policy = active_policy()
    for _attempt in range(5):
        try:
            with transaction.atomic():
                case = _create_case(user, person, policy, region, reported_at, now, locals())
            return case
        except IntegrityError:  # two reports took the same number at once: take the next one
            continue
    raise FieldError("region_code", region_code, "could not allocate a case number; try again")


def _create_case(user: Any, person: Person, policy: Policy, region: Region, reported_at: datetime, now: datetime,
                 a: dict[str, Any]) -> Case:  # fmt: skip
    from cordon.tracing.services import convert_contacts_to_case

    case = Case(
        number=_next_number(region.code, reported_at),
        person=person,
        classification=a["classification"],
        severity=a["severity"],
        origin=a["origin"],
        origin_detail=a["origin_detail"].strip(),
        found_by=a["found_by"],
        found_under_control=bool(a["found_under_control"]),
        onset_date=a["onset_date"],
        sampled_at=a["sampled_at"],
        first_positive_at=a["first_positive_at"] or a["sampled_at"],
        diagnosed_at=a["diagnosed_at"],
        reported_at=reported_at,
        region=region,
        hospital=a["hospital"].strip(),
        source_case=a["source_case"],
        created_by=user if user is not None else None,
    )
    case.save()
    Reclassification.objects.create(case=case, from_classification="", to_classification=case.classification,
                                    at=reported_at, by=user, reason="reported")  # fmt: skip
    Investigation.objects.create(case=case, region=region, opened_at=reported_at, lookback_from=lookback_from(case, policy),
                                 policy_name=policy.name, **_deadlines(policy, reported_at))  # fmt: skip
    linked = convert_contacts_to_case(user, case)
    if case.source_case_id is None and linked is not None:
        case.source_case = linked
        case.save(update_fields=["source_case"])
    audit.record(actor(user), "cases.report", case, region_code=region.code,
                 changes={"classification": case.classification, "found_by": case.found_by,
                          "found_under_control": case.found_under_control, "origin": case.origin,
                          "source_case": case.source_case_id, "policy": policy.name})  # fmt: skip
    events.emit("case.reported", case=case, user=user)
    return case


def reclassify(user: Any, case: Case, to: str, reason: str, *, at: datetime | None = None) -> Reclassification:
    """转归/订正. Asymptomatic → confirmed is a conversion: the case keeps its number and is not counted again."""
    require_any(user, ("write_cases",))
    check_case_access(user, case)
    _choice("to", to, Classification)
    if to == case.classification:
        raise FieldError("to", to, "the case already has this classification")
    if not (reason or "").strip():
        raise FieldError("reason", "", "required")
    if case.status == CaseStatus.CLOSED:
        raise FieldError("to", to, "the case is closed (excluded)")
    at = at or timezone.now()
    with transaction.atomic():
        old = case.classification
        row = Reclassification.objects.create(case=case, from_classification=old, to_classification=to, at=at,
                                              by=user, reason=reason.strip()[:200])  # fmt: skip
        case.classification = to
        fields = ["classification", "updated_at"]
        if to == Classification.EXCLUDED:
            case.status = CaseStatus.CLOSED
            fields.append("status")
        elif old == Classification.ASYMPTOMATIC and case.severity == Severity.NONE:
            case.severity = Severity.MILD
            fields.append("severity")
        case.save(update_fields=fields)
        audit.record(actor(user), "cases.reclassify", case, region_code=case.region_id,
                     changes={"from": old, "to": to, "conversion": row.is_conversion})  # fmt: skip
        events.emit("case.reclassified", case=case, old=old, new=to, user=user)
    return row


def set_status(user: Any, case: Case, status: str, *, at: datetime | None = None, reason: str = "") -> Case:
    """In hospital / died. Discharge goes through :func:`discharge` (the policy's rule)."""
    require_any(user, ("write_cases", "write_isolation"))
    check_case_access(user, case)
    _choice("status", status, CaseStatus)
    if status == CaseStatus.DISCHARGED:
        raise FieldError("status", status, "discharge applies the policy's rule: use discharge")
    if status == case.status:
        return case
    if case.status == CaseStatus.DIED:
        raise FieldError("status", status, "the patient has died")
    at = at or timezone.now()
    with transaction.atomic():
        old = case.status
        case.status = status
        if status == CaseStatus.DIED:
            case.died_at = at
        case.save(update_fields=["status", "died_at", "updated_at"])
        audit.record(actor(user), "cases.status", case, region_code=case.region_id,
                     changes={"from": old, "to": status, "reason": reason[:200]})  # fmt: skip
        events.emit("case.status_changed", case=case, old=old, new=status, user=user)
    return case


def _gene_ok(value: float | None, positive: bool, threshold: float) -> bool:
    if value is None:
        return not positive  # a negative result has no Ct (not detected)
    return value >= threshold


def test_passes(policy: Policy, t: CaseTest) -> bool:
    """One test meets the discharge threshold: every gene the policy names has Ct ≥ threshold."""
    d = policy.discharge
    values = {"N": t.ct_n, "ORF1AB": t.ct_orf1ab}
    return all(_gene_ok(values.get(g.upper()), t.positive, d.ct_threshold) for g in d.genes)


def discharge_check(case: Case, policy: Policy | None = None) -> tuple[bool, str]:
    """The last ``consecutive_negative_tests`` tests all pass and each pair is ≥ ``min_hours_apart``."""
    policy = policy or active_policy()
    d = policy.discharge
    tests = list(case.tests.order_by("-sampled_at")[: d.consecutive_negative_tests])
    if len(tests) < d.consecutive_negative_tests:
        return False, f"needs {d.consecutive_negative_tests} consecutive tests with Ct ≥ {d.ct_threshold}"
    if not all(test_passes(policy, t) for t in tests):
        return False, f"the last {d.consecutive_negative_tests} tests do not all have Ct ≥ {d.ct_threshold}"
    for later, earlier in itertools.pairwise(tests):
        if later.sampled_at - earlier.sampled_at < timedelta(hours=d.min_hours_apart):
            return False, f"tests must be at least {d.min_hours_apart} h apart"
    return True, ""


def record_case_test(user: Any, case: Case, *, sampled_at: datetime, positive: bool, ct_n: float | None = None,
                     ct_orf1ab: float | None = None) -> CaseTest:  # fmt: skip
    """A test during treatment or home monitoring. After discharge, a Ct below the policy's relapse
    threshold (复阳) sends the patient back to hospital."""
    require_any(user, ("write_cases", "write_isolation", "lab_results"))
    check_case_access(user, case)
    for name, v in (("ct_n", ct_n), ("ct_orf1ab", ct_orf1ab)):
        if v is not None and not (0 < v < 60):
            raise FieldError(name, str(v), "a Ct value is between 0 and 60")
    if sampled_at > timezone.now() + timedelta(minutes=5):
        raise FieldError("sampled_at", sampled_at.isoformat(), "in the future")
    policy = active_policy()
    with transaction.atomic():
        t = CaseTest.objects.create(case=case, sampled_at=sampled_at, positive=positive, ct_n=ct_n,
                                    ct_orf1ab=ct_orf1ab)  # fmt: skip
        audit.record(actor(user), "cases.test", case, region_code=case.region_id,
                     changes={"test": t.pk, "positive": positive})  # fmt: skip
        cts = [v for v in (ct_n, ct_orf1ab) if v is not None]
        relapse = positive and (not cts or min(cts) < policy.discharge.relapse_ct_below)
        if case.status == CaseStatus.DISCHARGED and relapse:
            old = case.status
            case.status = CaseStatus.IN_HOSPITAL
            case.save(update_fields=["status", "updated_at"])
            audit.record(actor(user), "cases.relapse", case, region_code=case.region_id,
                         changes={"test": t.pk, "to": case.status})  # fmt: skip
            events.emit("case.status_changed", case=case, old=old, new=case.status, user=user)
    return t


def discharge(user: Any, case: Case, *, at: datetime | None = None) -> Case:
    """Discharge under the policy's rule, and schedule home health monitoring and its test."""
    require_any(user, ("write_cases",))
    check_case_access(user, case)
    if case.status != CaseStatus.IN_HOSPITAL:
        raise FieldError("status", case.status, "only a case in hospital can be discharged")
    policy = active_policy()
    ok, why = discharge_check(case, policy)
    if not ok:
        raise FieldError("tests", str(case.tests.count()), why)
    at = at or timezone.now()
    schedule = quarantine_schedule(policy, "home_monitoring_after_discharge", timezone.localdate(at))
    with transaction.atomic():
        old = case.status
        case.status = CaseStatus.DISCHARGED
        case.discharged_at = at
        case.home_monitoring_end = schedule.end_date
        case.home_test_dates = [d.isoformat() for d in schedule.test_dates]
        case.save(update_fields=["status", "discharged_at", "home_monitoring_end", "home_test_dates", "updated_at"])
        audit.record(actor(user), "cases.discharge", case, region_code=case.region_id,
                     changes={"home_monitoring_end": schedule.end_date.isoformat(), "policy": policy.name})  # fmt: skip
        events.emit("case.status_changed", case=case, old=old, new=case.status, user=user)
    return case


# ---- investigations --------------------------------------------------------------------------------

MILESTONES = {
    "trajectory": "trajectory_published_at",
    "preliminary": "preliminary_report_at",
    "contacts": "contacts_done_at",
}


def assign_investigator(user: Any, investigation: Investigation, investigator: Any) -> Investigation:
    require_any(user, ("write_cases",))
    check_case_access(user, investigation.case)
    if investigator is not None and not (has_capability(investigator, "write_cases")
                                         and in_jurisdiction(investigator, investigation.region_id)):  # fmt: skip
        raise FieldError("investigator", str(investigator.pk), "not an investigator of this case's jurisdiction")
    with transaction.atomic():
        investigation.investigator = investigator
        investigation.save(update_fields=["investigator"])
        audit.record(actor(user), "cases.investigation_assign", investigation, region_code=investigation.region_id,
                     changes={"investigator": getattr(investigator, "pk", None)})  # fmt: skip
    return investigation


def mark_milestone(user: Any, investigation: Investigation, milestone: str, *, at: datetime | None = None
                   ) -> Investigation:  # fmt: skip
    """Trajectory published, preliminary report filed, contacts all transferred."""
    require_any(user, ("write_cases",))
    check_case_access(user, investigation.case)
    if milestone not in MILESTONES:
        raise FieldError("milestone", milestone, f"expected one of {', '.join(MILESTONES)}")
    if investigation.status == Investigation.Status.CLOSED:
        raise FieldError("milestone", milestone, "the investigation is closed")
    field = MILESTONES[milestone]
    if getattr(investigation, field) is not None:
        return investigation
    at = at or timezone.now()
    with transaction.atomic():
        setattr(investigation, field, at)
        investigation.save(update_fields=[field])
        if milestone == "trajectory":
            investigation.case.exposures.update(published=True)
        audit.record(actor(user), f"cases.investigation_{milestone}", investigation,
                     region_code=investigation.region_id, changes={"at": at})  # fmt: skip
    return investigation


def save_notes(user: Any, investigation: Investigation, notes: str) -> Investigation:
    require_any(user, ("write_cases",))
    check_case_access(user, investigation.case)
    with transaction.atomic():
        investigation.notes = notes.strip()
        investigation.save(update_fields=["notes"])
        audit.record(actor(user), "cases.investigation_notes", investigation, region_code=investigation.region_id,
                     changes={"length": len(investigation.notes)})  # fmt: skip
    return investigation


def close_investigation(user: Any, investigation: Investigation, *, at: datetime | None = None) -> Investigation:
    """Closing needs the trajectory and preliminary report done; missing milestones are stamped now."""
    require_any(user, ("write_cases",))
    check_case_access(user, investigation.case)
    if investigation.status == Investigation.Status.CLOSED:
        raise FieldError("status", investigation.status, "already closed")
    if investigation.trajectory_published_at is None:
        raise FieldError("trajectory", "", "publish the trajectory before closing the investigation")
    at = at or timezone.now()
    with transaction.atomic():
        investigation.status = Investigation.Status.CLOSED
        investigation.closed_at = at
        investigation.preliminary_report_at = investigation.preliminary_report_at or at
        investigation.contacts_done_at = investigation.contacts_done_at or at
        investigation.save(update_fields=["status", "closed_at", "preliminary_report_at", "contacts_done_at"])
        audit.record(actor(user), "cases.investigation_close", investigation, region_code=investigation.region_id,
                     changes={"late": at > investigation.complete_due_at})  # fmt: skip
    return investigation


def add_exposure(user: Any, case: Case, *, place: str, start: datetime, end: datetime, venue_code: str = "",
                 address: str = "", region_code: str = "", transport: str = "", transport_number: str = "",
                 carriage: str = "", seat: str = "", source: str = "interview", notes: str = "") -> Any:  # fmt: skip
    """One stop of the trajectory. Stops that end before the look-back window are refused with the reason."""
    from cordon.cases.models import Exposure

    require_any(user, ("write_cases",))
    check_case_access(user, case)
    place = (place or "").strip() or (venue_code or "").strip() or (address or "").strip()
    if not place:
        raise FieldError("place", "", "a place, venue code or address is required")
    if end <= start:
        raise FieldError("end", end.isoformat(), "must be after the start")
    if start > timezone.now() + timedelta(minutes=5):
        raise FieldError("start", start.isoformat(), "in the future")
    _choice("transport", transport or "", Exposure.Transport)
    _choice("source", source, Exposure.Source)
    if transport and not transport_number.strip():
        raise FieldError("transport_number", "", "a journey needs its flight, train or vehicle number")
    inv = case.investigation
    if timezone.localdate(end) < inv.lookback_from:
        raise FieldError("end", end.isoformat(),
                         f"before the look-back window, which starts {inv.lookback_from.isoformat()}")  # fmt: skip
    region = check_region(None, region_code, "region_code") if region_code else None
    with transaction.atomic():
        e = Exposure.objects.create(case=case, place=place[:200], venue_code=venue_code.strip(),
                                    address=address.strip()[:200], region=region, start=start, end=end,
                                    transport=transport or "", transport_number=transport_number.strip().upper(),
                                    carriage=carriage.strip(), seat=seat.strip().upper(), source=source,
                                    notes=notes.strip())  # fmt: skip
        audit.record(actor(user), "cases.exposure_add", e, region_code=case.region_id,
                     changes={"case": case.pk, "transport": e.transport, "source": source})  # fmt: skip
    return e
