"""Debian's `smtp-sink` (postfix package) on a free loopback port: the C SMTP server the tests,
the interop checks and the benchmark send into."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_smtp_sink(*, dump_dir: str | None = None, pipelining: bool = True,
                    backlog: int = 256) -> tuple[subprocess.Popen, int]:
    """Start smtp-sink on 127.0.0.1; with `dump_dir`, each message lands in a file there.
    Returns the process (terminate it when done) and its port."""
    port = free_port()
    command = [SMTP_SINK]
    if os.geteuid() == 0:  # it refuses to run as root without a user to switch to
        command += ["-u", "nobody"]
    if not pipelining:
        command.append("-p")
    if dump_dir:
        os.chmod(dump_dir, 0o777)
        command += ["-d", os.path.join(dump_dir, "%H%M%S.")]
    command += [f"127.0.0.1:{port}", str(backlog)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"smtp-sink exited: {process.stderr.read().decode()}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("smtp-sink did not start listening")
