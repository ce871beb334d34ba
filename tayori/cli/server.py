"""Running Tayori: everything in one process tree (`serve`) or its parts separately."""

import os
import secrets
import subprocess
import sys

import typer
from django.core.management import call_command
from rich.console import Console

from tayori.cli import app

console = Console()


@app.command()
def migrate():
    """Create or update the database schema."""
    call_command("migrate", interactive=False, verbosity=0)


@app.command("ensure-owner")
def ensure_owner(
    email: str = typer.Option("admin@tayori.local", envvar="TAYORI_ADMIN_EMAIL"),
    password: str = typer.Option("", envvar="TAYORI_ADMIN_PASSWORD"),
    workspace: str = typer.Option("Tayori", envvar="TAYORI_WORKSPACE_NAME"),
):
    """Create the first workspace and owner if no operator exists yet."""
    from tayori.accounts.bootstrap import create_owner, has_operators

    if has_operators():
        return
    generated = not password
    password = password or secrets.token_urlsafe(12)
    create_owner(email=email, password=password, workspace_name=workspace,
                 must_change_password=generated)
    console.print(f"[bold]Owner account created[/]: {email}")
    if generated:
        console.print(f"Password (shown once): [bold yellow]{password}[/]")


@app.command()
def web(host: str = "127.0.0.1", port: int = 8000,
        workers: int = typer.Option(1, help="Web server processes: each serves requests on "
                                            "its own (see bench/README.md, bench api).")):
    """Serve the UI and API (ASGI under uvicorn)."""
    import uvicorn

    uvicorn.run("tayori.asgi:application", host=host, port=port, log_level="info",
                workers=max(workers, 1))


@app.command()
def jobs():
    """Run the background job consumer (imports, exports)."""
    call_command("run_huey")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: int = typer.Option(1, help="Delivery worker processes.")):
    """Everything on one machine: migrate, first owner, job consumer, delivery workers,
    scheduler, inbound SMTP (tayori mx) and web."""
    migrate()
    ensure_owner(email=os.environ.get("TAYORI_ADMIN_EMAIL", "admin@tayori.local"),
                 password=os.environ.get("TAYORI_ADMIN_PASSWORD", ""),
                 workspace=os.environ.get("TAYORI_WORKSPACE_NAME", "Tayori"))
    children = [subprocess.Popen([sys.executable, "-m", "tayori", *command]) for command in (
        ["jobs"], ["scheduler"], ["mx"], ["worker", "--processes", str(max(workers, 1))])]
    console.print(f"Tayori is running on [bold]http://{host}:{port}/[/]")
    try:
        web(host=host, port=port, workers=1)  # called as a function: every option given
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=15)
