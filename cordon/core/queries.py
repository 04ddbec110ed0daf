"""Reads of the audit trail for supervisors: who looked at or changed what, inside their jurisdiction."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from cordon.core.models import AuditEvent
from cordon.core.scoping import jurisdiction_prefix, prefix_range, require


def audit_events_for(user: Any, *, action: str = "", actor: str = "", object_ref: str = "") -> QuerySet[AuditEvent]:
    """Events recorded against a region in the user's jurisdiction; events with no region (system and
    platform actions) only for a province-level jurisdiction."""
    require(user, "view_audit")
    prefix = jurisdiction_prefix(user)
    cond = Q(**prefix_range("region_code", prefix))
    if len(prefix) <= 2:
        cond |= Q(region_code="")
    qs = AuditEvent.objects.filter(cond)
    if action:
        qs = qs.filter(action__startswith=action)
    if actor:
        qs = qs.filter(actor_label=actor)
    if object_ref:
        kind, _, oid = object_ref.partition(":")
        qs = qs.filter(object_type=kind, object_id=oid) if oid else qs.filter(object_type=kind)
    return qs.order_by("-seq")
