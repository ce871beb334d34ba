"""Provider feeds against their real wire formats: Amazon SES notifications inside SNS messages
signed as AWS signs them (a test RSA certificate served from 127.0.0.1), and SendGrid's Signed
Event Webhook (a test ECDSA P-256 key). Only the providers' keys are ours; the HTTP requests,
the signature checks and the database are real."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from django.utils import timezone

from tayori.delivery import tokens
from tayori.delivery.models import Delivery, Source
from tayori.inbound.models import Bounce, Complaint, InboundSettings, Via
from tayori.inbound.providers import sns
from tayori.members.models import Member, Suppression

pytestmark = pytest.mark.django_db

TOPIC = "arn:aws:sns:ap-northeast-1:123456789012:tayori-ses-feedback"
OTHER_TOPIC = "arn:aws:sns:ap-northeast-1:999999999999:someone-else"
BOUNCE_DOMAIN = "bounce.shop.example.jp"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"


# --- fixtures: a workspace's delivery and its feed settings ---------------------------------

def _delivery(workspace, address: str) -> Delivery:
    member = Member.objects.create(workspace=workspace, email=address)
    source = Source.objects.create(workspace=workspace, name="秋のセール", status="running",
                                   from_address="news@shop.example.jp", subject="セール",
                                   text="x")
    return Delivery.objects.create(workspace=workspace, source=source, member=member,
                                   address=address, status="sent", sent_at=timezone.now())


@pytest.fixture
def delivery(workspace):
    return _delivery(workspace, "taro@example.jp")


@pytest.fixture
def inbound(workspace):
    settings = InboundSettings.of(workspace)
    settings.sns_topics = f"\n  {TOPIC}  \narn:aws:sns:us-east-1:123456789012:spare\n"
    settings.save()
    return settings


def _member(delivery) -> Member:
    return Member.objects.get(pk=delivery.member_id)


def _message_id(delivery) -> str:
    return f"<{tokens.make(tokens.BOUNCE, delivery.pk)}@shop.example.jp>"


# --- a local stand-in for sns.<region>.amazonaws.com ----------------------------------------

class LocalSNS:
    """Serves the signing certificate and answers SubscribeURLs; records every GET."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.local = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        local = self.server.local
        local.requests.append(self.path)
        path = self.path.partition("?")[0]
        body = local.files.get(path, b"<ConfirmSubscriptionResponse/>"
                               if path == "/confirm" else None)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def aws_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=30))
                   .sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def local_sns(aws_key, settings):
    local = LocalSNS()
    local.files[CERT_PATH] = aws_key[1]
    local.thread.start()
    # Production accepts only https and SNS's hosts; here, this server.
    settings.TAYORI_SNS_CERT_HOST = r"^127\.0\.0\.1$"
    settings.TAYORI_SNS_CERT_SCHEMES = ("http",)
    sns.forget_certificates()
    yield local
    sns.forget_certificates()
    local.server.shutdown()
    local.server.server_close()


# --- SNS messages, signed as AWS documents ---------------------------------------------------

def _string_to_sign(message: dict) -> bytes:
    # "Verifying the signatures of Amazon SNS messages": name, newline, value, newline, for
    # these keys in byte order; Subject only when the message has one.
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def _sign(message: dict, key, version: str = "1") -> dict:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["SignatureVersion"] = version
    message["Signature"] = base64.b64encode(
        key.sign(_string_to_sign(message), padding.PKCS1v15(), algorithm)).decode()
    return message


