"""The task state machine, dispatch down the tree, reminders, escalation and scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cordon.command import services
from cordon.command.models import Notification, Task, TaskEvent, TaskStatus
from cordon.core.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user, county_hqs):
    return {
        "prov": make_user("prov", role="commander", region="430000"),
        "city": make_user("city", role="commander", region="430100"),
        "fr": make_user("fr", role="investigator", region="430102"),
        "fr_cmd": make_user("fr_cmd", role="commander", region="430102"),
        "yl": make_user("yl", role="investigator", region="430104"),
        "sup": make_user("sup", role="supervisor", region="430000"),
    }


def _dispatch_to_county(people, county_hqs, code="430102", hours=4):
    group = county_hqs[code].groups.get(code="tracing")
    return services.dispatch(people["city"], title="核查密接名单", assignee_group=group,
                             due_at=timezone.now() + timedelta(hours=hours))  # fmt: skip


def test_default_groups_and_one_headquarters_per_level(county_hqs):
    hq = county_hqs["430102"]
    assert hq.name == "芙蓉区疫情防控指挥部"
    assert [g.code for g in hq.groups.all()] == ["coordination", "tracing", "testing", "isolation", "medical",
                                                 "community", "supplies", "publicity", "supervision"]  # fmt: skip
    assert services.ensure_headquarters("430102001001") == hq  # below a county: the county's headquarters
    assert services.parent_hq(hq) == county_hqs["430100"]


def test_state_machine_with_evidence_and_audit(people, county_hqs):
    task = _dispatch_to_county(people, county_hqs)
    assert task.status == TaskStatus.ISSUED and task.region_code == "430102"
    with pytest.raises(services.TransitionError):
        services.transition(people["fr"], task, TaskStatus.DONE, note="too early")
    task = services.transition(people["fr"], task, TaskStatus.ACKNOWLEDGED)
    task = services.transition(people["fr"], task, TaskStatus.IN_PROGRESS)
    with pytest.raises(ValidationError):
        services.transition(people["fr"], task, TaskStatus.DONE)  # no evidence
    upload = SimpleUploadedFile("report.txt", b"12 contacts located")
    task = services.transition(people["fr"], task, TaskStatus.DONE, note="已全部核查", evidence_file=upload)
    assert task.status == TaskStatus.DONE and task.closed_at and task.evidence_note == "已全部核查"
    assert task.evidence_file.read() == b"12 contacts located"
    assert "media" in task.evidence_file.path
    with pytest.raises(services.TransitionError):
        services.transition(people["fr"], task, TaskStatus.REJECTED, reason="late")
    actions = list(TaskEvent.objects.filter(task=task).values_list("action", flat=True))
    assert actions == ["issued", "acknowledged", "started", "done"]
    audited = list(AuditEvent.objects.filter(object_id=str(task.pk), action__startswith="command.task").values_list("action", flat=True))
    assert audited == ["command.task_issue", "command.task_acknowledged", "command.task_started", "command.task_done"]


def test_reject_needs_a_reason_and_reassign_reopens(people, county_hqs):
    task = _dispatch_to_county(people, county_hqs)
    with pytest.raises(ValidationError):
        services.transition(people["fr"], task, TaskStatus.REJECTED)
    services.transition(people["fr"], task, TaskStatus.ACKNOWLEDGED)
    other = county_hqs["430102"].groups.get(code="community")
    task = services.reassign(people["city"], task, assignee_group=other, reason="社区负责")
    assert task.status == TaskStatus.ISSUED and task.assignee_group == other
    task = services.transition(people["fr"], task, TaskStatus.REJECTED, reason="不在本区")
    assert task.reject_reason == "不在本区" and task.status == TaskStatus.REJECTED


def test_dispatch_goes_down_the_tree_only(people, county_hqs):
    due = timezone.now() + timedelta(hours=2)
    with pytest.raises(PermissionDenied):  # a county cannot task the city
        services.dispatch(people["fr_cmd"], title="x", assignee_hq=county_hqs["430100"], due_at=due)
    with pytest.raises(PermissionDenied):  # nor a neighbouring county
        services.dispatch(people["fr_cmd"], title="x", assignee_hq=county_hqs["430104"], due_at=due)
    with pytest.raises(PermissionDenied):  # an investigator cannot dispatch at all
        services.dispatch(people["fr"], title="x", assignee_hq=county_hqs["430102"], due_at=due)
    with pytest.raises(ValidationError):
        services.dispatch(people["prov"], title="x", assignee_hq=county_hqs["430100"], due_at=timezone.now())
    # the province may task a county's headquarters directly, and its own groups
    t = services.dispatch(people["prov"], title="x", assignee_hq=county_hqs["430104"], due_at=due)
    assert t.region_code == "430104" and t.issuer_hq == county_hqs["430000"]
    own = county_hqs["430000"].groups.get(code="supplies")
    assert services.dispatch(people["prov"], title="y", assignee_group=own, due_at=due).region_code == "430000"


def test_county_sees_its_own_tasks_only(people, county_hqs):
    from cordon.command import queries

    a = _dispatch_to_county(people, county_hqs, "430102")
    b = _dispatch_to_county(people, county_hqs, "430104")
    assert list(queries.tasks_for(people["fr"])) == [a]
    assert list(queries.tasks_for(people["yl"])) == [b]
    assert set(queries.tasks_for(people["city"])) == {a, b}
    with pytest.raises(PermissionDenied):
        services.transition(people["yl"], a, TaskStatus.ACKNOWLEDGED)
    from django.http import Http404

    with pytest.raises(Http404):
        queries.get_task(people["yl"], a.pk)


def test_reminder_before_then_due_then_escalation_each_once(people, county_hqs, settings):
    group = county_hqs["430102"].groups.get(code="tracing")
    group.members.add(people["fr"])
    coord = county_hqs["430100"].groups.get(code="coordination")
    coord.members.add(people["city"])
    issued = timezone.now()
    task = services.dispatch(people["city"], title="报告", assignee_group=group, due_at=issued + timedelta(hours=4))

    # 2 h before: nothing yet (the policy reminds 1 h before)
    assert services.tick(issued + timedelta(hours=2)) == {"reminders": 0, "due": 0, "escalations": 0}
    assert services.tick(issued + timedelta(hours=3, minutes=10)) == {"reminders": 1, "due": 0, "escalations": 0}
    assert services.tick(issued + timedelta(hours=3, minutes=20)) == {"reminders": 0, "due": 0, "escalations": 0}
    reminders = Notification.objects.filter(kind="reminder")
    assert [n.user for n in reminders] == [people["fr"]]
    # at the deadline: the due notice (not a second reminder) and escalation to the issuer's level (the city)
    assert services.tick(issued + timedelta(hours=4, minutes=1)) == {"reminders": 0, "due": 1, "escalations": 1}
    task.refresh_from_db()
    assert task.escalation_level == 1 and task.escalated_to == county_hqs["430100"]
    assert Notification.objects.filter(kind="escalated", user=people["city"]).count() == 1
    assert services.tick(issued + timedelta(hours=5)) == {"reminders": 0, "due": 0, "escalations": 0}
    # one more allotted period (4 h) later: up to the province
    assert services.tick(issued + timedelta(hours=8, minutes=2))["escalations"] == 1
    task.refresh_from_db()
    assert task.escalation_level == 2 and task.escalated_to == county_hqs["430000"]
    assert Notification.objects.filter(kind="escalated", user=people["prov"]).count() == 1
    # and never beyond the top
    assert services.tick(issued + timedelta(days=5))["escalations"] == 0
    assert Notification.objects.filter(kind="reminder").count() == 1
    assert Notification.objects.filter(kind="due").count() == 1
    # a done task is left alone
    services.transition(people["fr"], task, TaskStatus.ACKNOWLEDGED)
    assert list(TaskEvent.objects.filter(task=task, action="escalated").values_list("note", flat=True)) == [
        "长沙市疫情防控指挥部 (not acknowledged)", "湖南省疫情防控指挥部 (not acknowledged)"]


def test_late_tick_sends_the_due_notice_only(people, county_hqs):
    task = _dispatch_to_county(people, county_hqs, hours=2)
    counts = services.tick(task.due_at + timedelta(minutes=30))
    assert counts["reminders"] == 0 and counts["due"] == 1


def test_notifications_go_through_the_pluggable_senders(people, county_hqs, settings, django_capture_on_commit_callbacks):
    from django.core import mail

    sent = []

    class FakeSms:
        channel = "sms"

        def send(self, user, subject, body):
            sent.append((user.username, subject))
            return True

    import sys
    import types

    mod = types.ModuleType("fake_sms_backend")
    mod.FakeSms = FakeSms
    sys.modules["fake_sms_backend"] = mod
    settings.CORDON_SMS_SENDER = "fake_sms_backend.FakeSms"
    people["fr"].email = "fr@example.org"
    people["fr"].save()
    group = county_hqs["430102"].groups.get(code="tracing")
    group.members.add(people["fr"])
    with django_capture_on_commit_callbacks(execute=True):
        services.dispatch(people["city"], title="紧急任务", assignee_group=group,
                          due_at=timezone.now() + timedelta(hours=3))  # fmt: skip
    assert sent in ([("fr", "New task: 紧急任务")], [("fr", "新任务：紧急任务")])
    assert [m.to for m in mail.outbox] == [["fr@example.org"]]
    assert Notification.objects.get(user=people["fr"]).kind == "assigned"


def test_bell_tag_and_pages(people, county_hqs, client_for):
    task = _dispatch_to_county(people, county_hqs)
    county_hqs["430102"].groups.get(code="tracing").members.add(people["fr"])
    services.notify([people["fr"]], "manual", "assigned", "hello", task=task)
    c = client_for(people["fr"])
    page = c.get("/command/tasks/")
    assert page.status_code == 200 and "核查密接名单" in page.content.decode()
    assert 'id="notification-bell"' in page.content.decode()
    r = c.post(f"/command/tasks/{task.pk}/action", {"action": "acknowledge"})
    assert r.status_code == 302
    assert Task.objects.get(pk=task.pk).status == TaskStatus.ACKNOWLEDGED
    assert c.get(f"/command/tasks/{task.pk}/").status_code == 200
    assert client_for(people["yl"]).get(f"/command/tasks/{task.pk}/").status_code == 404
    # the API
    r = client_for(people["city"]).post("/api/v1/command/tasks", {"title": "API task", "due_at": (timezone.now() + timedelta(hours=2)).isoformat(),
                                                                  "assignee_hq_id": county_hqs["430104"].pk}, content_type="application/json")
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    r = client_for(people["yl"]).post(f"/api/v1/command/tasks/{tid}/transition", {"status": "done", "note": "x"},
                                      content_type="application/json")  # fmt: skip
    assert r.status_code == 409
    assert client_for(people["yl"]).get("/api/v1/command/tasks").json()["items"][0]["id"] == tid
