"""A campaign's life: edit, submit, approve or reject per stage, schedule (the content becomes
a delivery Source), pause/resume/cancel, test sends, and afterwards a segment of those who did
not open it. Every step is audited; the views and the API call these and nothing else."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.accounts.models import Membership
from tayori.campaigns.models import Approval, Campaign, CampaignSettings
from tayori.content.blocks import assemble, shared_of
from tayori.content.models import Template, TemplateFile
from tayori.delivery import queue
from tayori.delivery.models import Delivery, Priority, Source, SourceFile
from tayori.delivery.rendering import tracked_links
from tayori.members.models import Member, Segment
from tayori.members.segments import SegmentError, segment_queryset, validate
from tayori.tracking.models import TrackingDomain
from tayori.tracking.responses import response_condition

S = Campaign.Status
_FROM_SOURCE = {Source.Status.SCHEDULED: S.SCHEDULED, Source.Status.DRAFT: S.SCHEDULED,
                Source.Status.RUNNING: S.SENDING, Source.Status.QUIET: S.SENDING,
                Source.Status.PAUSED: S.PAUSED, Source.Status.DONE: S.FINISHED,
                Source.Status.CANCELLED: S.CANCELLED}
EDITABLE = (S.DRAFT, S.AWAITING, S.APPROVED)


class CampaignError(ValueError):
    """A step the campaign's state or the operator's role does not allow; says why."""


def settings_of(workspace) -> CampaignSettings:
    return CampaignSettings.objects.get_or_create(workspace=workspace)[0]


def refresh(campaigns) -> None:
    """Bring scheduled campaigns' status up to date with their sources."""
    for campaign in campaigns:
        if campaign.source_id and campaign.source is not None:
            status = _FROM_SOURCE.get(campaign.source.status, campaign.status)
            if status != campaign.status:
                Campaign.objects.filter(pk=campaign.pk).update(status=status)
                campaign.status = status


def audience(campaign: Campaign) -> dict:
    """Included segments and lists (any of them) minus the excluded ones, as one definition."""
    included = ([{"field": "segment", "operator": "in_segment", "value": pk}
                 for pk in campaign.include_segments]
                + [{"field": "list", "operator": "in_list", "value": pk}
                   for pk in campaign.include_lists])
    excluded = ([{"field": "segment", "operator": "not_in_segment", "value": pk}
                 for pk in campaign.exclude_segments]
                + [{"field": "list", "operator": "not_in_list", "value": pk}
                   for pk in campaign.exclude_lists])
    if not included:  # an empty definition would select everyone
        raise CampaignError(_("Choose at least one segment or list to send to."))
    return {"op": "and", "conditions": [{"op": "or", "conditions": included}, *excluded]}


def recipient_count(campaign: Campaign) -> int:
    """Members the campaign would mail now: the audience with an address and not opted out
    (suppressions and duplicates are counted out at sending time)."""
    if not (campaign.include_segments or campaign.include_lists):
        return 0
    return (segment_queryset(campaign.workspace, audience(campaign))
            .filter(status=Member.Status.ACTIVE).exclude(email="").count())


def content_of(campaign: Campaign) -> dict | None:
    """What the campaign sends: its snapshot once submitted, else its template's content."""
    if campaign.snapshot is not None:
        return campaign.snapshot
    return campaign.template.content() if campaign.template else None


def edited(campaign: Campaign, request, **changes) -> None:
    """Any edit voids approvals given so far (they were for the previous revision)."""
    if campaign.status not in EDITABLE:
        raise CampaignError(_("A scheduled campaign can no longer be edited."))
    had_approvals = campaign.status in (S.AWAITING, S.APPROVED)
    for name, value in changes.items():
        setattr(campaign, name, value)
    campaign.revision += 1
    campaign.status = S.DRAFT
    campaign.updated_at = timezone.now()
    campaign.save()
    audit.record("campaign.edit", request=request, target=f"campaign:{campaign.pk}",
                 revision=campaign.revision, approvals_reset=had_approvals)


def submit(campaign: Campaign, request) -> None:
    """Freeze the template's content for approval; with no approval stages it is approved."""
    if campaign.status != S.DRAFT:
        raise CampaignError(_("Only a draft can be submitted."))
    if campaign.template is None or campaign.identity is None:
        raise CampaignError(_("Choose a sender and a template first."))
    if not (campaign.include_segments or campaign.include_lists):
        raise CampaignError(_("Choose at least one segment or list to send to."))
    try:  # before any change: a list or segment deleted since it was chosen is refused
        recipients = recipient_count(campaign)
    except SegmentError as error:
        raise CampaignError(str(error)) from None
    if campaign.approvals.filter(revision=campaign.revision).exists():
        # Submitted again after a rejection: the earlier stages approved another snapshot.
        campaign.revision += 1
    campaign.snapshot = campaign.template.content()
    campaign.submitted_by = request.user
    campaign.status = S.APPROVED if not settings_of(campaign.workspace).stages else S.AWAITING
    campaign.save()
    audit.record("campaign.submit", request=request, target=f"campaign:{campaign.pk}",
                 revision=campaign.revision, recipients=recipients)


