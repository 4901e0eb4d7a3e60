"""What both chaos tests share: seeded uploads with junk, an SQS model (visibility, receive counts, the
redrive policy as deployed, delays and message attributes, a clock that the drain loop moves on when no
message is visible), the dead-letter queue, injected AWS faults and the drain loop."""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import ClientError

from labeling_pipeline.backends import Limits
from tests.support import BUCKET, REGION

MAX_RECEIVE_COUNT = 5
MAX_REDRIVES = 3
BATCH_SIZE = 100
# The queue URLs the handler is given: a send to the launch queue (the handler's back-off) comes back into the
# simulated queue, delayed; a send anywhere else is a dead letter.
DEAD_LETTER_QUEUE_URL = "https://sqs.example.com/dlq"
LAUNCH_QUEUE_URL = "https://sqs.example.com/uploads"
MAX_DELAY_SECONDS = 900  # SendMessage's DelaySeconds: 0 to 900


class Killed(BaseException):
    """The Lambda runtime killing an invocation (timeout, out of memory): nothing catches it."""


@dataclass
class Upload:
    key: str
    size: int
    version: str
    expected_skip: str | None
    event_name: str = "ObjectCreated:Put"

    def record(self) -> dict[str, Any]:
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": REGION,
            "eventTime": "2026-11-25T12:00:00.000Z",
            "eventName": self.event_name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "images",
                "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                "object": {
                    "key": quote_plus(self.key, safe="/"),
                    "size": self.size,
                    "eTag": self.version[::-1],
                    "versionId": self.version,
                    "sequencer": "00" + self.version[:14].upper(),
                },
            },
        }


