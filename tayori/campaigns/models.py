"""Campaign data: campaigns and their approvals, the workspace's approval policy and test
addresses, click notices to a member's assignee, and step mails (sequences of steps that fire on
dates in member data or after a member's response to a mail)."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Operator, Role, Workspace
from tayori.content.models import SenderIdentity, Template
from tayori.delivery.models import Delivery, Source
from tayori.members.models import Member


class Campaign(models.Model):
    """A bulk mail: content from a template (copied when it is scheduled, shared blocks
    excepted), an audience of segments and lists, approvals, and a schedule. Once scheduled
    it owns a delivery Source, whose status then is the campaign's."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        AWAITING = "awaiting", _("Awaiting approval")
        APPROVED = "approved", _("Approved")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        FINISHED = "finished", _("Finished")
        CANCELLED = "cancelled", _("Cancelled")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices,
                              default=Status.DRAFT)
    identity = models.ForeignKey(SenderIdentity, null=True, on_delete=models.PROTECT,
                                 verbose_name=_("sender"))
    template = models.ForeignKey(Template, null=True, on_delete=models.SET_NULL,
                                 verbose_name=_("template"))
    snapshot = models.JSONField(null=True, blank=True)  # template.content() when scheduled
    # Audience: members in any included segment or list, minus those in an excluded one.
    include_segments = models.JSONField(default=list, blank=True)
    include_lists = models.JSONField(default=list, blank=True)
    exclude_segments = models.JSONField(default=list, blank=True)
    exclude_lists = models.JSONField(default=list, blank=True)
    once_per_address = models.BooleanField(_("send once per address"), default=True)
    tracking = models.BooleanField(_("track opens and clicks"), default=True)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True,
                                   help_text=_("Empty to send as soon as it is scheduled."))
    quiet_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    max_per_hour = models.PositiveIntegerField(_("at most per hour"), null=True, blank=True)
    # Copied to the Source when scheduled; empty: the workspace's default tracking host.
    tracking_host = models.CharField(_("tracking domain"), max_length=253, blank=True)
    # Click notices: the member attribute holding the address of the member's assignee (e.g.
    # the salesperson), told once per member when the member clicks notify_link (empty: any).
    assignee_attribute = models.CharField(_("tell the assignee in attribute"), max_length=64,
                                          blank=True)
    notify_link = models.CharField(_("when this link is clicked"), max_length=2000, blank=True)
    source = models.OneToOneField(Source, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="campaign")
    created_by = models.ForeignKey(Operator, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    submitted_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Bumped by every edit: approvals count only for the revision they were given to.
    revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self):
        return self.name


class Approval(models.Model):
    """One stage's decision on one revision of a campaign."""

    class Decision(models.TextChoices):
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="approvals")
    revision = models.PositiveIntegerField()
    stage = models.PositiveSmallIntegerField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    approver = models.ForeignKey(Operator, null=True, on_delete=models.SET_NULL,
                                 related_name="+")
    comment = models.CharField(_("comment"), max_length=500, blank=True)
    recipients = models.PositiveIntegerField(default=0)  # the count the approver was shown
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at"]

    def __str__(self):
        return f"{self.campaign_id}/{self.revision}/{self.stage}: {self.decision}"


class ClickNotice(models.Model):
    """That a member's assignee was told of the member's click on a campaign: the unique key
    keeps it to once per member per campaign, even with two tracking writers."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="notices")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    notice = models.ForeignKey(Delivery, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "member"],
                                               name="click_notice_once")]

    def __str__(self):
        return f"{self.campaign_id}:{self.member_id}"


class CampaignSettings(models.Model):
    """A workspace's approval policy (0–3 stages, each naming the role that approves it) and
    the addresses test sends may go to."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE,
                                     related_name="campaign_settings")
    stage1 = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("approval stage 1"))
    stage2 = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("approval stage 2"))
    stage3 = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("approval stage 3"))
    test_addresses = models.TextField(_("test addresses"), blank=True,
                                      help_text=_("One address per line."))

    def __str__(self):
        return f"campaign settings of {self.workspace_id}"

    @property
    def stages(self) -> list[Role]:
        return [role for role in (self.stage1, self.stage2, self.stage3) if role is not None]

    @property
    def addresses(self) -> list[str]:
        return [line.strip() for line in self.test_addresses.splitlines() if line.strip()]


class StepMail(models.Model):
    """A follow-up sequence: steps that fire on dates in member data, each received once per
    member (once a year for yearly steps), stopping for members who reach the goal."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="step_mails")
    name = models.CharField(_("name"), max_length=200)
    identity = models.ForeignKey(SenderIdentity, on_delete=models.PROTECT,
                                 verbose_name=_("sender"))
    audience = models.JSONField(null=True, blank=True)  # a segment definition; empty = everyone
    goal = models.JSONField(null=True, blank=True)  # members matching it get no further steps
    active = models.BooleanField(_("active"), default=False)
    created_by = models.ForeignKey(Operator, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Step(models.Model):
    """One mail of a step mail and when it fires."""

    class Trigger(models.TextChoices):
        AFTER_DATE = "after_date", _("N days after a date attribute")
        AFTER_SIGNUP = "after_signup", _("N days after signing up")
        YEARLY = "yearly", _("Each year on a date attribute")
        AFTER_PREVIOUS = "after_previous", _("N days after the previous step")
        AFTER_EVENT = "after_event", _("N days after a response to a mail")

    class Event(models.TextChoices):
        OPENED = "opened", _("opened")
        CLICKED = "clicked", _("clicked")
        CONVERTED = "converted", _("converted")

    step_mail = models.ForeignKey(StepMail, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=1)
    trigger = models.CharField(_("when"), max_length=16, choices=Trigger.choices)
    attribute = models.CharField(_("date attribute"), max_length=64, blank=True)
    event = models.CharField(_("response"), max_length=12, choices=Event.choices, blank=True)
    event_source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", verbose_name=_("to mail"),
                                     help_text=_("Empty: any mail."))
    days = models.SmallIntegerField(_("days"), default=0)
    at = models.TimeField(_("at (JST)"), default="09:00")
    condition = models.JSONField(null=True, blank=True)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, verbose_name=_("template"))
    # The step's running Source: each firing adds rows to it, so its log is one place.
    source = models.OneToOneField(Source, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="step")
    # Dates before this day never fire (a new step does not mail every past birthday).
    since = models.DateField(default=timezone.localdate)

    class Meta:
        ordering = ["step_mail", "position"]

    def __str__(self):
        return f"{self.step_mail_id}#{self.position}"


class StepSent(models.Model):
    """That a member received a step (for yearly steps: in a year). The unique key is what
    makes each member receive each step once even if two schedulers run."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="sent")
    member_id = models.BigIntegerField()
    occurrence = models.PositiveSmallIntegerField(default=0)  # the year for yearly steps
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "member_id", "occurrence"],
                                               name="step_sent_once")]

    def __str__(self):
        return f"{self.step_id}:{self.member_id}"
