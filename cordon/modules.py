"""The modules of the product, in dependency order. URLs, API routers, navigation, demo steps and CLI
commands are discovered from each module by convention, so adding a module never means editing the
platform's files:

- ``cordon.<m>.urls``: ``urlpatterns``, mounted at ``/<m>/``
- ``cordon.<m>.api``: ``router``, mounted at ``/api/v1/<m>/``
- ``cordon.<m>.apps``: the AppConfig's ``nav`` list of ``(url name, label, capability or None)``
- ``cordon.<m>.demo``: ``extend_demo(ctx)``, run after the province and people exist
- ``cordon.<m>.commands``: ``register(app)`` adding Typer commands
- ``cordon.<m>.periodic``: ``JOBS``, ``(name, callable)`` pairs that ``cordon worker`` runs on the clock
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = ["regions", "people", "cases", "tracing", "screening", "isolation", "command", "analytics"]


def optional(module: str) -> ModuleType | None:
    """Import ``cordon.<module>`` if it exists; a missing module is normal, a broken one is not."""
    name = f"cordon.{module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def each(submodule: str) -> list[tuple[str, ModuleType]]:
    out = []
    for m in MODULES:
        mod = optional(f"{m}.{submodule}")
        if mod is not None:
            out.append((m, mod))
    return out
