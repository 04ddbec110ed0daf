"""Domain events: how a lower module tells the modules above it that something happened, without
importing them. Handlers run synchronously inside the emitting service's transaction, so an automatic
task (say, "investigate this case within 24 h") commits or rolls back together with the event itself.

Events and their payload keywords (the contract between modules):

- ``case.reported``: case, user
- ``case.reclassified``: case, old, new, user
- ``case.status_changed``: case, old, new, user
- ``contacts.identified``: contacts (list), user
- ``contact.status_changed``: contact, old, new, user
- ``pools.positive``: pools (list of (tube, retests)), user: one or many positive pools (a lab file's at once)
- ``retest.resulted``: retest, user
- ``placement.created``: placement, user
- ``placement.released``: placement, user
- ``placement.due_for_release``: placement
- ``screening.region_finished``: campaign, region_code
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]
_handlers: dict[str, list[Handler]] = defaultdict(list)


def subscribe(event: str, handler: Handler) -> None:
    if handler not in _handlers[event]:
        _handlers[event].append(handler)


def unsubscribe(event: str, handler: Handler) -> None:
    if handler in _handlers[event]:
        _handlers[event].remove(handler)


def emit(event: str, **payload: Any) -> list[Any]:
    return [handler(**payload) for handler in list(_handlers.get(event, ()))]


def handlers(event: str) -> list[Handler]:
    return list(_handlers.get(event, ()))
