"""Background work of isolation, run by ``cordon worker`` once a day (enqueue from a scheduler or cron):
record the test days that passed without a result (the make-up rule extends those stays) and announce who
is due for release today (the command module turns each into a release task)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django_tasks import task


@task()
def daily_isolation(as_of: str | None = None) -> dict[str, Any]:
    from cordon.isolation.services import emit_due_for_release, sweep_missed

    day = date.fromisoformat(as_of) if as_of else None
    missed = sweep_missed(None, as_of=day)
    due = emit_due_for_release(day)
    return {"missed": missed, "due_for_release": due}
