from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from cordon.core.models import ApiToken
from cordon.core.roles import CAPABILITIES
from cordon.core.tokens import revoke_token

router = Router(tags=["me"])


class MeOut(Schema):
    username: str
    display_name: str
    role: str
    region_code: str | None
    region_name: str | None
    capabilities: list[str]


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@router.get("/me", response=MeOut, summary="The calling user and their jurisdiction")
def me(request: HttpRequest):
    u = request.user
    return {
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "region_code": u.region_id,
        "region_name": u.region.name if u.region_id else None,
        "capabilities": sorted(CAPABILITIES.get(u.role, ())),
    }


@router.get("/tokens", response=list[TokenOut], summary="The calling user's API tokens")
def list_tokens(request: HttpRequest):
    return list(ApiToken.objects.filter(user=request.user).order_by("-created_at"))


@router.delete("/tokens/{token_id}", response=TokenOut, summary="Revoke one of the calling user's tokens")
def delete_token(request: HttpRequest, token_id: int):
    from django.shortcuts import get_object_or_404

    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    return revoke_token(request.user, token)
