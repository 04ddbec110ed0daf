"""Bearer tokens for lab and sampling terminals: shown once, stored as a SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
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
        audit.record(actor, "token.revoke", token, region_code=token.user.region_id or "")
    return token


def authenticate_token(secret: str) -> Any | None:
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user", "user__region").filter(digest=digest(secret)).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
