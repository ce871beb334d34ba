"""A local receiver (a real HTTP server on 127.0.0.1 in a thread) that records what it is sent
and answers as a test tells it, and an endpoint of the workspace pointing at it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tayori.webhooks import dispatch, endpoints, subscriptions


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


class Receiver:
    """Answers each POST with the next of ``replies`` — (status, seconds to wait first) — and
    then with 200."""

    def __init__(self):
        self.requests: list[Received] = []
        self.replies: list[tuple[int, float]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tayori?source=test"

    def answer(self, *statuses: int, delay: float = 0.0) -> None:
        self.replies += [(status, delay) for status in statuses]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        receiver.requests.append(Received(self.path, dict(self.headers), body))
        status, delay = receiver.replies.pop(0) if receiver.replies else (200, 0.0)
        if delay:
            time.sleep(delay)
        reply = f"answer {status}".encode()
        try:
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "https://elsewhere.example/")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:  # the client gave up waiting
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def _webhook_state(settings):
    # The receiver listens on loopback, which production refuses.
    settings.WEBHOOK_PRIVATE_NETWORKS = True
    subscriptions.changed()
    yield
    subscriptions.changed()
    dispatch._inflight.clear()


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def endpoint_of(workspace, receiver):
    """make(events=[...], url=...) -> (endpoint, secret)"""
    def make(events=("message.sent",), url=None, ws=None):
        return endpoints.create(ws or workspace, url=url or receiver.url, events=list(events),
                                description="test receiver")
    return make
