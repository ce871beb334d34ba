"""Every API failure as one JSON shape: ``{"error": {"code", "message", "field"}}``.

Routes raise ``ApiError`` (or let domain errors such as ``ValidationFailed`` and ``Http404``
escape); the handlers installed here turn each into the right status. A 422 also carries every
problem in ``errors`` so a client can fix them in one round. No HTML error page ever leaves /api/.
"""

import logging
from collections.abc import Iterable

from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from tayori.members.services import ValidationFailed
from tayori.members.values import FieldError

logger = logging.getLogger("tayori.api")

CORE_FIELDS = ("email", "phone", "status")


class ApiError(Exception):
    """An error response: HTTP status, a stable machine code and a human message."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 errors: list[dict] | None = None, headers: dict[str, str] | None = None,
                 **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message, "field": self.field}
        if self.errors is not None:
            error["errors"] = self.errors
        error.update(self.extra)
        return {"error": error}


def not_found(what: str | None = None) -> ApiError:
    message = _("%(what)s not found.") % {"what": what} if what else _("Not found.")
    return ApiError(404, "not_found", message)


def conflict(message: str, field: str | None = None, **extra) -> ApiError:
    return ApiError(409, "conflict", message, field=field, **extra)


def invalid(field: str | None, message: str) -> ApiError:
    """A single 422 about one field."""
    return ApiError(422, "validation_error", message, field=field,
                    errors=[{"field": field, "message": message}])


def member_field(field: str) -> str:
    """Where a member field lives in a request body: core fields at the top, the rest under
    ``attributes``."""
    return field if field in CORE_FIELDS else f"attributes.{field}"


def field_errors(errors: Iterable[FieldError]) -> list[dict]:
    return [{"field": member_field(e.field), "message": e.message} for e in errors]


def validation_failed(errors: list[FieldError]) -> ApiError:
    listed = field_errors(errors)
    first = listed[0] if listed else {"field": None, "message": _("Invalid input.")}
    return ApiError(422, "validation_error", first["message"], field=first["field"], errors=listed)


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    """The body of every error response."""

    error: ErrorDetail

    model_config = {"json_schema_extra": {"examples": [
        {"error": {"code": "validation_error", "message": "Not a valid email address.",
                   "field": "email",
                   "errors": [{"field": "email", "message": "Not a valid email address."}]}},
    ]}}


def _ninja_field(loc) -> str | None:
    """("body", "payload", "items", 3, "email") -> "items.3.email"; ("query", "limit") -> "limit"."""
    parts = list(loc or ())
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        kind = parts.pop(0)
        if kind == "body" and len(parts) > 1:
            parts.pop(0)  # the view's parameter name, not part of the JSON document
        elif kind == "body" and parts:
            parts = []  # the body as a whole (missing or not an object)
    return ".".join(str(p) for p in parts) or None


def install(api: NinjaAPI) -> None:
    """Register the handlers that keep every failure in the one JSON shape."""

    def respond(request: HttpRequest, error: ApiError) -> HttpResponse:
        response = api.create_response(request, error.body(), status=error.status)
        for name, value in error.headers.items():
            response[name] = value
        return response

    @api.exception_handler(ApiError)
    def on_api_error(request, exc: ApiError):
        return respond(request, exc)

    @api.exception_handler(ValidationError)
    def on_ninja_validation(request, exc: ValidationError):
        listed = [{"field": _ninja_field(e.get("loc")), "message": str(e.get("msg", "")),
                   "type": e.get("type")} for e in exc.errors]
        first = listed[0] if listed else {"field": None, "message": _("Invalid input.")}
        return respond(request, ApiError(422, "validation_error", first["message"],
                                         field=first["field"], errors=listed))

    @api.exception_handler(ValidationFailed)
    def on_validation_failed(request, exc: ValidationFailed):
        return respond(request, validation_failed(exc.errors))

    @api.exception_handler(FieldError)
    def on_field_error(request, exc: FieldError):
        return respond(request, validation_failed([exc]))

    @api.exception_handler(Http404)
    def on_not_found(request, exc):
        return respond(request, not_found())

    @api.exception_handler(AuthenticationError)
    def on_unauthenticated(request, exc):
        return respond(request, unauthorized("missing_key"))

    @api.exception_handler(HttpError)
    def on_http_error(request, exc: HttpError):
        from tayori.api.parsing import BodyError

        cause = exc.__cause__  # ninja wraps every body parsing failure in a 400 HttpError
        if isinstance(cause, BodyError):
            return respond(request, ApiError(422, "validation_error", cause.message,
                                             field=cause.path,
                                             errors=[{"field": cause.path,
                                                      "message": cause.message}]))
        if isinstance(cause, ValueError):
            return respond(request, ApiError(
                400, "bad_request",
                _("The request body is not valid JSON: %(reason)s") % {"reason": cause}))
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 429: "rate_limited"}
        return respond(request, ApiError(exc.status_code, code.get(exc.status_code, "error"),
                                         str(exc)))

    @api.exception_handler(IntegrityError)
    def on_integrity_error(request, exc):
        # A concurrent write won a uniqueness race that the route's own check could not see.
        return respond(request, conflict(_("This conflicts with an existing record.")))

    @api.exception_handler(Exception)
    def on_crash(request, exc):
        logger.exception("API request failed: %s %s", request.method, request.path)
        return respond(request, ApiError(500, "server_error",
                                         _("Something went wrong on our side. It has been logged.")))


def unauthorized(code: str) -> ApiError:
    messages = {
        "missing_key": _("Send an API key in the header “Authorization: Bearer <key>”."),
        "invalid_key": _("This API key is not valid or has been revoked."),
    }
    return ApiError(401, code, messages[code], headers={"WWW-Authenticate": 'Bearer realm="tayori"'})
