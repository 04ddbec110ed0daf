"""Jurisdiction scoping: the one place that turns "who is asking" into a filter.

Every query of personal or case data goes through ``scope``; a user with no region, an inactive user or an
anonymous request gets an empty queryset rather than an error, so forgetting a check fails closed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from cordon.core.roles import has_capability

Q = TypeVar("Q", bound=QuerySet)


def jurisdiction_prefix(user: Any) -> str | None:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    if getattr(user, "region_id", None) is None:
        return None
    return user.region.prefix


def in_jurisdiction(user: Any, region_code: str | None) -> bool:
    prefix = jurisdiction_prefix(user)
    return bool(prefix) and bool(region_code) and str(region_code).startswith(prefix)


def prefix_range(field: str, prefix: str) -> dict[str, str]:
    """A code-prefix match written as a range, which every database answers from a plain b-tree index
    (SQLite's case-insensitive LIKE cannot use one)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return {f"{field}__gte": prefix, f"{field}__lt": upper}


def scope(qs: Q, user: Any, field: str = "region_id") -> Q:
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return qs.none()
    return qs.filter(**prefix_range(field, prefix))


def require(user: Any, capability: str) -> None:
    if not has_capability(user, capability):
        raise PermissionDenied(f"missing capability: {capability}")
