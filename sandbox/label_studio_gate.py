"""The deployed site's edge in front of the local Label Studio: a reverse proxy on loopback that runs every
request through the CloudFront Function the stack deploys (stacks/backends/label_studio/edge/viewer_request.js,
under Node.js: sandbox.cloudfront_function) and passes on what it lets through, unchanged. Behind it, Label
Studio itself runs the access middleware (label_studio_plugin/labeling_gate), as the deployed task does: the
two layers of the deployment, on one machine.

A request the function answers gets the function's answer; anything else goes to Label Studio byte for byte as
the client sent it (its path unnormalized, its Host header too, so that Django's CSRF check and its redirects see
the gate's address), and Label Studio's answer comes back as it is (compressed bodies stay compressed).

    with LabelStudioGate(label_studio.url) as gate:
        draw_box(gate.url, ...)     # a worker, through the edge
"""

from __future__ import annotations

import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandbox.cloudfront_function import CloudFrontFunction, FunctionError

REPO = Path(__file__).resolve().parent.parent
EDGE_FUNCTION = REPO / "stacks" / "backends" / "label_studio" / "edge" / "viewer_request.js"

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
# The gate sets its own length on what it sends on, either way.
NOT_PASSED_BACK = HOP_BY_HOP | {"content-length"}
UPSTREAM_TIMEOUT_SECONDS = 120


class _QuietServer(ThreadingHTTPServer):
    """A browser drops connections it no longer needs: that is no error worth a traceback on the demo's screen."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LabelStudioGate:
    """A context manager: `url` is the gate's address; `refused` lists the (method, path) the function answered
    itself, `passed` those it let through."""

    def __init__(self, upstream_url: str, function_code: str | None = None, port: int = 0) -> None:
        self.upstream = urlsplit(upstream_url)
        self.function = CloudFrontFunction(function_code or EDGE_FUNCTION.read_text())
        self.refused: list[tuple[str, str]] = []
        self.passed: list[tuple[str, str]] = []
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="label-studio-gate", daemon=True)

    def __enter__(self) -> LabelStudioGate:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.function.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                # The gate sets the body's length itself: one Content-Length header, not two.
                headers = {name: value for name, value in self.headers.items() if name.lower() not in NOT_PASSED_BACK}
                try:
                    result = gate.function.viewer_request(self.command, self.path, headers)
                except (FunctionError, OSError) as error:
                    self._answer(502, [("X-Labeling-Gate", "function-failed")], str(error).encode())
                    return
                if "statusCode" in result:
                    gate.refused.append((self.command, self.path))
                    reason = result.get("headers", {}).get("x-labeling-gate", {}).get("value", "edge")
                    self._answer(int(result["statusCode"]), [("X-Labeling-Gate", reason)], b"")
                    return
                gate.passed.append((self.command, self.path))
                connection = http.client.HTTPConnection(
                    gate.upstream.hostname or "127.0.0.1", gate.upstream.port, timeout=UPSTREAM_TIMEOUT_SECONDS
                )
                try:
                    connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in headers.items():
                        connection.putheader(name, value)
                    if body is not None:
                        connection.putheader("Content-Length", str(len(body)))
                    connection.endheaders(body)
                    response = connection.getresponse()
                    content = response.read()
                    kept = [(n, v) for n, v in response.getheaders() if n.lower() not in NOT_PASSED_BACK]
                except OSError as error:
                    # As CloudFront answers when its origin fails: a 502, not a dropped connection.
                    self._answer(502, [("X-Labeling-Gate", "origin-failed")], f"Label Studio: {error}".encode())
                    return
                finally:
                    connection.close()
                self._answer(response.status, kept, content)

            def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
