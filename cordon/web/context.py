"""Navigation shared by every page. Modules register here as they are built."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from cordon.core.roles import has_capability

MODULES: list[dict[str, Any]] = [
    {"key": "home", "url": "home", "label": _("Overview"), "capability": None},
    {"key": "people", "url": "people", "label": _("People"), "capability": "view_people"},
    {"key": "regions", "url": "regions", "label": _("Regions"), "capability": None},
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return {"nav_modules": []}
    visible = [m for m in MODULES if m["capability"] is None or has_capability(user, m["capability"])]
    return {"nav_modules": visible, "jurisdiction": getattr(user, "region", None)}
