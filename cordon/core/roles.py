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


# Capabilities, by module. "reveal_personal": may ask for an unmasked view (always audited).
#   people:     view_people, write_people, reveal_personal, export_people, import
#   cases:      view_cases, write_cases (cases, investigations, contacts, clusters)
#   screening:  view_screening, write_screening (campaigns, sites, tubes), scan (sampling terminals),
#               lab_results (receive tubes, import results)
#   isolation:  view_isolation, write_isolation (sites, placements, transfers, releases)
#   command:    view_command, dispatch (issue and reassign tasks), work_tasks (acknowledge / complete),
#               inspect (inspections, accountability), publish_bulletin, triage_tipoffs
#   platform:   manage_users, view_audit
_ALL_VIEW = {"view_people", "view_cases", "view_screening", "view_isolation", "view_command"}
CAPABILITIES: dict[str, frozenset[str]] = {
    Role.COMMANDER: frozenset(
        _ALL_VIEW | {"reveal_personal", "export_people", "dispatch", "work_tasks", "publish_bulletin", "triage_tipoffs"}
    ),
    Role.INVESTIGATOR: frozenset(
        {
            "view_people",
            "reveal_personal",
            "write_people",
            "export_people",
            "view_cases",
            "write_cases",
            "view_isolation",
            "view_screening",
            "view_command",
            "work_tasks",
        }
    ),
    Role.TESTING: frozenset(
        {
            "view_people",
            "reveal_personal",
            "write_people",
            "import",
            "export_people",
            "view_screening",
            "write_screening",
            "scan",
            "lab_results",
            "view_cases",
            "view_command",
            "work_tasks",
        }
    ),
    Role.ISOLATION: frozenset(
        {
            "view_people",
            "reveal_personal",
            "write_people",
            "view_cases",
            "view_isolation",
            "write_isolation",
            "view_command",
            "work_tasks",
        }
    ),
    Role.GRID_WORKER: frozenset(
        {
            "view_people",
            "reveal_personal",
            "write_people",
            "export_people",
            "view_cases",
            "view_screening",
            "view_isolation",
            "view_command",
            "work_tasks",
        }
    ),
    Role.SUPERVISOR: frozenset(_ALL_VIEW | {"view_audit", "inspect"}),
    Role.ANALYST: frozenset(_ALL_VIEW),
    Role.ADMIN: frozenset(
        _ALL_VIEW
        | {
            "reveal_personal",
            "write_people",
            "import",
            "export_people",
            "manage_users",
            "view_audit",
            "write_cases",
            "write_screening",
            "write_isolation",
            "dispatch",
            "work_tasks",
            "publish_bulletin",
            "triage_tipoffs",
            "inspect",
            "lab_results",
        }
    ),
    Role.MACHINE: frozenset({"view_people", "write_people", "import", "scan", "lab_results", "view_screening"}),
}


def has_capability(user: object, capability: str) -> bool:
    """Deny by default: anonymous users, users without a region and unknown roles get nothing."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if getattr(user, "region_id", None) is None:
        return False
    return capability in CAPABILITIES.get(getattr(user, "role", ""), frozenset())
