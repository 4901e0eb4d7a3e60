"""A reverse proxy in front of the real Label Studio server that fails a seeded share of requests the ways a
server behind a load balancer fails: answered 503 without reaching Label Studio, answered 502 after Label
Studio did the work (the answer is lost), or hanging past the client's read timeout, before or after
Label Studio did the work.

Each request draws its fate from a generator seeded with the test seed and the request's ordinal, so a
run's faults follow from its seed and the order in which requests arrive.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.loopback import serve_on_loopback


@dataclass(frozen=True)
class FaultRates:
    refused: float = 0.0  # 503 before Label Studio sees the request
    lost_answer: float = 0.0  # Label Studio did it; the client hears 502
    hang_before: float = 0.0  # no answer within the client's timeout; Label Studio never saw it
    hang_after: float = 0.0  # Label Studio did it; no answer within the client's timeout


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    forwarding: int = 0  # requests Label Studio is still working on, whether or not a client still waits
    idle: threading.Condition = field(default_factory=threading.Condition)

    def wait_until_upstream_idle(self, timeout: float = 120.0) -> None:
        """Wait for Label Studio to finish every request it was given: what the minutes that pass before
        SQS redelivers a message guarantee for a request whose client gave up."""
        with self.idle:
            if not self.idle.wait_for(lambda: self.forwarding == 0, timeout):
                raise TimeoutError(f"Label Studio still works on {self.forwarding} request(s) after {timeout} s")

    def next_ordinal(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests

    def count(self, fault: str) -> None:
        with self.lock:
            self.counts[fault] += 1


def choose_fault(rates: FaultRates, roll: float) -> str | None:
    threshold = 0.0
    for fault in ("refused", "lost_answer", "hang_before", "hang_after"):
        threshold += getattr(rates, fault)
        if roll < threshold:
            return fault
    return None


@contextmanager
def fault_proxy(target: str, seed: int, rates: FaultRates, hang_seconds: float) -> Iterator[tuple[str, FaultLog]]:
    """Serve a proxy to `target` on loopback; yield its base URL and the log of the faults it injected.
    `hang_seconds` must exceed the client's read timeout."""
    upstream = urlsplit(target)
    log = FaultLog()

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=120)
            with log.idle:
                log.forwarding += 1
            try:
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            finally:
                connection.close()
                with log.idle:
                    log.forwarding -= 1
                    log.idle.notify_all()

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the client gave up waiting (its read timeout)

        def _handle(self) -> None:
            ordinal = log.next_ordinal()
            fault = choose_fault(rates, random.Random(f"{seed}/{ordinal}").random())
            if fault is not None:
                log.count(fault)
            if fault == "refused":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(503, [("Content-Type", "text/html")], b"<html>503 Service Unavailable</html>")
                return
            if fault == "hang_before":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(hang_seconds)
                self.close_connection = True
                return
            status, headers, body = self._forward()
            if fault == "lost_answer":
                self._answer(502, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>")
            elif fault == "hang_after":
                time.sleep(hang_seconds)
                self.close_connection = True
            else:
                self._answer(status, headers, body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    with serve_on_loopback(Proxy) as server:
        yield f"http://127.0.0.1:{server.server_port}", log
