"""The demo outbreak builds on a small registry: cases in chains, contacts at every status, check-ins."""

from __future__ import annotations

import random
from datetime import date, timedelta

from django.utils import timezone
from rich.console import Console

from cordon.cases.models import Case, Reclassification
from cordon.core.audit import verify_chain
from cordon.tracing import demo
from cordon.tracing.models import Cluster, Contact, ContactStatus
from tests.conftest import rid


class Ctx:
    def __init__(self, users):
        self.rng = random.Random(1)
        self.seed = 7
        self.today = timezone.localdate()
        self.now = timezone.now()
        self.console = Console(quiet=True)
        self.users = users
        self.shared = {}


def test_demo_outbreak(settings, tmp_path, monkeypatch, make_user, regions):
    from cordon.people.models import Person

    settings.CORDON_DATA_DIR = tmp_path
    monkeypatch.setattr(demo, "TARGET_CASES", 25)
    monkeypatch.setattr(demo, "CHECKIN_PEOPLE", 150)
    people = []
    for i in range(400):
        grid = "430102001001001" if i % 3 else ("430104001001001" if i % 2 else "430202")
        people.append(Person(name=f"人{i}", document_type="resident_id", sex="M",
                             document_number=rid(grid[:6], 1970 + i % 40, 1 + i % 12, 1 + i % 28, i % 500),
                             birth_date=date(1970 + i % 40, 1 + i % 12, 1 + i % 28), region_id=grid))
    Person.objects.bulk_create(people)
    users = {"admin": make_user("admin", role="admin", region="430000"),
             "investigator": make_user("investigator", region="430102"),
             "investigator2": make_user("investigator2", region="430104")}
    ctx = Ctx(users)
    demo.extend_demo(ctx)
    cases = Case.objects.all()
    assert 20 <= cases.count() <= 25
    assert cases.filter(source_case__isnull=False).exists(), "chains"
    assert Reclassification.objects.filter(from_classification="asymptomatic", to_classification="confirmed").exists()
    statuses = set(Contact.objects.values_list("status", flat=True))
    assert {ContactStatus.BECAME_CASE, ContactStatus.RELEASED, ContactStatus.QUARANTINED} <= statuses
    assert Contact.objects.filter(kind="secondary").exists()
    assert Cluster.objects.exists()
    assert list((tmp_path / "checkins").rglob("*.parquet"))
    assert set(ctx.shared["contacts_to_place"]) == set(
        Contact.objects.filter(status__in=["located", "transfer_requested"]).values_list("pk", flat=True))
    assert all(c.reported_at <= timezone.now() for c in cases)
    assert min(c.reported_at for c in cases) >= timezone.now() - timedelta(days=demo.DAYS + 1)
    assert [p for _n, p in verify_chain()][-1] is None, "the audit chain stays valid"
