"""Real SMTP sessions into tayori mx over loopback: a bounce for a message the engine really
sent is matched, classified, kept with its evidence and acted on; complaints suppress; a carrier
filter does not; auto-replies are not bounces; other domains and oversized mail are refused."""

import json
import smtplib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from tayori.delivery import sending, tokens
from tayori.delivery.models import DeliverySettings
from tayori.inbound import receiving
from tayori.inbound.models import Bounce, Complaint
from tayori.inbound.tests.mail import arf, deliver, dsn, mx_server, sent
from tayori.members.models import Member, Suppression
from tayori.tracking.history import delivery_history

pytestmark = pytest.mark.django_db(transaction=True)

BOUNCE_DOMAIN = "bounce.example.jp"


@pytest.fixture(autouse=True)
def _fresh_domains():
    receiving.forget_domains()
    yield
    receiving.forget_domains()


@pytest.fixture
def mail_to(workspace):
    """Send a transactional message to a new member; returns (delivery, outbox copy)."""
    DeliverySettings.objects.create(workspace=workspace, bounce_domain=BOUNCE_DOMAIN,
                                    tracking_host="t.example.jp")

    def send(address):
        member = Member.objects.get_or_create(workspace=workspace, email=address)[0]
        delivery = sending.enqueue_message(workspace, sending.Content(
            subject="ご注文ありがとうございます", text="{{ email }} 様", tracking=False,
            from_address="shop@example.jp"), member=member)
        return delivery, sent(delivery)
    return send


def test_an_unknown_user_bounce_is_matched_classified_and_suppresses(mail_to):
    delivery, copy = mail_to("taro@example.co.jp")
    assert copy.mail_from.startswith("bounce+") and copy.mail_from.endswith(BOUNCE_DOMAIN)
    with mx_server() as server:
        deliver(server, "", copy.mail_from, dsn(bytes(copy.raw), "taro@example.co.jp"))
    bounce = Bounce.objects.get()
    assert (bounce.delivery_id, bounce.reason, bounce.hard, bounce.counts) == (
        delivery.pk, "userunknown", True, True)
    assert bounce.status == "5.1.1" and "User unknown" in bounce.diagnostic
    assert bounce.remote_mta == "mx.example.co.jp" and b"Final-Recipient" in bytes(bounce.raw)
    assert Member.objects.get(pk=delivery.member_id).status == "bounced"
    suppression = Suppression.objects.get(value="taro@example.co.jp")
    assert suppression.expires_at is None and suppression.delivery_id == delivery.pk
    assert suppression.reason == "bounce: userunknown"
    assert [e["reason"] for e in delivery_history(delivery) if e["type"] == "bounced"] == [
        "userunknown"]


def test_a_report_without_verp_is_matched_by_its_quoted_message_id(mail_to):
    delivery, copy = mail_to("hanako@example.co.jp")
    with mx_server() as server:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}",
                dsn(bytes(copy.raw), "hanako@example.co.jp"))
    bounce = Bounce.objects.get()
    assert bounce.delivery_id == delivery.pk and bounce.counts
    assert Suppression.objects.filter(value="hanako@example.co.jp").exists()


def test_a_report_matched_only_by_address_is_kept_but_not_acted_on(mail_to, other_workspace):
    delivery, _copy = mail_to("jiro@example.co.jp")
    forged = dsn(b"Subject: something\r\nTo: jiro@example.co.jp", "jiro@example.co.jp")
    with mx_server() as server:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}", forged)
    bounce = Bounce.objects.get()
    assert (bounce.delivery_id, bounce.member_id, bounce.counts) == (
        None, delivery.member_id, False)
    assert not Suppression.objects.exists()
    assert Member.objects.get(pk=delivery.member_id).status == "active"
    assert [e for e in delivery_history(delivery) if e["type"] == "bounced"] == []


