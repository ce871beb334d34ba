"""The v1 API object: routers under /api/v1/, the JSON body parser, error handlers, and the
response headers every call carries (rate limit, language)."""

import datetime as dt
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from tayori.api import (
    attributes,
    bounces,
    consents,
    delivery,
    errors,
    idempotency,
    lists,
    members,
    messages,
    notices,
    segments,
    suppressions,
    webhooks,
)
from tayori.api.errors import ApiError
from tayori.api.parsing import TayoriParser

DESCRIPTION = """
Tayori's REST API: members and their attributes, lists, segments, suppressions and consent
records; transactional messages, bulk sends to segments and the delivery log.

**Authentication.** Create an API key under *Workspace → API keys* and send it as
`Authorization: Bearer tyr_…`. A key belongs to one workspace and carries a set of permissions;
each operation names the one it needs. Keys may be limited to networks (CIDR).

**Personal data.** Keys without `members.view_pii` see email, phone and PII attributes masked
(`ta***@example.jp`) and may not search by them.

**Errors** are JSON: `{"error": {"code": "validation_error", "message": "…", "field": "email"}}`;
a 422 also lists every problem in `error.errors`.

**Pagination.** Lists answer `{"items": [...], "next_cursor": "…"}`; pass `cursor` to get the next
page (`limit` up to 500). Items come in id order, so a walk never skips or repeats one.

**Retries.** Every POST accepts an `Idempotency-Key` header (any unique string, e.g. a UUID, up
to 255 characters). Sending the same request with the same key within 24 hours returns the first
answer (with `Idempotent-Replayed: true`) and creates nothing new (keys are per API key); the same key with a different
request answers 422 `idempotency_key_reused`; while the first call is still running, 409
`idempotency_in_progress`. Retry any timeout or 5xx with the same key.

**Rate limit.** Each key may make a fixed number of requests per minute; every response carries
`X-RateLimit-Limit` and `X-RateLimit-Remaining`, and a 429 carries `Retry-After` (seconds).
"""


IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Send the same key again to get the first answer instead of a second "
                   "effect (kept 24 hours). A different request with the same key: 422; "
                   "while the first is still running: 409.",
}


class TayoriAPI(NinjaAPI):
    """NinjaAPI whose responses all carry the key's rate-limit headers and the language used,
    and whose URL views never answer with HTML."""

    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        return _decorate(request, super().create_temporal_response(request))

    def create_response(self, request, data, *, status=None, temporal_response=None):
        response = super().create_response(request, data, status=status,
                                           temporal_response=temporal_response)
        return _decorate(request, response)

    def get_openapi_operation_id(self, operation) -> str:
        # "members_bulk_upsert", "lists_add_members": stable names for generated clients.
        module = operation.view_func.__module__.rsplit(".", 1)[-1]
        return f"{module}_{operation.view_func.__name__}"

    def get_openapi_schema(self, *args, **kwargs):
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema.get("paths", {}).values():
            if isinstance(operations.get("post"), dict):
                operations["post"].setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
            for operation in operations.values():
                code = operation.get("x-permission") if isinstance(operation, dict) else None
                if code:
                    note = f"**Permission:** `{code}`"
                    text = operation.get("description") or ""
                    operation["description"] = f"{text}\n\n{note}" if text else note
        return schema

    @property
    def urls(self):
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if hasattr(pattern, "callback"):
                pattern.callback = json_only(self, pattern.callback)
                # For the project-wide URL walk: the spec and docs are public; every operation
                # declares its permission with KeyAuth (tayori/api/tests/test_operations.py checks each).
                pattern.callback.tayori_permission = (
                    "public" if pattern.name in ("openapi-json", "openapi-view", "api-root")
                    else "api-key")
        return patterns, app_name, namespace


def _decorate(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    for name, value in getattr(request, "tayori_rate_headers", {}).items():
        response[name] = value
    response["Content-Language"] = translation.get_language() or "ja"
    return response


def json_only(api: TayoriAPI, view):
    """Wrap a URL view: refuse NUL characters in query strings (databases cannot hold them),
    turn any non-JSON error (405 from the router) into the JSON shape, and drop the workspace's
    time zone after the call."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in v for v in values):
                    error = errors.invalid(name.replace("\x00", ""),
                                           _("Text may not contain NUL characters."))
                    return api.create_response(request, error.body(), status=422)
            try:
                if idempotency.applies(request):
                    response = idempotency.run(
                        request, lambda: view(request, *args, **kwargs),
                        lambda error: _error_response(api, request, error))
                else:
                    response = view(request, *args, **kwargs)
            except Http404:  # the API root has no operation
                return api.create_response(request, errors.not_found().body(), status=404)
            if response.status_code >= 400 and "json" not in response.get("Content-Type", ""):
                response = _as_json(api, request, response)
            return response
        finally:
            timezone.deactivate()

    return wrapped


def _error_response(api: TayoriAPI, request, error: ApiError) -> HttpResponse:
    response = api.create_response(request, error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _as_json(api: TayoriAPI, request, response: HttpResponse) -> HttpResponse:
    codes = {405: ("method_not_allowed", _("This method is not allowed here.")),
             404: ("not_found", _("Not found."))}
    code, message = codes.get(response.status_code, ("error", _("The request failed.")))
    converted = api.create_response(request, ApiError(response.status_code, code, message).body(),
                                    status=response.status_code)
    if response.has_header("Allow"):
        converted["Allow"] = response["Allow"]
    return converted


class TayoriEncoder(NinjaJSONEncoder):
    def default(self, o):
        if isinstance(o, dt.datetime) and timezone.is_aware(o):
            # In the workspace's zone (activated by KeyAuth), with its offset: unambiguous, and
            # the same clock the operators see in the UI.
            o = timezone.localtime(o)
        return super().default(o)


class TayoriRenderer(JSONRenderer):
    encoder_class = TayoriEncoder
    json_dumps_params = {"ensure_ascii": False}  # Japanese text as UTF-8, not \\u escapes


api = TayoriAPI(title="Tayori API", version="1", urls_namespace="api", docs_url="/docs",
                description=DESCRIPTION, parser=TayoriParser(), renderer=TayoriRenderer())
errors.install(api)

api.add_router("/v1/members", members.router)
api.add_router("/v1/members", consents.router)
api.add_router("/v1/attributes", attributes.router)
api.add_router("/v1/lists", lists.router)
api.add_router("/v1/segments", segments.router)
api.add_router("/v1/suppressions", suppressions.router)
api.add_router("/v1/messages", messages.router)
api.add_router("/v1/sends", delivery.sends_router)
api.add_router("/v1/deliveries", delivery.deliveries_router)
api.add_router("/v1/bounces", bounces.bounces_router)
api.add_router("/v1/complaints", bounces.complaints_router)
api.add_router("/v1/notices", notices.router)
api.add_router("/v1/notice-types", notices.types_router)
api.add_router("/v1/webhooks", webhooks.router)
