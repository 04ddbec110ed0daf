"""Rebuilding the dashboard's daily figures from the records (``cordon command aggregate``).

The event handlers keep ``DailyFigure`` up to date one event at a time; this recomputes the same figures
from the case and contact tables, for one date or for all, after a bulk load, a restore, or a doubt. The
definitions match the handlers': a case counts on the day it enters a class; a contact is under management
from identification until it is released, becomes a case or is dismissed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from cordon.command.bulletin import load_cases
from cordon.command.models import DailyFigure
from cordon.command.services import case_metrics
from cordon.core import audit

EXIT = {"released", "became_case", "dismissed"}


def compute_all() -> dict[tuple[date, str, str], int]:
    from cordon.cases.models import Case
    from cordon.tracing.models import Contact, ContactEvent

    figures: dict[tuple[date, str, str], int] = defaultdict(int)
    end = timezone.now() + timedelta(days=3650)
    origin = dict(Case.objects.values_list("id", "origin").iterator(chunk_size=20000))
    for c in load_cases(None, end):
        prev = None
        for at, cls in c.steps:
            if cls != prev:
                day = timezone.localdate(at)
                for m in case_metrics(cls, origin.get(c.id, "local"), c.under_control):
                    figures[(day, c.region[:6], m)] += 1
                if prev == "asymptomatic" and cls == "confirmed":
                    figures[(day, c.region[:6], "converted")] += 1
            prev = cls
    exits: dict[int, datetime] = {}
    for cid, _status, at in (ContactEvent.objects.filter(status__in=["became_case", "dismissed"])
                            .values_list("contact_id", "status", "at").iterator(chunk_size=20000)):  # fmt: skip
        exits[cid] = at
    rows = Contact.objects.exclude(status="proposed").values_list("id", "kind", "region_id", "status", "identified_at",
                                                                  "released_at")  # fmt: skip
    for cid, kind, region, status, ident, released in rows.iterator(chunk_size=20000):
        day = timezone.localdate(ident)
        figures[(day, region[:6], f"new_contacts_{kind}")] += 1
        figures[(day, region[:6], f"managed_{kind}")] += 1
        if status in EXIT:
            out = released if status == "released" and released else exits.get(cid, ident)
            figures[(timezone.localdate(out), region[:6], f"managed_{kind}")] -= 1
    return figures


def rebuild(day: date | None = None) -> int:
    """Replace the figures of ``day`` (or all of them) with ones recomputed from the records."""
    figures = compute_all()
    rows = [DailyFigure(date=d, region_code=r, metric=m, value=v) for (d, r, m), v in figures.items()
            if v and (day is None or d == day)]  # fmt: skip
    with transaction.atomic():
        qs = DailyFigure.objects.all() if day is None else DailyFigure.objects.filter(date=day)
        qs.delete()
        DailyFigure.objects.bulk_create(rows, batch_size=5000)
        audit.record("system", "command.aggregate", object_type="command.dailyfigure",
                     object_id=day.isoformat() if day else "all", changes={"rows": len(rows)})  # fmt: skip
    return len(rows)
