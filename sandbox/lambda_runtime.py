"""Run the project's Lambda handlers in this process, invoked the way Lambda invokes them.

- An SQS event source mapping: receive up to the mapping's batch size, waiting at most its batching
  window from the first message; build Lambda's SQS event; with `ReportBatchItemFailures` delete all
  but the reported messages, otherwise delete the batch only when the handler returns. What is not
  deleted comes back after the queue's visibility timeout, and the queue's redrive policy applies.
- An EventBridge rule's function target (delivered to a queue, see `provision.RuleDelivery`): invoke
  once per event, retry as many times as the function's `MaximumRetryAttempts`, then send the event
  to the function's dead-letter queue, as asynchronous invocation does.
- A schedule rule's function target (`provision.Schedule`): EventBridge's "Scheduled Event", when the
  caller says the schedule fires.
- A function URL: an HTTP server on loopback; each request becomes the function URL's event (payload
  format 2.0) and the function's answer the HTTP response, as Lambda's URL does. The server's thread only
  queues the request: the function runs on the thread that calls `poll_function_urls`, so that every
  invocation runs on one thread (its environment and stdout are the process's), one at a time.

Each function gets exactly its template environment (plus what Lambda itself sets), its own log file,
and a Lambda context. What is not emulated: the timeout and the memory size (recorded, not enforced),
and concurrency (one invocation at a time).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import queue
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from sandbox.emulator import ACCOUNT, free_port
from sandbox.provision import FunctionSpec, QueueEventSource, RuleDelivery, Schedule

SQS_RECEIVE_LIMIT = 10  # ReceiveMessage returns at most 10 messages per call


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local-demo"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class Invocation:
    function: str
    event_count: int
    result: Any = None
    error: str | None = None
    seconds: float = 0.0  # how long the handler ran


def function_url_event(
    body: bytes, headers: dict[str, str], method: str = "POST", path: str = "/", query: str = ""
) -> dict[str, Any]:
    """A request through a Lambda function URL (payload format 2.0): headers lower case, body base64."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def function_url_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """The HTTP response Lambda's URL makes of a handler's answer: a dict with statusCode as it is, anything
    else as a 200 with the answer as JSON."""
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        return int(result["statusCode"]), {str(k): str(v) for k, v in (result.get("headers") or {}).items()}, data
    return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()


@dataclass
class _UrlRequest:
    function: FunctionSpec
    event: dict[str, Any]
    reply: Future[tuple[int, dict[str, str], bytes]] = field(default_factory=Future)

    def answer(self, response: tuple[int, dict[str, str], bytes]) -> None:
        with contextlib.suppress(InvalidStateError):  # answered already (the URL was closed meanwhile)
            self.reply.set_result(response)


# How long a request waits for the thread that runs the functions (Lambda's own URL limit is the timeout).
URL_REPLY_SECONDS = 30.0
BAD_GATEWAY = (502, {"Content-Type": "application/json"}, b'{"Message":"Internal Server Error"}')
UNAVAILABLE = (503, {"Content-Type": "application/json"}, b'{"Message":"Service Unavailable"}')


class _FunctionUrlServer:
    """One function's URL on loopback: its thread turns each request into an event and waits for the answer."""

    def __init__(self, function: FunctionSpec, requests: queue.Queue[_UrlRequest]) -> None:
        pending: list[_UrlRequest] = []
        self.pending = pending
        self.closed = threading.Event()
        closed = self.closed

        class Receiver(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                request = _UrlRequest(
                    function, function_url_event(body, dict(self.headers), self.command, parts.path, parts.query)
                )
                pending.append(request)
                if closed.is_set():
                    request.answer(UNAVAILABLE)
                requests.put(request)
                try:
                    status, headers, data = request.reply.result(URL_REPLY_SECONDS)
                except FutureTimeout:
                    status, headers, data = UNAVAILABLE
                finally:
                    pending.remove(request)
                # The sender may have given up already (Label Studio waits 1 s); the function ran all the same.
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Receiver)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"url-{function.name}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        for request in list(self.pending):
            request.answer(UNAVAILABLE)
        self.server.shutdown()
        self.server.server_close()


