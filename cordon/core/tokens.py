"""Bearer tokens for lab and sampling terminals: shown once, stored as a SHA-256, revocable."""

from __future__ import annotations

import copy
import hashlib
import secrets
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from cordon.core import audit
from cordon.core.models import ApiToken

TOKEN_PREFIX = "cdn_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: Any, name: str, *, actor: Any = None) -> tuple[ApiToken, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=secret[:12], digest=digest(secret))
        audit.record(actor or user, "token.create", token, region_code=user.region_id or "",
                     changes={"user": user.username, "name": name})  # fmt: skip
    return token, secret


def revoke_token(actor: Any, token: ApiToken) -> ApiToken:
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _known.pop(token.digest, None)
        audit.record(actor, "token.revoke", token, region_code=token.user.region_id or "")
    return token


# A terminal posts many batches a second: looking its token up in the database each time cost more than a
# small batch's own work. Each process keeps what it learnt for a few seconds; revoking in this process
# takes effect at once, in the others within TOKEN_TTL_S (and deactivating the user likewise).
TOKEN_TTL_S = 5.0
_known: dict[str, tuple[float, Any]] = {}


def forget_tokens() -> None:
    _known.clear()


def authenticate_token(secret: str) -> Any | None:
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    key = digest(secret)
    now_s = time.monotonic()
    hit = _known.get(key)
    if hit is not None and hit[0] > now_s:
        # A copy per request: a handler may set attributes on request.user.
        return copy.copy(hit[1]) if hit[1] is not None else None
    token = ApiToken.objects.select_related("user", "user__region").filter(digest=key).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        user = None
    else:
        user = token.user
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    if len(_known) > 10_000:
        _known.clear()
    _known[key] = (now_s + TOKEN_TTL_S, user)
    return copy.copy(user) if user is not None else None
