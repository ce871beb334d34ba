"""Receiving mail: `tayori mx`, the SMTP server bounces, feedback reports and empty mails come
to (part of `tayori serve`; run it alone on the host the MX records point at)."""

import signal
import threading

import typer
from django.conf import settings
from rich.console import Console

from tayori.cli import app

console = Console()


@app.command()
def mx(host: str = typer.Option("", help="Address to listen on (TAYORI_MX_HOST, default "
                                         "127.0.0.1; 0.0.0.0 to take mail from the internet)."),
       port: int = typer.Option(0, help="Port (TAYORI_MX_PORT, default 2525)."),
       processes: int = typer.Option(1, help="Server processes sharing the port (one core "
                                             "each; see bench/README.md, bench inbound)."),
       reuse_port: bool = typer.Option(False, hidden=True)):
    """Receive bounces, complaints, unsubscribe mails and empty-mail sign-ups over SMTP."""
    from tayori.inbound.server import controller

    host, port = host or settings.MX_HOST, port or settings.MX_PORT
    if processes > 1:
        from tayori.cli.delivery import spawn, wait_all

        raise typer.Exit(wait_all([
            spawn(["mx", "--host", host, "--port", str(port), "--reuse-port"])
            for _ in range(processes)]))
    server = controller(host, port, reuse_port=reuse_port)
    server.start()
    tls = " with STARTTLS" if settings.MX_TLS_CERT else ""
    console.print(f"tayori mx listening on [bold]{server.hostname}:{server.port}[/]{tls}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
