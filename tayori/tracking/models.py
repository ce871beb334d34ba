"""What recipients did with their mail: append-only events, one response row per delivery (its
firsts and counts, what segments and step mails read), hourly rollups and breakdowns (what the
dashboards read), the links of each source and the workspace's tracking settings."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Workspace
from tayori.delivery.models import Delivery, Source
from tayori.members.models import Member


class Kind(models.TextChoices):
    OPEN = "open", _("Open")
    CLICK = "click", _("Click")
    CONVERSION = "conversion", _("Conversion")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe")


class Machine(models.TextChoices):
    """Why an event was not a person: shown apart and left out of the human rates."""

    HUMAN = "", _("Person")
    PROXY = "proxy", _("Privacy proxy (e.g. Apple Mail)")
    SCANNER = "scanner", _("Security scanner")
    HEAD = "head", _("HEAD request")
    BOT = "bot", _("Automated client")


class TrackingSettings(models.Model):
    class IpMode(models.TextChoices):
        FULL = "full", _("Keep the full address")
        TRUNCATED = "truncated", _("Keep the network only (IPv4 /24, IPv6 /48)")
        NONE = "none", _("Do not keep it")

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE,
                                     related_name="tracking_settings")
    ip_mode = models.CharField(_("IP addresses of events"), max_length=10,
                               choices=IpMode.choices, default=IpMode.TRUNCATED)
    conversion_days = models.PositiveSmallIntegerField(
        _("conversion window (days)"), default=7,
        help_text=_("A conversion counts for the recipient's last click within this many days."))
    scanner_seconds = models.PositiveSmallIntegerField(
        _("scanner window (seconds)"), default=10,
        help_text=_("Clicks this soon after sending, or on several links at once, are "
                    "treated as a security scanner's."))

    def __str__(self):
        return f"tracking settings of {self.workspace}"


class TrackingDomain(models.Model):
    """A host that serves Tayori's links for a workspace (CNAME to Tayori)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="tracking_domains")
    host = models.CharField(_("host"), max_length=253, unique=True,
                            help_text=_("e.g. t.example.jp"))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host"]

    def __str__(self):
        return self.host


class Link(models.Model):
    """A tracked link of a source, by its position in the HTML; the click endpoint redirects
    only to these."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="links")
    index = models.PositiveIntegerField()
    url = models.TextField()
    title = models.CharField(_("title"), max_length=200, blank=True)

    class Meta:
        ordering = ["source", "index"]
        constraints = [models.UniqueConstraint(fields=["source", "index"], name="link_unique")]

    def __str__(self):
        return self.title or self.url


class Event(models.Model):
    """One thing one recipient did. Never updated."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(Delivery, null=True, on_delete=models.SET_NULL, related_name="+")
    member = models.ForeignKey(Member, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    link_index = models.PositiveIntegerField(null=True)
    value = models.BigIntegerField(null=True)  # a conversion's amount (yen)
    at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=400, blank=True)
    machine = models.CharField(max_length=10, choices=Machine.choices, blank=True)

    class Meta:
        indexes = [models.Index(fields=["source", "kind", "at"], name="event_source"),
                   models.Index(fields=["member", "kind", "at"], name="event_member"),
                   models.Index(fields=["delivery", "kind"], name="event_delivery")]

    def __str__(self):
        return f"{self.kind} of delivery {self.delivery_id}"


class Response(models.Model):
    """A delivery's responses so far: people's first and last times and counts (machines are
    counted apart). Segments ("opened mail X"), step mails and the response log read this."""

    delivery = models.OneToOneField(Delivery, primary_key=True, on_delete=models.CASCADE,
                                    related_name="response")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, null=True, on_delete=models.SET_NULL, related_name="+")
    opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    value = models.BigIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True)
    clicked_at = models.DateTimeField(null=True)
    last_clicked_at = models.DateTimeField(null=True)
    last_link = models.PositiveIntegerField(null=True)  # a conversion is credited to it
    converted_at = models.DateTimeField(null=True)
    unsubscribed_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["member", "source"], name="response_member"),
                   models.Index(fields=["source", "opened_at"], name="response_source")]

    def __str__(self):
        return f"responses to delivery {self.delivery_id}"


class Rollup(models.Model):
    """Events of one kind for one source in one hour (UTC): all, first per recipient
    (``unique``: summed over hours it is the unique count), machines', and conversion value."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    total = models.PositiveBigIntegerField(default=0)
    unique = models.PositiveBigIntegerField(default=0)
    machine = models.PositiveBigIntegerField(default=0)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "hour", "kind"],
                                               name="rollup_unique")]
        indexes = [models.Index(fields=["workspace", "hour"], name="rollup_workspace")]

    def __str__(self):
        return f"{self.kind} of source {self.source_id} at {self.hour}"


class Breakdown(models.Model):
    """People's events of one kind for one source by one dimension: ``link`` (the link index),
    ``client`` (mail client or browser), ``device`` (desktop, phone, tablet) or ``domain``
    (the recipient's domain, carriers named)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    dimension = models.CharField(max_length=8)
    value = models.CharField(max_length=100)
    total = models.PositiveBigIntegerField(default=0)
    unique = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "kind", "dimension", "value"],
                                               name="breakdown_unique")]

    def __str__(self):
        return f"{self.dimension}={self.value} ({self.kind}) of source {self.source_id}"
