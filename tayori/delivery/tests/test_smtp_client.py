"""The bulk SMTP client against aiosmtpd (pipelined or not, STARTTLS, AUTH, refusals, drops)
and Debian's smtp-sink."""

import asyncio
import datetime as dt
import os
import shutil
import ssl
import tempfile

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tayori.delivery.smtp.client import (
    AuthFailed,
    Envelope,
    RelayUnavailable,
    SmtpConnection,
    stuff,
)
from tayori.delivery.smtp.sink import free_port, start_smtp_sink

pytestmark = pytest.mark.asyncio

BODY = ("From: a@example.jp\r\nSubject: =?UTF-8?B?5L6/44KK?=\r\n\r\n"
        ".starts with a dot\r\n..two dots\r\n\r\n.\r\n8ビット本文 ✓\r\nlast line").encode()


class Recorder:
    """An aiosmtpd handler that keeps what it receives and can refuse on cue."""

    def __init__(self, *, pipelining=True, refuse_rcpt=None, refuse_data=None, drop_after=None):
        self.pipelining = pipelining
        self.refuse_rcpt = refuse_rcpt or {}
        self.refuse_data = refuse_data or {}
        self.drop_after = drop_after
        self.messages = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_after is not None and len(self.messages) >= self.drop_after:
            server.transport.close()
            return "421 closing"
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.refuse_data:
                return self.refuse_data[rcpt]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


def start(handler, **options):
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return controller


def envelopes(n, body=BODY):
    return [Envelope(f"bounce+{i}@example.jp", [f"user{i}@example.net"], body) for i in range(n)]


