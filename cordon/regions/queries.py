"""Reads of the tree, limited to the user's jurisdiction plus the ancestors that give it context."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from cordon.core.scoping import jurisdiction_prefix, prefix_range
from cordon.regions.models import Region


def regions_for(user: Any) -> QuerySet[Region]:
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Region.objects.none()
    return Region.objects.filter(**prefix_range("code", prefix))


def root_for(user: Any) -> Region:
    if not jurisdiction_prefix(user):
        raise Http404("no jurisdiction")
    return user.region


def get_region(user: Any, code: str) -> Region:
    region = regions_for(user).filter(code=code).first()
    if region is None:
        raise Http404("no such region in your jurisdiction")
    return region


def children(user: Any, code: str) -> list[Region]:
    parent = get_region(user, code)
    return list(Region.objects.filter(parent=parent).annotate(n_children=Count("children")).order_by("code"))


def tree(user: Any, root_code: str | None = None, depth: int = 1) -> dict[str, Any]:
    """A nested dict ``depth`` levels below the root: one query per level, never the whole province."""
    root = get_region(user, root_code) if root_code else root_for(user)
    depth = max(0, min(depth, 5))

    def node(r: Region) -> dict[str, Any]:
        return {"code": r.code, "name": r.name, "name_en": r.name_en, "level": r.level,
                "population": r.population, "children": []}  # fmt: skip

    top = node(root)
    frontier = {root.code: top}
    for _ in range(depth):
        if not frontier:
            break
        kids = Region.objects.filter(parent_id__in=list(frontier)).order_by("code")
        nxt: dict[str, dict[str, Any]] = {}
        for k in kids:
            n = node(k)
            frontier[k.parent_id]["children"].append(n)
            nxt[k.code] = n
        frontier = nxt
    return top
