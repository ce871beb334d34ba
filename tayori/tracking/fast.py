"""The open pixel and click redirects on their hot path: what both endpoints do (read the token,
find the link, note the hit), shared by the Django views and a lean ASGI path (``lean``) that
answers them without Django's request cycle, which costs several milliseconds a request under
ASGI (a thread per request, ten middlewares). Anything else, and anything unusual on those two
paths (another method, an unknown host, a refused token or link), goes to Django unchanged."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from django.utils.encoding import iri_to_uri

from tayori.delivery import tokens
from tayori.delivery.models import Delivery, Source
from tayori.delivery.rendering import tracked_links
from tayori.lib.netaddr import client_ip
from tayori.tracking import ingest
from tayori.tracking.ingest import Hit
from tayori.tracking.models import Kind, Link

log = logging.getLogger(__name__)

# The smallest transparent GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100"
                      "01000002024401003b")
CONVERSION_PARAM = "tayori_c"
LINK_SECONDS = 60  # how long a process trusts its copy of a source's links
SOURCES_KEPT = 100_000  # deliveries whose source a process remembers (a send's clickers)
MISSING = object()  # not remembered: only the database can tell

_sources: dict[int, int | None] = {}  # delivery id -> source id, oldest first
_writing = threading.Lock()
_links: dict[int, tuple[float, dict[int, str]]] = {}


def hit(kind: str, delivery_id: int, ip: str | None, user_agent: str, head: bool,
        **extra) -> None:
    ingest.add(Hit(kind, delivery_id, timezone.now(), ip, user_agent[:400], head, **extra))


def opened(token: str) -> int | None:
    """The delivery an open pixel's token stands for."""
    numbers = tokens.read(tokens.OPEN, token)
    return numbers[0] if numbers and len(numbers) == 1 else None


def clicked(token: str) -> tuple[int, int] | None:
    """(delivery id, link index) of a click token."""
    numbers = tokens.read(tokens.CLICK, token)
    return (numbers[0], numbers[1]) if numbers and len(numbers) == 2 else None


def redirect(delivery_id: int, index: int, *, remembered_only: bool = False):
    """Where a click goes: the link at ``index`` of the delivery's message with a conversion
    token added, or None when the message had no such link (never a redirect to a URL that was
    not in it). With ``remembered_only``, MISSING instead of asking the database."""
    source_id = _sources.get(delivery_id, MISSING)
    if source_id is MISSING:
        if remembered_only:
            return MISSING
        source_id = Delivery.objects.filter(pk=delivery_id).values_list(
            "source_id", flat=True).first()
        _remember(delivery_id, source_id)
    if source_id is None:
        return None
    links = links_of(source_id, remembered_only=remembered_only)
    if links is MISSING:
        return MISSING
    url = links.get(index)
    return None if url is None else with_conversion(url, delivery_id)


def remember_sources(delivery_ids: list[int]) -> None:
    """Look up the sources of several deliveries at once (None for those that are gone)."""
    found = dict(Delivery.objects.filter(pk__in=delivery_ids).order_by().values_list(
        "pk", "source_id"))
    for delivery_id in delivery_ids:
        _remember(delivery_id, found.get(delivery_id))


def _remember(delivery_id: int, source_id: int | None) -> None:
    with _writing:  # lookups run on several threads; reads need no lock
        _sources[delivery_id] = source_id
        while len(_sources) > SOURCES_KEPT:
            del _sources[next(iter(_sources))]


def links_of(source_id: int, *, remembered_only: bool = False):
    """A source's tracked links by index, stored the first time they are asked for."""
    cached = _links.get(source_id)
    if cached and time.monotonic() - cached[0] < LINK_SECONDS:
        return cached[1]
    if remembered_only:
        return MISSING
    links = dict(Link.objects.filter(source_id=source_id).values_list("index", "url"))
    if not links:
        html = Source.objects.filter(pk=source_id).values_list("html", flat=True).first() or ""
        urls = tracked_links(html)
        Link.objects.bulk_create([Link(source_id=source_id, index=i, url=url)
                                  for i, url in enumerate(urls)], ignore_conflicts=True)
        links = dict(enumerate(urls))
    _links[source_id] = (time.monotonic(), links)
    return links


def with_conversion(url: str, delivery_id: int) -> str:
    """The landing page gets a token the conversion tag hands back on the goal page."""
    parts, query = _split(url)
    token = f"{CONVERSION_PARAM}={tokens.make(tokens.CONVERSION, delivery_id)}"
    return urlunsplit(parts._replace(query=f"{query}&{token}" if query else token))


@lru_cache(maxsize=1024)
def _split(url: str) -> tuple[SplitResult, str]:
    """A link and its query as the redirect writes it (parsed and encoded once per link)."""
    parts = urlsplit(url)
    return parts, urlencode(parse_qsl(parts.query, keep_blank_values=True))


# --- the lean ASGI path ---------------------------------------------------------------------

class _Peer:
    """What ``netaddr.client_ip`` reads of a request, from an ASGI scope."""

    __slots__ = ("META",)

    def __init__(self, scope: dict, forwarded: str | None):
        client = scope.get("client")
        self.META = {"REMOTE_ADDR": client[0] if client else ""}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


