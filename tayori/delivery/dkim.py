"""DKIM (RFC 6376) signing with `cryptography`, relaxed/relaxed, RSA-SHA256 and Ed25519-SHA256
(RFC 8463); key generation and the DNS record to publish.

dkimpy signs in pure Python (about 140 RSA signatures a second); here everything per key is
prepared once and the per-message work is body canonicalization, two SHA-256 and one signature
in C. The tests verify every signature with dkimpy.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

# Headers signed when present. From is listed once more than it occurs, so a From added on the
# way cannot pass (oversigning).
SIGNED = ("from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
          "content-type", "content-transfer-encoding", "list-unsubscribe",
          "list-unsubscribe-post", "list-id", "feedback-id")
_WSP = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


def generate_key(algorithm: str = "rsa") -> bytes:
    """A new private key as PKCS#8 PEM: RSA-2048, or Ed25519."""
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load(private_pem: bytes):
    return serialization.load_pem_private_key(private_pem, password=None)


def dns_record(private_pem: bytes) -> str:
    """The TXT value to publish at ``<selector>._domainkey.<domain>``."""
    key = _load(private_pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalization of the body as it travels: SMTP ends the data with CRLF,
    so one is assumed when missing. Bodies Tayori renders (base64 parts) have no runs of
    whitespace, so the regexes run only when a cheap scan finds some."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", _WSP.sub(b" ", body))
    body = body.rstrip(b" \t\r\n")  # empty lines and whitespace at the end are ignored
    return body + b"\r\n" if body else b""


def parse_headers(headers: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw line including folds, without the final CRLF), in order."""
    fields: list[tuple[bytes, bytes]] = []
    for line in headers.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields


def _canonical_header(name: bytes, raw: bytes) -> bytes:
    value = raw.split(b":", 1)[1].replace(b"\r\n", b"")
    return name + b":" + _WSP.sub(b" ", value).strip(b" \t") + b"\r\n"


class DkimSigner:
    """Signs for one domain and selector with one key (RSA or Ed25519)."""

    def __init__(self, domain: str, selector: str, private_pem: bytes):
        self.key = _load(private_pem)
        self.ed25519 = isinstance(self.key, ed25519.Ed25519PrivateKey)
        if not self.ed25519 and not isinstance(self.key, rsa.RSAPrivateKey):
            raise ValueError("DKIM keys are RSA or Ed25519")
        algorithm = "ed25519-sha256" if self.ed25519 else "rsa-sha256"
        self.prefix = (f"DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed; d={domain}; "
                       f"s={selector}; ")
        self._padding, self._sha256 = padding.PKCS1v15(), hashes.SHA256()

    def sign_parts(self, headers: bytes, body: bytes, *, fields=None) -> bytes:
        """The ``DKIM-Signature`` header (with CRLF) for a message given as header block and
        body apart. `fields` may pass already parsed headers when signing twice."""
        fields = fields if fields is not None else parse_headers(headers)
        present = {}
        for name, raw in fields:
            present.setdefault(name, []).append(raw)
        names, data = [], []
        for name in SIGNED:
            for raw in reversed(present.get(name.encode(), ())):  # bottom-up, per RFC 6376
                names.append(name)
                data.append(_canonical_header(name.encode(), raw))
        names.append("from")  # oversign
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
        unsigned = f"{self.prefix}t={int(time.time())}; h={':'.join(names)}; bh={body_hash}; b="
        data.append(_canonical_header(b"dkim-signature", unsigned.encode())[:-2])
        signed = b"".join(data)
        if self.ed25519:
            signature = self.key.sign(hashlib.sha256(signed).digest())
        else:
            signature = self.key.sign(signed, self._padding, self._sha256)
        b = base64.b64encode(signature).decode()
        folded = "\r\n\t".join(b[i:i + 72] for i in range(0, len(b), 72))
        return (unsigned + folded + "\r\n").encode()

    def sign(self, message: bytes) -> bytes:
        """The signature header for a whole message (headers, blank line, body)."""
        headers, _, body = message.partition(b"\r\n\r\n")
        return self.sign_parts(headers + b"\r\n", body)


def sign_all(signers: list[DkimSigner], headers: bytes, body: bytes) -> bytes:
    """Signature headers of several signers (RSA and Ed25519), the last added on top."""
    fields = parse_headers(headers)
    return b"".join(signer.sign_parts(headers, body, fields=fields)
                    for signer in reversed(signers))