def test_an_address_only_report_never_reaches_another_workspace(mail_to, other_workspace):
    from tayori.delivery.models import Delivery, Source

    mail_to("someone@example.co.jp")  # the report comes to this workspace's bounce domain
    theirs = Source.objects.create(workspace=other_workspace, name="theirs", status="done",
                                   from_address="a@other.example.jp", subject="s", text="t")
    Delivery.objects.create(workspace=other_workspace, source=theirs, status="sent",
                            address="victim@example.co.jp", sent_at=timezone.now())
    with mx_server() as server:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}",
                dsn(b"Subject: x", "victim@example.co.jp"))
    assert not Bounce.objects.exists()


def test_a_report_quoting_its_own_token_acts_only_on_its_own_address(mail_to):
    delivery, copy = mail_to("attacker@example.co.jp")
    forged = dsn(bytes(copy.raw), "victim@example.co.jp")  # its own mail, someone else failed
    victim = Member.objects.create(workspace=delivery.workspace, email="victim@example.co.jp")
    with mx_server() as server:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}", forged)
        deliver(server, "", copy.mail_from, forged)  # and again, by VERP: counted once
    assert list(Suppression.objects.values_list("value", flat=True)) == [
        "attacker@example.co.jp"]
    assert Bounce.objects.get().address == "attacker@example.co.jp"
    assert Member.objects.get(pk=victim.pk).status == "active"


def test_a_carrier_domain_filter_never_suppresses(mail_to):
    with mx_server() as server:
        for _ in range(3):
            delivery, copy = mail_to("keitai@docomo.ne.jp")
            deliver(server, "", copy.mail_from, dsn(
                bytes(copy.raw), "keitai@docomo.ne.jp", status="5.0.0",
                diagnostic="smtp; 550 Unknown user keitai@docomo.ne.jp",
                mta="mfsmax.docomo.ne.jp"))
    assert set(Bounce.objects.values_list("reason", "hard", "counts")) == {
        ("filtered", False, False)}
    assert not Suppression.objects.exists()
    assert Member.objects.get(pk=delivery.member_id).status == "active"


def test_a_full_mailbox_suppresses_for_thirty_days_after_five(mail_to):
    with mx_server() as server:
        for count in range(1, 6):  # five messages, each bouncing (once, though sent twice)
            delivery, copy = mail_to("full@example.co.jp")
            report = dsn(bytes(copy.raw), "full@example.co.jp", status="4.2.2",
                         diagnostic="smtp; 452 4.2.2 Mailbox full")
            deliver(server, "", copy.mail_from, report)
            deliver(server, "", copy.mail_from, report)
            assert Suppression.objects.exists() == (count == 5)
    assert Bounce.objects.count() == 5
    suppression = Suppression.objects.get()
    days = (suppression.expires_at - timezone.now()).total_seconds() / 86400
    assert 29.9 < days <= 30 and suppression.reason == "bounce: mailboxfull"
    assert Member.objects.get(pk=delivery.member_id).status == "active"


def test_a_complaint_marks_the_member_and_suppresses(mail_to):
    delivery, copy = mail_to("angry@example.co.jp")
    with mx_server() as server:
        deliver(server, "feedback@fbl.example.net", f"abuse@{BOUNCE_DOMAIN}",
                arf(bytes(copy.raw), "angry@example.co.jp"))
    complaint = Complaint.objects.get()
    assert (complaint.delivery_id, complaint.feedback_type) == (delivery.pk, "abuse")
    assert Member.objects.get(pk=delivery.member_id).status == "complained"
    assert Suppression.objects.get().reason == "complaint"


def test_an_auto_reply_to_the_bounce_address_is_not_a_bounce(mail_to):
    _delivery, copy = mail_to("away@example.co.jp")
    reply = ("From: away@example.co.jp\r\nTo: shop@example.jp\r\n"
             "Subject: =?UTF-8?B?5LiN5Zyo6YCa55+l?=\r\nAuto-Submitted: auto-replied\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
             "12月1日まで不在にしております。\r\n").encode()
    with mx_server() as server:
        deliver(server, "away@example.co.jp", copy.mail_from, reply)
    assert not Bounce.objects.exists() and not Suppression.objects.exists()


