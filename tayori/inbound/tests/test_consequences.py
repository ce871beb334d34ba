"""The rules bounces are acted on by, synchronous refusals through the same classifier, and the
bounce and complaint rates that pause a bulk send."""

import datetime as dt

import pytest
from django.utils import timezone, translation

from tayori.delivery import queue, scheduler
from tayori.delivery.models import Delivery, Source
from tayori.inbound import rates
from tayori.inbound.consequences import Evidence, record_bounce, record_complaint
from tayori.inbound.models import Bounce, BounceRule, InboundSettings
from tayori.members.models import Member, Suppression

pytestmark = pytest.mark.django_db


def _source(workspace, kind="bulk", status="running"):
    return Source.objects.create(workspace=workspace, kind=kind, name="秋のセール",
                                 status=status, from_address="news@shop.example.jp",
                                 subject="セール", text="x")


def _delivery(workspace, source, address, status="sent"):
    member = Member.objects.get_or_create(workspace=workspace, email=address)[0]
    return Delivery.objects.create(workspace=workspace, source=source, member=member,
                                   address=address, status=status, sent_at=timezone.now())


def _bounce(delivery, reason, *, hard=False, at=None):
    return record_bounce(delivery, Evidence(delivery.address, reason, hard),
                         workspace_id=delivery.workspace_id, now=at)


def test_a_workspace_rule_replaces_the_default(workspace):
    BounceRule.objects.create(workspace=workspace, reason="userunknown", threshold=2,
                              window_days=10, suppress_days=7)
    delivery = _delivery(workspace, _source(workspace), "a@example.jp")
    assert _bounce(delivery, "userunknown", hard=True).action == ""
    second = _bounce(delivery, "userunknown", hard=True)
    assert "7" in second.action
    suppression = Suppression.objects.get()
    assert suppression.expires_at is not None
    assert Member.objects.get(pk=delivery.member_id).status == "active"  # only for a while


def test_bounces_outside_the_window_do_not_count(workspace):
    delivery = _delivery(workspace, _source(workspace), "full@example.jp")
    long_ago = timezone.now() - dt.timedelta(days=40)
    for _ in range(4):
        _bounce(delivery, "mailboxfull", at=long_ago)
    _bounce(delivery, "mailboxfull")
    assert not Suppression.objects.exists()


def test_a_threshold_of_zero_never_suppresses(workspace):
    BounceRule.objects.create(workspace=workspace, reason="userunknown", threshold=0)
    delivery = _delivery(workspace, _source(workspace), "a@example.jp")
    _bounce(delivery, "userunknown", hard=True)
    assert not Suppression.objects.exists()


def test_a_permanent_suppression_is_never_shortened(workspace):
    delivery = _delivery(workspace, _source(workspace), "a@example.jp")
    _bounce(delivery, "userunknown", hard=True)
    for _ in range(5):
        _bounce(delivery, "mailboxfull")
    assert Suppression.objects.get().expires_at is None


def test_a_complaint_without_a_member_suppresses_the_address(workspace):
    source = _source(workspace, kind="transactional")
    delivery = Delivery.objects.create(workspace=workspace, source=source,
                                       address="ext@example.jp", status="sent")
    record_complaint(delivery, workspace_id=workspace.pk, address="ext@example.jp")
    assert Suppression.objects.get().value == "ext@example.jp"


def test_a_refusal_while_sending_is_classified_like_a_report(
        workspace, django_capture_on_commit_callbacks):
    source = _source(workspace)
    delivery = _delivery(workspace, source, "gone@example.jp", status="claimed")
    Delivery.objects.filter(pk=delivery.pk).update(claimed_by="w1")
    docomo = _delivery(workspace, source, "k@docomo.ne.jp", status="claimed")
    Delivery.objects.filter(pk=docomo.pk).update(claimed_by="w1")
    with django_capture_on_commit_callbacks(execute=True):
        queue.record("w1", [
            queue.Outcome(delivery.pk, "failed", "550 5.1.1 <gone@example.jp>: Recipient "
                                                 "address rejected: User unknown"),
            queue.Outcome(docomo.pk, "failed", "550 Unknown user k@docomo.ne.jp")])
    bounces = {b.address: b for b in Bounce.objects.all()}
    assert (bounces["gone@example.jp"].reason, bounces["gone@example.jp"].via) == (
        "userunknown", "smtp")
    assert bounces["k@docomo.ne.jp"].reason == "filtered"
    assert list(Suppression.objects.values_list("value", flat=True)) == ["gone@example.jp"]


