"""Roles and what each may do.

Capabilities are checked by name in services and views, so a new role is one line here rather than a
hunt through the code for role comparisons.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    COMMANDER = "commander", _("Commander / duty officer")
    INVESTIGATOR = "investigator", _("Investigator")
    TESTING = "testing", _("Testing coordinator")
    ISOLATION = "isolation", _("Isolation / transfer staff")
    GRID_WORKER = "grid_worker", _("Grid worker")
    SUPERVISOR = "supervisor", _("Supervisor")
    ANALYST = "analyst", _("Analyst")
    ADMIN = "admin", _("Administrator")
    MACHINE = "machine", _("Machine client")


# Capabilities. "reveal_personal": may ask for an unmasked view (always audited); "write_people": create or
# edit registry entries; "import": bulk imports; "manage_users": users and tokens for their jurisdiction.
CAPABILITIES: dict[str, frozenset[str]] = {
    Role.COMMANDER: frozenset({"view_people", "reveal_personal", "export_people"}),
    Role.INVESTIGATOR: frozenset({"view_people", "reveal_personal", "write_people", "export_people"}),
    Role.TESTING: frozenset({"view_people", "reveal_personal", "write_people", "import", "export_people"}),
    Role.ISOLATION: frozenset({"view_people", "reveal_personal", "write_people"}),
    Role.GRID_WORKER: frozenset({"view_people", "reveal_personal", "write_people", "export_people"}),
    Role.SUPERVISOR: frozenset({"view_people", "view_audit"}),
    Role.ANALYST: frozenset({"view_people"}),
    Role.ADMIN: frozenset(
        {"view_people", "reveal_personal", "write_people", "import", "export_people", "manage_users", "view_audit"}
    ),
    Role.MACHINE: frozenset({"view_people", "write_people", "import"}),
}


def has_capability(user: object, capability: str) -> bool:
    """Deny by default: anonymous users, users without a region and unknown roles get nothing."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if getattr(user, "region_id", None) is None:
        return False
    return capability in CAPABILITIES.get(getattr(user, "role", ""), frozenset())
