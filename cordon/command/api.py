"""/api/v1/command/: the dashboard's JSON (what the wall screen polls) and the task workflow."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from cordon.command import queries, services
from cordon.command.models import Priority, Task, TaskKind, TaskStatus, WorkingGroup
from cordon.core.pagination import paginate

router = Router(tags=["command"])


def _invalid(exc: ValidationError, field: str | None = None) -> Status:
    msg = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()) if hasattr(exc, "message_dict") else " ".join(exc.messages)
    code = 409 if isinstance(exc, services.TransitionError) else 422
    return Status(code, {"error": {"code": "conflict" if code == 409 else "invalid", "message": msg, "field": field}})


class DashParams(Schema):
    region: str | None = None
    day: date | None = None


@router.get("/dashboard/summary", response=dict, summary="Today's figures for a jurisdiction (pre-aggregated)")
def dashboard_summary(request: HttpRequest, params: Query[DashParams]):
    return queries.dashboard_summary(request.user, params.region, params.day)


@router.get("/dashboard/tiles", response=dict, summary="Child regions as tiles coloured by today's new cases")
def dashboard_tiles(request: HttpRequest, params: Query[DashParams]):
    return queries.tiles(request.user, params.region, params.day)


@router.get("/dashboard/epicurve", response=dict, summary="Epidemic curve (60 days) with R and its 95 % band")
def dashboard_epicurve(request: HttpRequest, params: Query[DashParams]):
    return queries.epicurve(request.user, params.region, day=params.day)


@router.get("/dashboard/forecast", response=dict, summary="Cases and quarantine beds for the next 7 days vs capacity")
def dashboard_forecast(request: HttpRequest, params: Query[DashParams]):
    return queries.bed_forecast(request.user, params.region, params.day)


@router.get("/dashboard/timeliness", response=dict, summary="Policy clocks: median, share within deadline, late items")
def dashboard_timeliness(request: HttpRequest, region: str | None = None, days: int = 30):
    return queries.timeliness(request.user, region, days=min(max(days, 1), 120))


class TaskOut(Schema):
    id: int
    title: str
    kind: str
    priority: str
    status: str
    assignee: str
    issuer: str
    region_code: str
    context_type: str
    context_id: str
    context_label: str
    issued_at: datetime
    due_at: datetime
    overdue: bool
    escalation_level: int


def _task_out(t: Task) -> dict[str, Any]:
    from django.utils import timezone

    return {"id": t.pk, "title": t.title, "kind": t.kind, "priority": t.priority, "status": t.status,
            "assignee": t.assignee_label(), "issuer": t.issuer_label(), "region_code": t.region_code,
            "context_type": t.context_type, "context_id": t.context_id, "context_label": t.context_label,
            "issued_at": t.issued_at, "due_at": t.due_at, "overdue": t.is_open and t.due_at < timezone.now(),
            "escalation_level": t.escalation_level}  # fmt: skip


class TaskPage(Schema):
    items: list[TaskOut]
    next_cursor: str | None


class TaskParams(Schema):
    status: str = ""
    overdue: bool = False
    cursor: str | None = None
    limit: int = 50


@router.get("/tasks", response=TaskPage, summary="Tasks in your jurisdiction")
def list_tasks(request: HttpRequest, params: Query[TaskParams]):
    rows, nxt = paginate(queries.tasks_for(request.user, status=params.status, overdue=params.overdue),
                         params.cursor, params.limit)  # fmt: skip
    return {"items": [_task_out(t) for t in rows], "next_cursor": nxt}


class TaskIn(Schema):
    title: str
    due_at: datetime
    assignee_group_id: int | None = None
    assignee_hq_id: int | None = None
    kind: str = TaskKind.GENERAL
    priority: str = Priority.NORMAL
    description: str = ""
    context_type: str = ""
    context_id: str = ""
    context_label: str = ""


@router.post("/tasks", response={201: TaskOut, 422: dict, 409: dict}, summary="Dispatch a task")
def create_task(request: HttpRequest, payload: TaskIn):
    data = payload.dict()
    group = WorkingGroup.objects.filter(pk=data.pop("assignee_group_id") or 0).first()
    hq = queries.headquarters_for(request.user).filter(pk=data.pop("assignee_hq_id") or 0).first()
    try:
        task = services.dispatch(request.user, assignee_group=group, assignee_hq=hq, **data)
    except ValidationError as exc:
        return _invalid(exc)
    return Status(201, _task_out(task))


class TransitionIn(Schema):
    status: str
    note: str = ""
    reason: str = ""


@router.post("/tasks/{task_id}/transition", response={200: TaskOut, 409: dict, 422: dict},
             summary="acknowledge / in_progress / done (note) / rejected (reason)")  # fmt: skip
def transition(request: HttpRequest, task_id: int, payload: TransitionIn):
    task = queries.get_task(request.user, task_id)
    if payload.status not in TaskStatus.values:
        return Status(422, {"error": {"code": "invalid_field", "message": "unknown status", "field": "status"}})
    try:
        task = services.transition(request.user, task, payload.status, note=payload.note, reason=payload.reason)
    except ValidationError as exc:
        return _invalid(exc)
    return _task_out(task)
