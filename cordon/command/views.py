"""Pages of the command centre. Thin: parse, call one service or query, render."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cordon.command import queries, services
from cordon.command.models import (
    AccountabilityAction,
    Bulletin,
    Inspection,
    Priority,
    TaskKind,
    TaskStatus,
    TipOff,
    WorkingGroup,
)
from cordon.core.pagination import BadCursor, paginate
from cordon.core.roles import has_capability
from cordon.core.scoping import in_jurisdiction, require
from cordon.regions.models import Level, Region


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def _parse_dt(value: str) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return timezone.make_aware(dt) if timezone.is_naive(dt) else dt


def _caps(user: Any) -> dict[str, bool]:
    return {c: has_capability(user, c) for c in
            ("dispatch", "work_tasks", "inspect", "publish_bulletin", "triage_tipoffs")}  # fmt: skip


# --------------------------------------------------------------------------- dashboard


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("region") or None
    summary = queries.dashboard_summary(request.user, code)
    return render(request, "command/dashboard.html", {
        "s": summary, "t": queries.tiles(request.user, code), "region_param": code or "", "caps": _caps(request.user),
        "wall": request.GET.get("wall") == "1",
    })  # fmt: skip


@login_required
def dashboard_panel(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("region") or None
    return render(request, "command/dashboard_panel.html", {
        "s": queries.dashboard_summary(request.user, code), "t": queries.tiles(request.user, code),
        "region_param": code or "",
    })  # fmt: skip


# --------------------------------------------------------------------------- tasks


@login_required
def tasks(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "open")
    overdue = request.GET.get("overdue") == "1"
    qs = queries.tasks_for(request.user, status=status if status != "all" else "", overdue=overdue,
                           q=request.GET.get("q", "").strip())  # fmt: skip
    try:
        rows, nxt = paginate(qs.order_by("pk"), request.GET.get("cursor"), 50)
    except BadCursor:
        rows, nxt = [], None
    rows.sort(key=lambda t: (t.due_at, t.pk))
    ctx: dict[str, Any] = {"tasks": rows, "next_cursor": nxt, "status": status, "overdue": overdue,
                           "now": timezone.now(), "caps": _caps(request.user), "kinds": TaskKind.choices,
                           "priorities": Priority.choices, "statuses": TaskStatus.choices}  # fmt: skip
    if ctx["caps"]["dispatch"]:
        ctx["targets"] = queries.assignable(request.user)
    return render(request, "command/tasks.html", ctx)


@login_required
@require_POST
def task_dispatch(request: HttpRequest) -> HttpResponse:
    p = request.POST
    try:
        target = p.get("assignee", "")
        group = hq = None
        if target.startswith("g"):
            group = WorkingGroup.objects.select_related("headquarters").filter(pk=int(target[1:])).first()
        elif target.startswith("h"):
            hq = queries.headquarters_for(request.user).filter(pk=int(target[1:])).first()
        if group is None and hq is None:
            raise ValidationError({"assignee": _("Choose who receives the task.")})
        due = _parse_dt(p.get("due_at", ""))
        if due is None:
            raise ValidationError({"due_at": _("Give the due time as YYYY-MM-DDTHH:MM.")})
        task = services.dispatch(request.user, title=p.get("title", ""), description=p.get("description", ""),
                                 kind=p.get("kind", TaskKind.GENERAL), priority=p.get("priority", Priority.NORMAL),
                                 due_at=due, assignee_group=group, assignee_hq=hq,
                                 context_type=p.get("context_type", ""), context_id=p.get("context_id", ""),
                                 context_label=p.get("context_label", ""))  # fmt: skip
    except (ValidationError, ValueError) as exc:
        messages.error(request, _errors(exc) if isinstance(exc, ValidationError) else str(exc))
        return redirect("command:tasks")
    messages.success(request, _("Task issued: %s") % task.title)
    return redirect("command:task", task_id=task.pk)


@login_required
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    task = queries.get_task(request.user, task_id)
    caps = _caps(request.user)
    ctx = {"task": task, "events": task.events.select_related("by"), "caps": caps, "now": timezone.now(),
           "can_work": caps["work_tasks"] and (in_jurisdiction(request.user, task.region_code)
                                               or task.assignee_group.members.filter(pk=request.user.pk).exists()
                                               if task.assignee_group_id else in_jurisdiction(request.user, task.region_code)),
           "accountability": task.accountability_actions.all()}  # fmt: skip
    if caps["dispatch"] and task.is_open:
        ctx["targets"] = queries.assignable(request.user)
    return render(request, "command/task_detail.html", ctx)


@login_required
@require_POST
def task_action(request: HttpRequest, task_id: int) -> HttpResponse:
    task = queries.get_task(request.user, task_id)
    action = request.POST.get("action", "")
    try:
        if action == "reassign":
            target = request.POST.get("assignee", "")
            group = WorkingGroup.objects.filter(pk=int(target[1:])).first() if target.startswith("g") else None
            hq = queries.headquarters_for(request.user).filter(pk=int(target[1:])).first() if target.startswith("h") else None
            services.reassign(request.user, task, assignee_group=group, assignee_hq=hq,
                              reason=request.POST.get("reason", ""))  # fmt: skip
        else:
            new = {"acknowledge": TaskStatus.ACKNOWLEDGED, "start": TaskStatus.IN_PROGRESS, "done": TaskStatus.DONE,
                   "reject": TaskStatus.REJECTED}.get(action)  # fmt: skip
            if new is None:
                raise ValidationError(_("Unknown action."))
            services.transition(request.user, task, new, note=request.POST.get("note", ""),
                                reason=request.POST.get("reason", ""),
                                evidence_file=request.FILES.get("evidence"))  # fmt: skip
    except (ValidationError, ValueError) as exc:
        messages.error(request, _errors(exc) if isinstance(exc, ValidationError) else str(exc))
    return redirect("command:task", task_id=task.pk)


@login_required
def task_evidence(request: HttpRequest, task_id: int) -> FileResponse:
    task = queries.get_task(request.user, task_id)
    if not task.evidence_file:
        raise Http404("no evidence file")
    return FileResponse(task.evidence_file.open("rb"), as_attachment=True,
                        filename=task.evidence_file.name.rsplit("/", 1)[-1])  # fmt: skip


# --------------------------------------------------------------------------- groups


@login_required
def groups(request: HttpRequest) -> HttpResponse:
    from cordon.core.models import User
    from cordon.core.scoping import scope

    require(request.user, "view_command")
    own = services.hq_of_user(request.user)
    for child in Region.objects.filter(parent_id=own.region_id, level__in=[Level.CITY, Level.COUNTY]):
        services.ensure_headquarters(child)
    hqs = queries.headquarters_for(request.user).prefetch_related("groups__members")
    people = scope(User.objects.filter(is_active=True), request.user).order_by("username") if _caps(request.user)["dispatch"] else []
    return render(request, "command/groups.html", {"hqs": hqs, "users": people, "caps": _caps(request.user)})


@login_required
@require_POST
def group_members(request: HttpRequest, group_id: int) -> HttpResponse:
    from cordon.core.models import User

    group = WorkingGroup.objects.select_related("headquarters").filter(pk=group_id).first()
    if group is None or not in_jurisdiction(request.user, group.headquarters.region_id):
        raise Http404("no such group")
    try:
        if request.POST.get("name"):
            services.save_group(request.user, group.headquarters, code=group.code, name=request.POST["name"],
                                name_en=group.name_en, group=group, active=request.POST.get("active", "1") == "1")  # fmt: skip
        ids = [int(x) for x in request.POST.getlist("members") if x.isdigit()]
        services.set_members(request.user, group, list(User.objects.filter(pk__in=ids)))
        messages.success(request, _("Group saved."))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:groups")


@login_required
@require_POST
def group_create(request: HttpRequest) -> HttpResponse:
    hq = queries.headquarters_for(request.user).filter(pk=request.POST.get("hq") or 0).first()
    if hq is None:
        raise Http404("no such headquarters")
    try:
        services.save_group(request.user, hq, code=request.POST.get("code", ""), name=request.POST.get("name", ""))
        messages.success(request, _("Group added."))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:groups")


# --------------------------------------------------------------------------- timeliness, inspections


@login_required
def timeliness(request: HttpRequest) -> HttpResponse:
    days = int(request.GET.get("days", "30")) if request.GET.get("days", "30").isdigit() else 30
    data = queries.timeliness(request.user, request.GET.get("region") or None, days=min(max(days, 1), 120))
    return render(request, "command/timeliness.html", {"d": data})


@login_required
def inspections(request: HttpRequest) -> HttpResponse:
    rows = list(queries.inspections_for(request.user)[:100])
    late = list(queries.tasks_for(request.user).filter(services.overdue_q())[:50]) if _caps(request.user)["inspect"] else []
    from cordon.core.scoping import scope

    actions = scope(AccountabilityAction.objects.prefetch_related("tasks").select_related("inspection"),
                    request.user, field="region_code")[:100]  # fmt: skip
    return render(request, "command/inspections.html", {
        "inspections": rows, "late_tasks": late, "actions": actions, "caps": _caps(request.user),
        "kinds": AccountabilityAction.Kind.choices, "statuses": Inspection.Status.choices,
        "today": timezone.localdate(),
    })  # fmt: skip


@login_required
@require_POST
def inspection_create(request: HttpRequest) -> HttpResponse:
    p = request.POST
    try:
        day = date.fromisoformat(p.get("date", ""))
        due = date.fromisoformat(p["rectification_due"]) if p.get("rectification_due") else None
        services.record_inspection(request.user, region_code=p.get("region_code") or request.user.region_id,
                                   unit=p.get("unit", ""), day=day, findings=p.get("findings", ""),
                                   rectification_due=due)  # fmt: skip
        messages.success(request, _("Inspection recorded."))
    except ValueError:
        messages.error(request, _("Dates are YYYY-MM-DD."))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:inspections")


@login_required
@require_POST
def inspection_status(request: HttpRequest, inspection_id: int) -> HttpResponse:
    ins = queries.inspections_for(request.user).filter(pk=inspection_id).first()
    if ins is None:
        raise Http404("no such inspection")
    try:
        services.set_inspection_status(request.user, ins, request.POST.get("status", ""))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:inspections")


@login_required
@require_POST
def accountability_create(request: HttpRequest) -> HttpResponse:
    p = request.POST
    ins = queries.inspections_for(request.user).filter(pk=p.get("inspection") or 0).first()
    task_ids = [int(x) for x in p.getlist("tasks") if x.isdigit()]
    linked = list(queries.tasks_for(request.user).filter(pk__in=task_ids))
    try:
        services.record_accountability(request.user, region_code=p.get("region_code") or request.user.region_id,
                                       kind=p.get("kind", ""), subject=p.get("subject", ""),
                                       description=p.get("description", ""), day=timezone.localdate(),
                                       inspection=ins, tasks=linked)  # fmt: skip
        messages.success(request, _("Accountability action recorded."))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:inspections")


# --------------------------------------------------------------------------- bulletins


@login_required
def bulletins(request: HttpRequest) -> HttpResponse:
    rows = list(queries.bulletins_for(request.user)[:100])
    return render(request, "command/bulletins.html", {"bulletins": rows, "caps": _caps(request.user),
                                                      "yesterday": timezone.localdate().toordinal() - 1,
                                                      "default_date": date.fromordinal(timezone.localdate().toordinal() - 1)})  # fmt: skip


@login_required
@require_POST
def bulletin_generate(request: HttpRequest) -> HttpResponse:
    try:
        day = date.fromisoformat(request.POST.get("date", ""))
    except ValueError:
        messages.error(request, _("Dates are YYYY-MM-DD."))
        return redirect("command:bulletins")
    code = request.POST.get("region_code") or request.user.region_id[:6]
    b = services.generate_bulletin(request.user, code, day)
    return redirect("command:bulletin", bulletin_id=b.pk)


@login_required
def bulletin_detail(request: HttpRequest, bulletin_id: int) -> HttpResponse:
    b = queries.bulletins_for(request.user).filter(pk=bulletin_id).first()
    if b is None:
        raise Http404("no such bulletin")
    versions = Bulletin.objects.filter(region_code=b.region_code, date=b.date).order_by("version")
    return render(request, "command/bulletin_detail.html", {"b": b, "versions": versions, "caps": _caps(request.user)})


@login_required
@require_POST
def bulletin_action(request: HttpRequest, bulletin_id: int) -> HttpResponse:
    b = queries.bulletins_for(request.user).filter(pk=bulletin_id).first()
    if b is None:
        raise Http404("no such bulletin")
    action = request.POST.get("action")
    try:
        if action == "review":
            services.review_bulletin(request.user, b)
        elif action == "publish":
            services.publish_bulletin(request.user, b)
        elif action == "refresh":
            services.generate_bulletin(request.user, b.region_code, b.date)
        elif action == "correct":
            b = services.correct_bulletin(request.user, b, request.POST.get("reason", ""))
        else:
            raise ValidationError(_("Unknown action."))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:bulletin", bulletin_id=b.pk)


# --------------------------------------------------------------------------- tip-offs (staff)


@login_required
def tipoffs(request: HttpRequest) -> HttpResponse:
    rows = list(queries.tipoffs_for(request.user)[:200])
    targets = queries.assignable(request.user) if has_capability(request.user, "dispatch") else None
    return render(request, "command/tipoffs.html", {"tipoffs": rows, "targets": targets, "caps": _caps(request.user)})


@login_required
@require_POST
def tipoff_triage(request: HttpRequest, tipoff_id: int) -> HttpResponse:
    tip = queries.tipoffs_for(request.user).filter(pk=tipoff_id).first()
    if tip is None:
        raise Http404("no such tip-off")
    p = request.POST
    group = WorkingGroup.objects.filter(pk=int(p["group"])).first() if p.get("group", "").isdigit() else None
    try:
        services.triage_tipoff(request.user, tip, decision=p.get("decision", ""), group=group,
                               due_at=_parse_dt(p.get("due_at", "")), note=p.get("note", ""))  # fmt: skip
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("command:tipoffs")


# --------------------------------------------------------------------------- notifications


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    rows = queries.notifications_for(request.user)
    return render(request, "command/notifications.html", {"notifications": rows})


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    services.mark_read(request.user)
    return redirect("command:notifications")


# --------------------------------------------------------------------------- public pages (no login)


def public_index(request: HttpRequest) -> HttpResponse:
    rows = list(queries.published_bulletins().filter(status=Bulletin.Status.PUBLISHED)[:30])
    return render(request, "command/public_index.html", {"bulletins": rows, "risk_areas": queries.public_risk_areas()})


def public_bulletin(request: HttpRequest, bulletin_id: int) -> HttpResponse:
    b = queries.published_bulletins().filter(pk=bulletin_id).first()
    if b is None:
        raise Http404("no such bulletin")
    versions = queries.published_bulletins().filter(region_code=b.region_code, date=b.date).order_by("version")
    return render(request, "command/public_bulletin.html", {"b": b, "versions": versions})


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def tipoff_limit() -> int:
    return int(getattr(settings, "CORDON_TIPOFFS_PER_HOUR", 5))


def public_tipoff(request: HttpRequest) -> HttpResponse:
    counties = Region.objects.filter(level=Level.COUNTY).order_by("code").values_list("code", "name")
    ctx: dict[str, Any] = {"categories": TipOff.Category.choices, "counties": counties, "data": request.POST}
    if request.method == "POST":
        key = f"tipoff-rate:{_client_ip(request)}:{timezone.now():%Y%m%d%H}"
        cache.add(key, 0, 3600)
        if cache.incr(key) > tipoff_limit():
            ctx["error"] = _("Too many reports from this address in the last hour. Please try again later.")
            return render(request, "command/public_tipoff.html", ctx, status=429)
        try:
            tip = services.submit_tipoff(category=request.POST.get("category", ""),
                                         region_code=request.POST.get("region_code", ""),
                                         place=request.POST.get("place", ""),
                                         description=request.POST.get("description", ""),
                                         contact=request.POST.get("contact", ""))  # fmt: skip
        except ValidationError as exc:
            ctx["error"] = _errors(exc)
            return render(request, "command/public_tipoff.html", ctx, status=400)
        return render(request, "command/public_tipoff_done.html", {"tip": tip})
    return render(request, "command/public_tipoff.html", ctx)


def public_tipoff_status(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("code", "").strip().upper()
    tip = TipOff.objects.filter(code=code).only("code", "status", "created_at", "updated_at").first() if code else None
    return render(request, "command/public_tipoff_status.html", {"tip": tip, "code": code})