def make_uploads(rng: random.Random, count: int, limits: Limits) -> list[Upload]:
    """Uploads with about 5% junk, each junk upload with the skip reason the launcher must log for it."""
    folders = ["walk", "park/2026", "été", "with space", "a+b", "deep/er/still/deeper", "100%"]
    uploads = []
    for index in range(count):
        roll = rng.random()
        folder = rng.choice(folders)
        version = uuid.UUID(int=rng.getrandbits(128)).hex
        size = rng.randint(1, 5_000_000)
        if roll < 0.01:
            uploads.append(Upload(f"images/{folder}/notes {index}.txt", size, version, "NotAnImage"))
        elif roll < 0.02:
            uploads.append(Upload(f"images/{folder}/empty {index}.jpg", 0, version, "EmptyObject"))
        elif roll < 0.03:
            uploads.append(Upload(f"output/{folder}/{index}.jpg", size, version, "OutsideInputPrefix"))
        elif roll < 0.035:
            uploads.append(Upload(f"images/{folder}/{index}/", 0, version, "FolderMarker"))
        elif roll < 0.04:
            uploads.append(Upload(f"images/{folder}/huge {index}.png", limits.max_image_bytes + 1, version, "TooLarge"))
        elif roll < 0.045:
            uploads.append(
                Upload(f"images/{folder}/gone {index}.jpg", size, version, "NotObjectCreated", "ObjectRemoved:Delete")
            )
        elif roll < 0.05:
            gif_skip = None if ".gif" in limits.image_suffixes else "NotAnImage"  # Label Studio shows a GIF
            uploads.append(Upload(f"images/{folder}/anim {index}.GIF", size, version, gif_skip))
        else:
            extension = rng.choice([".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".Jpeg"])
            uploads.append(Upload(f"images/{folder}/img ü {index}{extension}", size, version, None))
    return uploads


@dataclass
class Message:
    message_id: str
    body: str
    receive_count: int = 0
    attributes: dict[str, str] = field(default_factory=dict)  # message attributes (all Number here)
    visible_at: float = 0.0  # on the simulated queue's clock

    def record(self) -> dict[str, Any]:
        """The message as Lambda's event source mapping hands it over."""
        return {
            "messageId": self.message_id,
            "receiptHandle": self.message_id,
            "body": self.body,
            "attributes": {"ApproximateReceiveCount": str(self.receive_count)},
            "messageAttributes": {
                name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "Number"}
                for name, value in self.attributes.items()
            },
        }


def deliveries(rng: random.Random, uploads: list[Upload], poison: dict[str, str]) -> list[Message]:
    """Each upload's S3 event, at least once (10% twice, as S3 may), then the poison messages."""
    messages = []
    for upload in uploads:
        body = json.dumps({"Records": [upload.record()]})
        messages.append(Message(f"m{rng.getrandbits(64):016x}", body))
        if rng.random() < 0.10:
            messages.append(Message(f"m{rng.getrandbits(64):016x}", body))
    return messages + [Message(message_id, body) for message_id, body in poison.items()]


@dataclass
class SimulatedQueue:
    """SQS as the event source mapping sees it: visibility, receive counts, a redrive policy. `clock` is in
    seconds; a failed message is invisible for `visibility_timeout` (0: visible again at once, so a drain that
    never moves the clock sees the queue as it did before the clock was modelled)."""

    rng: random.Random
    waiting: list[Message] = field(default_factory=list)
    in_flight: dict[str, Message] = field(default_factory=dict)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    visibility_timeout: float = 0.0
    clock: float = 0.0
    # Every message that maxReceiveCount moved to the dead-letter queue, with the clock then (a redrive
    # empties `dead`, not this).
    exhausted: list[tuple[Message, float]] = field(default_factory=list)
    sent: int = 0  # messages sent back to the queue by the handler

    def receive(self, count: int) -> list[Message]:
        with self.lock:
            self.rng.shuffle(self.waiting)
            batch: list[Message] = []
            rest: list[Message] = []
            for message in self.waiting:
                (batch if len(batch) < count and message.visible_at <= self.clock else rest).append(message)
            self.waiting = rest
            for message in batch:
                message.receive_count += 1
                self.in_flight[message.message_id] = message
            return batch

    def advance(self) -> bool:
        """Move the clock to the moment the next message becomes visible, when none is; False when none waits."""
        with self.lock:
            if not self.waiting:
                return False
            self.clock = max(self.clock, min(message.visible_at for message in self.waiting))
            return True

    def send(self, body: str, attributes: dict[str, str], delay_seconds: int) -> str:
        with self.lock:
            self.sent += 1
            message = Message(f"sent-{self.sent}", body, attributes=attributes, visible_at=self.clock + delay_seconds)
            self.waiting.append(message)
            return message.message_id

    def redrive(self) -> int:
        """Move the messages that exhausted their receives back to the queue, as a DLQ redrive does."""
        with self.lock:
            exhausted = [message for message, reason in self.dead if reason == "maxReceiveCount"]
            self.dead = [(message, reason) for message, reason in self.dead if reason != "maxReceiveCount"]
            for message in exhausted:
                message.receive_count = 0
                message.visible_at = self.clock
            self.waiting += exhausted
            return len(exhausted)

    def settle(self, batch: list[Message], failed: set[str]) -> None:
        """Delete what succeeded; make the rest visible again, or dead-letter it after maxReceiveCount."""
        with self.lock:
            for message in batch:
                del self.in_flight[message.message_id]
                if message.message_id not in failed:
                    continue
                if message.receive_count >= MAX_RECEIVE_COUNT:
                    self.dead.append((message, "maxReceiveCount"))
                    self.exhausted.append((message, self.clock))
                else:
                    message.visible_at = self.clock + self.visibility_timeout
                    self.waiting.append(message)


class DeadLetterClient:
    """The handler's SQS client: SendMessage to the DLQ lands in the simulated queue's dead list; to
    LAUNCH_QUEUE_URL (the handler's back-off), back in the simulated queue, delayed, with its attributes."""

    def __init__(self, queue: SimulatedQueue) -> None:
        self.queue = queue

    def send_message(
        self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any], DelaySeconds: int = 0
    ) -> dict[str, Any]:
        if QueueUrl == LAUNCH_QUEUE_URL:
            assert isinstance(DelaySeconds, int) and 0 <= DelaySeconds <= MAX_DELAY_SECONDS, DelaySeconds
            attributes = {}
            for name, value in MessageAttributes.items():
                assert value["DataType"] == "Number", value
                attributes[name] = str(int(value["StringValue"]))
            return {"MessageId": self.queue.send(MessageBody, attributes, DelaySeconds)}
        with self.queue.lock:
            reason = MessageAttributes["FailureReason"]["StringValue"]
            self.queue.dead.append((Message("dlq-" + uuid.uuid4().hex, MessageBody), reason))
        return {"MessageId": "dlq"}


