from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema

from cordon.regions import queries

router = Router(tags=["regions"])


class RegionOut(Schema):
    code: str
    name: str
    name_en: str
    level: str
    parent_code: str | None
    population: int | None


def _out(r) -> dict:
    return {"code": r.code, "name": r.name, "name_en": r.name_en, "level": r.level, "parent_code": r.parent_id,
            "population": r.population}  # fmt: skip


@router.get("/tree", response=dict, summary="The region tree below a root, a few levels deep")
def tree(request: HttpRequest, root: str | None = None, depth: int = 1):
    return queries.tree(request.user, root, depth)


@router.get("/{code}", response=RegionOut)
def get_region(request: HttpRequest, code: str):
    return _out(queries.get_region(request.user, code))


@router.get("/{code}/children", response=list[RegionOut])
def children(request: HttpRequest, code: str):
    return [_out(r) for r in queries.children(request.user, code)]
