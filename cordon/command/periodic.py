"""The command centre's clock: reminders before a task's deadline, the due notice at it, escalation after."""

from __future__ import annotations

from typing import Any


def _tick() -> Any:
    from cordon.command.services import tick

    return tick()


JOBS = [("command.tick", _tick)]
