"""Webhook data: a workspace's endpoints (URL, subscribed event types, sealed signing secret,
failure streak), one row per event per endpoint that is at once the queue and its status, and
the log of every HTTP attempt."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Operator, Workspace


class Endpoint(models.Model):
    """A URL of the company's that Tayori posts events to. The secret signs every post; it is
    sealed at rest (tayori.lib.crypto) and shown only to operators who manage webhooks."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = models.JSONField(_("events"), default=list)  # event type names (events.TYPES)
    secret = models.TextField()  # sealed whsec_…
    # After a rotation the old secret still signs (a second v1 signature) until this time, so
    # receivers can switch without losing events.
    previous_secret = models.TextField(blank=True)
    previous_until = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # The failure streak: attempts failed in a row and when the first of them failed. A streak
    # of three days disables the endpoint (dispatch.DISABLE_AFTER); any 2xx ends it.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    # While failing, the endpoint rests: nothing is sent to it before this time but one probe.
    resting_until = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.url


class WebhookEvent(models.Model):
    """One event for one endpoint: the exact JSON body it is sent (so every retry is the same
    bytes) and where its delivery stands. Several endpoints told of one event share its uid."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed, will retry")
        GAVE_UP = "gave_up", _("Gave up")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="webhook_events")
    uid = models.CharField(max_length=40)  # evt_…, the payload's id
    type = models.CharField(max_length=40)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When it is due; while it is being sent, when its claim lapses (a crashed sender's events
    # come back then, see dispatch.claim).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    retry_until = models.DateTimeField()  # after this, a failed attempt gives up
    claimed_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The claim reads a few waiting rows of each endpoint, oldest due first.
            models.Index(fields=["endpoint", "next_attempt_at"], name="webhook_event_due",
                         condition=Q(status__in=["pending", "failed", "sending"])),
            models.Index(fields=["endpoint", "status", "created_at"],
                         name="webhook_event_endpoint"),
        ]

    def __str__(self):
        return f"{self.type} {self.uid} → endpoint {self.endpoint_id} ({self.status})"


class Attempt(models.Model):
    """One POST of an event: written before the request goes out, completed when it returns,
    so a crash mid-request still leaves a line in the log."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="attempts")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.CharField(max_length=300, blank=True)
    response = models.TextField(blank=True)  # the start of the receiver's answer

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["endpoint", "-id"], name="webhook_attempt_endpoint")]

    def __str__(self):
        return f"attempt {self.number} of {self.event_id}"
