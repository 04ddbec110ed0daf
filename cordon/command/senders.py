"""How notifications leave the system besides the in-app bell: e-mail and SMS, behind one small protocol.

Deployments plug their SMS gateway in by dotted path (``CORDON_SMS_SENDER``) without touching Cordon; the
default is the log sender, which writes a line per message so a test or an offline demo can see what
would have gone out. A sender that fails never blocks the task workflow: the in-app notification is
already stored.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import send_mail
from django.utils.module_loading import import_string

log = logging.getLogger("cordon.command.notify")


class Sender(Protocol):
    channel: str

    def send(self, user: Any, subject: str, body: str) -> bool:
        """Deliver one message to one user; return False when the user has no address on this channel."""


class LogSender:
    """Console/log backend: one log line per message."""

    channel = "log"

    def send(self, user: Any, subject: str, body: str) -> bool:
        log.info("notify %s: %s — %s", getattr(user, "username", user), subject, body)
        return True


class EmailSender:
    """Django's configured e-mail backend (SMTP in production, locmem in tests)."""

    channel = "email"

    def send(self, user: Any, subject: str, body: str) -> bool:
        address = getattr(user, "email", "")
        if not address:
            return False
        send_mail(subject, body, getattr(settings, "DEFAULT_FROM_EMAIL", None), [address], fail_silently=False)
        return True


def configured_senders() -> list[Sender]:
    """E-mail plus the SMS backend named by ``CORDON_SMS_SENDER`` (default: the log sender)."""
    paths = [
        getattr(settings, "CORDON_EMAIL_SENDER", "cordon.command.senders.EmailSender"),
        getattr(settings, "CORDON_SMS_SENDER", "cordon.command.senders.LogSender"),
    ]
    return [import_string(p)() for p in paths if p]


def deliver(users: list[Any], subject: str, body: str) -> int:
    sent = 0
    for sender in configured_senders():
        for user in users:
            try:
                sent += bool(sender.send(user, subject, body))
            except Exception:  # a gateway outage must not undo the task's state change
                log.exception("sender %s failed for %s", type(sender).__name__, getattr(user, "pk", user))
    return sent
