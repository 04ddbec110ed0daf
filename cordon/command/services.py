"""Writes of the command centre: headquarters and groups, the task state machine, escalation and reminders,
notifications, daily figures, inspections and accountability, bulletins and tip-offs.

Every write runs in one transaction with its audit event. No personal data goes into audit ``changes``.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cordon.command.models import (
    DEFAULT_GROUPS,
    OPEN_STATUSES,
    AccountabilityAction,
    Bulletin,
    DailyFigure,
    Headquarters,
    Inspection,
    Notification,
    Priority,
    Task,
    TaskEvent,
    TaskKind,
    TaskStatus,
    TipOff,
    WorkingGroup,
)
from cordon.command.senders import deliver
from cordon.core import audit
from cordon.core.policy import active_policy
from cordon.core.roles import has_capability
from cordon.core.scoping import in_jurisdiction, require
from cordon.regions.models import Level, Region

SYSTEM = "system"
HQ_LEVELS = (Level.PROVINCE, Level.CITY, Level.COUNTY)


class TransitionError(ValidationError):
    """A task move the state machine does not allow (the API answers 409)."""


# --------------------------------------------------------------------------- headquarters and groups


def hq_region_code(code: str) -> str:
    """The headquarters responsible for a region: its own if province/city/county, else its county's."""
    return code[:6]


def ensure_headquarters(region: Region | str) -> Headquarters:
    """Get or create a headquarters with the default working groups (idempotent)."""
    if isinstance(region, str):
        region = Region.objects.get(code=hq_region_code(region))
    if region.level not in HQ_LEVELS:
        region = Region.objects.get(code=hq_region_code(region.code))
    hq = Headquarters.objects.filter(region=region).first()
    if hq is not None:
        return hq
    with transaction.atomic():
        hq, created = Headquarters.objects.get_or_create(region=region, defaults={"name": f"{region.name}疫情防控指挥部"})
        if created:
            WorkingGroup.objects.bulk_create(
                [WorkingGroup(headquarters=hq, code=c, name=zh, name_en=en) for c, zh, en in DEFAULT_GROUPS]
            )
            audit.record(SYSTEM, "command.hq_create", hq, region_code=region.code)
    return hq


def hq_of_user(user: Any) -> Headquarters:
    if getattr(user, "region_id", None) is None:
        raise PermissionDenied("no jurisdiction")
    return ensure_headquarters(hq_region_code(user.region_id))


def parent_hq(hq: Headquarters) -> Headquarters | None:
    parent = hq.region.parent
    return ensure_headquarters(parent) if parent is not None else None


def group_of(hq: Headquarters, code: str) -> WorkingGroup | None:
    return hq.groups.filter(code=code, active=True).first()


def save_group(user: Any, hq: Headquarters, *, code: str, name: str, name_en: str = "",
               group: WorkingGroup | None = None, active: bool = True) -> WorkingGroup:  # fmt: skip
    require(user, "dispatch")
    if not in_jurisdiction(user, hq.region_id):
        raise PermissionDenied("headquarters outside your jurisdiction")
    code, name = code.strip(), name.strip()
    if not code or not name:
        raise ValidationError(_("A working group needs a code and a name."))
    with transaction.atomic():
        if group is None:
            group = WorkingGroup.objects.create(headquarters=hq, code=code, name=name, name_en=name_en, active=active)
            action = "command.group_create"
        else:
            group.code, group.name, group.name_en, group.active = code, name, name_en, active
            group.save()
            action = "command.group_update"
        audit.record(user, action, group, region_code=hq.region_id, changes={"code": code, "active": active})
    return group


def set_members(user: Any, group: WorkingGroup, members: list[Any]) -> None:
    require(user, "dispatch")
    if not in_jurisdiction(user, group.headquarters.region_id):
        raise PermissionDenied("group outside your jurisdiction")
    for m in members:
        if not in_jurisdiction(user, getattr(m, "region_id", None)):
            raise ValidationError(_("A member must work inside your jurisdiction."))
    with transaction.atomic():
        group.members.set(members)
        audit.record(user, "command.group_members", group, region_code=group.headquarters.region_id,
                     changes={"member_ids": sorted(m.pk for m in members)})  # fmt: skip


# --------------------------------------------------------------------------- notifications


