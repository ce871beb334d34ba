"""tayori mx: the SMTP server (aiosmtpd) that bounces, feedback reports, List-Unsubscribe mails
and empty mails are delivered to. It takes mail only for Tayori's domains (550 for any other,
so it can never be used as a relay), refuses messages over settings.MX_MAX_SIZE, offers
STARTTLS when given a certificate, and answers 250 only once the mail has been acted on: a
failure answers 451 and the sending server tries again later, so nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection, connections

from tayori.inbound import receiving

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 50


# Each pool thread keeps its database connection from mail to mail (reconnecting costs SQLite
# more than the mail's own work); one that fails is closed, and the next mail opens a new one.
def _accepts(address: str) -> bool:
    try:
        return receiving.accepts(address)
    except Exception:
        connection.close()
        raise


def _receive(mail_from: str, recipients: list[str], raw: bytes) -> receiving.Receipt:
    try:
        return receiving.receive(mail_from, recipients, raw)
    except Exception:
        connection.close()
        raise


class Handler:
    """aiosmtpd hooks. Database work runs on a small thread pool (Django's ORM is synchronous);
    SQLite takes one writer at a time, so there it gets one thread."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or (1 if connection.vendor == "sqlite" else 4)
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tayori-mx")

    def close(self) -> None:
        """Close each pool thread's database connection (kept open between mails), then the
        pool. The barrier makes every thread take exactly one of the closing tasks."""
        barrier = threading.Barrier(self.threads)

        def close_own():
            barrier.wait(timeout=10)
            connections.close_all()
        for future in [self.pool.submit(close_own) for _ in range(self.threads)]:
            future.result()
        self.pool.shutdown()

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            # The accepted domains are cached: only reading them again needs the database.
            known = receiving.cached_accepts(address)
            accepted = known if known is not None else await self._run(_accepts, address)
        except Exception:
            log.exception("could not read the accepted domains")
            return "451 4.3.0 Try again later"
        if not accepted:
            return f"550 5.7.1 <{address}>: Tayori does not receive mail for this domain"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        try:
            receipt = await self._run(_receive, envelope.mail_from or "", envelope.rcpt_tos,
                                      raw)
        except Exception:
            log.exception("mail from %s to %s could not be processed", envelope.mail_from,
                          envelope.rcpt_tos)
            return "451 4.3.0 Could not process the message now; try again later"
        log.info("mail from %s to %s: %s %s", envelope.mail_from, envelope.rcpt_tos,
                 receipt.kind, receipt.detail)
        return "250 2.0.0 Accepted"


def tls_context() -> ssl.SSLContext | None:
    if not (settings.MX_TLS_CERT and settings.MX_TLS_KEY):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.MX_TLS_CERT, settings.MX_TLS_KEY)
    return context


class MX(Controller):
    """The server on its own thread; stopping it also closes its database connections. With
    ``reuse_port`` several processes listen on one port and the kernel spreads connections
    among them (SO_REUSEPORT): one process parses and writes with one core at most."""

    def __init__(self, *args, reuse_port: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reuse_port = reuse_port

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, host=self.hostname,
                                       port=self.port, ssl=self.ssl_context,
                                       reuse_port=self.reuse_port or None)

    def stop(self, *args, **kwargs):
        super().stop(*args, **kwargs)
        self.handler.close()


def controller(host: str | None = None, port: int | None = None, *,
               handler: Handler | None = None, max_size: int | None = None,
               tls: ssl.SSLContext | None = None, reuse_port: bool = False) -> MX:
    """An unstarted server on its own thread (``.start()``, ``.stop()``)."""
    tls = tls or tls_context()
    return MX(handler or Handler(), hostname=host or settings.MX_HOST,
              port=port if port is not None else settings.MX_PORT, reuse_port=reuse_port,
              server_hostname=settings.MX_HOSTNAME, ready_timeout=10,
              data_size_limit=max_size or settings.MX_MAX_SIZE, enable_SMTPUTF8=True,
              tls_context=tls, require_starttls=False, decode_data=False)
