"""The command centre's demo step on the test tree (the full demo runs it after the other modules)."""

from __future__ import annotations

import random

import pytest
from django.utils import timezone
from rich.console import Console

from cordon.command.models import AccountabilityAction, Bulletin, Inspection, Task, TaskStatus, TipOff
from cordon.demo.build import DEMO_USERS, DemoContext

pytestmark = pytest.mark.django_db


def test_extend_demo(make_user, make_case):
    from cordon.command import demo
    from cordon.core import events

    users = {}
    for role, username, code, _name in DEMO_USERS:
        users[username] = make_user(username, role=role, region=code)
    case = make_case("430102", "confirmed", timezone.now() - timezone.timedelta(days=2))
    events.emit("case.reported", case=case, user=None)
    ctx = DemoContext(rng=random.Random(1), seed=1, today=timezone.localdate(), now=timezone.now(),
                      console=Console(quiet=True), users=users)  # fmt: skip
    demo.extend_demo(ctx)
    statuses = set(Task.objects.values_list("status", flat=True))
    assert statuses == {s.value for s in TaskStatus}
    assert Task.objects.filter(escalation_level__gt=0).count() >= 2
    assert Task.objects.filter(due_at__lt=timezone.now(), status__in=["issued", "acknowledged"]).count() >= 2
    published = Bulletin.objects.filter(region_code="430000", status="published")
    assert published.count() == 7 and Bulletin.objects.filter(status="superseded").count() == 1
    assert Bulletin.objects.filter(region_code="430100", status="draft").count() == 1
    assert Inspection.objects.count() == 2 and AccountabilityAction.objects.get().tasks.count() == 1
    assert TipOff.objects.count() == 2 and TipOff.objects.filter(status="triaged").count() == 1
    assert users["investigator"].working_groups.get().code == "tracing"
