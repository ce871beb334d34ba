"""Idempotency-Key: a POST sent again with the same key gets the first answer, not a second
delivery, member or notice.

The key is kept 24 hours per API key. The same key with the same request (method, path,
query and body) answers the stored status and body with ``Idempotent-Replayed: true``; with a
different request 422; while the first call is still running 409. Two identical calls racing
each other meet at the unique (API key, key) row: one inserts it and runs, the other is told
to wait, so exactly one delivery is created.

Answers that say nothing about the request's effect are not kept, so a retry may still succeed:
server errors, authentication and permission refusals, and rate limiting; their effect, if any,
is rolled back. Kept answers are sealed (crypto.encrypt): one may carry a webhook secret.
"""

import datetime as dt
import hashlib

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.accounts.models import ApiKey, IdempotentRequest
from tayori.api.errors import ApiError
from tayori.lib import crypto
from tayori.lib.netaddr import client_ip

HEADER = "Idempotency-Key"
KEEP = dt.timedelta(hours=24)
# A call that has run this long without an answer died with its process: its key is free again.
ABANDONED = dt.timedelta(minutes=5)
NOT_KEPT = frozenset({401, 403, 429})
MAX_LENGTH = 255


def applies(request: HttpRequest) -> bool:
    return request.method == "POST" and HEADER in request.headers


def run(request: HttpRequest, view, render_error) -> HttpResponse:
    """Call ``view`` under the request's Idempotency-Key. ``render_error(ApiError)`` makes the
    JSON error response of the API."""
    key = request.headers[HEADER].strip()
    if not key or len(key) > MAX_LENGTH or not key.isascii() or not key.isprintable():
        return render_error(ApiError(
            422, "validation_error", _("Idempotency-Key must be 1 to %(max)s printable ASCII "
                                       "characters.") % {"max": MAX_LENGTH}, field=HEADER))
    api_key = _key_of(request)
    if api_key is None:  # the view answers 401 itself; nothing to remember
        return view()
    fingerprint = _fingerprint(request)
    claimed, earlier = _claim(api_key, key, fingerprint)
    if not claimed:
        if earlier.fingerprint != fingerprint:
            return render_error(ApiError(
                422, "idempotency_key_reused",
                _("This Idempotency-Key was used for a different request in the last 24 "
                  "hours."), field=HEADER))
        if earlier.status_code is None:
            return render_error(ApiError(
                409, "idempotency_in_progress",
                _("A request with this Idempotency-Key is still running. Retry shortly."),
                field=HEADER, headers={"Retry-After": "1"}))
        return _replay(earlier)
    # The effect and the stored answer commit together: an answer that is not kept (a server
    # error after the view wrote something, a refusal) rolls the effect back with it, so a
    # retry with the same key never makes a second one.
    kept = False
    try:
        with transaction.atomic():
            response = view()
            # A database error the API answered as a 4xx leaves nothing to keep either.
            kept = (response.status_code < 500 and response.status_code not in NOT_KEPT
                    and not transaction.get_connection().needs_rollback)
            if kept:
                IdempotentRequest.objects.filter(pk=claimed.pk).update(
                    status_code=response.status_code,
                    content_type=response.get("Content-Type", "")[:100],
                    body=crypto.encrypt(response.content).encode())
            else:
                transaction.set_rollback(True)
    finally:
        if not kept:
            claimed.delete()
    return response


def _key_of(request: HttpRequest) -> ApiKey | None:
    """The request's API key if it may be used from here; otherwise the view refuses it."""
    scheme, _sep, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    key = ApiKey.find(token.strip())
    request.tayori_found_key = (token.strip(), key)  # KeyAuth looks it up once, not twice
    return key if key is not None and key.allows_ip(client_ip(request)) else None


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode() + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _claim(api_key: ApiKey, key: str, fingerprint: str):
    """Insert the running row (committed at once, so a racing call sees it). Returns
    (row, None) when this call may run, or (None, the earlier row)."""
    now = timezone.now()
    scope = IdempotentRequest.objects.filter(api_key=api_key, key=key)
    for _attempt in range(3):
        # This key's expired answers go as it makes new calls (an index on (api key, time)).
        IdempotentRequest.objects.filter(api_key=api_key, created_at__lt=now - KEEP).delete()
        scope.filter(status_code__isnull=True, created_at__lt=now - ABANDONED).delete()
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(
                    workspace_id=api_key.workspace_id, api_key=api_key, key=key,
                    fingerprint=fingerprint, created_at=now), None
        except IntegrityError:
            earlier = scope.first()
            if earlier is not None:
                return None, earlier
            # the earlier row expired between our insert and our read: try again
    raise RuntimeError("idempotency key could not be claimed")


def _replay(row: IdempotentRequest) -> HttpResponse:
    # Sealed at rest: an answer may carry a webhook secret or recipients' addresses.
    response = HttpResponse(crypto.decrypt_bytes(bytes(row.body).decode()),
                            status=row.status_code,
                            content_type=row.content_type or "application/json")
    response["Idempotent-Replayed"] = "true"
    return response
