"""Navigation shared by every page. Modules register here as they are built."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from cordon.core.roles import has_capability

BASE: list[dict[str, Any]] = [
    {"url": "home", "label": _("Overview"), "capability": None},
    {"url": "people", "label": _("People"), "capability": "view_people"},
]
TAIL: list[dict[str, Any]] = [
    {"url": "regions", "label": _("Regions"), "capability": None},
    {"url": "audit", "label": _("Audit"), "capability": "view_audit"},
]


def nav_items() -> list[dict[str, Any]]:
    """Each module's AppConfig may carry ``nav = [(url name, label, capability or None), ...]``."""
    items = list(BASE)
    for config in apps.get_app_configs():
        for url, label, capability in getattr(config, "nav", ()):
            items.append({"url": url, "label": label, "capability": capability})
    return items + TAIL


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return {"nav_modules": []}
    visible = []
    current = getattr(getattr(request, "resolver_match", None), "view_name", "")
    for m in nav_items():
        if m["capability"] is not None and not has_capability(user, m["capability"]):
            continue
        try:
            href = reverse(m["url"])
        except NoReverseMatch:
            continue  # a module whose pages are not mounted in this deployment
        ns = m["url"].split(":")[0]
        active = current == m["url"] or (":" in m["url"] and current.startswith(ns + ":"))
        visible.append({**m, "href": href, "active": active})
    return {"nav_modules": visible, "jurisdiction": getattr(user, "region", None)}
