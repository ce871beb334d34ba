"""Managing endpoints — the one write path for the UI and the API, so both refuse the same URLs
and event names: create with a fresh secret, edit, rotate the secret, enable and disable, and
replay events (one, or every failed one since a time)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.lib import crypto
from tayori.members.values import FieldError
from tayori.webhooks import signing, subscriptions, transport
from tayori.webhooks.events import RETRY_FOR, TYPES
from tayori.webhooks.models import Endpoint, WebhookEvent

# After a rotation the previous secret keeps signing for this long.
ROTATION_OVERLAP = dt.timedelta(hours=24)
_URL = URLValidator(schemes=["http", "https"])


def clean_url(raw: str) -> str:
    url = (raw or "").strip()
    if not url:
        raise FieldError("url", _("A URL is required."))
    if len(url) > 2000:
        raise FieldError("url", _("At most 2,000 characters."))
    try:
        _URL(url)
    except ValidationError:
        raise FieldError("url", _("Enter an http:// or https:// URL.")) from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise FieldError("url", _("Leave user names and passwords out of the URL: every post "
                                  "is signed with the endpoint's secret instead."))
    try:
        literal = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return url
    try:
        transport.check_address(str(literal))
    except transport.Refused:
        raise FieldError("url", _("This address is not public; this installation posts only "
                                  "to public addresses.")) from None
    return url


def clean_events(names) -> list[str]:
    chosen = [name for name in TYPES if name in set(names or ())]
    unknown = sorted(set(names or ()) - set(TYPES))
    if unknown:
        raise FieldError("events", _("Unknown event types: %(names)s") % {
            "names": ", ".join(unknown)})
    if not chosen:
        raise FieldError("events", _("Choose at least one event."))
    return chosen


def secrets_of(endpoint: Endpoint, now: dt.datetime) -> list[str]:
    """The secrets that sign a post now: the current one, and the previous one for a day after
    a rotation."""
    keys = [crypto.decrypt(endpoint.secret)]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        keys.append(crypto.decrypt(endpoint.previous_secret))
    return keys


def create(workspace, *, url: str, events, description: str = "",
           created_by=None) -> tuple[Endpoint, str]:
    """A new active endpoint; returns it and its secret."""
    secret = signing.new_secret()
    endpoint = Endpoint.objects.create(
        workspace=workspace, url=clean_url(url), events=clean_events(events),
        description=(description or "").strip()[:200], secret=crypto.encrypt(secret),
        created_by=created_by)
    return endpoint, secret


def update(endpoint: Endpoint, **changes) -> list[str]:
    """Change url, events and description; returns the names of what changed."""
    cleaners = {"url": clean_url, "events": clean_events,
                "description": lambda text: (text or "").strip()[:200]}
    changed = []
    for name, value in changes.items():
        value = cleaners[name](value)
        if getattr(endpoint, name) != value:
            setattr(endpoint, name, value)
            changed.append(name)
    if changed:
        endpoint.save(update_fields=changed)
    return changed


def rotate(endpoint: Endpoint, *, now: dt.datetime | None = None) -> str:
    """A new secret; the old one signs alongside it for ROTATION_OVERLAP."""
    now = now or timezone.now()
    secret = signing.new_secret()
    endpoint.previous_secret, endpoint.previous_until = endpoint.secret, now + ROTATION_OVERLAP
    endpoint.secret = crypto.encrypt(secret)
    endpoint.save(update_fields=["secret", "previous_secret", "previous_until"])
    return secret


@transaction.atomic
def disable(endpoint: Endpoint, reason: str, *, now: dt.datetime | None = None) -> bool:
    """Stop posting to the endpoint; its waiting events give up (replay them after enabling it
    again). False when it was disabled already."""
    now = now or timezone.now()
    changed = Endpoint.objects.filter(pk=endpoint.pk, active=True).update(
        active=False, disabled_at=now, disabled_reason=reason[:300], resting_until=None)
    if changed:
        WebhookEvent.objects.filter(
            endpoint_id=endpoint.pk,
            status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED]).update(
            status=WebhookEvent.Status.GAVE_UP, claimed_by="",
            last_error="endpoint disabled")
        subscriptions.changed()
        endpoint.refresh_from_db()
    return bool(changed)


def enable(endpoint: Endpoint) -> bool:
    """Post to the endpoint again, starting a fresh failure streak."""
    changed = Endpoint.objects.filter(pk=endpoint.pk, active=False).update(
        active=True, disabled_at=None, disabled_reason="", consecutive_failures=0,
        failing_since=None, resting_until=None)
    if changed:
        subscriptions.changed()
        endpoint.refresh_from_db()
    return bool(changed)


def replay(event: WebhookEvent, *, now: dt.datetime | None = None) -> bool:
    """Send the event again as soon as possible, with a fresh three-day retry window and backoff
    from its first step (the same id and body: receivers that saw it already can tell; its
    earlier attempts stay in the log). False while it is being sent."""
    now = now or timezone.now()
    changed = WebhookEvent.objects.filter(pk=event.pk).exclude(
        status=WebhookEvent.Status.SENDING).update(
        status=WebhookEvent.Status.PENDING, next_attempt_at=now, retry_until=now + RETRY_FOR,
        attempts=0, claimed_by="")
    if changed:
        # The operator asks for it now: the endpoint's rest (after failures) ends too.
        Endpoint.objects.filter(pk=event.endpoint_id, resting_until__gt=now).update(
            resting_until=None)
    return bool(changed)


def replay_failed(endpoint: Endpoint, since: dt.datetime, *,
                  now: dt.datetime | None = None) -> int:
    """Replay every event of the endpoint created since ``since`` that failed or gave up."""
    now = now or timezone.now()
    changed = WebhookEvent.objects.filter(
        endpoint_id=endpoint.pk, created_at__gte=since,
        status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.GAVE_UP]).update(
        status=WebhookEvent.Status.PENDING, next_attempt_at=now, retry_until=now + RETRY_FOR,
        attempts=0, claimed_by="")
    if changed:
        Endpoint.objects.filter(pk=endpoint.pk, resting_until__gt=now).update(resting_until=None)
    return changed
