"""The `tayori` command: serve, run parts separately, manage members, run benchmarks.

Each sub-command module registers itself on ``app``; ``main`` loads Django first.
"""

import os

import typer

app = typer.Typer(help="Tayori (便り): customer messaging.", no_args_is_help=True,
                  add_completion=False)


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tayori.settings")
    import django

    django.setup()


def main():
    setup_django()
    # Importing the modules registers their commands.
    from tayori.cli import (  # noqa: F401
        bench,
        bench_api,
        bench_email,
        bench_inbound,
        bench_tracking,
        delivery,
        inbound,
        members,
        server,
    )

    app()