def _recipients_for_task(task: Task) -> list[Any]:
    from cordon.core.models import User

    if task.assignee_group_id:
        members = list(task.assignee_group.members.filter(is_active=True))
        if members:
            return members
    return [u for u in User.objects.filter(region_id=task.assignee_hq.region_id, is_active=True)
            if has_capability(u, "work_tasks")]  # fmt: skip


def _leaders_of(hq: Headquarters) -> list[Any]:
    """Who hears an escalation at a level: the duty officers there (dispatch) and the coordination group."""
    from cordon.core.models import User

    users = {u.pk: u for u in User.objects.filter(region_id=hq.region_id, is_active=True)
             if has_capability(u, "dispatch")}  # fmt: skip
    coord = group_of(hq, "coordination")
    if coord is not None:
        users.update({u.pk: u for u in coord.members.filter(is_active=True)})
    return list(users.values())


def notify(users: list[Any], key: str, kind: str, title: str, body: str = "", task: Task | None = None,
           send: bool = True) -> int:  # fmt: skip
    """Store one in-app notification per user and purpose (``key``), then hand new ones to the senders.
    A key already used is skipped, so re-running a reminder job never notifies twice."""
    now = timezone.now()
    fresh = []
    for user in users:
        k = _notification_key(key, user)
        if Notification.objects.filter(key=k).exists():
            continue
        try:
            with transaction.atomic():
                Notification.objects.create(user=user, task=task, kind=kind, title=title[:200], body=body,
                                            created_at=now, key=k)  # fmt: skip
        except IntegrityError:
            continue
        fresh.append(user)
    if fresh and send:
        transaction.on_commit(lambda: deliver(fresh, title, body))
    return len(fresh)


def _notification_key(purpose: str, user: Any) -> str:
    return f"{purpose}:u{user.pk}"[:100]


