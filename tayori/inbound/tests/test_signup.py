"""Empty-mail sign-up end to end: an empty mail from a carrier phone into tayori mx makes a
pending member and an answer with a link; the link confirms (double opt-in) with the consent
recorded; senders are rate-limited; pending members get no broadcast mail."""

import email
import email.policy
import re

import pytest

from tayori.delivery.models import DeliverySettings, OutboxMessage
from tayori.inbound import receiving, signup
from tayori.inbound.models import EmptyMail, InboundSettings, SignupAddress
from tayori.inbound.tests.mail import deliver, mx_server, sent
from tayori.members.models import ConsentRecord, Member, MemberList

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "taro..x.@docomo.ne.jp"  # a pre-2009 docomo address, dots and all


@pytest.fixture
def join(workspace):
    receiving.forget_domains()
    DeliverySettings.objects.create(workspace=workspace, tracking_host="http://testserver")
    settings = InboundSettings.of(workspace)
    settings.inbound_domain = "in.example.jp"
    settings.save()
    news = MemberList.objects.create(workspace=workspace, name="メルマガ")
    yield SignupAddress.objects.create(
        workspace=workspace, code="news", name="メールマガジン登録", member_list=news,
        from_name="ショップ", subject="ご登録の確認",
        text="下記のURLから登録を完了してください。\n{{ data.confirm_url }}\n",
        wording_version="2026-11")
    receiving.forget_domains()


def _empty_mail(sender: str) -> bytes:
    return f"From: {sender}\r\nTo: join-news@in.example.jp\r\nSubject: \r\n\r\n".encode()


def test_an_empty_mail_signs_up_end_to_end(join, client):
    with mx_server() as server:
        deliver(server, PHONE, "join-news@in.example.jp", _empty_mail(PHONE))
    member = Member.objects.get(email=PHONE)
    assert member.status == "pending"
    mail = EmptyMail.objects.get()
    assert (mail.outcome, mail.member_id) == ("replied", member.pk)
    answer = sent(member.deliveries.get())
    assert answer.recipient == PHONE
    message = email.message_from_bytes(bytes(answer.raw), policy=email.policy.default)
    assert "join-news@in.example.jp" in message["From"]
    url = re.search(r"http://testserver(/t/j/\w+)", message.get_body().get_content()).group(1)

    page = client.get(url)  # a link checker opening the link changes nothing
    assert page.status_code == 200 and "data-testid=\"join-confirm\"" in page.text
    assert Member.objects.get(pk=member.pk).status == "pending"

    done = client.post(url, HTTP_USER_AGENT="DoCoMo/2.0 P903i")
    assert done.status_code == 200 and "join-done" in done.text
    member.refresh_from_db()
    assert member.status == "active"
    assert list(member.lists.values_list("name", flat=True)) == ["メルマガ"]
    consent = ConsentRecord.objects.get(member=member)
    assert (consent.method, consent.source, consent.wording_version) == (
        "empty mail", "join-news@in.example.jp", "2026-11")
    assert consent.user_agent == "DoCoMo/2.0 P903i"
    assert client.post(url).status_code == 200  # again: nothing more happens
    assert ConsentRecord.objects.count() == 1


