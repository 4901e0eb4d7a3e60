"""An HTTP server on loopback for the stand-ins the tests put on the network: webhook receivers, proxies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


@contextmanager
def serve_on_loopback(
    handler_class: type[BaseHTTPRequestHandler], *, one_at_a_time: bool = False
) -> Iterator[HTTPServer]:
    """Serve `handler_class` on 127.0.0.1 at a port the system picks, until the block ends. Each request
    gets a daemon thread, so a request still hanging does not hold up the end; `one_at_a_time` serves them
    in turn instead."""
    server = (HTTPServer if one_at_a_time else ThreadingHTTPServer)(("127.0.0.1", 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, name=f"loopback-{handler_class.__name__}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
