"""Amazon SNS messages posted to an HTTP(S) subscription, checked as AWS documents it
("Verifying the signatures of Amazon SNS messages"): the string to sign is the message's
name/value pairs for its Type, each name and value followed by a newline, in byte order —
Message, MessageId, Subject (when present), Timestamp, TopicArn, Type for a Notification;
Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type for a
SubscriptionConfirmation or UnsubscribeConfirmation — signed SHA1withRSA (SignatureVersion 1)
or SHA256withRSA (2) with the key of the certificate at SigningCertURL.

That URL, and the SubscribeURL a confirmation is confirmed with, must use a scheme of
settings.TAYORI_SNS_CERT_SCHEMES (https) and a host matching settings.TAYORI_SNS_CERT_HOST
(SNS's own hosts): anyone can sign a message with a certificate of their own. A topic must be
one the workspace accepts, and a message older than MAX_AGE is refused as a replay.
Certificates are fetched with a short timeout and kept in this process."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.utils import timezone

from tayori.inbound.providers import Malformed, Refused, Unavailable

log = logging.getLogger(__name__)

NOTIFICATION, SUBSCRIBE, UNSUBSCRIBE = (
    "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                      "TopicArn", "Type")
SIGNED_KEYS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIBE: _CONFIRMATION_KEYS,
    UNSUBSCRIBE: _CONFIRMATION_KEYS,
}
OPTIONAL_KEYS = frozenset({"Subject"})
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

# SNS stops retrying an HTTP(S) subscription after at most 3,600 seconds, and a retry carries
# the first attempt's Timestamp: twice that leaves room for throttling and clocks.
MAX_AGE = dt.timedelta(hours=2)
MAX_AHEAD = dt.timedelta(minutes=5)
TIMEOUT = 5.0  # seconds to connect and for each read, fetching a certificate or confirming
CERTIFICATE_LIMIT = 64 * 1024  # bytes; SNS's certificates are about 2 KB
CACHE_SIZE = 32

_certificates: OrderedDict[str, x509.Certificate] = OrderedDict()
_lock = threading.Lock()


def topics_of(text: str) -> frozenset[str]:
    """The accepted TopicArns written one per line."""
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def verify(message: dict, topics: frozenset[str], *, now: dt.datetime | None = None) -> None:
    """Return when ``message`` is a genuine SNS message from an accepted topic; raise
    Malformed, Refused (forged, stale, another topic) or Unavailable otherwise."""
    kind = message.get("Type")
    if not isinstance(kind, str) or kind not in SIGNED_KEYS:
        raise Malformed(f"not an SNS message type: {kind!r}")
    if not isinstance(message.get("TopicArn"), str) or message["TopicArn"] not in topics:
        raise Refused("topic not accepted by this workspace")
    algorithm = HASHES.get(str(message.get("SignatureVersion", "")))
    if algorithm is None:
        raise Refused("unknown SignatureVersion")
    _check_time(message.get("Timestamp"), now or timezone.now())
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("signature is not base64") from None
    key = certificate(str(message.get("SigningCertURL", ""))).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("signing certificate has no RSA key")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused("signature does not match") from None


def string_to_sign(message: dict) -> bytes:
    parts = []
    for name in SIGNED_KEYS[message["Type"]]:
        value = message.get(name)
        if value is None and name in OPTIONAL_KEYS:
            continue
        if not isinstance(value, str):
            raise Malformed(f"{name} missing")
        parts += [name, "\n", value, "\n"]
    return "".join(parts).encode()


def _check_time(value, now: dt.datetime) -> None:
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise Malformed("Timestamp is not a time") from None
    if at.tzinfo is None:
        raise Malformed("Timestamp has no time zone")
    if at < now - MAX_AGE:
        raise Refused("message too old")
    if at > now + MAX_AHEAD:
        raise Refused("message from the future")


def allowed_url(url: str, *, certificate: bool = False) -> bool:
    """Whether a URL in a message is SNS's own: an allowed scheme and host, no user part (a
    certificate's also ends in .pem)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return False
    return (parts.scheme in settings.TAYORI_SNS_CERT_SCHEMES and bool(host)
            and "@" not in parts.netloc
            and re.fullmatch(settings.TAYORI_SNS_CERT_HOST, host) is not None
            and (not certificate or parts.path.endswith(".pem")))


def certificate(url: str) -> x509.Certificate:
    """The certificate at an allowed SigningCertURL, fetched once per process."""
    if not allowed_url(url, certificate=True):
        raise Refused("SigningCertURL is not an SNS certificate URL")
    with _lock:
        found = _certificates.get(url)
        if found is not None:
            _certificates.move_to_end(url)
    if found is None:
        try:
            found = x509.load_pem_x509_certificate(_get(url, CERTIFICATE_LIMIT))
        except ValueError:
            raise Refused("SigningCertURL does not hold a PEM certificate") from None
        with _lock:
            _certificates[url] = found
            while len(_certificates) > CACHE_SIZE:
                _certificates.popitem(last=False)
    now = timezone.now()
    if not found.not_valid_before_utc <= now <= found.not_valid_after_utc:
        raise Refused("signing certificate is not valid now")
    return found


def forget_certificates() -> None:
    with _lock:
        _certificates.clear()


def confirm(message: dict) -> None:
    """Confirm a verified SubscriptionConfirmation by visiting its SubscribeURL."""
    url = str(message.get("SubscribeURL", ""))
    if not allowed_url(url):
        raise Refused("SubscribeURL is not an SNS URL")
    _get(url, CERTIFICATE_LIMIT)
    log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead off SNS's hosts; SNS does not redirect these URLs.
    def redirect_request(self, *args, **kwargs):
        return None


# No proxy from the environment either: the host checked is the host connected to.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)


def _get(url: str, limit: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "Tayori-Inbound/1"})
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            body = response.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        log.warning("could not fetch %s: %s", url, error)
        raise Unavailable(f"could not fetch {urlsplit(url).hostname}") from None
    if len(body) > limit:
        raise Refused("answer too large")
    return body