def _timestamp(at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def notification(local, key, ses: dict, *, topic: str = TOPIC, version: str = "1",
                 cert_url: str | None = None, at: dt.datetime | None = None,
                 subject: str | None = None) -> dict:
    message = {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
        "Message": json.dumps(ses), "Timestamp": _timestamp(at),
        "SigningCertURL": cert_url or local.url(CERT_PATH),
        "UnsubscribeURL": local.url("/?Action=Unsubscribe&SubscriptionArn=" + topic + ":1"),
    }
    if subject is not None:
        message["Subject"] = subject
    return _sign(message, key, version)


def ses_mail(delivery, *, source: str | None = None, message_id: str | None = None) -> dict:
    """SES's ``mail`` object for a message Tayori sent through SES."""
    message_id = message_id or _message_id(delivery)
    return {
        "timestamp": "2025-10-01T01:00:00.000Z",
        "source": source or tokens.bounce_address(delivery.pk, BOUNCE_DOMAIN),
        "sourceArn": "arn:aws:ses:ap-northeast-1:123456789012:identity/shop.example.jp",
        "sourceIp": "203.0.113.7", "sendingAccountId": "123456789012",
        "messageId": "0106019a2b3c4d5e-11111111-2222-3333-4444-555555555555-000000",
        "destination": [delivery.address], "headersTruncated": False,
        "headers": [{"name": "From", "value": "ショップ <news@shop.example.jp>"},
                    {"name": "To", "value": delivery.address},
                    {"name": "Message-ID", "value": message_id},
                    {"name": "Subject", "value": "セール"}],
        "commonHeaders": {"from": ["ショップ <news@shop.example.jp>"], "to": [delivery.address],
                          "messageId": message_id, "subject": "セール"},
    }


def ses_bounce(delivery, *, bounce_type="Permanent", subtype="General", status="5.1.1",
               diagnostic="smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
               feedback_id="0106019a2b3c4d5e-aaaa-bbbb-cccc-dddd-000000", event_form=False,
               mail=None) -> dict:
    recipient = {"emailAddress": delivery.address}
    if status or diagnostic:
        recipient.update(action="failed", status=status,
                         diagnosticCode=diagnostic.format(rcpt=delivery.address))
    bounce = {"bounceType": bounce_type, "bounceSubType": subtype,
              "bouncedRecipients": [recipient], "timestamp": "2025-10-01T01:00:02.000Z",
              "feedbackId": feedback_id, "remoteMtaIp": "192.0.2.25",
              "reportingMTA": "dsn; e226-55.smtp-out.ap-northeast-1.amazonses.com"}
    kind = {"eventType": "Bounce"} if event_form else {"notificationType": "Bounce"}
    return {**kind, "bounce": bounce, "mail": mail or ses_mail(delivery)}


def ses_complaint(delivery, *, feedback_type="abuse", event_form=False) -> dict:
    complaint = {"complainedRecipients": [{"emailAddress": delivery.address}],
                 "timestamp": "2025-10-01T02:00:00.000Z",
                 "feedbackId": "0106019a2b3c4d5e-cccc-0000-000000",
                 "complaintSubType": None, "userAgent": "Yahoo!-Mail-Feedback/2.0",
                 "complaintFeedbackType": feedback_type,
                 "arrivalDate": "2025-10-01T01:59:00.000Z"}
    kind = {"eventType": "Complaint"} if event_form else {"notificationType": "Complaint"}
    return {**kind, "complaint": complaint, "mail": ses_mail(delivery)}


def post_sns(client, inbound, message: dict | bytes):
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    headers = {}
    if isinstance(message, dict):
        headers = {"x-amz-sns-message-type": message.get("Type", ""),
                   "x-amz-sns-message-id": message.get("MessageId", ""),
                   "x-amz-sns-topic-arn": message.get("TopicArn", "")}
    # SNS posts text/plain; the feed reads the body whatever its type.
    return client.post(f"/inbound/ses/{inbound.feed_key}/", data=body,
                       content_type="text/plain; charset=UTF-8", headers=headers)


# --- Amazon SES through SNS -------------------------------------------------------------------

def test_ses_permanent_bounce_signed_v1_suppresses_the_address(client, inbound, delivery,
                                                                local_sns, aws_key):
    response = post_sns(client, inbound, notification(local_sns, aws_key[0], ses_bounce(delivery)))
    assert response.status_code == 200, response.content
    assert response.json()["bounces"] == 1
    bounce = Bounce.objects.get()
    assert (bounce.via, bounce.reason, bounce.hard, bounce.status) == (
        Via.SES, "userunknown", True, "5.1.1")
    assert bounce.delivery_id == delivery.pk and bounce.address == delivery.address
    assert bounce.source_id == delivery.source_id
    assert "User unknown" in bounce.diagnostic and bounce.remote_mta == "192.0.2.25"
    assert bounce.reference.startswith("0106019a2b3c4d5e-aaaa")
    assert b"bouncedRecipients" in bytes(bounce.raw)
    assert Suppression.objects.filter(workspace=delivery.workspace_id,
                                      value=delivery.address).exists()
    assert _member(delivery).status == Member.Status.BOUNCED
    assert local_sns.requests == [CERT_PATH]


def test_ses_event_publishing_signed_v2_mailbox_full_is_soft(client, inbound, delivery,
                                                              local_sns, aws_key):
    ses = ses_bounce(delivery, bounce_type="Transient", subtype="MailboxFull", status="",
                     diagnostic="", event_form=True)
    response = post_sns(client, inbound,
                        notification(local_sns, aws_key[0], ses, version="2",
                                     subject="Amazon SES Email Event Notification"))
    assert response.status_code == 200, response.content
    bounce = Bounce.objects.get()
    assert (bounce.reason, bounce.hard, bounce.diagnostic) == ("mailboxfull", False,
                                                               "MailboxFull")
    assert not Suppression.objects.exists()  # a full mailbox suppresses only when it stays full


@pytest.mark.parametrize(("subtype", "reason"), [
    ("NoEmail", "userunknown"), ("Suppressed", "userunknown"),
    ("OnAccountSuppressionList", "rejected"), ("General", "undefined")])
def test_ses_bounce_type_decides_when_no_smtp_code_was_given(client, inbound, delivery,
                                                            local_sns, aws_key, subtype,
                                                            reason):
    ses = ses_bounce(delivery, subtype=subtype, status="", diagnostic="")
    assert post_sns(client, inbound,
                    notification(local_sns, aws_key[0], ses)).status_code == 200
    assert Bounce.objects.values_list("reason", "hard").get() == (reason, True)


def test_ses_words_beat_the_subtype(client, inbound, delivery, local_sns, aws_key):
    ses = ses_bounce(delivery, subtype="Suppressed", status="", diagnostic=(
        "Amazon SES has suppressed sending to this address because it has a recent history "
        "of bouncing as an invalid address."))
    post_sns(client, inbound, notification(local_sns, aws_key[0], ses))
    assert Bounce.objects.values_list("reason", "hard").get() == ("userunknown", True)


def test_ses_a_spam_refusal_is_not_held_against_the_address(client, inbound, delivery,
                                                            local_sns, aws_key):
    ses = ses_bounce(delivery, status="5.7.1",
                     diagnostic="smtp; 550 5.7.1 Message rejected as spam by Content Filtering")
    post_sns(client, inbound, notification(local_sns, aws_key[0], ses))
    assert Bounce.objects.values_list("reason", "hard").get() == ("spamdetected", False)
    assert not Suppression.objects.exists()


def test_ses_complaint_marks_the_member_and_suppresses(client, inbound, delivery, local_sns,
                                                      aws_key):
    response = post_sns(client, inbound,
                        notification(local_sns, aws_key[0], ses_complaint(delivery)))
    assert response.status_code == 200 and response.json()["complaints"] == 1
    complaint = Complaint.objects.get()
    assert (complaint.via, complaint.feedback_type, complaint.reporter) == (
        Via.SES, "abuse", "Yahoo!-Mail-Feedback/2.0")
    assert complaint.delivery_id == delivery.pk and complaint.reference
    assert _member(delivery).status == Member.Status.COMPLAINED
    suppression = Suppression.objects.get(workspace=delivery.workspace_id)
    assert (suppression.value, suppression.reason, suppression.expires_at) == (
        delivery.address, "complaint", None)


def test_ses_not_spam_feedback_is_no_complaint(client, inbound, delivery, local_sns, aws_key):
    ses = ses_complaint(delivery, feedback_type="not-spam", event_form=True)
    assert post_sns(client, inbound, notification(local_sns, aws_key[0], ses)).status_code == 200
    assert not Complaint.objects.exists()


def test_ses_delivery_found_by_message_id_when_source_is_not_verp(client, inbound, delivery,
                                                                  local_sns, aws_key):
    mail = ses_mail(delivery, source="news@shop.example.jp")
    post_sns(client, inbound, notification(local_sns, aws_key[0],
                                           ses_bounce(delivery, mail=mail)))
    assert Bounce.objects.get().delivery_id == delivery.pk


def test_ses_a_message_tayori_did_not_send_is_ignored(client, inbound, delivery, local_sns,
                                                      aws_key):
    mail = ses_mail(delivery, source="news@shop.example.jp",
                    message_id="<0106019a.someone-else@email.amazonses.com>")
    response = post_sns(client, inbound, notification(local_sns, aws_key[0],
                                                      ses_bounce(delivery, mail=mail)))
    assert response.status_code == 200 and response.json()["ignored"] == 1
    assert not Bounce.objects.exists()


def test_ses_other_notification_types_are_answered_and_ignored(client, inbound, delivery,
                                                               local_sns, aws_key):
    delivered = {"notificationType": "Delivery", "mail": ses_mail(delivery),
                 "delivery": {"recipients": [delivery.address], "smtpResponse": "250 ok"}}
    for ses in (delivered, "Successfully validated SNS topic for Amazon SES event publishing."):
        message = notification(local_sns, aws_key[0], {})
        message["Message"] = ses if isinstance(ses, str) else json.dumps(ses)
        assert post_sns(client, inbound, _sign(message, aws_key[0])).status_code == 200
    assert not Bounce.objects.exists() and not Complaint.objects.exists()


def test_ses_repeated_notification_is_recorded_once(client, inbound, delivery, local_sns,
                                                    aws_key):
    first = notification(local_sns, aws_key[0], ses_bounce(delivery))
    # SNS's retry is the same message; SES may also publish the same feedback twice.
    again = notification(local_sns, aws_key[0], ses_bounce(delivery))
    assert post_sns(client, inbound, first).json()["bounces"] == 1
    assert post_sns(client, inbound, first).json()["repeated"] == 1
    assert post_sns(client, inbound, again).json()["repeated"] == 1
    assert Bounce.objects.count() == 1
    assert local_sns.requests == [CERT_PATH]  # the certificate was fetched once


def test_ses_cross_workspace_token_is_ignored(client, inbound, other_workspace, local_sns,
                                              aws_key):
    theirs = _delivery(other_workspace, "hanako@example.jp")
    response = post_sns(client, inbound,
                        notification(local_sns, aws_key[0], ses_complaint(theirs)))
    assert response.status_code == 200 and response.json()["ignored"] == 1
    assert not Complaint.objects.exists() and not Suppression.objects.exists()
    assert _member(theirs).status == Member.Status.ACTIVE


def test_ses_subscription_confirmation_is_confirmed(client, inbound, local_sns, aws_key):
    token = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f7948a98bac386edfe3e10314e873"
    message = _sign({
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the "
                   "subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": local_sns.url(
            f"/confirm?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"),
        "Timestamp": _timestamp(), "SigningCertURL": local_sns.url(CERT_PATH)},
        aws_key[0], "2")
    response = post_sns(client, inbound, message)
    assert response.status_code == 200, response.content
    assert local_sns.requests == [
        CERT_PATH, f"/confirm?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"]


def test_ses_subscription_to_another_topic_is_refused(client, inbound, local_sns, aws_key):
    message = _sign({
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": "abc",
        "TopicArn": OTHER_TOPIC, "Message": "You have chosen to subscribe.",
        "SubscribeURL": local_sns.url("/confirm?Action=ConfirmSubscription&Token=abc"),
        "Timestamp": _timestamp(), "SigningCertURL": local_sns.url(CERT_PATH)}, aws_key[0])
    assert post_sns(client, inbound, message).status_code == 403
    assert local_sns.requests == []


def test_ses_forged_signature_is_refused(client, inbound, delivery, local_sns, aws_key):
    message = notification(local_sns, aws_key[0], ses_bounce(delivery))
    message["Message"] = json.dumps(ses_complaint(delivery))  # changed after signing
    assert post_sns(client, inbound, message).status_code == 403
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert post_sns(client, inbound,
                    notification(local_sns, impostor, ses_bounce(delivery))).status_code == 403
    assert not Bounce.objects.exists() and not Complaint.objects.exists()


def test_ses_other_topic_is_refused(client, inbound, delivery, local_sns, aws_key):
    message = notification(local_sns, aws_key[0], ses_bounce(delivery), topic=OTHER_TOPIC)
    assert post_sns(client, inbound, message).status_code == 403
    assert not Bounce.objects.exists()


@pytest.mark.parametrize("url", [
    "http://localhost:{port}" + CERT_PATH,  # not a certificate host
    "http://127.0.0.1.evil.example:{port}" + CERT_PATH,
    "http://sns.ap-northeast-1.amazonaws.com@127.0.0.1:{port}" + CERT_PATH,
    "ftp://127.0.0.1:{port}" + CERT_PATH,
    "http://127.0.0.1:{port}/not-a-certificate.txt",
])
def test_ses_certificate_from_elsewhere_is_refused(client, inbound, delivery, local_sns,
                                                   aws_key, url):
    url = url.format(port=local_sns.server.server_address[1])
    message = notification(local_sns, aws_key[0], ses_bounce(delivery), cert_url=url)
    assert post_sns(client, inbound, message).status_code == 403
    assert local_sns.requests == [] and not Bounce.objects.exists()


def test_ses_production_rule_accepts_only_https_sns_hosts(client, inbound, delivery, local_sns,
                                                          aws_key, settings):
    settings.TAYORI_SNS_CERT_HOST = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
    settings.TAYORI_SNS_CERT_SCHEMES = ("https",)
    assert sns.allowed_url("https://sns.ap-northeast-1.amazonaws.com" + CERT_PATH,
                           certificate=True)
    assert sns.allowed_url("https://sns.cn-north-1.amazonaws.com.cn" + CERT_PATH,
                           certificate=True)
    for url in ("http://sns.ap-northeast-1.amazonaws.com" + CERT_PATH,
                "https://sns.ap-northeast-1.amazonaws.com.evil.example" + CERT_PATH,
                "https://evil.example/sns.ap-northeast-1.amazonaws.com.pem"):
        assert not sns.allowed_url(url, certificate=True)
    message = notification(local_sns, aws_key[0], ses_bounce(delivery))
    assert post_sns(client, inbound, message).status_code == 403
    assert local_sns.requests == []


def test_ses_stale_message_is_refused(client, inbound, delivery, local_sns, aws_key):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    message = notification(local_sns, aws_key[0], ses_bounce(delivery), at=old)
    assert post_sns(client, inbound, message).status_code == 403
    assert not Bounce.objects.exists()


def test_ses_unreachable_certificate_asks_sns_to_retry(client, inbound, delivery, local_sns,
                                                       aws_key):
    message = notification(local_sns, aws_key[0], ses_bounce(delivery),
                           cert_url=local_sns.url("/SimpleNotificationService-gone.pem"))
    assert post_sns(client, inbound, message).status_code == 503
    assert not Bounce.objects.exists()


def test_ses_feed_answers_malformed_unknown_oversized_and_get(client, inbound, local_sns):
    assert post_sns(client, inbound, b"{not json").status_code == 400
    assert post_sns(client, inbound, b"[]").status_code == 400
    assert post_sns(client, inbound, {"Type": "Hello"}).status_code == 400
    assert post_sns(client, inbound, {"Type": []}).status_code == 400
    assert post_sns(client, inbound, {"Type": "Notification", "TopicArn": ["x"]}).status_code == 403
    assert client.post("/inbound/ses/no-such-key/", data=b"{}",
                       content_type="application/json").status_code == 404
    big = b'{"Message": "' + b"x" * (1024 * 1024) + b'"}'
    assert post_sns(client, inbound, big).status_code == 413
    assert client.get(f"/inbound/ses/{inbound.feed_key}/").status_code == 405


# --- SendGrid Event Webhook -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sendgrid_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sendgrid_inbound(inbound, sendgrid_key):
    der = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    inbound.sendgrid_public_key = base64.b64encode(der).decode()
    inbound.save()
    return inbound


def sendgrid_event(delivery, event: str, *, smtp_id: str | None = None, **fields) -> dict:
    return {"email": delivery.address, "timestamp": int(timezone.now().timestamp()),
            "smtp-id": smtp_id if smtp_id is not None else _message_id(delivery),
            "event": event, "category": ["autumn-sale"],
            "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22],
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", **fields}


def post_sendgrid(client, inbound, events, key, *, at: dt.datetime | None = None,
                  signature: str | None = None):
    body = json.dumps(events).encode()
    timestamp = str(int((at or timezone.now()).timestamp()))
    if signature is None:
        signature = base64.b64encode(
            key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return client.post(f"/inbound/sendgrid/{inbound.feed_key}/", data=body,
                       content_type="application/json",
                       headers={"X-Twilio-Email-Event-Webhook-Signature": signature,
                                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})


def test_sendgrid_bounce_is_recorded_hard(client, sendgrid_inbound, delivery, sendgrid_key):
    event = sendgrid_event(delivery, "bounce", type="bounce", status="5.1.1",
                           reason="550 5.1.1 The email account that you tried to reach does "
                                  "not exist.", bounce_classification="Invalid Address")
    response = post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key)
    assert response.status_code == 200, response.content
    bounce = Bounce.objects.get()
    assert (bounce.via, bounce.reason, bounce.hard, bounce.status) == (
        Via.SENDGRID, "userunknown", True, "5.1.1")
    assert (bounce.delivery_id, bounce.reference) == (delivery.pk, event["sg_event_id"])
    assert _member(delivery).status == Member.Status.BOUNCED


def test_sendgrid_blocked_is_soft(client, sendgrid_inbound, delivery, sendgrid_key):
    event = sendgrid_event(delivery, "bounce", type="blocked", status="4.7.1",
                           reason="421 4.7.1 Client host blocked using Spamhaus")
    post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key)
    assert Bounce.objects.values_list("reason", "hard").get() == ("blocked", False)
    assert not Suppression.objects.exists()


def test_sendgrid_spamreport_is_a_complaint(client, sendgrid_inbound, delivery, sendgrid_key):
    response = post_sendgrid(client, sendgrid_inbound,
                             [sendgrid_event(delivery, "spamreport")], sendgrid_key)
    assert response.status_code == 200 and response.json()["complaints"] == 1
    complaint = Complaint.objects.get()
    assert (complaint.via, complaint.delivery_id, complaint.feedback_type) == (
        Via.SENDGRID, delivery.pk, "abuse")
    assert _member(delivery).status == Member.Status.COMPLAINED
    assert Suppression.objects.filter(value=delivery.address, reason="complaint").exists()


def test_sendgrid_dropped_and_deferred_are_not_bounces(client, sendgrid_inbound, delivery,
                                                       sendgrid_key):
    events = [sendgrid_event(delivery, "dropped", reason="Bounced Address", status="5.0.0"),
              sendgrid_event(delivery, "dropped", reason="Unsubscribed Address"),
              sendgrid_event(delivery, "deferred", response="400 try again later", attempt="5"),
              sendgrid_event(delivery, "delivered", response="250 OK"),
              sendgrid_event(delivery, "open", useragent="Mozilla/5.0")]
    response = post_sendgrid(client, sendgrid_inbound, events, sendgrid_key)
    assert response.status_code == 200
    assert not Bounce.objects.exists() and not Complaint.objects.exists()


def test_sendgrid_custom_args_are_not_trusted(client, sendgrid_inbound, delivery, sendgrid_key):
    event = sendgrid_event(delivery, "spamreport", smtp_id="<14c5d75ce93.dfd.64b469@ismtpd-555>",
                           tayori_delivery=str(delivery.pk))
    response = post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key)
    assert response.status_code == 200 and response.json()["ignored"] == 1
    assert not Complaint.objects.exists()


