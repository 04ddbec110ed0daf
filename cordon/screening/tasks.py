"""Background work of screening: bringing the pre-aggregated coverage forward, so that readers add only a
small live part. Enqueue ``refresh_coverage`` from a scheduler (every minute or so during a round) and after
a registry import; ``cordon worker`` runs it."""

from __future__ import annotations

from typing import Any

from django_tasks import task


@task(queue_name="default")
def refresh_coverage(campaign_id: int | None = None, rebuild: bool = False) -> dict[str, Any]:
    """One campaign, or every campaign not yet finished when ``campaign_id`` is None."""
    from cordon.screening import coverage
    from cordon.screening.models import Campaign

    if campaign_id is None:
        return {"refreshed": coverage.refresh_all(rebuild=rebuild)}
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return {"refreshed": 0}
    return {"refreshed": int(coverage.refresh(campaign, rebuild=rebuild) is not None)}
