"""API key authentication, declared on each route with the permission it needs.

``@router.get(..., **requires("members.view"))`` attaches ``KeyAuth("members.view")``: the key in
``Authorization: Bearer …`` must exist and not be revoked (401), be used from an allowed network
(403), stay within its rate limit (429) and grant the permission (403). On success the request
carries ``api_key`` and ``workspace``, and every route scopes its queries by that workspace.
"""

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from ninja.security import HttpBearer

from tayori.accounts import permissions
from tayori.accounts.models import ApiKey
from tayori.api import ratelimit
from tayori.api.errors import ApiError, unauthorized
from tayori.lib.netaddr import client_ip

# last_used_at is shown to operators to the minute; writing it on every call would turn each read
# into a write.
LAST_USED_PRECISION = timedelta(minutes=1)
LANGUAGES = ("ja", "en")


class KeyAuth(HttpBearer):
    """Bearer API key that must grant ``permission``."""

    def __init__(self, permission: str):
        if permission not in permissions.ALL:
            raise ValueError(f"unknown permission {permission!r}")
        self.permission = permission
        super().__init__()

    def __call__(self, request: HttpRequest) -> ApiKey:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            raise unauthorized("missing_key")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("missing_key")
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        found = getattr(request, "tayori_found_key", None)
        key = found[1] if found and found[0] == token else ApiKey.find(token)
        if key is None:
            raise unauthorized("invalid_key")
        request.api_key = key
        request.workspace = key.workspace
        _activate_locale(request, key)
        if not key.allows_ip(client_ip(request)):
            raise ApiError(403, "ip_not_allowed",
                           _("This API key may not be used from your network address."))
        window = ratelimit.hit(key.key_hash[:24])
        request.tayori_rate_headers = window.headers()
        if not window.allowed:
            raise ApiError(429, "rate_limited",
                           _("Too many requests for this API key. Retry in %(seconds)s seconds.")
                           % {"seconds": window.reset_in},
                           headers={"Retry-After": str(window.reset_in)})
        if not key.grants(self.permission):
            raise ApiError(403, "permission_denied",
                           _("This API key does not have the “%(permission)s” permission.")
                           % {"permission": self.permission})
        _touch(key)
        return key


def requires(permission: str) -> dict:
    """Route keyword arguments declaring the permission an operation needs."""
    return {"auth": KeyAuth(permission), "openapi_extra": {"x-permission": permission}}


def can(request: HttpRequest, permission: str) -> bool:
    key = getattr(request, "api_key", None)
    return key is not None and key.grants(permission)


def require_pii(request: HttpRequest, what: str) -> None:
    """Refuse to search or filter by personal data for keys that would only see it masked."""
    if not can(request, "members.view_pii"):
        raise ApiError(403, "pii_not_allowed",
                       _("Looking up by %(what)s needs the “members.view_pii” permission: this "
                         "API key only sees personal data masked.") % {"what": what})


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def _activate_locale(request: HttpRequest, key: ApiKey) -> None:
    """Messages in the language the client asks for (Accept-Language), else the workspace's;
    naive times in requests are read in the workspace's time zone."""
    language = key.workspace.language if key.workspace.language in LANGUAGES else "ja"
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower().split("-")[0]
        if tag in LANGUAGES:
            language = tag
            break
    translation.activate(language)
    request.LANGUAGE_CODE = language
    timezone.activate(key.workspace.time_zone)
