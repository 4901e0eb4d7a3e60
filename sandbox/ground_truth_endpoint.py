"""The Ground Truth fake served over HTTP on loopback, for code that only knows an endpoint URL.

The demo points `AWS_ENDPOINT_URL_SAGEMAKER` here, so the Lambda code and the CLI call SageMaker
exactly as deployed: botocore validates and serializes the request (AWS JSON 1.1 protocol,
`X-Amz-Target: SageMaker.<Operation>`), this server hands it to `FakeGroundTruth.handle`, and
botocore parses the answer, errors included (`__type` is the error code).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.fake_ground_truth import FakeGroundTruth

TARGET_PREFIX = "SageMaker."


def _encode(value: Any) -> Any:
    # AWS JSON protocols send timestamps as epoch seconds.
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__}")


class GroundTruthEndpoint:
    """A ThreadingHTTPServer on 127.0.0.1 and a free port; `with` starts and stops it."""

    def __init__(self, fake: FakeGroundTruth) -> None:
        self.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ground-truth-fake", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> GroundTruthEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self.fake

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target = self.headers.get("X-Amz-Target", "")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._reply(400, {"__type": "SerializationException", "message": "request body is not JSON"})
                    return
                if not target.startswith(TARGET_PREFIX):
                    self._reply(400, {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"})
                    return
                try:
                    status, body = fake.handle(target.removeprefix(TARGET_PREFIX), request)
                except Exception as error:
                    # A bug in the fake, not a refusal: say so rather than drop the connection.
                    status, body = 500, {"Error": {"Code": "InternalFailure", "Message": f"fake failed: {error!r}"}}
                if "Error" in body:
                    body = {"__type": body["Error"]["Code"], "message": body["Error"]["Message"]}
                self._reply(status, body)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body, default=_encode).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", "local-demo")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                # Every call is in fake.calls; the access log would only repeat it on stderr.
                pass

        return Handler