class FunctionHost:
    """One function "container": its module is imported once, with its own environment and log."""

    def __init__(self, spec: FunctionSpec, region: str, log_folder: Path, log_note: str) -> None:
        self.spec = spec
        self.region = region
        self.log_path = log_folder / f"{spec.name}.log"
        self.log_note = log_note
        self._log: TextIO | None = None
        self._handler: Callable[[Any, Any], Any] | None = None
        self._module: Any = None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """The function's environment and stdout (CloudWatch Logs, for a deployed function)."""
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        lambda_variables = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
        saved = dict(os.environ)
        os.environ.update({**self.spec.environment, **lambda_variables})
        try:
            # Lambda sends stdout and stderr alike to the function's log.
            with contextlib.redirect_stdout(self._log), contextlib.redirect_stderr(self._log):
                yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
            self._log.flush()

    def invoke(self, event: Any) -> Any:
        with self._running():
            if self._handler is None:
                # Imported inside the function's environment and stdout: module-level settings and
                # Powertools' log handler see what they would see in Lambda.
                module_name, _, attribute = self.spec.handler.rpartition(".")
                self._module = importlib.import_module(module_name)
                stamp = getattr(getattr(self._module, "logger", None), "append_keys", None)
                if stamp is not None:
                    stamp(sandbox=self.log_note)
                self._handler = getattr(self._module, attribute)
            # Powertools clears metric metadata at every flush: the note goes on each invocation's metric line.
            add_metadata = getattr(getattr(self._module, "metrics", None), "add_metadata", None)
            if add_metadata is not None:
                add_metadata(key="sandbox", value=self.log_note)
            context = LambdaContext(
                function_name=self.spec.name,
                memory_limit_in_mb=self.spec.memory_mb,
                invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.spec.name}",
                timeout_seconds=self.spec.timeout_seconds,
                log_group_name=f"/aws/lambda/{self.spec.name}",
            )
            with warnings.catch_warnings(record=True) as caught:
                try:
                    return self._handler(event, context)
                finally:
                    self._log_warnings(caught)

    def _log_warnings(self, caught: list[warnings.WarningMessage]) -> None:
        """Python's warnings (Lambda logs them from stderr) as the function's own log lines, which carry the
        demo's note; as plain lines for a function without a structured logger."""
        warning = getattr(getattr(self._module, "logger", None), "warning", None)
        for found in caught:
            text = f"{found.category.__name__}: {found.message} ({Path(found.filename).name}:{found.lineno})"
            if warning is not None:
                warning(text)
            else:
                print(text, file=sys.stderr)