def test_unsubscribe_by_mail(mail_to):
    # The List-Unsubscribe mailto of broadcast mail (rendering writes it the same way).
    delivery, _copy = mail_to("stop@example.co.jp")
    mailto = f"unsubscribe+{tokens.make(tokens.UNSUBSCRIBE, delivery.pk)}@{BOUNCE_DOMAIN}"
    with mx_server() as server:
        deliver(server, "stop@example.co.jp", mailto, b"Subject: unsubscribe\r\n\r\n")
    assert Member.objects.get(pk=delivery.member_id).status == "unsubscribed"


def test_mail_for_other_domains_is_refused_at_rcpt(workspace):
    DeliverySettings.objects.create(workspace=workspace, bounce_domain=BOUNCE_DOMAIN)
    with mx_server() as server, smtplib.SMTP(server.hostname, server.port) as client:
        client.ehlo()
        client.mail("someone@example.net")
        code, message = client.rcpt("victim@example.com")
        assert code == 550 and b"does not receive mail" in message
        assert client.rcpt(f"x@{BOUNCE_DOMAIN}")[0] == 250


def test_oversized_mail_is_refused(workspace):
    DeliverySettings.objects.create(workspace=workspace, bounce_domain=BOUNCE_DOMAIN)
    with mx_server(max_size=10_000) as server, pytest.raises(smtplib.SMTPResponseException) as e:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}", b"Subject: big\r\n\r\n" + b"x" * 20_000)
    assert e.value.smtp_code == 552


def test_a_failure_answers_451_so_the_sender_retries(workspace, monkeypatch):
    DeliverySettings.objects.create(workspace=workspace, bounce_domain=BOUNCE_DOMAIN)

    def broken(*args, **kwargs):
        raise RuntimeError("database away")
    monkeypatch.setattr(receiving, "receive", broken)
    with mx_server() as server, pytest.raises(smtplib.SMTPDataError) as e:
        deliver(server, "", f"postmaster@{BOUNCE_DOMAIN}", b"Subject: x\r\n\r\nx")
    assert e.value.smtp_code == 451


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = timezone.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timezone.timedelta(days=1))
            .not_valid_after(now + timezone.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "mx.pem", tmp_path / "mx.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_starttls_when_given_a_certificate(mail_to, settings, tmp_path):
    settings.MX_TLS_CERT, settings.MX_TLS_KEY = _certificate(tmp_path)
    delivery, copy = mail_to("secure@example.co.jp")
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    with mx_server() as server, smtplib.SMTP(server.hostname, server.port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_context)
        client.sendmail("", [copy.mail_from], dsn(bytes(copy.raw), "secure@example.co.jp"))
    assert Bounce.objects.get().delivery_id == delivery.pk


def test_bounces_and_complaints_are_told_to_webhooks(mail_to, workspace, settings):
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    from tayori.webhooks import endpoints, subscriptions
    from tayori.webhooks.models import WebhookEvent

    endpoints.create(workspace, url="http://127.0.0.1:9/hook",
                     events=["message.bounced", "message.complained"])
    subscriptions.changed()
    bounced, bounced_copy = mail_to("gone@example.co.jp")
    angry, angry_copy = mail_to("angry@example.co.jp")
    with mx_server() as server:
        deliver(server, "", bounced_copy.mail_from,
                dsn(bytes(bounced_copy.raw), "gone@example.co.jp"))
        deliver(server, "", f"fbl@{BOUNCE_DOMAIN}", arf(bytes(angry_copy.raw),
                                                         "angry@example.co.jp"))
    subscriptions.changed()
    told = {e.type: json.loads(e.body)["data"] for e in WebhookEvent.objects.all()}
    assert told["message.bounced"]["delivery_id"] == bounced.pk
    assert told["message.bounced"]["reason"] == "userunknown"
    assert told["message.complained"]["delivery_id"] == angry.pk
