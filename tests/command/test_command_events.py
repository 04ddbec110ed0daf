"""Automatic tasks from domain events, with the policy's deadlines, and the pre-aggregated daily figures."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from cordon.command.aggregate import rebuild
from cordon.command.models import DailyFigure, Task, TaskKind, TaskStatus
from cordon.core import events
from tests.command.conftest import at

pytestmark = pytest.mark.django_db


def figures() -> dict[tuple[str, str, str], int]:
    return {(str(f.date), f.region_code, f.metric): f.value for f in DailyFigure.objects.all() if f.value}


def test_handlers_are_registered():
    from cordon.command import handlers

    for name, fn in handlers.SUBSCRIPTIONS.items():
        assert fn in events.handlers(name)


def test_case_reported_opens_an_investigation_task_with_the_policy_deadline(make_case, county_hqs):
    case = make_case("430102", "confirmed", at("2022-05-10", "09:30"), under_control=True)
    events.emit("case.reported", case=case, user=None)
    events.emit("case.reported", case=case, user=None)  # replayed: still one task
    task = Task.objects.get(kind=TaskKind.INVESTIGATION)
    assert task.due_at == at("2022-05-10", "09:30") + timedelta(hours=24)  # deadlines.preliminary_report_hours
    assert task.assignee_group.code == "tracing" and task.region_code == "430102"
    assert task.issuer_hq == county_hqs["430102"] and task.context_type == "case" and task.context_label == case.number
    assert figures()[("2022-05-10", "430102", "new_confirmed_under_control")] == 2  # the replay counts twice: events are facts


def test_investigation_due_time_is_taken_when_stored(make_case, county_hqs):
    from cordon.cases.models import Investigation

    case = make_case("430104", "asymptomatic", at("2022-05-10", "09:30"))
    Investigation.objects.create(case=case, region_id="430104", opened_at=case.reported_at,
                                 trajectory_due_at=case.reported_at + timedelta(hours=4),
                                 preliminary_due_at=case.reported_at + timedelta(hours=20),
                                 contacts_due_at=case.reported_at + timedelta(hours=24),
                                 complete_due_at=case.reported_at + timedelta(hours=24),
                                 lookback_from=date(2022, 5, 6), policy_name="ncov-9")  # fmt: skip
    case.refresh_from_db()
    events.emit("case.reported", case=case, user=None)
    assert Task.objects.get().due_at == case.reported_at + timedelta(hours=20)


def test_contacts_identified_become_transfer_tasks_and_close_on_quarantine(make_case, make_contact, county_hqs):
    case = make_case("430102", "confirmed", at("2022-05-10", "08:00"))
    close = make_contact(case, "430102", "close", at("2022-05-10", "12:00"))
    second = make_contact(case, "430104", "secondary", at("2022-05-10", "13:00"))
    events.emit("contacts.identified", contacts=[close, second], user=None)
    t1 = Task.objects.get(auto_key=f"transfer:contact:{close.pk}")
    t2 = Task.objects.get(auto_key=f"transfer:contact:{second.pk}")
    assert t1.due_at == at("2022-05-10", "20:00") and t1.region_code == "430102"  # 8 h
    assert t2.due_at == at("2022-05-11", "01:00") and t2.region_code == "430104"  # 12 h
    assert t1.assignee_group.code == "isolation"
    f = figures()
    assert f[("2022-05-10", "430102", "managed_close")] == 1 and f[("2022-05-10", "430104", "managed_secondary")] == 1
    close.status = "quarantined"
    close.quarantined_at = at("2022-05-10", "18:00")
    close.save()
    events.emit("contact.status_changed", contact=close, old="transfer_requested", new="quarantined", user=None)
    t1.refresh_from_db()
    assert t1.status == TaskStatus.DONE
    close.status = "released"
    close.save()
    events.emit("contact.status_changed", contact=close, old="quarantined", new="released", user=None)
    today = str(timezone.localdate())
    assert figures()[(today, "430102", "managed_close")] == -1  # leaving management is counted on its day


def test_pool_positive_and_placement_release(county_hqs):
    positive_at = at("2022-05-10", "07:00")
    tube = SimpleNamespace(pk=77, barcode="T0000077", region_id="430104001001", resulted_at=positive_at)
    retests = [SimpleNamespace(pk=i) for i in range(10)]
    events.emit("pools.positive", pools=[(tube, retests)], user=None)
    t = Task.objects.get(kind=TaskKind.RETEST)
    assert t.due_at == positive_at + timedelta(hours=4)  # screening.positive_pool.hold_and_resample_hours
    assert t.region_code == "430104" and t.assignee_group.code == "testing" and "10" in t.title
    placement = SimpleNamespace(pk=5, region_id="430102", release_due_at=at("2022-05-17", "09:00"))
    events.emit("placement.due_for_release", placement=placement)
    r = Task.objects.get(kind=TaskKind.RELEASE)
    assert r.due_at == at("2022-05-17", "09:00") and r.assignee_group.code == "isolation"
    events.emit("placement.released", placement=placement, user=None)
    r.refresh_from_db()
    assert r.status == TaskStatus.DONE


def test_screening_round_finished_records_the_clock(county_hqs):
    from cordon.command.models import RoundClock

    campaign = SimpleNamespace(pk=3, name="第3轮全员核酸", started_at=timezone.now() - timedelta(hours=30))
    events.emit("screening.region_finished", campaign=campaign, region_code="430102")
    rc = RoundClock.objects.get()
    assert rc.due_at == campaign.started_at + timedelta(hours=24) and rc.finished_at > rc.due_at


def test_reclassification_counts_a_conversion_and_rebuild_matches(make_case, make_contact, county_hqs, monkeypatch):
    from cordon.cases.models import Reclassification

    a = make_case("430102", "asymptomatic", at("2022-05-09", "10:00"))
    events.emit("case.reported", case=a, user=None)
    b = make_case("430104", "confirmed", at("2022-05-10", "10:00"), origin="imported_abroad")
    events.emit("case.reported", case=b, user=None)
    c = make_contact(a, "430102", "close", at("2022-05-09", "15:00"))
    events.emit("contacts.identified", contacts=[c], user=None)
    # the conversion happens "today" for the handler; record it today so the rebuild agrees
    now = timezone.now()
    a.classification = "confirmed"
    a.save()
    Reclassification.objects.create(case=a, from_classification="asymptomatic", to_classification="confirmed", at=now)
    events.emit("case.reclassified", case=a, old="asymptomatic", new="confirmed", user=None)
    incremental = figures()
    today = str(timezone.localdate())
    assert incremental[(today, "430102", "converted")] == 1
    assert incremental[("2022-05-09", "430102", "new_asymptomatic_community")] == 1
    assert incremental[("2022-05-10", "430104", "new_confirmed_imported")] == 1
    DailyFigure.objects.all().delete()
    assert rebuild() == len(incremental)
    assert figures() == incremental
    # one date only
    DailyFigure.objects.filter(date=date(2022, 5, 10)).update(value=99)
    rebuild(date(2022, 5, 10))
    assert figures() == incremental


def test_aggregate_and_bulletin_cli(make_case, county_hqs):
    from typer.testing import CliRunner

    from cordon.cli import app

    make_case("430102", "confirmed", at("2022-05-10", "10:00"))
    runner = CliRunner()
    r = runner.invoke(app, ["command", "aggregate", "--date", "2022-05-10"])
    assert r.exit_code == 0, r.output
    assert '"rows": 3' in r.output
    r = runner.invoke(app, ["bulletin", "2022-05-10", "--region", "430100"])
    assert r.exit_code == 0, r.output
    assert "2022年5月10日0—24时，长沙市新增确诊病例1例" in r.output
    r = runner.invoke(app, ["bulletin", "2022-05-10", "--format", "json"])
    assert '"new": 1' in r.output
    r = runner.invoke(app, ["bulletin", "2022-05-10", "--format", "html", "--lang", "en"])
    assert r.output.startswith("<p>From 0:00 to 24:00 on 2022-05-10, ")
    assert runner.invoke(app, ["bulletin", "yesterday"]).exit_code == 2
    r = runner.invoke(app, ["command", "tick"])
    assert r.exit_code == 0 and '"escalations"' in r.output


def _issued(task: Task) -> tuple:
    from cordon.command.models import Notification, TaskEvent
    from cordon.core.models import AuditEvent

    audit = AuditEvent.objects.get(action="command.task_issue", object_id=str(task.pk))
    return ((task.kind, task.title, task.due_at, task.region_code, task.priority, task.status, task.issuer_hq_id,
             task.assignee_hq_id, task.assignee_group_id, task.issued_by_id, task.context_type, task.context_id,
             task.context_label),
            list(TaskEvent.objects.filter(task=task).values_list("action", "from_status", "to_status", "by_id",
                                                                 "note")),
            sorted(Notification.objects.filter(task=task).values_list("user__username", "kind", "title", "key")),
            (audit.actor_label, audit.region_code, audit.changes))  # fmt: skip


def test_tasks_issued_together_are_those_issued_one_by_one(county_hqs, make_user, django_capture_on_commit_callbacks):
    from cordon.command import services
    from cordon.command.models import Notification
    from cordon.core.audit import verify_chain

    tester = make_user("cz-tester", role="testing", region="430102")
    group = county_hqs["430102"].groups.get(code="testing")
    group.members.set([tester])
    make_user("kf-worker", role="grid_worker", region="430104")  # no group member there: the county's task workers
    due = at("2022-05-10", "11:00")

    def spec(n: int, region: str) -> dict:
        return {"key": f"retest:tube:{n}", "kind": TaskKind.RETEST, "region_code": region, "group_code": "testing",
                "title": f"混管阳性复核 T{n}", "due_at": due, "context_type": "tube", "context_id": n,
                "context_label": f"T{n}", "priority": "urgent"}  # fmt: skip

    one = [services.auto_task(**spec(n, r)) for n, r in ((1, "430102001"), (2, "430104001001"))]
    earlier = services.auto_task(**spec(3, "430102"))
    delivered = []
    services.deliver = lambda users, title, body: delivered.append((sorted(u.username for u in users), title))
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            got = services.auto_tasks([spec(11, "430102001"), spec(3, "430102"), spec(12, "430104001001"),
                                       spec(11, "430102001")])  # fmt: skip
        assert delivered == []  # handed to the senders only once the transaction commits
        for callback in callbacks:
            callback()
    finally:
        from cordon.command.senders import deliver

        services.deliver = deliver
    assert [t.auto_key for t in got] == ["retest:tube:11", "retest:tube:3", "retest:tube:12", "retest:tube:11"]
    assert got[1] == earlier and got[0] == got[3]  # issued before, and repeated in the batch: one task each
    assert Task.objects.filter(auto_key__startswith="retest:tube:").count() == 5
    for mine, theirs in ((got[0], one[0]), (got[2], one[1])):
        a, b = _issued(mine), _issued(theirs)
        assert a[0][1].replace("T11", "T1").replace("T12", "T2") == b[0][1]
        assert a[0][:1] + a[0][2:11] == b[0][:1] + b[0][2:11]
        assert a[1] == b[1] == [("issued", "", TaskStatus.ISSUED, None, "")]
        assert [n[:2] for n in a[2]] == [n[:2] for n in b[2]] and a[2]
        assert a[3][:2] == b[3][:2] and {k: v for k, v in a[3][2].items() if k != "context"} == \
            {k: v for k, v in b[3][2].items() if k != "context"}  # fmt: skip
    assert [n.key for n in Notification.objects.filter(task=got[0])] == [f"assigned:{got[0].pk}:u{tester.pk}"]
    assert [users for users, _title in delivered] == [["cz-tester"], ["kf-worker"]]
    assert [problem for _n, problem in verify_chain()][-1] is None
    assert services.auto_tasks([spec(11, "430102001")]) == [got[0]]  # issued again: nothing new
    assert Task.objects.filter(auto_key__startswith="retest:tube:").count() == 5