def test_a_failure_without_a_server_reply_is_not_a_bounce(
        workspace, django_capture_on_commit_callbacks):
    delivery = _delivery(workspace, _source(workspace), "a@example.jp", status="claimed")
    Delivery.objects.filter(pk=delivery.pk).update(claimed_by="w1")
    with django_capture_on_commit_callbacks(execute=True):
        queue.record("w1", [queue.Outcome(delivery.pk, "failed", "template error: x")])
    assert not Bounce.objects.exists()


@pytest.fixture
def busy_send(workspace):
    rates._last_checked.clear()
    source = _source(workspace)
    rows = [Delivery(workspace=workspace, source=source, address=f"m{i}@example.jp",
                     status="sent", sent_at=timezone.now()) for i in range(200)]
    Delivery.objects.bulk_create(rows)
    yield source, list(Delivery.objects.filter(source=source).order_by("pk"))
    rates._last_checked.clear()


def test_a_send_bouncing_above_the_rate_pauses(busy_send):
    source, rows = busy_send
    for row in rows[:10]:  # 5 %: not above
        _bounce(row, "userunknown", hard=True)
    assert scheduler.auto_pause(now=timezone.now()) == []
    rates._last_checked.clear()
    _bounce(rows[10], "userunknown", hard=True)
    assert scheduler.auto_pause(now=timezone.now()) == [source.pk]
    source.refresh_from_db()
    assert source.status == "paused" and "5.5" in source.pause_reason


def test_carrier_filters_do_not_count_towards_the_rate(busy_send):
    source, rows = busy_send
    for row in rows[:30]:
        _bounce(row, "filtered")
    assert scheduler.auto_pause(now=timezone.now()) == []


def test_complaints_above_the_workspace_rate_pause(busy_send, workspace):
    source, rows = busy_send
    InboundSettings.objects.create(workspace=workspace, complaint_rate_limit=0.5)
    rates.MIN_SENT_COMPLAINTS, saved = 100, rates.MIN_SENT_COMPLAINTS
    try:
        for row in rows[:2]:
            record_complaint(row, workspace_id=workspace.pk, address=row.address)
        with translation.override("en"):
            assert scheduler.auto_pause(now=timezone.now()) == [source.pk]
    finally:
        rates.MIN_SENT_COMPLAINTS = saved
    assert "Complaint rate" in Source.objects.get(pk=source.pk).pause_reason


def test_lifting_a_bounce_suppression_makes_the_member_reachable(owner_client, workspace):
    from tayori.accounts.models import AuditEvent

    delivery = _delivery(workspace, _source(workspace), "gone@example.jp")
    assert Member.objects.get(pk=delivery.member_id).status == "active"
    _bounce(delivery, "userunknown", hard=True)
    assert Member.objects.get(pk=delivery.member_id).status == "bounced"
    suppression = Suppression.objects.get()
    response = owner_client.post(f"/members/suppressions/{suppression.pk}/delete/")
    assert response.status_code == 302
    assert Member.objects.get(pk=delivery.member_id).status == "active"
    assert not Suppression.objects.exists()
    event = AuditEvent.objects.get(action="suppression.removed")
    assert event.detail["members_reactivated"] == 1


def test_a_soft_verdict_never_suppresses_for_good(workspace):
    delivery = _delivery(workspace, _source(workspace), "a@example.jp")
    _bounce(delivery, "hostunknown", hard=False)  # "4.4.3 host not found, try again"
    assert not Suppression.objects.exists()
    assert Member.objects.get(pk=delivery.member_id).status == "active"


def test_an_unsubscribed_member_stays_unsubscribed_through_bounce_and_lift(workspace):
    from tayori.members import services

    delivery = _delivery(workspace, _source(workspace, kind="transactional"), "u@example.jp")
    Member.objects.filter(pk=delivery.member_id).update(status="unsubscribed")
    _bounce(delivery, "userunknown", hard=True)
    assert Member.objects.get(pk=delivery.member_id).status == "unsubscribed"
    assert services.lift_suppression(Suppression.objects.get()) == 0
    assert Member.objects.get(pk=delivery.member_id).status == "unsubscribed"


def test_a_resumed_send_is_judged_on_what_came_back_since(busy_send):
    source, rows = busy_send
    for row in rows[:20]:
        _bounce(row, "userunknown", hard=True)
    assert scheduler.auto_pause(now=timezone.now()) == [source.pk]
    assert queue.resume(Source.objects.get(pk=source.pk))
    rates._last_checked.clear()
    assert scheduler.auto_pause(now=timezone.now()) == []  # the same bounces: not again
    assert Source.objects.get(pk=source.pk).status == "running"
