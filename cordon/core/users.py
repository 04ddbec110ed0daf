"""Creating users: each belongs to exactly one region and one role."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from cordon.core import audit
from cordon.core.roles import Role


class UserError(ValueError):
    pass


def create_user(
    username: str,
    *,
    role: str,
    region_code: str,
    password: str | None,
    display_name: str = "",
    actor: Any = "cli",
    check_password: bool = True,
) -> Any:
    Region = apps.get_model("regions", "Region")  # by label: core never imports the apps above it
    User = get_user_model()
    if role not in Role.values:
        raise UserError(f"unknown role {role!r}; one of: {', '.join(Role.values)}")
    region = Region.objects.filter(code=region_code).first()
    if region is None:
        raise UserError(f"unknown region code {region_code!r}")
    if User.objects.filter(username=username).exists():
        raise UserError(f"user {username!r} exists already")
    user = User(username=username, role=role, region=region, display_name=display_name)
    if password:
        if check_password:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise UserError("; ".join(exc.messages)) from exc
        user.set_password(password)
    else:
        user.set_unusable_password()
    with transaction.atomic():
        user.save()
        audit.record(actor, "user.create", user, region_code=region.code, changes={"role": role})
    return user
