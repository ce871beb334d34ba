"""A lean asyncio ESMTP client for the bulk path: PIPELINING (RFC 2920) across a whole batch,
STARTTLS, AUTH PLAIN/LOGIN, SIZE; lock-step when the server does not pipeline.

Pipelining here goes one step past per-message groups: the end of message n's data is written
together with message n+1's MAIL, RCPT and DATA, so each message costs one write and one wait
(for 354, which RFC 2920 requires before data). Replies arrive in command order, so reading them
back in that order maps each to its command.

A connection, TLS or authentication failure raises RelayUnavailable carrying the results of the
messages already completed, so the engine records those and returns the rest to the queue.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(slots=True)
class Envelope:
    mail_from: str
    recipients: list[str]
    data: bytes  # the message with CRLF line endings, not dot-stuffed


@dataclass(slots=True)
class Result:
    """The message's outcome: the end-of-data reply when it was sent, else the reply that
    stopped it; per-recipient RCPT replies."""

    reply: Reply
    recipients: list[Reply] = field(default_factory=list)


class RelayUnavailable(Exception):
    """The relay cannot take mail now (connection, TLS, timeout, protocol)."""

    def __init__(self, reason: str, results: list[Result] | None = None):
        super().__init__(reason)
        self.results = results or []


class AuthFailed(RelayUnavailable):
    """The relay refused our credentials."""


def stuff(data: bytes) -> bytes:
    """Dot-stuff (RFC 5321 4.5.2) and make sure the data ends with CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class SmtpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 timeout: float):
        self.reader, self.writer, self.timeout = reader, writer, timeout
        self.extensions: dict[str, str] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, *, helo: str = "localhost",
                   tls: str = "opportunistic", implicit_tls: bool = False,
                   ssl_context: ssl.SSLContext | None = None, username: str | None = None,
                   password: str | None = None, timeout: float = 30) -> SmtpConnection:
        """Connect, greet, secure and log in according to the relay's settings.
        `tls`: "required" (verified certificate), "opportunistic" (STARTTLS when offered,
        certificate not checked, as MTAs do between each other) or "off"."""
        if ssl_context is None and (implicit_tls or tls != "off"):
            ssl_context = ssl.create_default_context() if tls == "required" or implicit_tls \
                else _unverified_context()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_context if implicit_tls else None,
                    server_hostname=host if implicit_tls else None, limit=1 << 16)
                connection = cls(reader, writer, timeout=timeout)
                greeting = await connection._reply()
                if greeting.code != 220:
                    await connection.abort()
                    raise RelayUnavailable(f"greeting: {greeting}")
                await connection._ehlo(helo)
                if not implicit_tls and tls != "off":
                    await connection._starttls(host, helo, ssl_context, required=tls == "required")
                if username:
                    await connection._login(username, password or "")
                return connection
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as error:
            raise RelayUnavailable(f"{host}:{port}: {type(error).__name__}: {error}") from None

    async def _ehlo(self, helo: str) -> None:
        reply, lines = await self._command(f"EHLO {helo}\r\n".encode(), all_lines=True)
        if reply.code != 250:
            reply = await self._command(f"HELO {helo}\r\n".encode())
            if reply.code != 250:
                raise RelayUnavailable(f"EHLO/HELO refused: {reply}")
            self.extensions = {}
            return
        self.extensions = {}
        for line in lines[1:]:
            keyword, _, params = line.partition(" ")
            if keyword:
                self.extensions[keyword.upper()] = params

    async def _starttls(self, host, helo, context, *, required: bool) -> None:
        if "STARTTLS" not in self.extensions:
            if required:
                raise RelayUnavailable("the relay does not offer STARTTLS, which is required")
            return
        reply = await self._command(b"STARTTLS\r\n")
        if reply.code != 220:
            if required:
                raise RelayUnavailable(f"STARTTLS refused: {reply}")
            return
        await self.writer.start_tls(context, server_hostname=host)
        await self._ehlo(helo)

    async def _login(self, username: str, password: str) -> None:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            reply = await self._command(f"AUTH PLAIN {token}\r\n".encode())
        elif "LOGIN" in mechanisms:
            reply = await self._command(b"AUTH LOGIN\r\n")
            if reply.code == 334:
                reply = await self._command(base64.b64encode(username.encode()) + b"\r\n")
            if reply.code == 334:
                reply = await self._command(base64.b64encode(password.encode()) + b"\r\n")
        else:
            raise AuthFailed("the relay offers no AUTH PLAIN or LOGIN (is TLS required first?)")
        if reply.code != 235:
            raise AuthFailed(f"login refused: {reply}")

    # -- replies -----------------------------------------------------------------------------

    async def _reply(self, all_lines: bool = False):
        lines = []
        while True:
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise RelayUnavailable("the relay closed the connection")
            lines.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                break
        try:
            code = int(line[:3])
        except ValueError:
            raise RelayUnavailable(f"not an SMTP reply: {line[:80]!r}") from None
        reply = Reply(code, " ".join(lines) if not all_lines else lines[-1])
        return (reply, lines) if all_lines else reply

    async def _command(self, command: bytes, all_lines: bool = False):
        self.writer.write(command)
        await self.writer.drain()
        return await self._reply(all_lines)

    # -- sending -----------------------------------------------------------------------------

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    def _too_big(self, size: int) -> bool:
        limit = self.extensions.get("SIZE", "")
        return limit.isdigit() and int(limit) > 0 and size > int(limit)

    def _commands(self, envelope: Envelope, size: int) -> bytes:
        size_param = f" SIZE={size}" if "SIZE" in self.extensions else ""
        body = "8BITMIME" in self.extensions and " BODY=8BITMIME" or ""
        lines = [f"MAIL FROM:<{envelope.mail_from}>{size_param}{body}\r\n"]
        lines += [f"RCPT TO:<{rcpt}>\r\n" for rcpt in envelope.recipients]
        lines.append("DATA\r\n")
        return "".join(lines).encode()

    async def send(self, envelopes: list[Envelope]) -> list[Result]:
        """Send a batch; one Result per envelope, in order."""
        results: list[Result] = []
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                loop = asyncio.get_running_loop()
                await self._send(envelopes, results,
                                 lambda: deadline.reschedule(loop.time() + self.timeout))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            await self.abort()
            raise RelayUnavailable(f"{type(error).__name__}: {error}", _settled(results)) from None
        except RelayUnavailable as error:
            await self.abort()
            error.results = _settled(results)
            raise
        return results

    async def _send(self, envelopes, results, keep_alive) -> None:
        reply = self._reply
        pending = b""  # the end of the previous message's data, written with the next commands
        waiting = None  # the index of the message whose end-of-data reply is still to be read
        needs_reset = False
        for envelope in envelopes:
            keep_alive()
            data = stuff(envelope.data)
            if self._too_big(len(data)):
                results.append(Result(Reply(552, "5.3.4 message larger than the relay's SIZE "
                                                 f"limit ({self.extensions['SIZE']} bytes)")))
                continue
            prefix = b"RSET\r\n" if needs_reset else b""
            needs_reset = False
            commands = self._commands(envelope, len(data))
            if self.pipelining:
                self.writer.write(pending + prefix + commands)
            else:
                self.writer.write(pending)
            pending = b""
            await self.writer.drain()
            if waiting is not None:
                results[waiting] = Result(await reply(), results[waiting].recipients)
                waiting = None
            if prefix:
                if self.pipelining:
                    await reply()
                else:
                    await self._command(prefix)
            if self.pipelining:
                mail = await reply()
                rcpts = [await reply() for _ in envelope.recipients]
                data_reply = await reply()
            else:
                lines = commands.split(b"\r\n")[:-1]
                mail = await self._command(lines[0] + b"\r\n")
                rcpts = [await self._command(line + b"\r\n") for line in lines[1:-1]] \
                    if mail.ok else []
                accepted = mail.ok and any(r.ok for r in rcpts)
                data_reply = await self._command(b"DATA\r\n") if accepted else None
            if data_reply is not None and data_reply.code == 354:
                if not any(r.ok for r in rcpts):
                    # Some servers say 354 although no recipient was taken: end the empty
                    # transaction rather than hand them the message.
                    self.writer.write(b".\r\n")
                    await self.writer.drain()
                    await reply()
                    results.append(Result(_refusal(mail, rcpts), rcpts))
                    continue
                pending = data + b".\r\n"
                results.append(Result(Reply(0, "in flight"), rcpts))
                waiting = len(results) - 1
            else:
                results.append(Result(_refusal(mail, rcpts, data_reply), rcpts))
                needs_reset = True
        if pending:
            self.writer.write(pending)
            await self.writer.drain()
            results[waiting] = Result(await reply(), results[waiting].recipients)

    async def close(self) -> None:
        """QUIT politely; never raises."""
        try:
            async with asyncio.timeout(5):
                self.writer.write(b"QUIT\r\n")
                await self.writer.drain()
                await self.reader.readline()
        except (OSError, TimeoutError, RelayUnavailable, ssl.SSLError):
            pass
        await self.abort()

    async def abort(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def _settled(results: list[Result]) -> list[Result]:
    """The results before the first message whose fate is unknown (its data was sent but the
    connection failed before the reply): only those may be recorded as final."""
    for index, result in enumerate(results):
        if result.reply.code == 0:
            return results[:index]
    return results


def _refusal(mail: Reply, rcpts: list[Reply], data: Reply | None = None) -> Reply:
    """The reply that best explains why a message was not sent."""
    if not mail.ok:
        return mail
    refused = [r for r in rcpts if not r.ok]
    if refused and len(refused) == len(rcpts):
        return refused[0]
    if data is not None:
        return data
    return refused[0] if refused else Reply(554, "5.0.0 not sent")
