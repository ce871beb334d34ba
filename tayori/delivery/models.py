"""Delivery data: message sources, the per-recipient Delivery rows that are at once the queue and
the delivery log, sender domains with their DKIM keys, SMTP relays, and the sandbox outbox."""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Operator, Workspace
from tayori.members.models import Member, Segment


class Priority(models.IntegerChoices):
    """Claim order: higher first, so urgent rows overtake any bulk backlog."""

    BULK = 0, _("Bulk")
    NORMAL = 5, _("Normal")
    URGENT = 9, _("Urgent")


class Charset(models.TextChoices):
    UTF8 = "utf-8", "UTF-8"
    ISO2022JP = "iso-2022-jp", "ISO-2022-JP"


class Source(models.Model):
    """One message sent to many (a bulk send) or to one (a transactional message): what to send,
    to whom, and where the send stands. Campaigns and notices will own a Source each."""

    class Kind(models.TextChoices):
        BULK = "bulk", _("Bulk send")
        TRANSACTIONAL = "transactional", _("Transactional")
        STEP = "step", _("Step mail")  # stays running; the scheduler adds rows as members fall due
        NOTICE = "notice", _("Incident notice")  # fanned out at once on the urgent lane

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Sending")
        PAUSED = "paused", _("Paused")
        QUIET = "quiet", _("Waiting for quiet hours to end")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BULK)
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices,
                              default=Status.DRAFT)
    priority = models.SmallIntegerField(_("priority"), choices=Priority.choices,
                                        default=Priority.BULK)
    # Content: Jinja2 templates rendered per recipient (see delivery.rendering).
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    from_address = models.EmailField(_("sender address"))
    reply_to = models.EmailField(_("reply-to"), blank=True)
    subject = models.CharField(_("subject"), max_length=500)
    html = models.TextField(_("HTML body"), blank=True)
    text = models.TextField(_("text body"), blank=True)
    tracking = models.BooleanField(_("track opens and clicks"), default=True)
    tracking_host = models.CharField(_("tracking domain"), max_length=253, blank=True,
                                     help_text=_("Empty: the workspace's tracking host."))
    charset = models.CharField(_("charset"), max_length=16, choices=Charset.choices,
                               default=Charset.UTF8)
    # Segment definitions the templates test per recipient as ``shown[i]`` (conditional blocks
    # and subject variants), evaluated by the engine with the segments' Python evaluator.
    conditions = models.JSONField(default=list, blank=True)
    # Audience (bulk): a segment, or a definition of its own (a campaign's included minus
    # excluded segments and lists), evaluated at fan-out time.
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.PROTECT,
                                verbose_name=_("segment"))
    audience = models.JSONField(null=True, blank=True)
    once_per_address = models.BooleanField(_("send once per address"), default=True)
    # Control
    scheduled_at = models.DateTimeField(_("start at"), null=True, blank=True)
    quiet_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    max_per_hour = models.PositiveIntegerField(_("at most per hour"), null=True, blank=True)
    contacts = models.CharField(_("notify"), max_length=500, blank=True,
                                help_text=_("Addresses told when the send starts, ends or "
                                            "pauses, separated by commas."))
    pause_reason = models.CharField(max_length=300, blank=True)
    # Progress, kept by the engine so progress pages never count the whole table.
    total = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)  # reason -> count, from fan-out
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # When an operator last resumed it after a pause: bounce and complaint rates are judged
    # from then on, so a send paused for them is not paused again by the same bounces.
    resumed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "scheduled_at"])]

    def __str__(self):
        return self.name

    # Broadcast mail (bulk, steps) and transactional mail (messages, notices) are separate
    # streams: each may have its own relays and Return-Path domain, so a bulk send's reputation
    # never delays an order confirmation.
    TRANSACTIONAL_KINDS = ("transactional", "notice")

    @property
    def stream(self) -> str:
        return "transactional" if self.kind in self.TRANSACTIONAL_KINDS else "broadcast"


class SourceFile(models.Model):
    """A file a source carries: an attachment, or an inline image the HTML shows by cid."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    data = models.BinaryField()
    content_id = models.CharField(max_length=200, blank=True)  # set for inline images

    def __str__(self):
        return self.filename


class Delivery(models.Model):
    """One recipient of one source: the queue row the engine claims and the log line support
    reads ("did this customer get our mail, and if not, why?")."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        HELD = "held", _("Paused")  # its source is paused or in quiet hours
        CLAIMED = "claimed", _("Sending")
        SENT = "sent", _("Sent")
        DEFERRED = "deferred", _("Deferred")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        CANCELLED = "cancelled", _("Cancelled")

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")

    # Every index costs each claim and each result a write (status changes, so updates are never
    # HOT): the foreign keys lean on the composite indexes below instead of their own.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="deliveries",
                                  db_index=False)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="deliveries",
                               db_index=False)
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="deliveries")
    address = models.CharField(_("address"), max_length=254)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.BULK)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.QUEUED)
    skip_reason = models.CharField(_("reason"), max_length=32, blank=True)
    data = models.JSONField(null=True, blank=True)  # per-message merge data (transactional)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # When a deferred row may be retried, or when a claimed row's lease runs out: both return
    # to the queue once this time has passed (see queue.maintain).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    smtp_reply = models.CharField(_("SMTP reply"), max_length=500, blank=True)
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # failed, skipped or cancelled

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The claim walks only queued rows, highest priority first, oldest first.
            models.Index(F("priority").desc(), F("id"), condition=Q(status="queued"),
                         name="delivery_claim"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due",
                         condition=Q(status__in=["deferred", "claimed"])),
            models.Index(fields=["source", "status"], name="delivery_source_status"),
            models.Index(fields=["workspace", "address"], name="delivery_address"),
            models.Index(fields=["workspace", "queued_at"], name="delivery_queued"),
        ]

    def __str__(self):
        return f"{self.address} ({self.status})"


