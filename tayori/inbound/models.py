"""Inbound data: the bounces and complaints that came back for deliveries, each workspace's rules
for acting on them, and the empty-mail sign-up addresses (空メール) with the mails they received."""

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Workspace
from tayori.delivery.models import Delivery, Source
from tayori.inbound.reasons import LABELS, REASONS
from tayori.members.models import Member, MemberList

REASON_CHOICES = [(reason, LABELS[reason]) for reason in REASONS]


class Via(models.TextChoices):
    """How a bounce or complaint reached Tayori."""

    MX = "mx", _("Returned mail")  # a report delivered to tayori mx
    SMTP = "smtp", _("SMTP reply")  # the relay refused the recipient while sending
    SES = "ses", _("Amazon SES")
    SENDGRID = "sendgrid", _("SendGrid")


def _feed_key() -> str:
    return secrets.token_urlsafe(32)


def _raw_field():
    return models.BinaryField(blank=True, default=b"")


class Bounce(models.Model):
    """One recipient a delivery did not reach, with the classifier's verdict and its evidence."""

    # Every index costs each bounce a write: the workspace and source keys lean on the
    # composite indexes below instead of their own.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="bounces",
                                  db_index=False)
    # The source is kept with the row so that rates per send and analysis by stream need no
    # join through the (very large) delivery table.
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="bounces")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="bounces", db_index=False)
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="bounces")
    address = models.CharField(_("address"), max_length=254)
    domain = models.CharField(_("domain"), max_length=253)
    reason = models.CharField(_("reason"), max_length=16, choices=REASON_CHOICES)
    hard = models.BooleanField(_("permanent"))
    # Whether the bounce counts against the address: a carrier's domain filter does not (the
    # member has to allow our domain; the address itself is fine).
    counts = models.BooleanField(default=True)
    via = models.CharField(_("via"), max_length=8, choices=Via.choices, default=Via.MX)
    status = models.CharField(_("status code"), max_length=16, blank=True)
    diagnostic = models.CharField(_("diagnostic"), max_length=1000, blank=True)
    remote_mta = models.CharField(_("remote server"), max_length=253, blank=True)
    action = models.CharField(_("action taken"), max_length=200, blank=True)
    # A provider's id of the event (SES feedbackId, SendGrid sg_event_id): a repeated
    # notification is recognized and not counted twice.
    reference = models.CharField(max_length=100, blank=True)
    raw = _raw_field()  # the report as received, cut at settings.TAYORI_INBOUND_RAW_LIMIT
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "received_at"]),
            models.Index(fields=["workspace", "address", "reason", "received_at"],
                         name="bounce_threshold"),
            models.Index(fields=["source", "counts"]),
        ]

    def __str__(self):
        return f"{self.address}: {self.reason}"


class Complaint(models.Model):
    """A recipient reporting a delivery as spam (ARF feedback, or a provider's complaint event)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="complaints",
                                  db_index=False)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="complaints")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="complaints")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="complaints")
    address = models.CharField(_("address"), max_length=254)
    feedback_type = models.CharField(_("feedback type"), max_length=32, blank=True)
    reporter = models.CharField(_("reported by"), max_length=200, blank=True)
    via = models.CharField(_("via"), max_length=8, choices=Via.choices, default=Via.MX)
    reference = models.CharField(max_length=100, blank=True)  # as Bounce.reference
    raw = _raw_field()
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["workspace", "received_at"])]

    def __str__(self):
        return f"{self.address}: {self.feedback_type or 'complaint'}"


class BounceRule(models.Model):
    """A workspace's rule for one reason: after `threshold` counting bounces within
    `window_days`, suppress the address (for `suppress_days`, or for good when empty).
    Reasons without a rule use DEFAULT_RULES; a rule with threshold 0 never suppresses."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="bounce_rules")
    reason = models.CharField(_("reason"), max_length=16, choices=REASON_CHOICES)
    threshold = models.PositiveSmallIntegerField(
        _("bounces"), help_text=_("0: never suppress automatically."))
    window_days = models.PositiveSmallIntegerField(_("within days"), default=30)
    suppress_days = models.PositiveSmallIntegerField(
        _("suppress for days"), null=True, blank=True, help_text=_("Empty: until removed."))

    class Meta:
        ordering = ["reason"]
        constraints = [models.UniqueConstraint(fields=["workspace", "reason"],
                                               name="bounce_rule_unique")]

    def __str__(self):
        return self.reason


class InboundSettings(models.Model):
    """A workspace's inbound side: the domain empty mails go to, the rates that pause a send,
    and the provider feeds (Amazon SES through SNS, SendGrid) it accepts."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE,
                                     related_name="inbound_settings")
    inbound_domain = models.CharField(
        _("inbound domain"), max_length=253, blank=True,
        help_text=_("Domain of the empty-mail sign-up addresses, e.g. in.example.jp; its MX "
                    "points at Tayori."))
    bounce_rate_limit = models.DecimalField(
        _("pause a send above this bounce rate (%)"), max_digits=5, decimal_places=2, default=5)
    complaint_rate_limit = models.DecimalField(
        _("pause a send above this complaint rate (%)"), max_digits=5, decimal_places=3,
        default=0.1)
    # The secret part of the provider feed URLs (/inbound/ses/<key>/, /inbound/sendgrid/<key>/):
    # it says which workspace a notification is for; the signature says who sent it.
    feed_key = models.CharField(max_length=43, unique=True,
                                default=_feed_key)
    sns_topics = models.TextField(
        _("accepted SNS topic ARNs"), blank=True,
        help_text=_("One per line. Notifications from other topics are refused."))
    sendgrid_public_key = models.TextField(
        _("SendGrid verification key"), blank=True,
        help_text=_("The public key of the Signed Event Webhook (base64)."))

    def __str__(self):
        return f"{self.workspace}: inbound"

    @classmethod
    def of(cls, workspace) -> "InboundSettings":
        return cls.objects.get_or_create(workspace=workspace)[0]


class SignupAddress(models.Model):
    """An empty-mail sign-up address, ``join-<code>@<inbound domain>``: a mail to it from any
    address makes a pending member and answers with a link that confirms the sign-up."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="signup_addresses")
    code = models.SlugField(_("code"), max_length=40, unique=True,
                            help_text=_("The address becomes join-<code>@ the inbound domain."))
    name = models.CharField(_("name"), max_length=200)
    member_list = models.ForeignKey(MemberList, null=True, blank=True, on_delete=models.SET_NULL,
                                    verbose_name=_("add to list"))
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    subject = models.CharField(_("reply subject"), max_length=200)
    text = models.TextField(_("reply text"), help_text=_(
        "Plain text (carrier phones read it best). {{ data.confirm_url }} is the sign-up link."))
    wording_version = models.CharField(_("consent wording version"), max_length=50, blank=True)
    active = models.BooleanField(_("in use"), default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"join-{self.code}"


class EmptyMail(models.Model):
    """One mail received at a sign-up address, and what came of it (the sender rate limit
    counts these)."""

    class Outcome(models.TextChoices):
        REPLIED = "replied", _("Sign-up link sent")
        CONFIRMED = "confirmed", _("Confirmed")
        LIMITED = "limited", _("Too many mails from this sender")
        REFUSED = "refused", _("Address may not sign up")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="empty_mails")
    signup = models.ForeignKey(SignupAddress, on_delete=models.CASCADE, related_name="mails")
    sender = models.CharField(_("sender"), max_length=254)
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["sender", "received_at"])]

    def __str__(self):
        return f"{self.sender}: {self.outcome}"