def test_sendgrid_cross_workspace_token_is_ignored(client, sendgrid_inbound, other_workspace,
                                                   sendgrid_key):
    theirs = _delivery(other_workspace, "hanako@example.jp")
    events = [sendgrid_event(theirs, "bounce", type="bounce", status="5.1.1",
                             reason="550 5.1.1 User unknown"),
              sendgrid_event(theirs, "spamreport")]
    response = post_sendgrid(client, sendgrid_inbound, events, sendgrid_key)
    assert response.status_code == 200 and response.json()["ignored"] == 2
    assert not Bounce.objects.exists() and not Complaint.objects.exists()
    assert not Suppression.objects.exists()


def test_sendgrid_repeated_event_is_recorded_once(client, sendgrid_inbound, delivery,
                                                  sendgrid_key):
    event = sendgrid_event(delivery, "bounce", type="bounce", status="5.1.1",
                           reason="550 5.1.1 User unknown")
    assert post_sendgrid(client, sendgrid_inbound, [event, event],
                         sendgrid_key).json() == {"bounces": 1, "complaints": 0,
                                                  "repeated": 1, "ignored": 0}
    assert post_sendgrid(client, sendgrid_inbound, [event],
                         sendgrid_key).json()["repeated"] == 1
    assert Bounce.objects.count() == 1


