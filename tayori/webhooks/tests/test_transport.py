"""The HTTP client: HTTPS to the checked address with the certificate verified against the URL's
host name, and every failure an answer with a readable error, never an exception."""

import datetime as dt
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tayori.webhooks import transport


class _Hello(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(tmp_path, settings):
    """An HTTPS server for "localhost" with a self-signed certificate; returns (port, cert)."""
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], str(cert_file)
    server.shutdown()
    server.server_close()


def test_https_verifies_the_certificate_against_the_urls_host(tls_server, monkeypatch):
    port, cert = tls_server
    refused = transport.post(f"https://localhost:{port}/hook", b"{}", {}, timeout=2)
    assert refused.status is None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    trusting = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(transport.ssl, "create_default_context", lambda: trusting)
    answer = transport.post(f"https://localhost:{port}/hook", b"{}", {}, timeout=2)
    assert (answer.status, answer.ok, answer.error) == (204, True, "")
    # The same server by address: the certificate does not name 127.0.0.1.
    wrong = transport.post(f"https://127.0.0.1:{port}/hook", b"{}", {}, timeout=2)
    assert not wrong.ok and "TLS" in wrong.error


@pytest.mark.parametrize("url,error", [
    ("http://127.0.0.1:1/hook", "Connection refused"),
    ("http://nonexistent.invalid/hook", "cannot resolve nonexistent.invalid"),
    ("ftp://example.jp/hook", "only http and https"),
])
def test_failures_are_answers_with_a_reason(settings, url, error):
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    answer = transport.post(url, b"{}", {}, timeout=2)
    assert answer.status is None and not answer.ok and error in answer.error


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("127.0.0.1", False),
    ("10.1.2.3", False), ("192.168.0.1", False), ("169.254.169.254", False), ("::1", False),
    ("fd00::1", False), ("::ffff:127.0.0.1", False),
])
def test_only_public_addresses_unless_private_networks_are_allowed(settings, address, public):
    settings.WEBHOOK_PRIVATE_NETWORKS = False
    if public:
        transport.check_address(address)
    else:
        with pytest.raises(transport.Refused):
            transport.check_address(address)
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    transport.check_address(address)


class _Drip(BaseHTTPRequestHandler):
    """Answers a header line every 0.3 s, forever: each read is quick, the answer never ends."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for n in range(100):
                self.wfile.write(f"X-Drip-{n}: .\r\n".encode())
                self.wfile.flush()
                threading.Event().wait(0.3)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(settings):
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = transport.post(f"http://127.0.0.1:{server.server_port}/hook", b"{}", {},
                                timeout=1.0)
    finally:
        server.shutdown()
    assert not answer.ok and "within 1 seconds" in answer.error
    assert answer.duration_ms < 2_000
