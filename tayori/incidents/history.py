"""The public page a notice mail links to: every incident notice the recipient received from
this workspace, newest first, as they received it.

The link carries a signed token of the delivery it came in (delivery.tokens, purpose
``NOTICES``), so it names one recipient and cannot be forged; it is refused once that delivery
is older than ``VALID_DAYS``. The page shows that recipient's own notices only — found by the
member, or by the address when the delivery had no member — and nothing else of the workspace.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy

from django.http import Http404
from django.shortcuts import render
from django.urls import path
from django.utils import timezone, translation
from django.views.decorators.http import require_http_methods
from inscriptis import get_text

from tayori.accounts.access import public
from tayori.delivery import tokens
from tayori.delivery.composing import Composer
from tayori.delivery.engine import member_rows
from tayori.delivery.models import Delivery, Source
from tayori.delivery.rendering import RenderError
from tayori.members.masking import mask_email

VALID_DAYS = 180
SHOWN = 50


def delivery_of(token: str, *, now: dt.datetime | None = None) -> Delivery | None:
    """The delivery a history token names, if the token is genuine and not too old."""
    numbers = tokens.read(tokens.NOTICES, token)
    if not numbers or len(numbers) != 1:
        return None
    delivery = Delivery.objects.filter(pk=numbers[0]).select_related("workspace").first()
    now = now or timezone.now()
    if delivery is None or delivery.queued_at < now - dt.timedelta(days=VALID_DAYS):
        return None
    return delivery


def received(delivery: Delivery) -> list[Delivery]:
    """The notices the recipient of ``delivery`` was sent in its workspace, newest first."""
    rows = Delivery.objects.filter(workspace_id=delivery.workspace_id,
                                   source__kind=Source.Kind.NOTICE, status="sent")
    if delivery.member_id is not None:
        rows = rows.filter(member_id=delivery.member_id)
    else:
        rows = rows.filter(member__isnull=True, address=delivery.address)
    return list(rows.order_by("-sent_at", "-id")[:SHOWN])


def _words(delivery: Delivery, member) -> dict | None:
    """The notice as it was sent to this recipient (its text part, else the HTML's text)."""
    try:
        rendered = Composer.for_source(delivery.source_id).render(
            delivery.pk, delivery.address, member, delivery.data)
    except RenderError:
        return None
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    part = message.get_body(("plain", "html"))
    body = part.get_content().replace("\r\n", "\n") if part else ""
    if part is not None and part.get_content_type() == "text/html":
        body = get_text(body)
    return {"subject": rendered.subject, "body": body, "sent_at": delivery.sent_at}


@public
@require_http_methods(["GET"])
def notice_history(request, token: str):
    delivery = delivery_of(token)
    if delivery is None:
        raise Http404("unknown link")
    rows = received(delivery)
    members = member_rows([d.member_id for d in rows if d.member_id])
    notices = [words for d in rows if (words := _words(d, members.get(d.member_id)))]
    workspace = delivery.workspace
    with translation.override(workspace.language or "ja"), timezone.override(workspace.time_zone):
        response = render(request, "incidents/history.html", {
            "workspace": workspace, "address": mask_email(delivery.address),
            "notices": notices})
    response["X-Robots-Tag"] = "noindex"
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


app_name = "notice_history"
urlpatterns = [path("n/<str:token>", notice_history, name="history")]
