"""Background work of tracing: the co-location engine runs in ``cordon worker``, never in a web request."""

from __future__ import annotations

from typing import Any

from django_tasks import task


@task(queue_name="analytics")
def colocation_task(run_id: int) -> dict[str, Any]:
    from cordon.tracing.models import ColocationRun
    from cordon.tracing.services import run_colocation_for

    run = run_colocation_for(ColocationRun.objects.get(pk=run_id))
    return {"run": run.pk, "status": run.status, "matches": run.matches, "proposed": run.proposed}
