"""Interop: Tayori's engine hands DKIM-signed Japanese mail to a real Postfix (Debian's, on
loopback, relaying only to a local smtp-sink); what arrives carries Tayori's message intact,
byte for byte after Postfix's own trace headers, and its signature still verifies."""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time

import dkim as dkimpy
import pytest

from tayori.delivery import queue, sending
from tayori.delivery.channels import Relays
from tayori.delivery.dkim import dns_record, generate_key
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, DeliverySettings, Relay, SenderDomain
from tayori.delivery.smtp.sink import free_port, start_smtp_sink
from tayori.lib import crypto
from tayori.members.models import Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MAIN_CF = """compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
myhostname = relay.tayori.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink}
smtp_tls_security_level = none
maillog_file = /dev/stdout
alias_maps =
alias_database =
local_recipient_maps =
"""


def _wait_for(port: int, seconds: float = 15) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def postfix_to_sink():
    """(postfix port, sink dump directory): a private Postfix instance relaying to smtp-sink."""
    if os.geteuid() != 0 or not os.path.exists(POSTFIX):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Postfix cannot run here (needs root and the postfix package)")
        pytest.skip("Postfix needs root and Debian's postfix package")
    root = tempfile.mkdtemp(prefix="tayori-postfix-")
    dump_dir = tempfile.mkdtemp(prefix="tayori-sink-")
    os.chmod(root, 0o755)
    sink, sink_port = start_smtp_sink(dump_dir=dump_dir)
    port = free_port()
    conf = os.path.join(root, "conf")
    os.makedirs(conf)
    for name in ("queue", "data"):
        os.makedirs(os.path.join(root, name))
    shutil.chown(os.path.join(root, "data"), "postfix")
    with open(os.path.join(conf, "main.cf"), "w") as main:
        main.write(MAIN_CF.format(root=root, sink=sink_port))
    with open("/etc/postfix/master.cf") as source, \
            open(os.path.join(conf, "master.cf"), "w") as master:
        for line in source:
            if line.startswith("smtp      inet"):
                line = f"127.0.0.1:{port} inet n - n - - smtpd\n"
            master.write(line)
    daemon = subprocess.Popen([POSTFIX, "-c", conf, "start-fg"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        yield port, dump_dir
    finally:
        subprocess.run([POSTFIX, "-c", conf, "stop"], capture_output=True, timeout=30)
        daemon.wait(timeout=30)
        sink.terminate()
        sink.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(dump_dir, ignore_errors=True)


def test_signed_japanese_mail_passes_through_postfix_intact(workspace, postfix_to_sink,
                                                            monkeypatch):
    port, dump_dir = postfix_to_sink
    produced = {}
    send = Relays.send

    async def keeping(self, batch):  # the exact bytes Tayori hands to the relay
        produced.update({m.recipient: m.data for m in batch})
        return await send(self, batch)

    monkeypatch.setattr(Relays, "send", keeping)
    key = generate_key()
    SenderDomain.objects.create(workspace=workspace, domain="example.jp", selector="tay",
                                rsa_key=crypto.encrypt(key))
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.net",
                                       attributes={"name": f"山田{i}"}) for i in range(5)])
    segment = Segment.objects.create(workspace=workspace, name="all",
                                     definition={"op": "and", "conditions": []})
    source = sending.create_bulk(workspace, sending.Content(
        subject="{{ member.name }}様 髙島屋① 冬のご案内", from_address="news@example.jp",
        from_name="便りストア", html="<p>{{ member.name }}様</p>\n<p>.行頭のドット</p>",
        text="{{ member.name }}様\n.行頭のドット\n"), name="interop", segment=segment)
    queue.start(source)
    DeliverySettings.objects.create(workspace=workspace, mode="relays")
    Relay.objects.create(workspace=workspace, name="postfix", host="127.0.0.1", port=port,
                         tls="off")
    asyncio.run(Worker(name="relay").drain())
    assert Delivery.objects.filter(source=source, status="sent").count() == 5
    deadline = time.monotonic() + 30
    while len(os.listdir(dump_dir)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(os.listdir(dump_dir)) == 5
    record = dns_record(key).encode()
    for name in os.listdir(dump_dir):
        with open(os.path.join(dump_dir, name), "rb") as dump:
            arrived = dump.read().replace(b"\n", b"\r\n")
        recipient = arrived.split(b"X-Rcpt-Args: <", 1)[1].split(b">", 1)[0].decode()
        # Postfix and the sink only add trace headers above the message.
        signature_start = arrived.index(b"DKIM-Signature:")
        assert arrived[signature_start:].rstrip(b"\r\n") == produced[recipient].rstrip(b"\r\n")
        assert b"by relay.tayori.test (Postfix)" in arrived[:signature_start]
        assert dkimpy.verify(arrived[signature_start:],
                             dnsfunc=lambda name, timeout=5: record)