def mark_read(user: Any, ids: list[int] | None = None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


# --------------------------------------------------------------------------- tasks


def _event(task: Task, action: str, by: Any, old: str = "", new: str = "", note: str = "", at: datetime | None = None):
    TaskEvent.objects.create(task=task, action=action, from_status=old, to_status=new, at=at or timezone.now(),
                             by=by if getattr(by, "is_authenticated", False) else None, note=note[:300])  # fmt: skip


def _check_assignee(user: Any, issuer_hq: Headquarters, hq: Headquarters, group: WorkingGroup | None) -> None:
    """Dispatch goes to a group of one's own headquarters or down the tree, never up or sideways."""
    if group is not None and group.headquarters_id != hq.pk:
        raise ValidationError(_("The group does not belong to that headquarters."))
    if hq.pk == issuer_hq.pk:
        return
    if not (hq.region_id.startswith(issuer_hq.region.prefix) and len(hq.region_id) >= len(issuer_hq.region_id)):
        raise PermissionDenied("tasks are dispatched down the tree only")
    if user is not None and not in_jurisdiction(user, hq.region_id):
        raise PermissionDenied("assignee outside your jurisdiction")


def create_task(actor: Any, *, title: str, issuer_hq: Headquarters, assignee_hq: Headquarters, due_at: datetime,
                assignee_group: WorkingGroup | None = None, issuer_group: WorkingGroup | None = None,
                kind: str = TaskKind.GENERAL, priority: str = Priority.NORMAL, description: str = "",
                context_type: str = "", context_id: str | int = "", context_label: str = "",
                auto_key: str | None = None, issued_at: datetime | None = None) -> Task:  # fmt: skip
    """The one place a task is born (by a person or by an event). With ``auto_key`` it is idempotent."""
    if auto_key:
        existing = Task.objects.filter(auto_key=auto_key).first()
        if existing is not None:
            return existing
    title = _checked_title(title, kind, priority)
    with transaction.atomic():
        task = Task.objects.create(
            title=title, description=description, kind=kind, priority=priority,
            issuer_hq=issuer_hq, issuer_group=issuer_group,
            issued_by=actor if getattr(actor, "is_authenticated", False) else None,
            assignee_hq=assignee_hq, assignee_group=assignee_group, region_code=assignee_hq.region_id,
            context_type=context_type, context_id=str(context_id or ""), context_label=context_label[:200],
            issued_at=issued_at or timezone.now(), due_at=due_at, auto_key=auto_key,
        )  # fmt: skip
        _issued(actor, [task])
    return task


def _checked_title(title: str, kind: str, priority: str) -> str:
    """The title a new task is stored with; one without a title, or of an unknown kind or priority, is refused."""
    if not title.strip():
        raise ValidationError(_("A task needs a title."))
    if kind not in TaskKind.values or priority not in Priority.values:
        raise ValidationError(_("Unknown task kind or priority."))
    return title.strip()[:200]


def _issued(actor: Any, tasks: list[Task]) -> None:
    """What is written beside new tasks, one insert each for all of them: the first event of each, its audit
    event, and a notification to each recipient (handed to the senders once the transaction commits).
    Recipients are looked up once per headquarters and group."""
    by = actor if getattr(actor, "is_authenticated", False) else None
    TaskEvent.objects.bulk_create([TaskEvent(task=t, action="issued", from_status="", to_status=TaskStatus.ISSUED,
                                             at=t.issued_at, by=by, note="") for t in tasks])  # fmt: skip
    audit.record_many(actor, "command.task_issue", [
        (t, t.region_code, {"kind": t.kind, "assignee_hq": t.assignee_hq_id, "assignee_group": t.assignee_group_id,
                            "due_at": t.due_at,
                            "context": f"{t.context_type}:{t.context_id}" if t.context_type else ""})
        for t in tasks])  # fmt: skip
    recipients: dict[tuple[int, int | None], list[Any]] = {}
    notes, sends = [], []
    for t in tasks:
        who = (t.assignee_hq_id, t.assignee_group_id)
        if who not in recipients:
            recipients[who] = _recipients_for_task(t)
        title = _("New task: %s") % t.title
        users = recipients[who]
        notes += [Notification(user=u, task=t, kind="assigned", title=title[:200], body=t.description,
                               created_at=t.issued_at, key=_notification_key(f"assigned:{t.pk}", u))
                  for u in users]  # fmt: skip
        if users:
            sends.append((users, title, t.description))
    Notification.objects.bulk_create(notes, batch_size=500)
    if sends:
        transaction.on_commit(lambda: [deliver(users, title, body) for users, title, body in sends])


def dispatch(user: Any, *, title: str, due_at: datetime, assignee_group: WorkingGroup | None = None,
             assignee_hq: Headquarters | None = None, issuer_group: WorkingGroup | None = None, **kw: Any) -> Task:  # fmt: skip
    require(user, "dispatch")
    issuer_hq = hq_of_user(user)
    if assignee_group is not None:
        assignee_hq = assignee_group.headquarters
    if assignee_hq is None:
        raise ValidationError(_("Choose a working group or a headquarters to assign the task to."))
    if issuer_group is not None and issuer_group.headquarters_id != issuer_hq.pk:
        raise ValidationError(_("The issuing group must belong to your headquarters."))
    _check_assignee(user, issuer_hq, assignee_hq, assignee_group)
    if due_at <= timezone.now():
        raise ValidationError(_("The due time must be in the future."))
    return create_task(user, title=title, issuer_hq=issuer_hq, issuer_group=issuer_group, assignee_hq=assignee_hq,
                       assignee_group=assignee_group, due_at=due_at, **kw)  # fmt: skip


ALLOWED = {
    TaskStatus.ISSUED: {TaskStatus.ACKNOWLEDGED, TaskStatus.REJECTED},
    TaskStatus.ACKNOWLEDGED: {TaskStatus.IN_PROGRESS, TaskStatus.DONE, TaskStatus.REJECTED},
    TaskStatus.IN_PROGRESS: {TaskStatus.DONE, TaskStatus.REJECTED},
    TaskStatus.DONE: set(),
    TaskStatus.REJECTED: set(),
}
_ACTION = {TaskStatus.ACKNOWLEDGED: "acknowledged", TaskStatus.IN_PROGRESS: "started", TaskStatus.DONE: "done",
           TaskStatus.REJECTED: "rejected"}  # fmt: skip


def _can_work(user: Any, task: Task) -> None:
    if user == SYSTEM:
        return
    require(user, "work_tasks")
    member = task.assignee_group_id is not None and task.assignee_group.members.filter(pk=user.pk).exists()
    if not in_jurisdiction(user, task.region_code) and not member:
        raise PermissionDenied("task outside your jurisdiction")


def transition(user: Any, task: Task, new: str, *, note: str = "", evidence_file: Any = None,
               reason: str = "") -> Task:  # fmt: skip
    """issued → acknowledged → in progress → done (with evidence), or → rejected (with a reason)."""
    _can_work(user, task)
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        old = task.status
        if new not in ALLOWED.get(TaskStatus(old), set()):
            raise TransitionError(_("A task cannot go from %(old)s to %(new)s.") % {"old": old, "new": new})
        now = timezone.now()
        if new == TaskStatus.DONE:
            if not note.strip() and not evidence_file:
                raise ValidationError(_("Completing a task needs a note or an attachment as evidence."))
            task.evidence_note = note.strip()
            if evidence_file:
                task.evidence_file.save(evidence_file.name, evidence_file, save=False)
            task.closed_at = now
        elif new == TaskStatus.REJECTED:
            if not reason.strip():
                raise ValidationError(_("Rejecting a task needs a reason."))
            task.reject_reason = reason.strip()[:300]
            task.closed_at = now
        elif new == TaskStatus.ACKNOWLEDGED:
            task.acknowledged_at = now
        elif new == TaskStatus.IN_PROGRESS:
            task.started_at = now
        task.status = new
        task.save()
        _event(task, _ACTION[new], user, old, new, note or reason, at=now)
        audit.record(user, f"command.task_{_ACTION[new]}", task, region_code=task.region_code,
                     changes={"from": old, "to": new, "evidence_file": bool(evidence_file)})  # fmt: skip
        if new == TaskStatus.DONE and hasattr(task, "tipoff"):
            TipOff.objects.filter(pk=task.tipoff.pk).update(status=TipOff.Status.RESOLVED, updated_at=now,
                                                            resolution=note.strip())  # fmt: skip
    return task


def reassign(user: Any, task: Task, *, assignee_group: WorkingGroup | None = None,
             assignee_hq: Headquarters | None = None, reason: str = "") -> Task:  # fmt: skip
    require(user, "dispatch")
    if not in_jurisdiction(user, task.region_code) and not in_jurisdiction(user, task.issuer_hq.region_id):
        raise PermissionDenied("task outside your jurisdiction")
    if not task.is_open:
        raise TransitionError(_("A closed task cannot be reassigned."))
    if assignee_group is not None:
        assignee_hq = assignee_group.headquarters
    if assignee_hq is None:
        raise ValidationError(_("Choose a working group or a headquarters to assign the task to."))
    _check_assignee(user, hq_of_user(user), assignee_hq, assignee_group)
    with transaction.atomic():
        old = (task.assignee_hq_id, task.assignee_group_id)
        task.assignee_hq, task.assignee_group, task.region_code = assignee_hq, assignee_group, assignee_hq.region_id
        task.status, task.acknowledged_at, task.started_at = TaskStatus.ISSUED, None, None
        task.save()
        _event(task, "reassigned", user, "", TaskStatus.ISSUED, reason)
        audit.record(user, "command.task_reassign", task, region_code=task.region_code,
                     changes={"from": list(old), "to": [assignee_hq.pk, getattr(assignee_group, "pk", None)]})  # fmt: skip
        notify(_recipients_for_task(task), f"assigned:{task.pk}:{TaskEvent.objects.filter(task=task).count()}",
               "assigned", _("Task reassigned to you: %s") % task.title, reason, task)  # fmt: skip
    return task


def escalation_chain(task: Task) -> list[Headquarters]:
    """The issuer's level first, then each level above it."""
    chain = [task.issuer_hq]
    while (up := parent_hq(chain[-1])) is not None:
        chain.append(up)
    return chain


def tick(now: datetime | None = None) -> dict[str, int]:
    """Reminders before the due time, a due notice at it, escalation after it. Idempotent: each step is
    stamped on the task (or keyed on the notification) and never repeated.

    Escalation: at the due time the task goes to the issuer's level; each further allotted period
    (due − issued, at least an hour) without closure raises it one more level, up to the province."""
    now = now or timezone.now()
    policy = active_policy()
    before = timedelta(hours=float(policy.get("deadlines.reminder_before_hours")))
    counts = {"reminders": 0, "due": 0, "escalations": 0}
    candidates = Task.objects.filter(status__in=OPEN_STATUSES, due_at__lte=now + before).select_related(
        "assignee_hq", "assignee_group", "issuer_hq__region"
    )
    for task in candidates.iterator(chunk_size=500):
        with transaction.atomic():
            task = Task.objects.select_for_update().get(pk=task.pk)
            if task.status not in OPEN_STATUSES:
                continue
            if now < task.due_at:
                if task.reminded_at is None and now >= task.due_at - before:
                    task.reminded_at = now
                    task.save(update_fields=["reminded_at"])
                    notify(_recipients_for_task(task), f"remind:{task.pk}", "reminder",
                           _("Due soon: %s") % task.title, task.due_at.isoformat(), task)  # fmt: skip
                    _event(task, "reminded", SYSTEM, at=now)
                    counts["reminders"] += 1
                continue
            if task.due_notified_at is None:
                task.due_notified_at = now
                task.save(update_fields=["due_notified_at"])
                notify(_recipients_for_task(task), f"due:{task.pk}", "due", _("Overdue: %s") % task.title,
                       task.due_at.isoformat(), task)  # fmt: skip
                _event(task, "due", SYSTEM, at=now)
                counts["due"] += 1
            period = max(task.due_at - task.issued_at, timedelta(hours=1))
            target = 1 + int((now - task.due_at) / period)
            chain = escalation_chain(task)
            target = min(target, len(chain))
            while task.escalation_level < target:
                level = task.escalation_level + 1
                hq = chain[level - 1]
                task.escalation_level, task.escalated_to = level, hq
                task.save(update_fields=["escalation_level", "escalated_to"])
                reason = "not acknowledged" if task.status == TaskStatus.ISSUED else "not done"
                _event(task, "escalated", SYSTEM, note=f"{hq.name} ({reason})", at=now)
                audit.record(SYSTEM, "command.task_escalate", task, region_code=task.region_code,
                             changes={"level": level, "to_hq": hq.pk, "reason": reason})  # fmt: skip
                notify(_leaders_of(hq), f"esc:{task.pk}:{level}", "escalated",
                       _("Escalated (%(reason)s): %(title)s") % {"reason": reason, "title": task.title},
                       f"{task.assignee_label()} · {task.due_at.isoformat()}", task)  # fmt: skip
                counts["escalations"] += 1
    return counts


# --------------------------------------------------------------------------- automatic tasks


def auto_task(*, key: str, kind: str, region_code: str, group_code: str, title: str, due_at: datetime,
              context_type: str, context_id: Any, context_label: str, priority: str = Priority.HIGH,
              description: str = "") -> Task:  # fmt: skip
    """Issued by the responsible county's headquarters to its own group: escalation then goes county →
    city → province."""
    hq = ensure_headquarters(hq_region_code(region_code))
    return create_task(SYSTEM, title=title, issuer_hq=hq, assignee_hq=hq, assignee_group=group_of(hq, group_code),
                       due_at=due_at, kind=kind, priority=priority, description=description,
                       context_type=context_type, context_id=context_id, context_label=context_label,
                       auto_key=key)  # fmt: skip


def auto_tasks(specs: list[dict[str, Any]]) -> list[Task]:
    """``auto_task`` for many events at once, each spec its keyword arguments (a lab file's positive pools: a
    city round has hundreds). One query finds the keys already issued; the new tasks, their first events,
    their audit events and their notifications are each one insert, and headquarters, groups and recipients
    are looked up once per headquarters and group, not per task. Same rows as ``auto_task`` one by one; a
    key issued meanwhile by another writer sends the batch that way. Returns the tasks in the order of
    ``specs``, those issued before included."""
    first: dict[str, dict[str, Any]] = {}
    for spec in specs:
        first.setdefault(spec["key"], spec)
    keys = list(first)
    tasks: dict[str, Task] = {}
    for i in range(0, len(keys), 500):  # under SQLite's limit of bound parameters
        tasks.update({t.auto_key: t for t in Task.objects.filter(auto_key__in=keys[i : i + 500])})
    hqs: dict[str, Headquarters] = {}
    groups: dict[tuple[int, str], WorkingGroup | None] = {}
    now = timezone.now()
    new = []
    for key, spec in first.items():
        if key in tasks:
            continue
        kind, priority = spec["kind"], spec.get("priority", Priority.HIGH)
        title = _checked_title(spec["title"], kind, priority)
        code = hq_region_code(spec["region_code"])
        if code not in hqs:
            hqs[code] = ensure_headquarters(code)
        hq = hqs[code]
        if (hq.pk, spec["group_code"]) not in groups:
            groups[hq.pk, spec["group_code"]] = group_of(hq, spec["group_code"])
        new.append(Task(title=title, description=spec.get("description", ""), kind=kind, priority=priority,
                        issuer_hq=hq, assignee_hq=hq, assignee_group=groups[hq.pk, spec["group_code"]],
                        region_code=hq.region_id, context_type=spec["context_type"],
                        context_id=str(spec["context_id"] or ""), context_label=spec["context_label"][:200],
                        issued_at=now, due_at=spec["due_at"], auto_key=key))  # fmt: skip
    if new:
        try:
            with transaction.atomic():
                created = Task.objects.bulk_create(new)
                _issued(SYSTEM, created)
        except IntegrityError:  # a key issued meanwhile: one by one, each finding what exists
            return [auto_task(**spec) for spec in specs]
        tasks.update({t.auto_key: t for t in created})
    return [tasks[spec["key"]] for spec in specs]


def close_auto_task(key: str, note: str) -> None:
    task = Task.objects.filter(auto_key=key, status__in=OPEN_STATUSES).first()
    if task is None:
        return
    with transaction.atomic():
        old = task.status
        task.status, task.closed_at, task.evidence_note = TaskStatus.DONE, timezone.now(), note
        task.save(update_fields=["status", "closed_at", "evidence_note"])
        _event(task, "done", SYSTEM, old, TaskStatus.DONE, note)
        audit.record(SYSTEM, "command.task_done", task, region_code=task.region_code, changes={"from": old, "auto": True})


# --------------------------------------------------------------------------- daily figures


def bump(day: date, region_code: str, metric: str, delta: int = 1) -> None:
    """Add to one pre-aggregated figure, creating it on first use (safe under concurrent writers)."""
    code = region_code[:6]
    if DailyFigure.objects.filter(date=day, region_code=code, metric=metric).update(value=F("value") + delta):
        return
    try:
        with transaction.atomic():
            DailyFigure.objects.create(date=day, region_code=code, metric=metric, value=delta)
    except IntegrityError:
        DailyFigure.objects.filter(date=day, region_code=code, metric=metric).update(value=F("value") + delta)


def case_metrics(classification: str, origin: str, under_control: bool) -> list[str]:
    """The daily metrics one newly counted case adds to: per class, per origin, and found under control or
    in the community (社会面)."""
    if classification not in ("confirmed", "asymptomatic", "suspected"):
        return []
    out = [f"new_{classification}"]
    if classification == "suspected":
        return out
    out.append(f"new_{classification}_{'imported' if origin == 'imported_abroad' else 'local'}")
    out.append(f"new_{classification}_{'under_control' if under_control else 'community'}")
    return out


# --------------------------------------------------------------------------- inspections and accountability


def record_inspection(user: Any, *, region_code: str, unit: str, day: date, findings: str,
                      rectification_due: date | None = None) -> Inspection:  # fmt: skip
    require(user, "inspect")
    if not in_jurisdiction(user, region_code):
        raise PermissionDenied("region outside your jurisdiction")
    if not unit.strip() or not findings.strip():
        raise ValidationError(_("An inspection needs the inspected unit and the findings."))
    with transaction.atomic():
        ins = Inspection.objects.create(region_code=region_code, unit=unit.strip(), date=day, inspector=user,
                                        findings=findings.strip(), rectification_due=rectification_due)  # fmt: skip
        audit.record(user, "command.inspection_create", ins, region_code=region_code,
                     changes={"date": day, "rectification_due": rectification_due})  # fmt: skip
    return ins


def set_inspection_status(user: Any, ins: Inspection, status: str) -> Inspection:
    require(user, "inspect")
    if not in_jurisdiction(user, ins.region_code):
        raise PermissionDenied("inspection outside your jurisdiction")
    if status not in Inspection.Status.values:
        raise ValidationError(_("Unknown status."))
    with transaction.atomic():
        old, ins.status = ins.status, status
        ins.save(update_fields=["status"])
        audit.record(user, "command.inspection_status", ins, region_code=ins.region_code, changes={"from": old, "to": status})
    return ins


def record_accountability(user: Any, *, region_code: str, kind: str, subject: str, description: str, day: date,
                          inspection: Inspection | None = None, tasks: list[Task] = ()) -> AccountabilityAction:  # fmt: skip
    require(user, "inspect")
    if not in_jurisdiction(user, region_code):
        raise PermissionDenied("region outside your jurisdiction")
    if kind not in AccountabilityAction.Kind.values or not subject.strip() or not description.strip():
        raise ValidationError(_("An accountability action needs a kind, a subject and a description."))
    if inspection is None and not tasks:
        raise ValidationError(_("Link the late tasks or the inspection finding that caused this action."))
    for t in tasks:
        if not in_jurisdiction(user, t.region_code):
            raise PermissionDenied("task outside your jurisdiction")
    with transaction.atomic():
        act = AccountabilityAction.objects.create(region_code=region_code, kind=kind, subject=subject.strip(),
                                                  description=description.strip(), decided_on=day, by=user,
                                                  inspection=inspection)  # fmt: skip
        act.tasks.set(tasks)
        audit.record(user, "command.accountability", act, region_code=region_code,
                     changes={"kind": kind, "inspection": getattr(inspection, "pk", None), "tasks": [t.pk for t in tasks]})  # fmt: skip
    return act


# --------------------------------------------------------------------------- bulletins


def generate_bulletin(user: Any, region_code: str, day: date) -> Bulletin:
    """The draft for a date: refreshed from the data while it is a draft; once reviewed or published it is
    fixed, and a change is a correction (a new version)."""
    from cordon.command import bulletin as bl

    if user != SYSTEM:
        require(user, "publish_bulletin")
        if not in_jurisdiction(user, region_code):
            raise PermissionDenied("region outside your jurisdiction")
    region = Region.objects.get(code=region_code)
    figures = bl.compute(region, day)
    with transaction.atomic():
        latest = Bulletin.objects.filter(region_code=region_code, date=day).order_by("-version").first()
        if latest is not None and latest.status != Bulletin.Status.DRAFT:
            return latest
        text_zh, text_en = bl.render_zh(figures), bl.render_en(figures)
        if latest is None:
            latest = Bulletin.objects.create(region_code=region_code, region_name=region.name, date=day, version=1,
                                             figures=figures, text_zh=text_zh, text_en=text_en,
                                             created_at=timezone.now(), created_by=_user_or_none(user))  # fmt: skip
        else:
            latest.figures, latest.text_zh, latest.text_en = figures, text_zh, text_en
            latest.save(update_fields=["figures", "text_zh", "text_en"])
        audit.record(user, "command.bulletin_generate", latest, region_code=region_code,
                     changes={"date": day, "version": latest.version})  # fmt: skip
    return latest


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def review_bulletin(user: Any, b: Bulletin) -> Bulletin:
    require(user, "publish_bulletin")
    if not in_jurisdiction(user, b.region_code):
        raise PermissionDenied("bulletin outside your jurisdiction")
    if b.status != Bulletin.Status.DRAFT:
        raise TransitionError(_("Only a draft can be reviewed."))
    with transaction.atomic():
        b.status, b.reviewed_at, b.reviewed_by = Bulletin.Status.REVIEWED, timezone.now(), user
        b.save(update_fields=["status", "reviewed_at", "reviewed_by"])
        audit.record(user, "command.bulletin_review", b, region_code=b.region_code, changes={"version": b.version})
    return b


def publish_bulletin(user: Any, b: Bulletin) -> Bulletin:
    require(user, "publish_bulletin")
    if not in_jurisdiction(user, b.region_code):
        raise PermissionDenied("bulletin outside your jurisdiction")
    if b.status != Bulletin.Status.REVIEWED:
        raise TransitionError(_("A bulletin is reviewed before it is published."))
    with transaction.atomic():
        Bulletin.objects.filter(region_code=b.region_code, date=b.date, status=Bulletin.Status.PUBLISHED).exclude(
            pk=b.pk
        ).update(status=Bulletin.Status.SUPERSEDED)
        b.status, b.published_at, b.published_by = Bulletin.Status.PUBLISHED, timezone.now(), user
        b.save(update_fields=["status", "published_at", "published_by"])
        audit.record(user, "command.bulletin_publish", b, region_code=b.region_code, changes={"version": b.version})
    return b


def correct_bulletin(user: Any, b: Bulletin, reason: str) -> Bulletin:
    """A published bulletin is never edited: the correction is a new version, regenerated from the data,
    carrying its reason; the old one stays published until the new one is, then is kept as superseded."""
    from cordon.command import bulletin as bl

    require(user, "publish_bulletin")
    if not in_jurisdiction(user, b.region_code):
        raise PermissionDenied("bulletin outside your jurisdiction")
    if b.status != Bulletin.Status.PUBLISHED:
        raise TransitionError(_("Only a published bulletin is corrected; edit the draft instead."))
    if not reason.strip():
        raise ValidationError(_("A correction needs a reason."))
    region = Region.objects.get(code=b.region_code)
    figures = bl.compute(region, b.date)
    with transaction.atomic():
        if Bulletin.objects.filter(region_code=b.region_code, date=b.date, status__in=["draft", "reviewed"]).exists():
            raise TransitionError(_("A correction of this bulletin is already pending."))
        version = Bulletin.objects.filter(region_code=b.region_code, date=b.date).count() + 1
        new = Bulletin.objects.create(region_code=b.region_code, region_name=b.region_name, date=b.date,
                                      version=version, figures=figures, text_zh=bl.render_zh(figures),
                                      text_en=bl.render_en(figures), correction_reason=reason.strip()[:300],
                                      created_at=timezone.now(), created_by=user)  # fmt: skip
        audit.record(user, "command.bulletin_correct", new, region_code=b.region_code,
                     changes={"version": version, "corrects": b.pk, "reason": reason.strip()[:300]})  # fmt: skip
    return new


# --------------------------------------------------------------------------- tip-offs

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def submit_tipoff(*, category: str, region_code: str, place: str, description: str, contact: str = "") -> TipOff:
    if category not in TipOff.Category.values:
        raise ValidationError({"category": _("Choose what you are reporting.")})
    if not Region.objects.filter(code=region_code, level=Level.COUNTY).exists():
        raise ValidationError({"region_code": _("Choose the county or district where it happened.")})
    if not place.strip() or len(description.strip()) < 10:
        raise ValidationError({"description": _("Say where, and describe what happened (at least 10 characters).")})
    now = timezone.now()
    with transaction.atomic():
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        tip = TipOff.objects.create(code=code, category=category, region_code=region_code, place=place.strip()[:200],
                                    description=description.strip()[:4000], contact=contact.strip()[:100],
                                    created_at=now, updated_at=now)  # fmt: skip
        audit.record("public", "command.tipoff_submit", tip, region_code=region_code, changes={"category": category})
        hq = ensure_headquarters(region_code)
        from cordon.core.models import User

        triagers = [u for u in User.objects.filter(region_id__in=[hq.region_id, hq.region.parent_id], is_active=True)
                    if has_capability(u, "triage_tipoffs")]  # fmt: skip
        notify(triagers, f"tipoff:{tip.pk}", "tipoff", _("New tip-off %s") % tip.code, tip.get_category_display())
    return tip


def triage_tipoff(user: Any, tip: TipOff, *, decision: str, group: WorkingGroup | None = None,
                  due_at: datetime | None = None, note: str = "") -> TipOff:  # fmt: skip
    """Turn a tip-off into a task for a working group, or close it with a note."""
    require(user, "triage_tipoffs")
    if not in_jurisdiction(user, tip.region_code):
        raise PermissionDenied("tip-off outside your jurisdiction")
    if tip.status != TipOff.Status.RECEIVED:
        raise TransitionError(_("This tip-off has already been triaged."))
    with transaction.atomic():
        if decision == "task":
            if group is None or due_at is None:
                raise ValidationError(_("Choose the group to follow it up and the due time."))
            hq = hq_of_user(user)
            _check_assignee(user, hq, group.headquarters, group)
            task = create_task(user, title=_("Follow up tip-off %(code)s: %(cat)s") % {"code": tip.code,
                               "cat": tip.get_category_display()}, issuer_hq=hq, assignee_hq=group.headquarters,
                               assignee_group=group, due_at=due_at, kind=TaskKind.TIPOFF, priority=Priority.HIGH,
                               description=f"{tip.place}\n{tip.description}", context_type="tipoff",
                               context_id=tip.pk, context_label=tip.code)  # fmt: skip
            tip.task, tip.status = task, TipOff.Status.TRIAGED
        elif decision == "dismiss":
            if not note.strip():
                raise ValidationError(_("Closing a tip-off without action needs a note."))
            tip.status, tip.resolution = TipOff.Status.DISMISSED, note.strip()
        else:
            raise ValidationError(_("Unknown decision."))
        tip.updated_at = timezone.now()
        tip.save()
        audit.record(user, "command.tipoff_triage", tip, region_code=tip.region_code, changes={"decision": decision})
    return tip


def overdue_q(now: datetime | None = None) -> Q:
    return Q(status__in=OPEN_STATUSES, due_at__lt=now or timezone.now())
