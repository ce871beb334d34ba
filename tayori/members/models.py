"""Member data: attributes defined per workspace, members, lists, consent, suppressions,
segments, and the import/export jobs that move members in and out as CSV."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Operator, Workspace


class Attribute(models.Model):
    """A company-defined member field. Values live in Member.attributes under ``key``."""

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        DATETIME = "datetime", _("Date and time")
        BOOLEAN = "boolean", _("Yes/No")
        CHOICE = "choice", _("Choice")
        MULTI_CHOICE = "multi_choice", _("Multiple choice")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="attributes")
    key = models.SlugField(_("key"), max_length=64)
    label = models.CharField(_("label"), max_length=100)
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.TEXT)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    required = models.BooleanField(_("required"), default=False)
    unique = models.BooleanField(_("unique"), default=False)
    pii = models.BooleanField(_("personal information"), default=False)
    position = models.PositiveIntegerField(_("display order"), default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="attribute_key_unique")]

    def __str__(self):
        return self.label


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")
        BLOCKED = "blocked", _("Blocked")
        # Signed up by empty mail (空メール), not yet confirmed: gets only the confirmation
        # (transactional mail), never broadcast mail.
        PENDING = "pending", _("Awaiting confirmation")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="members")
    email = models.CharField(_("email"), max_length=254, blank=True)  # normalized, lower-case domain
    phone = models.CharField(_("phone"), max_length=20, blank=True)  # E.164
    status = models.CharField(_("status"), max_length=16, choices=Status.choices,
                              default=Status.ACTIVE)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "email"], condition=~models.Q(email=""),
                                    name="member_email_unique"),
            models.UniqueConstraint(fields=["workspace", "phone"], condition=~models.Q(phone=""),
                                    name="member_phone_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self):
        return self.email or self.phone or f"#{self.pk}"


class MemberList(models.Model):
    """A static group of members that operators add to and remove from."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="lists")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    public = models.BooleanField(
        _("offered in the preference center"), default=False,
        help_text=_("Recipients can join and leave it from the link in each mail."))
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(Member, through="ListMembership", related_name="lists")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="list_name_unique")]

    def __str__(self):
        return self.name


class ListMembership(models.Model):
    member_list = models.ForeignKey(MemberList, on_delete=models.CASCADE)
    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member_list", "member"],
                                               name="list_membership_unique")]

    def __str__(self):
        return f"{self.member_id} in {self.member_list_id}"


class ConsentRecord(models.Model):
    """Evidence of opt-in (and its withdrawal) as 特定電子メール法 asks a sender to keep."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="consents")
    # The record outlives its member: the law asks for the evidence to be kept, so deleting a
    # member detaches its consents and keeps the address they were given for.
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="consents")
    address = models.CharField(_("address or number"), max_length=254, blank=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices,
                               default=Channel.EMAIL)
    given_at = models.DateTimeField(_("given at"), default=timezone.now)
    method = models.CharField(_("how"), max_length=100, help_text=_("web form, paper, import…"))
    source = models.CharField(_("source"), max_length=200, blank=True)
    wording_version = models.CharField(_("wording version"), max_length=50, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=400, blank=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawn_method = models.CharField(_("withdrawn how"), max_length=100, blank=True)

    class Meta:
        ordering = ["-given_at"]

    def __str__(self):
        return f"{self.channel} consent: {self.address or self.member_id} ({self.method})"


class Suppression(models.Model):
    """An address or phone number that must not be sent to, whoever it belongs to."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="suppressions")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.EMAIL)
    value = models.CharField(_("address or number"), max_length=254)
    reason = models.CharField(_("reason"), max_length=200)
    source = models.CharField(_("source"), max_length=100, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    # The delivery whose bounce or complaint caused it (a plain id: members sits below delivery).
    delivery_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "value"],
                                               name="suppression_unique")]

    def __str__(self):
        return f"{self.value}: {self.reason}"


class Segment(models.Model):
    """A saved audience: a condition tree (see members.segments) evaluated when used."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    definition = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"],
                                               name="segment_name_unique")]

    def __str__(self):
        return self.name


class Job(models.Model):
    """A CSV import or export running in the background; the UI and CLI poll its progress."""

    class Kind(models.TextChoices):
        IMPORT = "import", _("Import")
        EXPORT = "export", _("Export")

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    options = models.JSONField(default=dict, blank=True)  # mode, encoding, mapping, masking…
    file_name = models.CharField(max_length=255, blank=True)
    input_path = models.CharField(max_length=500, blank=True)
    output_path = models.CharField(max_length=500, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{line, column, reason}], first N
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.pk} ({self.state})"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.processed / self.total) if self.total else 0
