"""Composing: a source's compiled message plus its DKIM signers, built once per source per
worker, turning each claimed row into signed bytes for a channel."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tayori.delivery import dkim
from tayori.delivery.channels import Outgoing
from tayori.delivery.models import DeliverySettings, SenderDomain, Source
from tayori.delivery.queue import Claimed, Outcome
from tayori.delivery.rendering import Compiled, MessageSpec, RenderError, compile_message
from tayori.lib import crypto


def signers_for(workspace_id: int, domain: str) -> list[dkim.DkimSigner]:
    """The workspace's DKIM signers for a sender domain (RSA, then Ed25519), if keys exist."""
    sender = SenderDomain.objects.filter(workspace_id=workspace_id, domain=domain.lower()).first()
    if sender is None:
        return []
    return _signers(sender.domain, sender.selector, sender.rsa_key,
                    sender.ed25519_selector, sender.ed25519_key)


@lru_cache(maxsize=64)
def _signers(domain: str, selector: str, rsa_sealed: str, ed_selector: str,
             ed_sealed: str) -> list[dkim.DkimSigner]:
    # Loading an RSA key checks it (~50 ms): done once per key, not per transactional message
    # (each is a source of its own). The sealed keys are part of the cache key, so a new key
    # is picked up at once.
    return [dkim.DkimSigner(domain, sel, crypto.decrypt_bytes(sealed))
            for sel, sealed in ((selector, rsa_sealed), (ed_selector, ed_sealed)) if sealed]


@dataclass
class Composer:
    workspace_id: int
    source_id: int
    compiled: Compiled | None
    error: str
    signers: list[dkim.DkimSigner]
    max_per_hour: int | None = None

    @classmethod
    def for_source(cls, source_id: int) -> Composer:
        source = Source.objects.get(pk=source_id)
        settings = DeliverySettings.objects.filter(workspace_id=source.workspace_id).first()
        spec = MessageSpec(
            from_address=source.from_address, from_name=source.from_name,
            reply_to=source.reply_to, subject=source.subject, html=source.html,
            text=source.text, bulk=source.kind == Source.Kind.BULK,
            tracking=source.tracking, tracking_host=settings.tracking_host if settings else "",
            bounce_domain=settings.bounce_domain if settings else "")
        try:
            compiled, error = compile_message(spec), ""
        except RenderError as failure:  # refused when created; kept in case templates change
            compiled, error = None, str(failure)
        domain = source.from_address.rpartition("@")[2]
        return cls(source.workspace_id, source.pk, compiled, error,
                   signers_for(source.workspace_id, domain), source.max_per_hour)

    def compose(self, row: Claimed, attributes: dict) -> Outgoing | Outcome:
        if self.compiled is None:
            return Outcome(row.id, "failed", f"template: {self.error}"[:500])
        try:
            rendered = self.compiled.render(row.id, row.address, attributes, row.data)
        except RenderError as error:
            return Outcome(row.id, "failed", str(error)[:500])
        signature = (dkim.sign_all(self.signers, rendered.headers, rendered.body)
                     if self.signers else b"")
        return Outgoing(row.id, self.workspace_id, self.source_id, rendered.mail_from,
                        row.address, rendered.subject, rendered.message_id,
                        signature + rendered.data, row.attempts, row.queued_at)
