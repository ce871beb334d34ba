"""Content data: who a mail is from (sender identities), templates made of blocks, blocks
shared between templates, and the files a template carries."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts.models import Operator, Workspace
from tayori.delivery.models import Charset

# Block kinds, in the order the editor offers them.
BLOCK_KINDS = {
    "header": _("Heading"),
    "text": _("Text"),
    "image": _("Image"),
    "button": _("Button"),
    "html": _("HTML"),
    "divider": _("Divider"),
    "footer": _("Sender footer"),
    "shared": _("Shared block"),
}


class SenderIdentity(models.Model):
    """A sender a campaign can choose: the From and Reply-To, and the facts the 特定電子メール法
    requires an advertising mail to show (the footer block prints them)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="sender_identities")
    label = models.CharField(_("label"), max_length=100)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    from_address = models.EmailField(_("sender address"))
    reply_to = models.EmailField(_("reply-to"), blank=True,
                                 help_text=_("For example the responsible salesperson."))
    organization = models.CharField(_("organization"), max_length=200, blank=True)
    postal_address = models.CharField(_("postal address"), max_length=300, blank=True)
    contact = models.CharField(_("contact"), max_length=300, blank=True,
                               help_text=_("A telephone number or address for questions."))
    opt_out_text = models.TextField(_("opt-out statement"), blank=True,
                                    help_text=_("Printed above the unsubscribe link."))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["label"]
        constraints = [models.UniqueConstraint(fields=["workspace", "label"],
                                               name="identity_label_unique")]

    def __str__(self):
        return self.label


class SharedBlock(models.Model):
    """One block (a common footer, an advertisement) used by many templates: edited once, and
    the change reaches every mail not yet sent."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="shared_blocks")
    name = models.CharField(_("name"), max_length=200)
    block = models.JSONField(default=dict)  # a block dict (see content.blocks), never "shared"
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Template(models.Model):
    """A mail's content: subject variants and a vertical list of blocks, each optionally shown
    only to members matching a condition. Campaigns copy it when they are scheduled."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(_("name"), max_length=200)
    subject = models.CharField(_("subject"), max_length=500)
    # [{"condition": definition, "subject": "…"}]: the first match wins, else ``subject``.
    subject_variants = models.JSONField(default=list, blank=True)
    preheader = models.CharField(_("preheader"), max_length=200, blank=True,
                                 help_text=_("The line mail apps show after the subject."))
    blocks = models.JSONField(default=list, blank=True)
    text = models.TextField(_("text part"), blank=True)
    text_edited = models.BooleanField(
        _("edit the text part by hand"), default=False,
        help_text=_("Otherwise it is made from the HTML each time the template is saved."))
    charset = models.CharField(_("charset"), max_length=16, choices=Charset.choices,
                               default=Charset.UTF8)
    shared_blocks = models.ManyToManyField(SharedBlock, blank=True, related_name="templates")
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return self.name

    def content(self) -> dict:
        """What a campaign snapshots when it is scheduled (files are copied beside it)."""
        return {"subject": self.subject, "subject_variants": self.subject_variants,
                "preheader": self.preheader, "blocks": self.blocks, "text": self.text,
                "text_edited": self.text_edited, "charset": self.charset}


class TemplateFile(models.Model):
    """An attachment or an inline image (shown in the HTML as ``cid:<content_id>``)."""

    MAX_BYTES = 5 * 1024 * 1024
    MAX_TOTAL_BYTES = 10 * 1024 * 1024

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(max_length=100)
    data = models.BinaryField()
    size = models.PositiveIntegerField(default=0)
    content_id = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return self.filename
