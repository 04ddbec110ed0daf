"""The notification bell for the page header: ``{% load command_tags %}{% notification_bell %}``."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

from cordon.command.queries import unread_count
from cordon.core.roles import has_capability

register = template.Library()


@register.simple_tag(takes_context=True)
def notification_bell(context: dict[str, Any]) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False) or not has_capability(user, "view_command"):
        return ""
    n = unread_count(user)
    return format_html(
        '<a class="bell{}" id="notification-bell" href="{}">{}<span class="bell-count">{}</span></a>',
        " unread" if n else "", reverse("command:notifications"), _("Notifications"), n,
    )
