"""Provider feeds: the URLs a sending service posts its bounces and complaints to, when a
workspace sends through Amazon SES or SendGrid rather than (or besides) its own relay.

- ``POST /inbound/ses/<feed key>/`` — an Amazon SNS subscription (HTTPS) to the topics SES
  publishes Bounce and Complaint notifications (or event-publishing events) to. The signature
  is checked against SNS's certificate; a topic must be in the workspace's accepted list; a
  SubscriptionConfirmation for such a topic is confirmed by the feed itself.
- ``POST /inbound/sendgrid/<feed key>/`` — SendGrid's Event Webhook with "Signed Event
  Webhook" on; the workspace keeps SendGrid's verification key.

The feed key (InboundSettings.feed_key) says which workspace the URL is for, the signature who
sent the post. Answers: 200 once acted on (also when nothing in it concerned Tayori), 400 for a
body that is not the provider's format, 403 for a bad signature, topic, certificate URL or a
stale post, 404 for an unknown key, 413 over MAX_BODY, 503 when SNS's certificate could not be
fetched (SNS tries again). What the events do is inbound.providers.record's."""

from __future__ import annotations

import json
import logging

from django.http import Http404, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tayori.accounts.access import public
from tayori.inbound.models import InboundSettings, Via
from tayori.inbound.providers import FeedError, Malformed, record, sendgrid, ses, sns

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def _settings_of(key: str) -> InboundSettings:
    found = InboundSettings.objects.filter(feed_key=key).first() if key else None
    if found is None:
        raise Http404("unknown feed")
    return found


def _body(request) -> bytes | None:
    """The request body, or None when it is over MAX_BODY (read no further then)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        return None
    body = request.body
    return body if len(body) <= MAX_BODY else None


def _refused(error: FeedError, feed: str, inbound: InboundSettings) -> HttpResponse:
    log.warning("%s feed of workspace %s: %s %s", feed, inbound.workspace_id, error.status,
                error)
    return HttpResponse(str(error), status=error.status, content_type="text/plain")


@public
@csrf_exempt  # posted by a provider; the signature is the credential
@require_POST
def ses_feed(request, key: str):
    inbound = _settings_of(key)
    body = _body(request)
    if body is None:
        return HttpResponse("request too large", status=413, content_type="text/plain")
    try:
        message = json.loads(body)
    except ValueError:  # UnicodeDecodeError too
        message = None
    if not isinstance(message, dict):
        return _refused(Malformed("not an SNS message in JSON"), "ses", inbound)
    try:
        sns.verify(message, sns.topics_of(inbound.sns_topics))
        if message["Type"] == sns.SUBSCRIBE:
            sns.confirm(message)
            return JsonResponse({"confirmed": message["TopicArn"]})
        if message["Type"] == sns.UNSUBSCRIBE:
            log.info("SNS unsubscribed workspace %s from %s", inbound.workspace_id,
                     message["TopicArn"])
            return JsonResponse({})
        found = ses.events(message["Message"], message_id=message["MessageId"])
    except FeedError as error:
        return _refused(error, "ses", inbound)
    tally = record(found, workspace_id=inbound.workspace_id, via=Via.SES)
    return JsonResponse(tally.as_dict())


@public
@csrf_exempt  # posted by a provider; the signature is the credential
@require_POST
def sendgrid_feed(request, key: str):
    inbound = _settings_of(key)
    body = _body(request)
    if body is None:
        return HttpResponse("request too large", status=413, content_type="text/plain")
    try:
        sendgrid.verify(body, signature=request.headers.get(sendgrid.SIGNATURE_HEADER, ""),
                        timestamp=request.headers.get(sendgrid.TIMESTAMP_HEADER, ""),
                        key_text=inbound.sendgrid_public_key)
        found = sendgrid.events(body)
    except FeedError as error:
        return _refused(error, "sendgrid", inbound)
    tally = record(found, workspace_id=inbound.workspace_id, via=Via.SENDGRID)
    return JsonResponse(tally.as_dict())


app_name = "inbound_feeds"
urlpatterns = [
    path("ses/<str:key>/", ses_feed, name="ses"),
    path("sendgrid/<str:key>/", sendgrid_feed, name="sendgrid"),
]
