"""Public tip-offs: the form, the tracking code, triage into a task, the status page and the rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from cordon.command import services
from cordon.command.models import Task, TaskStatus, TipOff

pytestmark = pytest.mark.django_db

FORM = {"category": "gathering", "region_code": "430102", "place": "芙蓉区某小区3栋",
        "description": "晚上有二十多人在棋牌室聚集打牌，未戴口罩。", "contact": "13900001111"}  # fmt: skip


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_submit_track_triage_resolve(make_user, county_hqs, client_for):
    cmd = make_user("fr_cmd", role="commander", region="430102")
    worker = make_user("fr_grid", role="grid_worker", region="430102")
    public = Client(enforce_csrf_checks=True)
    form_page = public.get("/command/public/tipoff/")
    assert form_page.status_code == 200
    token = form_page.cookies["csrftoken"].value
    assert public.post("/command/public/tipoff/", FORM).status_code == 403  # CSRF-protected
    r = public.post("/command/public/tipoff/", {**FORM, "csrfmiddlewaretoken": token})
    assert r.status_code == 200
    tip = TipOff.objects.get()
    assert tip.code in r.content.decode() and len(tip.code) == 10
    status = public.get(f"/command/public/tipoff/status?code={tip.code.lower()}").content.decode()
    assert "已收到" in status or "Received" in status
    for secret in ("棋牌室", "13900001111", "3栋"):
        assert secret not in status  # only status and dates are public
    # triage: a task for the county's community group
    group = county_hqs["430102"].groups.get(code="community")
    services.triage_tipoff(cmd, tip, decision="task", group=group, due_at=timezone.now() + timedelta(hours=12))
    tip.refresh_from_db()
    assert tip.status == TipOff.Status.TRIAGED and tip.task.assignee_group == group and tip.task.kind == "tipoff"
    with pytest.raises(services.TransitionError):
        services.triage_tipoff(cmd, tip, decision="dismiss", note="x")
    services.transition(worker, tip.task, TaskStatus.ACKNOWLEDGED)
    services.transition(worker, tip.task, TaskStatus.DONE, note="已劝散并处罚")
    tip.refresh_from_db()
    assert tip.status == TipOff.Status.RESOLVED
    status = public.get(f"/command/public/tipoff/status?code={tip.code}").content.decode()
    assert "已劝散" not in status
    assert client_for(cmd).get("/command/tipoffs/").status_code == 200
    assert Task.objects.count() == 1


def test_invalid_tipoff_names_the_field(regions):
    r = Client().post("/command/public/tipoff/", {**FORM, "region_code": "999999"})
    assert r.status_code == 400 and "region_code" in r.content.decode()
    assert not TipOff.objects.exists()


def test_rate_limit_per_ip(regions, settings):
    settings.CORDON_TIPOFFS_PER_HOUR = 3
    c = Client(REMOTE_ADDR="10.1.2.3")
    codes = [c.post("/command/public/tipoff/", FORM).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert TipOff.objects.count() == 3
    assert Client(REMOTE_ADDR="10.9.9.9").post("/command/public/tipoff/", FORM).status_code == 200


def test_dismiss_needs_a_note_and_scoping(make_user, regions, county_hqs):
    tip = services.submit_tipoff(category="concealment", region_code="430104", place="岳麓区", description="隐瞒行程未报备的人员")
    fr = make_user("fr_cmd", role="commander", region="430102")
    yl = make_user("yl_cmd", role="commander", region="430104")
    from django.core.exceptions import PermissionDenied, ValidationError

    with pytest.raises(PermissionDenied):
        services.triage_tipoff(fr, tip, decision="dismiss", note="x")
    with pytest.raises(ValidationError):
        services.triage_tipoff(yl, tip, decision="dismiss", note="")
    services.triage_tipoff(yl, tip, decision="dismiss", note="重复举报")
    assert TipOff.objects.get().status == TipOff.Status.DISMISSED
