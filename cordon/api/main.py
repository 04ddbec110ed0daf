"""The one Ninja API object. Each app contributes a router; errors share one schema."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError
from ninja.security import HttpBearer, django_auth

from cordon.core.pagination import BadCursor
from cordon.core.tokens import authenticate_token
from cordon.people.validation import FieldError


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None
    details: list[dict] | None = None


class Error(Schema):
    error: ErrorDetail


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        user = authenticate_token(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="Cordon API",
    version="1",
    description="Outbreak command platform. Session auth for the browser, bearer tokens for machine clients.",
    auth=[BearerToken(), django_auth],
    urls_namespace="api",
)


def _error(request: HttpRequest, status: int, code: str, message: str, **extra) -> HttpResponse:
    body = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return api.create_response(request, {"error": body}, status=status)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(PermissionDenied)
def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, "forbidden", str(exc) or "forbidden")


@api.exception_handler(AuthenticationError)
def unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "unauthorized", "authentication required")


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _error(request, 422, "invalid", "request did not validate", details=exc.errors)


@api.exception_handler(FieldError)
def field_error(request: HttpRequest, exc: FieldError) -> HttpResponse:
    return _error(request, 422, "invalid_field", exc.reason, field=exc.field)


@api.exception_handler(BadCursor)
def bad_cursor(request: HttpRequest, exc: BadCursor) -> HttpResponse:
    return _error(request, 400, "bad_cursor", str(exc), field="cursor")


def _register_routers() -> None:
    from cordon.core.api import router as core_router
    from cordon.modules import each

    api.add_router("/", core_router)
    for name, module in each("api"):
        router = getattr(module, "router", None)
        if router is not None:
            api.add_router(f"/{name}", router)


_register_routers()