def approvals_of(campaign: Campaign) -> list[Approval]:
    return list(campaign.approvals.filter(revision=campaign.revision,
                                          decision=Approval.Decision.APPROVED).order_by("stage"))


def next_stage(campaign: Campaign) -> tuple[int, object] | None:
    """(stage number, role) waiting for a decision, or None."""
    stages = settings_of(campaign.workspace).stages
    done = len(approvals_of(campaign))
    return (done + 1, stages[done]) if done < len(stages) else None


def may_decide(campaign: Campaign, operator) -> str:
    """"" when the operator may decide the next stage, else the reason they may not."""
    if campaign.status != S.AWAITING:
        return _("The campaign is not awaiting approval.")
    stage = next_stage(campaign)
    if stage is None:
        return _("Every stage is approved.")
    if operator.pk in (campaign.created_by_id, campaign.submitted_by_id):
        return _("Nobody approves their own campaign.")
    if any(a.approver_id == operator.pk for a in approvals_of(campaign)):
        return _("You already approved an earlier stage of this campaign.")
    role = Membership.objects.filter(workspace=campaign.workspace, operator=operator).values_list(
        "role_id", flat=True).first()
    if role != stage[1].pk:
        return _("Stage %(n)s is approved by the role “%(role)s”.") % {
            "n": stage[0], "role": stage[1].name}
    return ""


@transaction.atomic
def decide(campaign: Campaign, request, *, approve: bool, comment: str = "") -> None:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    reason = may_decide(campaign, request.user)
    if reason:
        raise CampaignError(reason)
    stage, _role = next_stage(campaign)
    count = recipient_count(campaign)
    Approval.objects.create(
        campaign=campaign, revision=campaign.revision, stage=stage, approver=request.user,
        decision=Approval.Decision.APPROVED if approve else Approval.Decision.REJECTED,
        comment=comment, recipients=count)
    if not approve:
        campaign.status = S.DRAFT
    elif next_stage(campaign) is None:
        campaign.status = S.APPROVED
    campaign.save(update_fields=["status"])
    audit.record("campaign.approve" if approve else "campaign.reject", request=request,
                 target=f"campaign:{campaign.pk}", stage=stage, revision=campaign.revision,
                 recipients=count, comment=comment)


def assembled_source_fields(campaign_content: dict, identity, workspace) -> dict:
    assembled = assemble(campaign_content, identity, shared_of(workspace))
    return {"subject": assembled.subject, "html": assembled.html, "text": assembled.text,
            "conditions": assembled.conditions, "charset": campaign_content.get("charset",
                                                                            "utf-8"),
            "from_address": identity.from_address, "from_name": identity.from_name,
            "reply_to": identity.reply_to}


def copy_files(template: Template | None, source: Source) -> None:
    if template is None:
        return
    SourceFile.objects.bulk_create(
        SourceFile(source=source, filename=f.filename, content_type=f.content_type,
                   data=f.data, content_id=f.content_id)
        for f in TemplateFile.objects.filter(template=template))


