"""Creating sends: content checks with field and line, and the transactional stream's rules."""

import pytest
from django.utils import translation

from tayori.delivery import sending
from tayori.delivery.models import Priority, Source
from tayori.members.models import Member, Segment, Suppression

pytestmark = pytest.mark.django_db


def content(**fields):
    return sending.Content(**{"subject": "ご注文 {{ data.order }}", "html": "<p>{{ email }}</p>",
                              "from_address": "shop@example.jp", **fields})


def refused(call) -> dict:
    with pytest.raises(sending.ContentRefused) as caught:
        call()
    return {e.field: e.message for e in caught.value.errors}


@translation.override("en")
def test_content_errors_name_the_field_and_the_line(workspace):
    errors = refused(lambda: sending.enqueue_message(workspace, content(
        subject=" ", html="<p>\n{% if x %}\n</p>", text="", from_address="nobody",
        reply_to="also wrong"), to="a@example.jp"))
    assert set(errors) == {"subject", "html", "from_address", "reply_to"}
    assert errors["html"].startswith("Line 2: Unexpected end of template")


def test_a_transactional_message_goes_to_unsubscribed_members_but_not_to_suppressed(workspace):
    gone = Member.objects.create(workspace=workspace, email="gone@example.jp",
                                 status="unsubscribed")
    Member.objects.create(workspace=workspace, email="bounced@example.jp", status="bounced")
    Suppression.objects.create(workspace=workspace, value="blocked@example.jp", reason="x")
    sent = sending.enqueue_message(workspace, content(), member=gone, data={"order": 7},
                                   urgent=True)
    assert (sent.status, sent.priority, sent.data) == ("queued", Priority.URGENT, {"order": 7})
    assert sent.source.status == Source.Status.RUNNING
    assert sending.enqueue_message(workspace, content(), to="Bounced@EXAMPLE.jp").skip_reason == ""
    bounced = sending.enqueue_message(workspace, content(), to="bounced@example.jp")
    assert (bounced.status, bounced.skip_reason, bounced.member.pk) == (
        "skipped", "bounced", Member.objects.get(email="bounced@example.jp").pk)
    assert sending.enqueue_message(workspace, content(),
                                   to="blocked@example.jp").skip_reason == "suppressed"


def test_a_bulk_send_needs_a_segment_of_its_own_workspace(workspace, other_workspace):
    theirs = Segment.objects.create(workspace=other_workspace, name="theirs")
    assert "segment" in refused(lambda: sending.create_bulk(
        workspace, content(), name="news", segment=theirs))
    ours = Segment.objects.create(workspace=workspace, name="ours")
    source = sending.create_bulk(workspace, content(), name="news", segment=ours)
    assert (source.status, source.kind, source.priority) == ("draft", "bulk", Priority.BULK)