def test_a_sender_gets_at_most_three_answers_an_hour(join):
    for _ in range(signup.PER_HOUR + 2):
        receiving.receive(PHONE, ["join-news@in.example.jp"], _empty_mail(PHONE))
    outcomes = list(EmptyMail.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == ["replied"] * signup.PER_HOUR + ["limited"] * 2
    assert OutboxMessage.objects.count() == 0 and Member.objects.get().deliveries.count() == 3


def test_an_expired_or_forged_link_is_refused(join, client):
    receiving.receive(PHONE, ["join-news@in.example.jp"], _empty_mail(PHONE))
    mail = EmptyMail.objects.get()
    EmptyMail.objects.filter(pk=mail.pk).update(
        received_at=mail.received_at - signup.CONFIRM_WITHIN)
    from tayori.delivery import tokens
    assert client.get(f"/t/j/{tokens.make(tokens.JOIN, mail.pk)}").status_code == 404
    assert client.get(f"/t/j/{tokens.make(tokens.BOUNCE, mail.pk)}").status_code == 404


def test_a_member_who_complained_is_not_signed_up_again(join, workspace):
    Member.objects.create(workspace=workspace, email="angry@example.jp", status="complained")
    receiving.receive("angry@example.jp", ["join-news@in.example.jp"],
                      _empty_mail("angry@example.jp"))
    assert EmptyMail.objects.get().outcome == "refused"
    assert Member.objects.get().deliveries.count() == 0


def test_an_inactive_code_is_ignored(join):
    join.active = False
    join.save()
    receipt = receiving.receive(PHONE, ["join-news@in.example.jp"], _empty_mail(PHONE))
    assert receipt.kind == "ignored" and not Member.objects.exists()


def test_a_pending_member_gets_no_broadcast_mail_and_no_notice(join, workspace):
    from tayori.delivery import queue
    from tayori.delivery.models import Source
    from tayori.members.models import Segment

    receiving.receive(PHONE, ["join-news@in.example.jp"], _empty_mail(PHONE))
    everyone = Segment.objects.create(workspace=workspace, name="all",
                                      definition={"op": "and", "conditions": []})
    for kind in ("bulk", "notice"):
        source = Source.objects.create(workspace=workspace, kind=kind, name=kind,
                                       from_address="a@example.jp", subject="s", text="t",
                                       segment=everyone)
        assert queue.fan_out(source) == {"pending": 1}


def test_bounces_and_auto_replies_to_the_address_sign_no_one_up(join):
    vacation = (f"From: {PHONE}\r\nTo: join-news@in.example.jp\r\nSubject: 不在通知\r\n"
                "Auto-Submitted: auto-replied\r\n\r\n12月まで不在です。\r\n").encode()
    receiving.receive(PHONE, ["join-news@in.example.jp"], vacation)
    receiving.receive("", ["join-news@in.example.jp"], _empty_mail(PHONE))  # null sender
    assert not EmptyMail.objects.exists() and not Member.objects.exists()


def test_only_the_workspaces_inbound_domain_and_outside_senders_sign_up(join, workspace):
    from tayori.members.models import Suppression

    DeliverySettings.objects.filter(workspace=workspace).update(bounce_domain="b.example.jp")
    receiving.forget_domains()
    assert receiving.receive(PHONE, ["join-news@b.example.jp"], _empty_mail(PHONE)).kind == (
        "ignored")
    own = "postmaster@in.example.jp"
    assert receiving.receive(own, ["join-news@in.example.jp"], _empty_mail(own)).kind == (
        "ignored")
    Suppression.objects.create(workspace=workspace, value="held@example.jp", reason="test")
    receiving.receive("held@example.jp", ["join-news@in.example.jp"],
                      _empty_mail("held@example.jp"))
    assert EmptyMail.objects.get().outcome == "refused"  # no answer could go out


def test_sign_ups_never_confirmed_are_deleted_after_their_links_expire(join, workspace):
    import datetime as dt

    from django.utils import timezone

    receiving.receive(PHONE, ["join-news@in.example.jp"], _empty_mail(PHONE))
    kept = Member.objects.create(workspace=workspace, email="old@example.jp",
                                 created_at=timezone.now() - dt.timedelta(days=30))
    signup._tidied_at = -signup.TIDY_EVERY
    assert signup.tidy(now=timezone.now()) == 0  # links still valid
    signup._tidied_at = -signup.TIDY_EVERY
    assert signup.tidy(now=timezone.now() + dt.timedelta(days=5)) == 1
    assert list(Member.objects.values_list("pk", flat=True)) == [kept.pk]
    assert EmptyMail.objects.get().member_id is None  # the record of the mail stays
