"""Incident data: the service catalogue, notice types (a form, templates and a targeting rule
each), incidents and the notices sent about them."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import ApiKey, Operator, Workspace
from tayori.delivery.models import Source
from tayori.members.models import Segment


class Service(models.Model):
    """A service or function of the company that can fail (決済API, 管理画面…). Its ``code`` is
    what members' targeting attribute holds; its name is what operators pick and mail shows."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="incident_services")
    code = models.CharField(_("code"), max_length=100,
                            help_text=_("The value members' service attribute holds."))
    name = models.CharField(_("name"), max_length=200)
    group = models.CharField(_("group"), max_length=100, blank=True,
                             help_text=_("Shown as a heading in the picker, e.g. 決済 or 管理."))
    position = models.PositiveIntegerField(_("display order"), default=0)
    active = models.BooleanField(_("offered in notices"), default=True)

    class Meta:
        ordering = ["position", "group", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "code"],
                                               name="incident_service_code_unique")]

    def __str__(self):
        return self.name


class NoticeType(models.Model):
    """One kind of notice: the fields the operator fills (see incidents.fields), subject and
    body templates that print them as ``notice.<key>``, and whom it reaches."""

    class Target(models.TextChoices):
        SERVICES = "services", _("Members whose service attribute holds a chosen service")
        EVERYONE = "everyone", _("All members")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="notice_types")
    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(_("description"), max_length=300, blank=True)
    position = models.PositiveIntegerField(_("display order"), default=0)
    active = models.BooleanField(_("offered to operators"), default=True)
    fields = models.JSONField(default=list, blank=True)  # [{key, label, kind, required, choices}]
    subject = models.CharField(_("subject"), max_length=300)
    text = models.TextField(_("text body"))
    html = models.TextField(_("HTML body"), blank=True)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    from_address = models.EmailField(_("sender address"))
    reply_to = models.EmailField(_("reply-to"), blank=True)
    target = models.CharField(_("send to"), max_length=16, choices=Target.choices,
                              default=Target.SERVICES)
    target_attribute = models.CharField(
        _("service attribute"), max_length=64, blank=True,
        help_text=_("The member attribute listing each member's services (multiple choice, "
                    "choice or text)."))
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.PROTECT,
                                verbose_name=_("only members of segment"))
    requires_second_confirmation = models.BooleanField(
        _("a second operator confirms"), default=False,
        help_text=_("The notice waits until another operator confirms it."))
    follows = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="followers", verbose_name=_("follows"),
                                help_text=_("A notice of that type offers to start this one "
                                            "with its fields filled in (e.g. 障害復旧 follows "
                                            "障害発生)."))
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"],
                                               name="notice_type_name_unique")]

    def __str__(self):
        return self.name


class Incident(models.Model):
    """One outage as its notices tell it: opened by the first notice, followed by recovery
    and report notices."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="incidents")
    title = models.CharField(_("title"), max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.title


class Notice(models.Model):
    """One notice: the values given, what they made of the templates, the members it was
    meant for, who confirmed it, and the delivery Source that sends it."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        AWAITING = "awaiting_confirmation", _("Awaiting confirmation")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    class Via(models.TextChoices):
        UI = "ui", _("Console")
        API = "api", _("API")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notices")
    type = models.ForeignKey(NoticeType, on_delete=models.PROTECT, related_name="notices")
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="notices")
    values = models.JSONField(default=dict, blank=True)  # cleaned field values by key
    # Rendered for the confirmation screen and the lists (member fields left empty).
    subject = models.CharField(_("subject"), max_length=500, blank=True)
    text = models.TextField(blank=True)
    audience = models.JSONField(null=True, blank=True)  # the segment definition used
    recipients = models.PositiveIntegerField(_("recipients"), default=0)
    status = models.CharField(_("status"), max_length=24, choices=Status.choices,
                              default=Status.DRAFT)
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.UI)
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    confirmed_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    source = models.OneToOneField(Source, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="notice")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self):
        return f"{self.type.name} #{self.pk}"
