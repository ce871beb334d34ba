"""Synchronous bounces: a relay refusing a recipient while Tayori sends (a 5xx reply, or a 4xx
one retried until the delivery gave up) goes through the same classifier and rules as a report
that comes back later, so "unknown user" suppresses the address whichever way it was said.

Told by the engine's delivery signals after each batch of results is committed; failures are
few, so this costs one query for the batch's failed rows."""

from __future__ import annotations

import logging
import re

from tayori.delivery.models import Delivery
from tayori.inbound.consequences import Evidence, record_bounce, rules_of
from tayori.inbound.models import Via
from tayori.inbound.reasons import classify_reply

log = logging.getLogger(__name__)

# Only a server's answer is evidence about the recipient; a message Tayori could not render or
# a relay it could not reach says nothing about the address.
_SMTP_REPLY = re.compile(r"\s*[45]\d\d[\s-]")


def delivery_changed(kind: str, rows: list, at) -> None:
    if kind != "recorded":
        return
    failed = {o.id: o.reply for o in rows if o.kind == "failed" and _SMTP_REPLY.match(o.reply)}
    if not failed:
        return
    rules = {}
    for delivery in Delivery.objects.filter(pk__in=failed).only(
            "pk", "workspace_id", "source_id", "member_id", "address"):
        reply = failed[delivery.pk]
        verdict = classify_reply(reply, recipient=delivery.address)
        status = re.search(r"\b[245]\.\d{1,3}\.\d{1,3}\b", reply)
        if delivery.workspace_id not in rules:
            rules[delivery.workspace_id] = rules_of(delivery.workspace_id)
        try:
            record_bounce(delivery, Evidence(
                address=delivery.address, reason=verdict.reason, hard=verdict.hard,
                status=status.group(0) if status else reply.strip()[:3], diagnostic=reply),
                workspace_id=delivery.workspace_id, via=Via.SMTP, now=at,
                rules=rules[delivery.workspace_id])
        except Exception:  # one row's trouble must not cost the batch's other bounces
            log.exception("refusal of delivery %s not recorded as a bounce", delivery.pk)