def _headers(scope: dict) -> dict[bytes, str]:
    """Request headers by lower-case name, repeated ones joined as Django joins them."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        text = value.decode("latin1")
        found[name] = f"{found[name]},{text}" if name in found else text
    return found


_hosts: dict[str, bool] = {}


def _host_allowed(host: str) -> bool:
    """Django's ALLOWED_HOSTS check (``request.get_host``), remembered per Host header."""
    allowed = _hosts.get(host)
    if allowed is None:
        hosts = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"]
                                           if settings.DEBUG else [])
        domain, _port = split_domain_port(host)
        allowed = bool(domain) and validate_host(domain, hosts)
        if len(_hosts) < 1000:  # a flood of made-up hosts is not worth remembering
            _hosts[host] = allowed
    return allowed


def _security_headers() -> list[tuple[bytes, bytes]]:
    """The headers Django's middleware adds to these responses, from the same settings."""
    pairs = [("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")),
             ("Content-Language", "ja"), ("Vary", "Cookie")]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        pairs.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        pairs.append(("Referrer-Policy",
                      policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        pairs.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return [(name.encode(), value.encode()) for name, value in pairs]


class _Lookups:
    """Clicks on deliveries whose source is not remembered wait here and are looked up
    together: while one query runs on the pool, the misses that arrive gather for the next,
    which asks for all of them at once. Under load a query serves dozens of clicks; the event
    loop never waits for the database."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool
        self.waiting: dict[int, asyncio.Future] = {}
        self.busy: asyncio.Task | None = None  # the draining task (held: tasks are weak)

    async def remember(self, delivery_id: int) -> None:
        loop = asyncio.get_running_loop()
        future = self.waiting.get(delivery_id)
        if future is None:
            future = self.waiting[delivery_id] = loop.create_future()
        if self.busy is None:
            self.busy = loop.create_task(self._drain())
        await asyncio.shield(future)  # a client that hangs up does not cancel the others

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, {}
                try:
                    await loop.run_in_executor(self.pool, _on_pool, remember_sources,
                                               list(batch))
                except Exception:  # the clicks ask again, one by one, and fail visibly
                    log.warning("looking up click sources failed", exc_info=True)
                for future in batch.values():
                    if not future.done():
                        future.set_result(None)
        finally:
            self.busy = None


def _on_pool(function, *args):
    try:
        return function(*args)
    except Exception:
        connection.close()  # a broken connection is opened anew by the next call
        raise


def lean(django_app, *, pool: ThreadPoolExecutor | None = None):
    """``django_app`` with /t/o/ and /t/c/ answered here. Database work (a click's delivery
    this process has not seen, a source's links once a minute) runs on ``pool``'s threads,
    each with its own connection: by default two, one looking up while the other waits."""
    pool = pool or ThreadPoolExecutor(max_workers=2, thread_name_prefix="tayori-clicks")
    lookups = _Lookups(pool)
    extra: list[tuple[bytes, bytes]] = []

    async def answer(scope: dict) -> tuple[int, list, bytes] | None:
        path = scope["path"]
        token = path[5:]
        if not token or "/" in token:
            return None
        headers = _headers(scope)
        if not _host_allowed(headers.get(b"host", "")):
            return None
        head = scope["method"] == "HEAD"
        if not extra:
            extra.extend(_security_headers())

        def note(kind: str, delivery_id: int, **more) -> None:
            hit(kind, delivery_id, client_ip(_Peer(scope, headers.get(b"x-forwarded-for"))),
                headers.get(b"user-agent", ""), head, **more)

        if path.startswith("/t/o/"):
            if not token.endswith(".gif") or len(token) == 4:
                return None
            delivery_id = opened(token[:-4])
            if delivery_id is not None:
                note(Kind.OPEN, delivery_id)
            return 200, [(b"Content-Type", b"image/gif"),
                         (b"Cache-Control", b"no-store, max-age=0"),
                         (b"Content-Length", b"43"), *extra], PIXEL
        numbers = clicked(token)
        if numbers is None:
            return None  # Django answers the 404, with its page
        location = redirect(*numbers, remembered_only=True)
        if location is MISSING:
            await lookups.remember(numbers[0])
            location = redirect(*numbers, remembered_only=True)
        if location is MISSING:  # the source's links, or a lookup that failed
            location = await asyncio.get_running_loop().run_in_executor(
                pool, _on_pool, redirect, *numbers)
        if location is None:
            return None
        location = iri_to_uri(location)
        if not location.isascii() or not location.isprintable():
            return None  # Django refuses such a header; let it
        note(Kind.CLICK, numbers[0], link_index=numbers[1])
        return 302, [(b"Content-Type", b"text/html; charset=utf-8"),
                     (b"Location", location.encode()), (b"Content-Length", b"0"), *extra], b""

    # Mounted under a prefix, or HTTPS known to Django (redirects, HSTS): its middleware has
    # work to do on every request.
    plain = not (settings.FORCE_SCRIPT_NAME or settings.SECURE_SSL_REDIRECT
                 or settings.SECURE_HSTS_SECONDS or settings.SECURE_PROXY_SSL_HEADER)

    async def application(scope, receive, send):
        if (plain and scope["type"] == "http" and scope["path"].startswith(("/t/o/", "/t/c/"))
                and scope["method"] in ("GET", "HEAD") and not scope.get("root_path")):
            try:
                answered = await answer(scope)
            except Exception:
                log.exception("the lean tracking path failed; Django answers instead")
                answered = None
            if answered is not None:
                status, headers, body = answered
                await send({"type": "http.response.start", "status": status,
                            "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await django_app(scope, receive, send)

    return application

