"""Work that must happen on the clock, not on a request: task reminders and escalation at their deadlines,
coverage figures folded in while a round runs. Each module lists its jobs in ``cordon.<m>.periodic.JOBS``
as ``(name, callable)``; ``cordon worker`` runs them every interval beside the task queue, so a deployment
needs no cron to keep deadlines visible. Every job is idempotent (stamped or watermarked), so running
several workers, or a late run, does no harm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from cordon import modules

log = logging.getLogger("cordon.periodic")

Job = tuple[str, Callable[[], Any]]


def jobs() -> list[Job]:
    out: list[Job] = []
    for _name, mod in modules.each("periodic"):
        out.extend(getattr(mod, "JOBS", []))
    return out


def run_once() -> dict[str, Any]:
    """Run every job once. A failing job is logged and reported, and the others still run: one module's
    bug must not stop another module's deadlines."""
    from django.db import close_old_connections, connection

    def fresh_connection() -> None:
        # A long-lived thread must not hold a connection past its age or after the server dropped it;
        # inside a transaction (a caller's, or a test's) the connection is the caller's to manage.
        if not connection.in_atomic_block:
            close_old_connections()

    results: dict[str, Any] = {}
    for name, fn in jobs():
        fresh_connection()
        try:
            results[name] = fn()
        except Exception as exc:  # reported and logged; the next job still runs
            log.exception("periodic job %s failed", name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    fresh_connection()
    return results


def start(every: float) -> threading.Thread:
    """A daemon thread running the jobs now and then every ``every`` seconds, for the life of the process."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            run_once()
            stop.wait(every)

    thread = threading.Thread(target=loop, name="cordon-periodic", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
