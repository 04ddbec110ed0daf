"""Background work of the command centre (django-tasks): the reminder/escalation tick."""

from __future__ import annotations

from django_tasks import task

from cordon.command import services


@task()
def tick_task() -> dict[str, int]:
    """Run by the worker on a schedule (or by ``cordon command tick`` from cron): idempotent."""
    return services.tick()