def test_sendgrid_bad_signature_is_refused(client, sendgrid_inbound, delivery, sendgrid_key):
    event = sendgrid_event(delivery, "spamreport")
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert post_sendgrid(client, sendgrid_inbound, [event], impostor).status_code == 403
    assert post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key,
                         signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert client.post(f"/inbound/sendgrid/{sendgrid_inbound.feed_key}/",
                       data=json.dumps([event]),
                       content_type="application/json").status_code == 403  # unsigned
    assert not Complaint.objects.exists()


def test_sendgrid_signature_covers_the_body(client, sendgrid_inbound, delivery, sendgrid_key):
    signed = json.dumps([sendgrid_event(delivery, "delivered")]).encode()
    timestamp = str(int(timezone.now().timestamp()))
    signature = base64.b64encode(sendgrid_key.sign(timestamp.encode() + signed,
                                                   ec.ECDSA(hashes.SHA256()))).decode()
    response = client.post(f"/inbound/sendgrid/{sendgrid_inbound.feed_key}/",
                           data=json.dumps([sendgrid_event(delivery, "spamreport")]),
                           content_type="application/json",
                           headers={"X-Twilio-Email-Event-Webhook-Signature": signature,
                                    "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    assert response.status_code == 403
    assert not Complaint.objects.exists()


def test_sendgrid_stale_timestamp_is_refused(client, sendgrid_inbound, delivery, sendgrid_key):
    event = sendgrid_event(delivery, "spamreport")
    old = timezone.now() - dt.timedelta(minutes=11)
    assert post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key,
                         at=old).status_code == 403
    fresh = timezone.now() - dt.timedelta(minutes=9)
    assert post_sendgrid(client, sendgrid_inbound, [event], sendgrid_key,
                         at=fresh).status_code == 200


def test_sendgrid_without_a_key_refuses_everything(client, inbound, delivery, sendgrid_key):
    response = post_sendgrid(client, inbound, [sendgrid_event(delivery, "spamreport")],
                             sendgrid_key)
    assert response.status_code == 403
    assert not Complaint.objects.exists()


def test_sendgrid_malformed_and_oversized(client, sendgrid_inbound, sendgrid_key):
    timestamp = str(int(timezone.now().timestamp()))
    for body, status in ((b"{not json", 400), (b'{"event": "bounce"}', 400),
                         (b"[" + b" " * (1024 * 1024) + b"]", 413)):
        signature = base64.b64encode(sendgrid_key.sign(timestamp.encode() + body,
                                                       ec.ECDSA(hashes.SHA256()))).decode()
        response = client.post(f"/inbound/sendgrid/{sendgrid_inbound.feed_key}/", data=body,
                               content_type="application/json",
                               headers={"X-Twilio-Email-Event-Webhook-Signature": signature,
                                        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
        assert response.status_code == status


def test_a_delivery_told_by_returned_mail_and_by_ses_bounces_once(client, inbound, delivery,
                                                                   local_sns, aws_key):
    from tayori.inbound.consequences import Evidence, record_bounce

    record_bounce(delivery, Evidence(delivery.address, "userunknown", True),
                  workspace_id=delivery.workspace_id)
    response = post_sns(client, inbound, notification(local_sns, aws_key[0],
                                                      ses_bounce(delivery)))
    assert response.status_code == 200 and response.json()["repeated"] == 1
    assert Bounce.objects.count() == 1
