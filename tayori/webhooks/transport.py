"""One webhook POST over the standard library's http.client: a short timeout, no redirects
followed, the start of the answer kept for the log, and every failure turned into an
``Answer`` with a readable error rather than an exception.

The host is resolved once and the connection made to the address that was checked, so a name
cannot resolve to a public address for the check and to an internal one for the request. Unless
``WEBHOOK_PRIVATE_NETWORKS`` is on (the default outside production; the environment variable
``TAYORI_WEBHOOK_PRIVATE_NETWORKS``), only globally routable addresses are posted to: a
workspace's endpoint must not reach the machine's own services or a cloud metadata address."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

from tayori.lib.config import env_bool

TIMEOUT = 10.0  # seconds for connecting, and for each read
EXCERPT = 1000  # characters of the answer kept
USER_AGENT = "Tayori-Webhooks/1"


@dataclass(slots=True)
class Answer:
    """What came back: a status code, or an error saying why there was none."""

    status: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Refused(ValueError):
    """The URL may not be posted to (scheme, host, or a non-public address)."""


def private_networks_allowed() -> bool:
    configured = getattr(settings, "WEBHOOK_PRIVATE_NETWORKS", None)
    if configured is not None:
        return bool(configured)
    return _from_environment(getattr(settings, "ENVIRONMENT", "development"))


@lru_cache(maxsize=2)
def _from_environment(environment: str) -> bool:
    return env_bool("TAYORI_WEBHOOK_PRIVATE_NETWORKS", environment != "production")


def check_address(address: str) -> None:
    """Refuse loopback, private, link-local and other non-public addresses unless allowed."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_multicast or ip.is_unspecified:
        raise Refused(f"{ip} cannot receive webhooks")
    if not ip.is_global and not private_networks_allowed():
        raise Refused(f"{ip} is not a public address (TAYORI_WEBHOOK_PRIVATE_NETWORKS=true "
                      "allows private networks)")


def _resolve(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise Refused(f"cannot resolve {host}: {error.strerror}") from None
    refusal = None
    for _family, _type, _proto, _name, sockaddr in infos:
        try:
            check_address(sockaddr[0])
        except Refused as error:
            refusal = error
            continue
        return sockaddr[0]
    raise refusal or Refused(f"cannot resolve {host}")


class _Pinned(http.client.HTTPConnection):
    """HTTP to a checked address; the Host header still names the URL's host."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to a checked address, verifying the certificate against the URL's host name."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _cut(connection, cut: threading.Event) -> None:
    """The whole request's deadline passed: shut the socket, which wakes a blocked read (a
    receiver that drips its answer a byte at a time never trips the per-read timeout)."""
    cut.set()
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = TIMEOUT) -> Answer:
    """One POST, over within ``timeout`` seconds all told (connect, send, answer)."""
    began = time.monotonic()
    answer = Answer()
    connection = None
    watchdog, cut = None, threading.Event()
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused("only http and https URLs can receive webhooks")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve(parts.hostname, port)
        kind = _PinnedTLS if parts.scheme == "https" else _Pinned
        connection = kind(parts.hostname, port, address, timeout)
        watchdog = threading.Timer(timeout - (time.monotonic() - began), _cut, [connection, cut])
        watchdog.daemon = True
        watchdog.start()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        answer.status = response.status
        raw = response.read(EXCERPT * 4)
        answer.excerpt = raw.decode("utf-8", "replace")[:EXCERPT]
        if 300 <= response.status < 400:
            answer.error = f"redirects are not followed (Location: {response.getheader('Location', '')})"[:300]
    except Refused as error:
        answer.error = str(error)
    except TimeoutError:
        answer.error = f"no answer within {timeout:g} seconds"
    except ssl.SSLError as error:
        answer.error = f"TLS: {error.reason or error}"
    except (OSError, http.client.HTTPException, ValueError) as error:
        answer.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if connection is not None:
            connection.close()
        if cut.is_set():  # whatever was read by then is not a whole answer
            answer.status, answer.error = None, f"no answer within {timeout:g} seconds"
        answer.duration_ms = int((time.monotonic() - began) * 1000)
    answer.error = answer.error[:300]
    return answer