class LocalLambda:
    """The event sources of the provisioned stacks, polled on demand."""

    def __init__(self, sqs: Any, region: str, log_folder: Path, log_note: str) -> None:
        self.sqs = sqs
        self.region = region
        self.log_folder = log_folder
        self.log_note = log_note
        self.hosts: dict[str, FunctionHost] = {}
        self.invocations: list[Invocation] = []
        self._url_servers: list[_FunctionUrlServer] = []
        self._url_requests: queue.Queue[_UrlRequest] = queue.Queue()

    def host(self, spec: FunctionSpec) -> FunctionHost:
        if spec.name not in self.hosts:
            self.hosts[spec.name] = FunctionHost(spec, self.region, self.log_folder, self.log_note)
        return self.hosts[spec.name]

    def close(self) -> None:
        for server in self._url_servers:
            server.close()
        self._url_servers.clear()
        for host in self.hosts.values():
            host.close()

    def _run(self, invocation: Invocation, spec: FunctionSpec, event: Any) -> Any:
        """One attempt of a recorded invocation, timed; an error is recorded, then raised."""
        started = time.monotonic()
        try:
            invocation.result = self.host(spec).invoke(event)
            invocation.error = None
            return invocation.result
        except Exception as error:
            invocation.error = f"{type(error).__name__}: {error}"
            raise
        finally:
            invocation.seconds = round(invocation.seconds + time.monotonic() - started, 3)

    def invoke(self, spec: FunctionSpec, event: Any) -> Any:
        """A synchronous invocation (RequestResponse): the answer, or the function's error raised."""
        invocation = Invocation(spec.name, 1)
        self.invocations.append(invocation)
        return self._run(invocation, spec, event)

    def run_schedule(self, schedule: Schedule) -> Any:
        """The schedule rule fires once: EventBridge's "Scheduled Event" to its function."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{schedule.rule_name}"],
            "detail": {},
        }
        return self.invoke(schedule.function, event)

    # --- function URLs ----------------------------------------------------------------------------
    def serve_function_url(self, spec: FunctionSpec) -> str:
        """The function's URL, on loopback; its requests wait until `poll_function_urls` runs them."""
        server = _FunctionUrlServer(spec, self._url_requests)
        self._url_servers.append(server)
        return server.url

    def poll_function_urls(self, wait_seconds: float = 0.0) -> int:
        """Run every request waiting at a function URL (waiting up to `wait_seconds` for the first one)."""
        handled = 0
        try:
            request = self._url_requests.get(timeout=max(0.0, wait_seconds))
        except queue.Empty:
            return 0
        while True:
            if not request.reply.done():  # answered already only when the URL was closed
                try:
                    request.answer(function_url_response(self.invoke(request.function, request.event)))
                except Exception:
                    request.answer(BAD_GATEWAY)  # what Lambda's URL answers when the function fails
            handled += 1
            try:
                request = self._url_requests.get_nowait()
            except queue.Empty:
                return handled

    def poll_queue_source(self, source: QueueEventSource) -> int:
        """One batch, as the event source mapping would gather it; returns the number of messages."""
        messages: list[dict[str, Any]] = []
        first_arrival: float | None = None
        while len(messages) < source.batch_size:
            received = self.sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(SQS_RECEIVE_LIMIT, source.batch_size - len(messages)),
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and first_arrival is None:
                first_arrival = time.monotonic()
            messages += received
            if first_arrival is None:
                return 0
            if time.monotonic() - first_arrival >= source.batching_window_seconds:
                break
        event = {"Records": [self._sqs_record(message, source) for message in messages]}
        invocation = Invocation(source.function.name, len(messages))
        self.invocations.append(invocation)
        try:
            self._run(invocation, source.function, event)
        except Exception:
            # The whole batch comes back after the visibility timeout.
            return len(messages)
        failed: set[str] = set()
        if source.report_batch_item_failures and isinstance(invocation.result, dict):
            failed = {item["itemIdentifier"] for item in invocation.result.get("batchItemFailures", [])}
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), SQS_RECEIVE_LIMIT):
            self.sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + SQS_RECEIVE_LIMIT])
                ],
            )
        return len(messages)

    def _sqs_record(self, message: dict[str, Any], source: QueueEventSource) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": source.queue_arn,
            "awsRegion": self.region,
        }

    def poll_rule_delivery(self, delivery: RuleDelivery) -> int:
        """Every event the rule matched so far, each invoked asynchronously with the function's retries."""
        handled = 0
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=delivery.queue_url, MaxNumberOfMessages=SQS_RECEIVE_LIMIT, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                return handled
            for message in messages:
                event = json.loads(message["Body"])
                invocation = Invocation(delivery.function.name, 1)
                self.invocations.append(invocation)
                for _attempt in range(1 + delivery.function.maximum_retry_attempts):
                    with contextlib.suppress(Exception):
                        self._run(invocation, delivery.function, event)
                        break
                dead_letter_arn = delivery.function.dead_letter_queue_arn
                if invocation.error is not None and dead_letter_arn:
                    url = self.sqs.get_queue_url(QueueName=dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
                    self.sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
                self.sqs.delete_message(QueueUrl=delivery.queue_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
