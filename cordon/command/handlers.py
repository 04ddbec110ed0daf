"""Event handlers: the lower modules report what happened, the command centre turns it into tasks with the
policy's deadline and into the pre-aggregated figures of the dashboard. They run inside the emitting
service's transaction, so a task or a count commits or rolls back with the event that caused it.

The payloads of screening and isolation are read defensively (``_attr``): those modules are built in
parallel, and a field they name differently must cost a fallback, not a failed sampling scan.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cordon.command import services
from cordon.command.models import DailyFigure, Priority, RoundClock, TaskKind
from cordon.core import events
from cordon.core.policy import active_policy

MANAGED_EXIT = {"released", "became_case", "dismissed"}
ACTIVE = {"identified", "notified", "located", "transfer_requested", "quarantined"}


def _attr(obj: Any, *names: str) -> Any:
    for name in names:
        cur = obj
        for part in name.split("."):
            cur = getattr(cur, part, None)
            if cur is None:
                break
        if cur is not None and cur != "":
            return cur
    return None


def _hours(key: str) -> timedelta:
    return timedelta(hours=float(active_policy().get(key)))


def _local_day(dt: datetime | None):
    return timezone.localdate(dt) if dt is not None else timezone.localdate()


def _bump_all(day: Any, region_code: str, metrics: list[str], delta: int = 1) -> None:
    """``services.bump`` for several distinct figures of one county and day, as one read and one write: a case
    report adds to three figures at once, and one by one that took up to four queries each. When a figure is
    created concurrently, the batch insert fails as a whole and each missing one goes through ``bump``."""
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        return
    code = region_code[:6]
    same = DailyFigure.objects.filter(date=day, region_code=code)
    existing = set(same.filter(metric__in=metrics).values_list("metric", flat=True))
    if existing:
        same.filter(metric__in=existing).update(value=F("value") + delta)
    missing = [m for m in metrics if m not in existing]
    if not missing:
        return
    try:
        with transaction.atomic():
            DailyFigure.objects.bulk_create([DailyFigure(date=day, region_code=code, metric=m, value=delta)
                                             for m in missing])  # fmt: skip
    except IntegrityError:
        for m in missing:
            services.bump(day, region_code, m, delta)


# --------------------------------------------------------------------------- cases


def on_case_reported(case: Any, user: Any = None, **_: Any) -> None:
    day = _local_day(case.reported_at)
    _bump_all(day, case.region_id, services.case_metrics(case.classification, case.origin, case.found_under_control))
    if case.classification not in ("confirmed", "asymptomatic", "suspected"):
        return
    try:
        inv = case.investigation
    except Exception:  # no investigation opened (yet): the policy's clock from the report
        inv = None
    due = inv.preliminary_due_at if inv is not None else case.reported_at + _hours("deadlines.preliminary_report_hours")
    services.auto_task(key=f"investigation:case:{case.pk}", kind=TaskKind.INVESTIGATION, region_code=case.region_id,
                       group_code="tracing", title=f"流调 {case.number}", due_at=due, context_type="case",
                       context_id=case.pk, context_label=case.number, priority=Priority.URGENT)  # fmt: skip


def on_case_reclassified(case: Any, old: str, new: str, user: Any = None, **_: Any) -> None:
    if old == new:
        return
    metrics = services.case_metrics(new, case.origin, case.found_under_control)
    if old == "asymptomatic" and new == "confirmed":
        metrics.append("converted")
    _bump_all(timezone.localdate(), case.region_id, metrics)


# --------------------------------------------------------------------------- contacts


def on_contacts_identified(contacts: list[Any], user: Any = None, **_: Any) -> None:
    for c in contacts:
        day = _local_day(c.identified_at)
        services.bump(day, c.region_id, f"new_contacts_{c.kind}")
        if c.status in ACTIVE:
            services.bump(day, c.region_id, f"managed_{c.kind}")
        if c.kind not in ("close", "secondary") or c.status not in ACTIVE - {"quarantined"}:
            continue
        hours = "deadlines.close_contact_transfer_hours" if c.kind == "close" else "deadlines.secondary_contact_transfer_hours"
        due = c.transfer_due_at or c.identified_at + _hours(hours)
        label = f"{c.get_kind_display()} #{c.pk} ← {c.index_case.number}"
        services.auto_task(key=f"transfer:contact:{c.pk}", kind=TaskKind.TRANSFER, region_code=c.region_id,
                           group_code="isolation", title=f"转运 {label}", due_at=due, context_type="contact",
                           context_id=c.pk, context_label=label)  # fmt: skip


def on_contact_status_changed(contact: Any, old: str, new: str, user: Any = None, **_: Any) -> None:
    if old in ACTIVE and new in MANAGED_EXIT:
        services.bump(timezone.localdate(), contact.region_id, f"managed_{contact.kind}", -1)
    elif old in MANAGED_EXIT and new in ACTIVE:
        services.bump(timezone.localdate(), contact.region_id, f"managed_{contact.kind}", 1)
    if new in ("quarantined", "became_case", "dismissed", "released"):
        services.close_auto_task(f"transfer:contact:{contact.pk}", f"contact {new}")


# --------------------------------------------------------------------------- screening and isolation


def on_pools_positive(pools: list[tuple[Any, list[Any] | None]], user: Any = None, **_: Any) -> None:
    """One urgent retest task per positive pool, due on the policy's clock from the result, issued together."""
    specs = []
    for tube, retests in pools:
        retests = list(retests or [])
        region = _attr(tube, "region_id", "site.region_id", "campaign.region_id")
        if region is None and retests:
            region = _attr(retests[0], "region_id", "person.region_id")
        if region is None:
            continue
        barcode = _attr(tube, "barcode") or str(tube.pk)
        positive_at = _attr(tube, "resulted_at") or timezone.now()
        due = positive_at + _hours("screening.positive_pool.hold_and_resample_hours")
        specs.append({"key": f"retest:tube:{tube.pk}", "kind": TaskKind.RETEST, "region_code": str(region),
                      "group_code": "testing", "title": f"混管阳性复核 {barcode}（{len(retests)}人）", "due_at": due,
                      "context_type": "tube", "context_id": tube.pk, "context_label": barcode,
                      "priority": Priority.URGENT})  # fmt: skip
    if specs:
        services.auto_tasks(specs)