@transaction.atomic
def schedule(campaign: Campaign, request) -> Source:
    """The approved campaign becomes a delivery Source: started now, or at ``send_at``."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != S.APPROVED:
        raise CampaignError(_("Only an approved campaign can be scheduled."))
    try:  # a list or segment deleted since approval
        validate(campaign.workspace, audience(campaign))
    except SegmentError as error:
        raise CampaignError(str(error)) from None
    if campaign.tracking_host and not TrackingDomain.objects.filter(
            workspace=campaign.workspace, host=campaign.tracking_host).exists():
        raise CampaignError(_("The tracking domain %(host)s was removed; choose another.")
                            % {"host": campaign.tracking_host})
    now = timezone.now()
    source = Source.objects.create(
        workspace=campaign.workspace, kind=Source.Kind.BULK, name=campaign.name,
        status=Source.Status.SCHEDULED if campaign.send_at else Source.Status.DRAFT,
        scheduled_at=campaign.send_at, audience=audience(campaign),
        once_per_address=campaign.once_per_address, tracking=campaign.tracking,
        quiet_start=campaign.quiet_start, quiet_end=campaign.quiet_end,
        max_per_hour=campaign.max_per_hour, created_by=request.user,
        tracking_host=campaign.tracking_host,
        **assembled_source_fields(campaign.snapshot, campaign.identity, campaign.workspace))
    copy_files(campaign.template, source)
    campaign.source = source
    campaign.status = S.SCHEDULED
    campaign.save(update_fields=["source", "status"])
    if not campaign.send_at or campaign.send_at <= now:
        queue.start(source)
        campaign.status = S.SENDING
        campaign.save(update_fields=["status"])
    audit.record("campaign.schedule", request=request, target=f"campaign:{campaign.pk}",
                 send_at=campaign.send_at.isoformat() if campaign.send_at else "now",
                 source=source.pk)
    return source


def control(campaign: Campaign, request, action: str) -> bool:
    """Pause, resume or cancel a scheduled or sending campaign."""
    source = campaign.source
    if source is None:
        raise CampaignError(_("The campaign has not been scheduled."))
    done = {"pause": lambda: queue.pause(source), "resume": lambda: queue.resume(source),
            "cancel": lambda: bool(queue.cancel(source)) or True}[action]()
    source.refresh_from_db()
    refresh([campaign])
    audit.record(f"campaign.{action}", request=request, target=f"campaign:{campaign.pk}")
    return done


def test_send(workspace, content: dict, identity, template: Template | None, addresses,
              member: Member | None, request) -> int:
    """Send the content to the workspace's test addresses through the engine, merged with
    ``member``'s data (conditions decided for that member). Returns messages queued."""
    allowed = set(settings_of(workspace).addresses)
    addresses = [a for a in addresses if a in allowed]
    if not addresses:
        raise CampaignError(_("Register test addresses in the campaign settings first."))
    fields = assembled_source_fields(content, identity, workspace)
    fields["subject"] = "[TEST] " + fields["subject"]
    now = timezone.now()
    source = Source.objects.create(
        workspace=workspace, kind=Source.Kind.TRANSACTIONAL, name=f"[TEST] {content['subject']}"[:200],
        status=Source.Status.RUNNING, priority=Priority.NORMAL, created_by=request.user,
        total=len(addresses), started_at=now, tracking=False, **fields)
    copy_files(template, source)
    Delivery.objects.bulk_create(
        Delivery(workspace=workspace, source=source, member=member, address=address,
                 priority=Priority.NORMAL, status="queued", queued_at=now, next_attempt_at=now)
        for address in addresses)
    audit.record("campaign.test_send", request=request, target=f"source:{source.pk}",
                 addresses=len(addresses), member=member.pk if member else None)
    return len(addresses)


def copy_campaign(campaign: Campaign, request) -> Campaign:
    copy = Campaign.objects.create(
        workspace=campaign.workspace, name=_("Copy of %(name)s") % {"name": campaign.name},
        identity=campaign.identity, template=campaign.template,
        include_segments=campaign.include_segments, include_lists=campaign.include_lists,
        exclude_segments=campaign.exclude_segments, exclude_lists=campaign.exclude_lists,
        once_per_address=campaign.once_per_address, tracking=campaign.tracking,
        quiet_start=campaign.quiet_start, quiet_end=campaign.quiet_end,
        max_per_hour=campaign.max_per_hour, tracking_host=campaign.tracking_host,
        assignee_attribute=campaign.assignee_attribute, notify_link=campaign.notify_link,
        created_by=request.user)
    audit.record("campaign.copy", request=request, target=f"campaign:{copy.pk}",
                 original=campaign.pk)
    return copy


def template_links(template: Template | None, workspace) -> list[str]:
    """The tracked links a template's mail will carry, by index (what click notices name)."""
    if template is None:
        return []
    return tracked_links(assemble(template.content(), None, shared_of(workspace)).html)


def non_openers(campaign: Campaign, request) -> Segment:
    """A segment of the members who received the campaign and did not open it, to send to
    again: reused when one with the same name and conditions exists."""
    if campaign.source_id is None:
        raise CampaignError(_("The campaign has not been sent."))
    definition = {"op": "and", "conditions": [
        response_condition("received", campaign.source_id),
        response_condition("not_opened", campaign.source_id)]}
    base = (_("Did not open “%(name)s”") % {"name": campaign.name[:150]})
    name, number = base, 1
    while (taken := Segment.objects.filter(workspace=campaign.workspace, name=name).first()):
        if taken.definition == definition:
            return taken
        number += 1
        name = f"{base} ({number})"
    segment = Segment.objects.create(workspace=campaign.workspace, name=name,
                                     definition=validate(campaign.workspace, definition))
    audit.record("segment.created", request=request, target=f"segment:{segment.pk}",
                 name=segment.name, conditions=2, campaign=campaign.pk)
    return segment


def reassemble_pending(workspace) -> int:
    """Shared blocks changed: campaigns not yet started (and running step mails) take the new
    content. Returns how many sources were updated."""
    from tayori.campaigns.steps import reassemble_steps

    updated = 0
    for campaign in Campaign.objects.filter(
            workspace=workspace, source__status=Source.Status.SCHEDULED).select_related(
            "source", "identity"):
        fields = assembled_source_fields(campaign.snapshot, campaign.identity, workspace)
        Source.objects.filter(pk=campaign.source_id, status=Source.Status.SCHEDULED).update(
            **fields)
        updated += 1
    return updated + reassemble_steps(workspace)
