"""Run the project's Lambda handlers in this process, invoked the way Lambda invokes them.

- An SQS event source mapping: receive up to the mapping's batch size, waiting at most its batching
  window from the first message; build Lambda's SQS event; with `ReportBatchItemFailures` delete all
  but the reported messages, otherwise delete the batch only when the handler returns. What is not
  deleted comes back after the queue's visibility timeout, and the queue's redrive policy applies.
- An EventBridge rule's function target (delivered to a queue, see `provision.RuleDelivery`): invoke
  once per event, retry as many times as the function's `MaximumRetryAttempts`, then send the event
  to the function's dead-letter queue, as asynchronous invocation does.

Each function gets exactly its template environment (plus what Lambda itself sets), its own log file,
and a Lambda context. What is not emulated: the timeout and the memory size (recorded, not enforced),
and concurrency (one invocation at a time).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sandbox.fake_ground_truth import ACCOUNT
from sandbox.provision import FunctionSpec, QueueEventSource, RuleDelivery

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
            with contextlib.redirect_stdout(self._log):
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
            return self._handler(event, context)


class LocalLambda:
    """The event sources of the provisioned stacks, polled on demand."""

    def __init__(self, sqs: Any, region: str, log_folder: Path, log_note: str) -> None:
        self.sqs = sqs
        self.region = region
        self.log_folder = log_folder
        self.log_note = log_note
        self.hosts: dict[str, FunctionHost] = {}
        self.invocations: list[Invocation] = []

    def host(self, spec: FunctionSpec) -> FunctionHost:
        if spec.name not in self.hosts:
            self.hosts[spec.name] = FunctionHost(spec, self.region, self.log_folder, self.log_note)
        return self.hosts[spec.name]

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()

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
            invocation.result = self.host(source.function).invoke(event)
        except Exception as error:
            # The whole batch comes back after the visibility timeout.
            invocation.error = f"{type(error).__name__}: {error}"
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
                    try:
                        invocation.result = self.host(delivery.function).invoke(event)
                        invocation.error = None
                        break
                    except Exception as error:
                        invocation.error = f"{type(error).__name__}: {error}"
                dead_letter_arn = delivery.function.dead_letter_queue_arn
                if invocation.error is not None and dead_letter_arn:
                    url = self.sqs.get_queue_url(QueueName=dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
                    self.sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
                self.sqs.delete_message(QueueUrl=delivery.queue_url, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
