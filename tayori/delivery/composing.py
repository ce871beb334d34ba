"""Composing: a source's compiled message plus its DKIM signers, built once per source per
worker, turning each claimed row into signed bytes for a channel."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

from tayori.delivery import dkim
from tayori.delivery.channels import Outgoing
from tayori.delivery.models import DeliverySettings, SenderDomain, Source, SourceFile, Stream
from tayori.delivery.queue import Claimed, Outcome
from tayori.delivery.rendering import (
    Attachment,
    Compiled,
    MessageSpec,
    Rendered,
    RenderError,
    compile_message,
)
from tayori.lib import crypto
from tayori.members.segments import Evaluator, SegmentError

# A composer is rebuilt after this long, so a long-running source (a step mail, a send whose
# shared block was edited before it started) picks up content changes.
COMPOSER_SECONDS = 60.0


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


class Conditions:
    """A source's conditions, tested per recipient with the segments' Python evaluator (the
    same rules as the SQL). A condition that no longer validates (its attribute was deleted)
    shows its block to nobody rather than failing the send."""

    def __init__(self, workspace, definitions: list):
        self.evaluator = Evaluator(workspace)
        self.prepared: list[dict | None] = []
        for definition in definitions:
            try:
                self.prepared.append(self.evaluator.prepare(definition))
            except SegmentError:
                self.prepared.append(None)
        self.needs_lists = any(_refers(p) for p in self.prepared if p)
        # Responses to mail and other kinds apps register are read once per batch too.
        self.needs_loading = self.needs_lists or self.evaluator.reads_kinds
        for prepared in self.prepared:  # saved segments are read now, not in the event loop
            if prepared:
                self._warm(prepared)

    def _warm(self, node: dict) -> None:
        if "conditions" in node:
            for child in node["conditions"]:
                self._warm(child)
        elif node["operator"] in ("in_segment", "not_in_segment"):
            try:
                with self.evaluator.saved.entered(node["value"]) as definition:
                    self._warm(definition)
            except SegmentError:
                pass

    def load(self, member_ids: list[int]) -> None:
        if self.needs_loading:
            self.evaluator.load(member_ids)

    def shown(self, member) -> list[bool]:
        if member is None:  # an address outside the members: only unconditional content
            return [False] * len(self.prepared)
        return [p is not None and self._test(p, member) for p in self.prepared]

    def _test(self, prepared: dict, member) -> bool:
        try:
            return self.evaluator.test(prepared, member)
        except SegmentError:  # a referred segment went stale since the source was built
            return False


def _bounce_domain(settings: DeliverySettings | None, stream: str) -> str:
    if settings is None:
        return ""
    if stream == Stream.TRANSACTIONAL and settings.transactional_bounce_domain:
        return settings.transactional_bounce_domain
    return settings.bounce_domain


def _refers(node: dict) -> bool:
    if "conditions" in node:
        return any(_refers(child) for child in node["conditions"])
    return node["operator"] in ("in_list", "not_in_list", "in_segment", "not_in_segment")


@dataclass
class Composer:
    workspace_id: int
    source_id: int
    compiled: Compiled | None
    error: str
    signers: list[dkim.DkimSigner]
    max_per_hour: int | None = None
    conditions: Conditions | None = None
    stream: str = Stream.BROADCAST
    built_at: float = field(default_factory=time.monotonic)

    @classmethod
    def for_source(cls, source_id: int) -> Composer:
        source = Source.objects.select_related("workspace").get(pk=source_id)
        settings = DeliverySettings.objects.filter(workspace_id=source.workspace_id).first()
        spec = MessageSpec(
            from_address=source.from_address, from_name=source.from_name,
            reply_to=source.reply_to, subject=source.subject, html=source.html,
            text=source.text, bulk=source.stream == Stream.BROADCAST,
            tracking=source.tracking, tracking_host=source.tracking_host or (settings.tracking_host if settings else ""),
            bounce_domain=_bounce_domain(settings, source.stream), charset=source.charset,
            attachments=[Attachment(f.filename, f.content_type, bytes(f.data), f.content_id)
                         for f in SourceFile.objects.filter(source=source).order_by("pk")])
        try:
            compiled, error = compile_message(spec), ""
        except RenderError as failure:  # refused when created; kept in case templates change
            compiled, error = None, str(failure)
        domain = source.from_address.rpartition("@")[2]
        conditions = Conditions(source.workspace, source.conditions) if source.conditions else None
        return cls(source.workspace_id, source.pk, compiled, error,
                   signers_for(source.workspace_id, domain), source.max_per_hour, conditions,
                   stream=source.stream)

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.built_at > COMPOSER_SECONDS

    def render(self, delivery_id: int, address: str, member, data: dict | None) -> Rendered:
        """One recipient's message, its blocks chosen by the member (a MemberRow or None)."""
        if self.compiled is None:
            raise RenderError("template", self.error)
        shown = self.conditions.shown(member) if self.conditions else None
        return self.compiled.render(delivery_id, address, member.attributes if member else {},
                                    data, shown)

    def compose(self, row: Claimed, member) -> Outgoing | Outcome:
        """Signed bytes for one claimed row; ``member`` is its MemberRow or None."""
        if self.compiled is None:
            return Outcome(row.id, "failed", f"template: {self.error}"[:500])
        try:
            rendered = self.render(row.id, row.address, member, row.data)
        except RenderError as error:
            return Outcome(row.id, "failed", str(error)[:500])
        signature = (dkim.sign_all(self.signers, rendered.headers, rendered.body)
                     if self.signers else b"")
        return Outgoing(row.id, self.workspace_id, self.source_id, rendered.mail_from,
                        row.address, rendered.subject, rendered.message_id,
                        signature + rendered.data, row.attempts, row.queued_at)
