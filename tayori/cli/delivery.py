"""Running the delivery engine: `tayori worker` (claim/render/send processes) and
`tayori scheduler` (starts, quiet hours, retries, auto-pause). Any number of either may run
against one PostgreSQL."""

import os
import signal
import subprocess
import sys

import typer

from tayori.cli import app


def spawn(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tayori", *command])


def wait_all(children: list[subprocess.Popen]) -> int:
    """Wait for child processes, passing SIGTERM/SIGINT on to them."""
    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max((child.wait() for child in children), default=0)


@app.command()
def worker(
    processes: int = typer.Option(0, help="Worker processes; 0 = one per core."),
    lanes: int = typer.Option(4, help="Bulk lanes (relay connections) per process."),
    batch: int = typer.Option(500, help="Rows claimed per batch."),
    share: float = typer.Option(1.0, hidden=True,
                                help="This process's share of every rate limit."),
    lane: str = typer.Option("all", hidden=True, help="all, urgent or bulk."),
):
    """Deliver queued mail until stopped (SIGTERM finishes the batches in hand).

    With several processes, one more runs only the urgent lane."""
    processes = processes or os.cpu_count() or 1
    if processes > 1:
        common = ["worker", "--processes", "1", "--batch", str(batch),
                  "--share", str(1 / processes)]
        bulk = [spawn([*common, "--lanes", str(lanes), "--lane", "bulk"])
                for _ in range(processes)]
        raise typer.Exit(wait_all([*bulk, spawn([*common, "--lanes", "0", "--lane", "urgent"])]))
    from tayori.delivery.engine import run_worker

    run_worker(bulk_lanes=lanes, batch=batch, share=share, urgent_lane=lane != "bulk")


@app.command()
def scheduler():
    """Start scheduled sends, keep quiet hours, retry, pause failing sends, finish done ones."""
    import threading

    from tayori.delivery.scheduler import run_scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_scheduler(stop)
