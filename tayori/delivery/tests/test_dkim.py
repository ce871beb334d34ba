"""DKIM: every signature checked by dkimpy, tampering detected."""

import dkim as dkimpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tayori.delivery.dkim import DkimSigner, dns_record, generate_key, sign_all
from tayori.delivery.rendering import Attachment, MessageSpec, compile_message

RSA = generate_key("rsa")
ED = generate_key("ed25519")


def verify(message: bytes, records: dict[str, str]) -> bool:
    def dnsfunc(name, timeout=5):
        return records[name.decode().rstrip(".")].encode()

    return dkimpy.verify(message, dnsfunc=dnsfunc)


def rendered(**fields):
    spec = MessageSpec(**{"from_address": "news@example.jp", "from_name": "サンプル商店",
                          "subject": "冬のセール{{ data.n }}のお知らせ、とても長い件名がここに続きます",
                          "html": "<p>{{ member.name }} 様</p><a href='https://example.jp/'>x</a>",
                          "text": "{{ member.name }} 様\n\n", "tracking": True,
                          "tracking_host": "t.example.jp", **fields})
    return compile_message(spec).render(7, "taro@example.jp", {"name": "山田"}, {"n": 1})


RECORDS = {"s1._domainkey.example.jp": dns_record(RSA),
           "e1._domainkey.example.jp": dns_record(ED)}


@pytest.mark.parametrize("key,selector", [(RSA, "s1"), (ED, "e1")])
def test_a_rendered_japanese_message_verifies(key, selector):
    message = rendered()
    signer = DkimSigner("example.jp", selector, key)
    signed = signer.sign_parts(message.headers, message.body) + message.data
    assert verify(signed, RECORDS)
    assert signer.sign(message.data) .startswith(b"DKIM-Signature: v=1;")


def test_both_signatures_on_one_message_verify_and_tampering_fails():
    message = rendered(attachments=[Attachment("a.pdf", "application/pdf", b"%PDF" * 300)])
    signers = [DkimSigner("example.jp", "s1", RSA), DkimSigner("example.jp", "e1", ED)]
    signed = sign_all(signers, message.headers, message.body) + message.data
    assert verify(signed, RECORDS)
    assert signed.count(b"DKIM-Signature:") == 2
    assert not verify(signed.replace(b"To: taro@", b"To: jiro@"), RECORDS)
    assert not verify(signed[:-20] + b"A" + signed[-19:], RECORDS)
    # An extra From above the signed one is caught by oversigning.
    assert not verify(b"From: evil@example.com\r\n" + signed, RECORDS)


def test_the_dns_record_names_the_algorithm():
    assert dns_record(RSA).startswith("v=DKIM1; k=rsa; p=MIIB")
    assert dns_record(ED).startswith("v=DKIM1; k=ed25519; p=")


lines = st.text(st.sampled_from("ab あ\t .-="), max_size=30)


@settings(max_examples=40, deadline=None)
@given(body=st.lists(lines, max_size=8), subject=st.text(st.sampled_from("ab  \t"), max_size=20),
       trailing=st.sampled_from(["", "\r\n", "\r\n\r\n", "  \r\n\t\r\n"]))
def test_whitespace_anywhere_still_verifies(body, subject, trailing):
    message = (f"From: a@example.jp\r\nTo: b@example.jp\r\nSubject: x{subject}\r\n"
               f"  folded {subject}\r\n\r\n" + "\r\n".join(body) + trailing).encode()
    if not message.endswith(b"\r\n"):
        message += b"\r\n"  # as SMTP carries it
    signed = DkimSigner("example.jp", "s1", RSA).sign(message) + message
    assert verify(signed, RECORDS)