@pytest.fixture
def certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                __import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.mark.parametrize("pipelining", [True, False])
async def test_a_batch_arrives_byte_for_byte(pipelining):
    handler = Recorder(pipelining=pipelining)
    controller = start(handler, decode_data=False)
    try:
        connection = await SmtpConnection.open("127.0.0.1", controller.port, tls="off")
        assert connection.pipelining is pipelining
        results = await connection.send(envelopes(25))
        await connection.close()
    finally:
        controller.stop()
    assert [r.reply.code for r in results] == [250] * 25
    assert len(handler.messages) == 25
    mail_from, rcpts, content = handler.messages[7]
    assert (mail_from, rcpts) == ("bounce+7@example.jp", ["user7@example.net"])
    assert content == BODY + b"\r\n"


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_dot_stuffing_doubles_leading_dots_only():
    assert stuff(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n"
    assert stuff(b"a.b\r\n") == b"a.b\r\n"


@pytest.mark.parametrize("pipelining", [True, False])
async def test_refusals_are_per_message_and_the_next_message_still_goes(pipelining):
    handler = Recorder(pipelining=pipelining, refuse_rcpt={
        "user1@example.net": "550 5.1.1 No such user", "user3@example.net": "451 4.3.0 Try later"},
        refuse_data={"user5@example.net": "552 5.3.4 Message too big for mailbox"})
    controller = start(handler, decode_data=False)
    try:
        connection = await SmtpConnection.open("127.0.0.1", controller.port, tls="off")
        results = await connection.send(envelopes(7))
        await connection.close()
    finally:
        controller.stop()
    codes = [r.reply.code for r in results]
    assert codes == [250, 550, 250, 451, 250, 552, 250]
    assert results[1].reply.permanent and results[3].reply.temporary
    assert "No such user" in results[1].reply.text
    assert [m[1][0] for m in handler.messages] == [
        "user0@example.net", "user2@example.net", "user4@example.net", "user6@example.net"]


async def test_a_dropped_connection_keeps_the_results_of_finished_messages():
    handler = Recorder(drop_after=3)
    controller = start(handler, decode_data=False)
    try:
        connection = await SmtpConnection.open("127.0.0.1", controller.port, tls="off")
        with pytest.raises(RelayUnavailable) as error:
            await connection.send(envelopes(10))
    finally:
        controller.stop()
    done = error.value.results
    assert [r.reply.code for r in done] == [250] * len(done)
    assert 2 <= len(done) <= 3 and len(handler.messages) == 3


async def test_nothing_listening_is_a_relay_failure():
    with pytest.raises(RelayUnavailable):
        await SmtpConnection.open("127.0.0.1", free_port(), tls="off", timeout=2)


async def test_starttls_required_verifies_and_protects_the_session(certificate):
    server_tls, client_tls = certificate
    handler = Recorder()
    controller = start(handler, decode_data=False, tls_context=server_tls,
                       require_starttls=True)
    try:
        connection = await SmtpConnection.open("127.0.0.1", controller.port, tls="required",
                                               ssl_context=client_tls)
        assert connection.writer.get_extra_info("ssl_object") is not None
        assert [r.reply.code for r in await connection.send(envelopes(3))] == [250] * 3
        await connection.close()
        # The same server without our CA: verification fails, so the relay is unavailable.
        with pytest.raises(RelayUnavailable):
            await SmtpConnection.open("127.0.0.1", controller.port, tls="required")
        # Opportunistic TLS encrypts without checking the certificate, as MTAs do.
        opportunistic = await SmtpConnection.open("127.0.0.1", controller.port)
        assert opportunistic.writer.get_extra_info("ssl_object") is not None
        await opportunistic.close()
    finally:
        controller.stop()
    assert len(handler.messages) == 3


async def test_starttls_required_but_not_offered_is_refused():
    controller = start(Recorder(), decode_data=False)
    try:
        with pytest.raises(RelayUnavailable, match="STARTTLS"):
            await SmtpConnection.open("127.0.0.1", controller.port, tls="required")
    finally:
        controller.stop()


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"tayori" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_logs_in_after_starttls_and_refusal_is_an_auth_failure(certificate, mechanism):
    server_tls, client_tls = certificate
    handler = Recorder()

    async def only(server, session, envelope, hostname, responses):
        responses = await Recorder.handle_EHLO(handler, server, session, envelope, hostname,
                                               responses)
        return [r.replace("AUTH LOGIN PLAIN", f"AUTH {mechanism}") for r in responses]

    handler.handle_EHLO = only
    controller = start(handler, decode_data=False, tls_context=server_tls,
                       authenticator=authenticator, auth_require_tls=True)
    try:
        connection = await SmtpConnection.open(
            "127.0.0.1", controller.port, tls="required", ssl_context=client_tls,
            username="tayori", password="s3cret")
        assert (await connection.send(envelopes(1)))[0].reply.code == 250
        await connection.close()
        with pytest.raises(AuthFailed):
            await SmtpConnection.open("127.0.0.1", controller.port, tls="required",
                                      ssl_context=client_tls, username="tayori", password="x")
    finally:
        controller.stop()


async def test_a_message_over_the_size_limit_is_refused_without_sending():
    handler = Recorder()
    controller = start(handler, decode_data=False, data_size_limit=2000)
    try:
        connection = await SmtpConnection.open("127.0.0.1", controller.port, tls="off")
        batch = envelopes(3)
        batch[1] = Envelope("a@example.jp", ["big@example.net"], b"x" * 5000)
        results = await connection.send(batch)
        await connection.close()
    finally:
        controller.stop()
    assert [r.reply.code for r in results] == [250, 552, 250]
    assert len(handler.messages) == 2


async def test_a_thousand_messages_into_smtp_sink():
    # smtp-sink writes as "nobody", who cannot enter pytest's private tmp_path.
    dump_dir = tempfile.mkdtemp(prefix="tayori-sink-")
    process, port = start_smtp_sink(dump_dir=dump_dir)
    try:
        async def one_connection(batch):
            connection = await SmtpConnection.open("127.0.0.1", port, tls="off")
            results = await connection.send(batch)
            await connection.close()
            return results

        every = envelopes(1000)
        results = await asyncio.gather(*(one_connection(every[i::4]) for i in range(4)))
    finally:
        await asyncio.sleep(0.2)
        process.terminate()
        process.wait()
    assert sum(r.reply.code == 250 for batch in results for r in batch) == 1000
    files = os.listdir(dump_dir)
    assert len(files) == 1000
    with open(os.path.join(dump_dir, files[0]), "rb") as dumped:
        dump = dumped.read()
    shutil.rmtree(dump_dir)
    assert BODY.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] in dump