class InvocationFaults(threading.local):
    """Each invocation draws its faults from its own generator, seeded from the test seed and its place in
    the run, so what fails does not depend on how the threads happen to interleave."""

    rng: random.Random = random.Random(0)

    def roll(self) -> float:
        return self.rng.random()


class Flaky:
    """A boto3 client whose calls fail now and then, as they do once botocore's own retries are spent.
    DynamoDB calls are serialized: moto's conditional writes are not atomic across threads, DynamoDB's are."""

    def __init__(
        self,
        client: Any,
        faults: InvocationFaults,
        rate: float,
        serialize: bool,
        lock: threading.Lock | None = None,
        *,
        operations: frozenset[str] | None = None,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._client = client
        self._faults = faults
        self._rate = rate
        self._paused = paused  # while True, no call fails
        self._lock = (lock or threading.Lock()) if serialize else None
        self._operations = operations  # the methods that fail (None: all)
        self._count_lock = threading.Lock()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if self._operations is not None and name not in self._operations:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._paused() and self._faults.roll() < self._rate:
                with self._count_lock:
                    self.failures += 1
                raise ClientError(
                    {
                        "Error": {"Code": "InternalError", "Message": "injected"},
                        "ResponseMetadata": {"HTTPStatusCode": 500},
                    },
                    name,
                )
            if self._lock is None:
                return method(*args, **kwargs)
            with self._lock:
                return method(*args, **kwargs)

        return call


class SkipLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.skipped: set[tuple[str, str]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "skipped object":
            self.skipped.add((record.__dict__["key"], record.__dict__["reason"]))


Invocation = Callable[[list[Message], str], None]


def drain(
    queue: SimulatedQueue,
    rng: random.Random,
    invocation: Invocation,
    seed: int,
    *,
    concurrency: int,
    after_round: Callable[[], None] = lambda: None,
    batch_size: int = BATCH_SIZE,
    max_rounds: int = 500,
) -> tuple[int, int]:
    """Run concurrent invocations over the queue until it is empty, redriving the dead-letter queue
    MAX_REDRIVES times as an operator would; return the rounds and the messages redriven. `after_round`
    runs between rounds, as time passes while a retried message is invisible. Each invocation gets a batch
    of 1 to `batch_size` messages (the event source mapping's BatchSize). When no waiting message is visible,
    the queue's clock moves on to the next that will be."""
    rounds = redrives = redriven = 0
    while queue.waiting:
        while queue.waiting:
            rounds += 1
            assert rounds < max_rounds, f"seed {seed}: the queue does not drain"
            batches = [queue.receive(rng.randint(1, batch_size)) for _ in range(concurrency)]
            if not any(batches):
                rounds -= 1  # nothing to run: time passes
                queue.advance()
                continue
            threads = [
                threading.Thread(target=invocation, args=(batch, f"{rounds}.{index}"))
                for index, batch in enumerate(batches)
                if batch
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            after_round()
        if redrives < MAX_REDRIVES:
            redrives += 1
            redriven += queue.redrive()
    return rounds, redriven
