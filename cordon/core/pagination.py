"""Cursor pagination: keyset on the primary key, so page 10,000 costs what page 1 costs and no list ever
runs an exact COUNT over a table of millions."""

from __future__ import annotations

import base64
import json
from typing import Any

from django.db.models import QuerySet
from ninja import Schema

MAX_LIMIT = 500


class BadCursor(ValueError):
    pass


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if not isinstance(value, int):
            raise TypeError
        return value
    except Exception as exc:
        raise BadCursor("cursor is not one this API issued") from exc


def paginate(qs: QuerySet, cursor: str | None, limit: int, *, newest_first: bool = False) -> tuple[list[Any], str | None]:
    """``newest_first`` walks the keys downwards: what a duty officer wants from a list of cases or tasks."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    if cursor:
        after = decode_cursor(cursor)
        qs = qs.filter(pk__lt=after) if newest_first else qs.filter(pk__gt=after)
    rows = list(qs.order_by("-pk" if newest_first else "pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].pk) if more and rows else None)


class Page(Schema):
    next_cursor: str | None = None