def on_retest_resulted(retest: Any, user: Any = None, **_: Any) -> None:
    tube = _attr(retest, "source_tube", "tube")
    if tube is None:
        return
    siblings = getattr(tube, "retests", None)
    if siblings is None:
        return
    pending = [r for r in siblings.all()
               if (r.status in ("pending", "sampled") if hasattr(r, "status") else _attr(r, "resulted_at") is None)]
    if not pending:
        services.close_auto_task(f"retest:tube:{tube.pk}", "all members retested")


def on_placement_due_for_release(placement: Any, **_: Any) -> None:
    region = _attr(placement, "site_region", "region_id", "site.region_id", "person.region_id")
    if region is None:
        return
    end = _attr(placement, "release_due_at", "end_at", "planned_end_at")
    if end is None:
        end_date = _attr(placement, "end_date", "planned_end_date", "planned_end")
        end = timezone.make_aware(datetime.combine(end_date, time(23, 59))) if end_date else timezone.now()
    label = f"#{placement.pk}"
    services.auto_task(key=f"release:placement:{placement.pk}", kind=TaskKind.RELEASE, region_code=str(region),
                       group_code="isolation", title=f"解除隔离 {label}", due_at=end, context_type="placement",
                       context_id=placement.pk, context_label=label, priority=Priority.NORMAL)  # fmt: skip


def on_placement_released(placement: Any, user: Any = None, **_: Any) -> None:
    services.close_auto_task(f"release:placement:{placement.pk}", "released")


def on_screening_region_finished(campaign: Any, region_code: str, **_: Any) -> None:
    started = _attr(campaign, "started_at", "starts_at", "window_start", "created_at") or timezone.now()
    if not isinstance(started, datetime):
        started = timezone.make_aware(datetime.combine(started, time(0, 0)))
    # the campaign's own deadline (set from the policy when it was planned), else the policy's clock
    due = _attr(campaign, "deadline")
    if not isinstance(due, datetime):
        due = started + _hours("deadlines.regional_screening_hours")
    RoundClock.objects.update_or_create(
        campaign_id=str(campaign.pk), region_code=region_code,
        defaults={"campaign_label": str(_attr(campaign, "name") or campaign.pk)[:200], "started_at": started,
                  "due_at": due, "finished_at": timezone.now()},
    )  # fmt: skip


SUBSCRIPTIONS = {
    "case.reported": on_case_reported,
    "case.reclassified": on_case_reclassified,
    "contacts.identified": on_contacts_identified,
    "contact.status_changed": on_contact_status_changed,
    "pools.positive": on_pools_positive,
    "retest.resulted": on_retest_resulted,
    "placement.due_for_release": on_placement_due_for_release,
    "placement.released": on_placement_released,
    "screening.region_finished": on_screening_region_finished,
}


def register() -> None:
    for name, handler in SUBSCRIPTIONS.items():
        events.subscribe(name, handler)
