"""Click notices: when a member clicks a link in a campaign's mail (a person, not a scanner), the
member's assignee — the address in the member attribute the campaign names, e.g. the
salesperson's — gets a short urgent mail naming the member, the campaign, the link and the time.
Once per member per campaign (the ClickNotice row is written in the same transaction as the
notice's queue row, and its unique key wins any race between two tracking writers).

``clicked`` listens to tracking's ingest (registered in CampaignsConfig.ready): it hears each
batch of people's clicks after it is stored, within a second or so of the click."""

from __future__ import annotations

import logging
from collections import defaultdict
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils.translation import gettext as _

from tayori.campaigns.models import Campaign, ClickNotice
from tayori.delivery.sending import Content, ContentRefused, enqueue_message
from tayori.members.models import Member
from tayori.members.values import FieldError, normalize_email
from tayori.tracking.responses import links_of_source

log = logging.getLogger(__name__)


def clicked(events: list) -> int:
    """Tell assignees of the members whose clicks these are; returns notices queued."""
    by_source = defaultdict(list)
    for event in events:
        if event.member_id is not None and not event.machine:
            by_source[event.source_id].append(event)
    queued = 0
    for campaign in Campaign.objects.filter(source_id__in=by_source).exclude(
            assignee_attribute="").select_related("workspace", "identity"):
        links = links_of_source(campaign.source_id)
        first: dict[int, tuple] = {}  # member -> (first click that counts, its URL)
        for event in sorted(by_source[campaign.source_id], key=lambda e: e.at):
            url = links.get(event.link_index, "")
            if not campaign.notify_link or url == campaign.notify_link:
                first.setdefault(event.member_id, (event, url))
        told = set(ClickNotice.objects.filter(campaign=campaign, member_id__in=first)
                   .values_list("member_id", flat=True))
        members = Member.objects.in_bulk([pk for pk in first if pk not in told])
        for member in members.values():
            queued += _tell(campaign, member, *first[member.pk])
    return queued


def _assignee(campaign: Campaign, member: Member) -> str | None:
    raw = (member.attributes or {}).get(campaign.assignee_attribute)
    try:
        return normalize_email(raw) if isinstance(raw, str) and raw.strip() else None
    except FieldError:
        return None


def _tell(campaign: Campaign, member: Member, event, url: str) -> int:
    address = _assignee(campaign, member)
    if address is None or campaign.identity is None:
        log.warning("click notice of campaign %s for member %s skipped: no valid address in "
                    "attribute %r or no sender", campaign.pk, member.pk,
                    campaign.assignee_attribute)
        return 0
    tz = ZoneInfo(campaign.workspace.time_zone)
    time = event.at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    facts = {"member": member.email or f"#{member.pk}", "campaign": campaign.name,
             "link": url or "—", "time": time}
    # Names and URLs travel as data, never inside the template text, so that "{{" in a
    # campaign name is shown and not run.
    data = {
        "subject": _("Click: %(member)s in “%(campaign)s”") % facts,
        "text": _("%(member)s clicked a link in “%(campaign)s”.\n\nMember: %(member)s\n"
                  "Campaign: %(campaign)s\nLink: %(link)s\nTime: %(time)s\n") % facts,
    }
    try:
        with transaction.atomic():
            notice, created = ClickNotice.objects.get_or_create(campaign=campaign, member=member)
            if not created:
                return 0
            notice.notice = enqueue_message(
                campaign.workspace,
                Content(subject="{{ data.subject }}", text="{{ data.text }}",
                        from_address=campaign.identity.from_address,
                        from_name=campaign.identity.from_name, tracking=False),
                to=address, urgent=True, data=data,
                name=(_("Click notice: %(campaign)s") % facts)[:200])
            notice.save(update_fields=["notice"])
    except ContentRefused as refused:
        log.warning("click notice of campaign %s for member %s refused: %s", campaign.pk,
                    member.pk, refused)
        return 0
    return 1