class SenderDomain(models.Model):
    """A domain mail is sent from, with the DKIM keys that sign it (encrypted at rest)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="sender_domains")
    domain = models.CharField(_("domain"), max_length=253)
    selector = models.CharField(_("DKIM selector"), max_length=63, default="tayori")
    rsa_key = models.TextField(blank=True)  # encrypted PEM
    ed25519_key = models.TextField(blank=True)  # encrypted PEM; optional second signature
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain"]
        constraints = [models.UniqueConstraint(fields=["workspace", "domain"],
                                               name="sender_domain_unique")]

    def __str__(self):
        return self.domain

    @property
    def ed25519_selector(self) -> str:
        # Each key needs its own DNS record, hence its own selector.
        return f"{self.selector}-ed"


class Stream(models.TextChoices):
    """Which mail a relay carries (see Source.stream)."""

    ALL = "all", _("All mail")
    BROADCAST = "broadcast", _("Broadcast mail only")
    TRANSACTIONAL = "transactional", _("Transactional mail only")


class Relay(models.Model):
    """An SMTP server Tayori hands mail to. Several per workspace share the load by weight and
    take over from each other when one is down."""

    class Tls(models.TextChoices):
        REQUIRED = "required", _("STARTTLS required")
        OPPORTUNISTIC = "opportunistic", _("STARTTLS when offered")
        OFF = "off", _("No STARTTLS")
        IMPLICIT = "implicit", _("Implicit TLS (SMTPS)")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="relays")
    name = models.CharField(_("name"), max_length=100)
    host = models.CharField(_("host"), max_length=253)
    port = models.PositiveIntegerField(_("port"), default=25)
    tls = models.CharField(_("TLS"), max_length=16, choices=Tls.choices,
                           default=Tls.OPPORTUNISTIC)
    username = models.CharField(_("user name"), max_length=200, blank=True)
    password = models.TextField(blank=True)  # encrypted
    max_connections = models.PositiveSmallIntegerField(_("connections at most"), default=4)
    max_per_connection = models.PositiveIntegerField(_("messages per connection"), default=1000)
    max_per_hour = models.PositiveIntegerField(_("messages per hour at most"), null=True,
                                               blank=True)
    weight = models.PositiveSmallIntegerField(_("weight"), default=1)
    stream = models.CharField(_("carries"), max_length=16, choices=Stream.choices,
                              default=Stream.ALL)
    active = models.BooleanField(_("in use"), default=True)
    down_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.host}:{self.port})"


class OutboxMessage(models.Model):
    """A message the sandbox caught instead of sending: shown in the UI exactly as it would
    have left, until the workspace switches to real relays."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="outbox")
    delivery = models.OneToOneField(Delivery, null=True, on_delete=models.SET_NULL,
                                    related_name="outbox_message")
    source = models.ForeignKey(Source, null=True, on_delete=models.SET_NULL)
    mail_from = models.CharField(max_length=300)
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=500, blank=True)
    raw = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["workspace", "created_at"])]

    def __str__(self):
        return f"{self.recipient}: {self.subject}"


class DeliverySettings(models.Model):
    """How a workspace sends: the sandbox outbox (the default) or its relays, and the domains
    that appear in every message's Return-Path, links and Message-ID."""

    class Mode(models.TextChoices):
        SANDBOX = "sandbox", _("Sandbox outbox (nothing leaves)")
        RELAYS = "relays", _("SMTP relays")

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE,
                                     related_name="delivery_settings")
    mode = models.CharField(_("sending"), max_length=8, choices=Mode.choices,
                            default=Mode.SANDBOX)
    bounce_domain = models.CharField(_("bounce domain"), max_length=253, blank=True,
                                     help_text=_("Return-Path domain; defaults to the sender's."))
    transactional_bounce_domain = models.CharField(
        _("bounce domain for transactional mail"), max_length=253, blank=True,
        help_text=_("Return-Path domain of messages and notices; defaults to the bounce "
                    "domain."))
    tracking_host = models.CharField(_("tracking host"), max_length=253, blank=True,
                                     help_text=_("Host in click and open links, e.g. "
                                                 "t.example.jp."))
    quiet_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True)

    def __str__(self):
        return f"{self.workspace}: {self.mode}"

    @classmethod
    def of(cls, workspace) -> "DeliverySettings":
        return cls.objects.get_or_create(workspace=workspace)[0]
