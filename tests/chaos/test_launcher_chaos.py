"""Chaos test of the whole launcher path, offline and seeded.

5,000 uploads (5% junk), every S3 event delivered at least once and some twice, shuffled batches run by
concurrent invocations, CreateLabelingJob throttled or failing on a share of calls, S3 and DynamoDB
failing now and then, one invocation killed between writing a manifest and creating its job. An SQS
model with visibility, receive counts and a redrive policy (maxReceiveCount 5, as deployed) feeds the
handler. A valid message that exhausts its receives lands in the dead-letter queue, as in AWS; the test
then redrives the DLQ as an operator would (README) and drains again. When the queue has drained:
every valid image is in exactly one created job's manifest, no job was created twice, every skipped
object was logged with its reason, and the dead-letter queue holds the poison messages only.

A failure names its seed: rerun with CHAOS_SEEDS=<seed>. Uploads, deliveries, batches and each
invocation's faults come from the seed; only the interleaving of the concurrent invocations is left to
the scheduler, and the invariants must hold for every interleaving.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from labeling_pipeline import handler
from labeling_pipeline.backends.ground_truth import LIMITS, GroundTruthBackend
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from tests.support import BUCKET, REGION, ROLE_ARN, TABLE, WORKTEAM_ARN, build_world, make_settings

SEEDS = [int(seed) for seed in os.environ.get("CHAOS_SEEDS", "1,2,3,4,5,6,7,8,9,10").split(",")]
UPLOADS = int(os.environ.get("CHAOS_UPLOADS", "5000"))
MAX_RECEIVE_COUNT = 5
MAX_REDRIVES = 3
BATCH_SIZE = 100
CONCURRENCY = 4


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


def make_uploads(rng: random.Random, count: int) -> list[Upload]:
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
            uploads.append(Upload(f"images/{folder}/huge {index}.png", LIMITS.max_image_bytes + 1, version, "TooLarge"))
        elif roll < 0.045:
            uploads.append(
                Upload(f"images/{folder}/gone {index}.jpg", size, version, "NotObjectCreated", "ObjectRemoved:Delete")
            )
        elif roll < 0.05:
            uploads.append(Upload(f"images/{folder}/anim {index}.GIF", size, version, "NotAnImage"))
        else:
            extension = rng.choice([".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".Jpeg"])
            uploads.append(Upload(f"images/{folder}/img ü {index}{extension}", size, version, None))
    return uploads


@dataclass
class Message:
    message_id: str
    body: str
    receive_count: int = 0


@dataclass
class SimulatedQueue:
    """SQS as the event source mapping sees it: visibility, receive counts, a redrive policy."""

    rng: random.Random
    waiting: list[Message] = field(default_factory=list)
    in_flight: dict[str, Message] = field(default_factory=dict)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, count: int) -> list[Message]:
        with self.lock:
            self.rng.shuffle(self.waiting)
            batch, self.waiting = self.waiting[:count], self.waiting[count:]
            for message in batch:
                message.receive_count += 1
                self.in_flight[message.message_id] = message
            return batch

    def redrive(self) -> int:
        """Move the messages that exhausted their receives back to the queue, as a DLQ redrive does."""
        with self.lock:
            exhausted = [message for message, reason in self.dead if reason == "maxReceiveCount"]
            self.dead = [(message, reason) for message, reason in self.dead if reason != "maxReceiveCount"]
            for message in exhausted:
                message.receive_count = 0
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
                else:
                    self.waiting.append(message)


class DeadLetterClient:
    """The handler's SQS client: SendMessage to the DLQ lands in the simulated queue's dead list."""

    def __init__(self, queue: SimulatedQueue) -> None:
        self.queue = queue

    def send_message(self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any]) -> None:
        with self.queue.lock:
            reason = MessageAttributes["FailureReason"]["StringValue"]
            self.queue.dead.append((Message("dlq-" + uuid.uuid4().hex, MessageBody), reason))


class InvocationFaults(threading.local):
    """Each invocation draws its faults from its own generator, seeded from the test seed and its place in
    the run, so what fails does not depend on how the threads happen to interleave."""

    rng: random.Random = random.Random(0)

    def roll(self) -> float:
        return self.rng.random()


class Flaky:
    """A boto3 client whose calls fail now and then, as they do once botocore's own retries are spent.
    DynamoDB calls are serialized: moto's conditional writes are not atomic across threads, DynamoDB's are."""

    def __init__(self, client: Any, faults: InvocationFaults, rate: float, serialize: bool) -> None:
        self._client = client
        self._faults = faults
        self._rate = rate
        self._lock = threading.Lock() if serialize else None
        self._count_lock = threading.Lock()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._faults.roll() < self._rate:
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


class KillOnce:
    """Wraps the backend's SageMaker client: the first job whose task inputs (manifest included) the backend
    has written kills its invocation at its CreateLabelingJob call, before the call is made."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.killed: list[str] = []
        self.lock = threading.Lock()

    def create_labeling_job(self, **request: Any) -> Any:
        name = request["LabelingJobName"]
        with self.lock:
            kill = not self.killed
            if kill:
                self.killed.append(name)
        if kill:
            raise Killed(name)
        return self._client.create_labeling_job(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class SkipLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.skipped: set[tuple[str, str]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "skipped object":
            self.skipped.add((record.__dict__["key"], record.__dict__["reason"]))


@pytest.fixture
def skip_log() -> Iterator[SkipLog]:
    log = SkipLog()
    logger = logging.getLogger("labeling-launcher")
    logger.addHandler(log)
    yield log
    logger.removeHandler(log)
    # decide_messages is called without the Lambda decorator that flushes metrics: drop what piled up.
    handler.metrics.clear_metrics()


@pytest.mark.parametrize("seed", SEEDS)
def test_launcher_survives_chaos(seed: int, skip_log: SkipLog) -> None:
    rng = random.Random(seed)
    uploads = make_uploads(rng, UPLOADS)
    faults = InvocationFaults()
    with mock_aws():
        # Versioned, as deployed; and moto closes an overwritten key of an unversioned bucket while another
        # thread may still read it (two invocations finishing one job both write its manifest), which real
        # S3, where a PUT replaces an object atomically, never does.
        world = build_world(versioned=True)

        def create_job_faults(operation: str, _request: dict[str, Any]) -> str | None:
            if operation != "CreateLabelingJob":
                return None
            roll = faults.roll()
            return "ThrottlingException" if roll < 0.10 else "InternalFailure" if roll < 0.15 else None

        world.ground_truth.fault = create_job_faults
        s3 = Flaky(world.s3, faults, 0.01, serialize=False)
        dynamodb = Flaky(world.dynamodb, faults, 0.03, serialize=True)
        settings = make_settings(maxImagesPerJob=50)
        sagemaker = KillOnce(world.sagemaker)
        # The backend writes each job's task inputs through the same flaky S3 client as the launcher.
        backend = GroundTruthBackend(
            sagemaker, s3, settings, region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
        )
        queue = SimulatedQueue(rng)
        for upload in uploads:
            body = json.dumps({"Records": [upload.record()]})
            queue.waiting.append(Message(f"m{rng.getrandbits(64):016x}", body))
            if rng.random() < 0.10:  # at-least-once: some events arrive twice
                queue.waiting.append(Message(f"m{rng.getrandbits(64):016x}", body))
        poison = {f"poison-{n}": body for n, body in enumerate(["not json", "[]", '{"Records": [{"s3": 1}]}'])}
        queue.waiting += [Message(message_id, body) for message_id, body in poison.items()]

        def environment() -> handler.Environment:
            ledger = Ledger(dynamodb, TABLE)
            launcher = Launcher(s3_client=s3, ledger=ledger, backend=backend, bucket=BUCKET, settings=settings)
            return handler.Environment(
                BUCKET, "https://sqs.example.com/dlq", s3, DeadLetterClient(queue), LIMITS, launcher
            )

        why_retried: defaultdict[str, list[str]] = defaultdict(list)

        def invocation(batch: list[Message], place: str) -> None:
            faults.rng = random.Random(f"{seed}/{place}")
            event = {"Records": [{"messageId": m.message_id, "body": m.body} for m in batch]}
            try:
                verdict = handler.decide_messages(environment(), event)
            except Killed:
                queue.settle(batch, {m.message_id for m in batch})  # nothing was deleted
                return
            for message_id, reason in verdict.items():
                if reason is not None:
                    why_retried[message_id].append(reason)
            queue.settle(batch, {message_id for message_id, reason in verdict.items() if reason is not None})

        rounds = redrives = redriven = 0
        while queue.waiting:
            while queue.waiting:
                rounds += 1
                assert rounds < 500, f"seed {seed}: the queue does not drain"
                batches = [queue.receive(rng.randint(1, BATCH_SIZE)) for _ in range(CONCURRENCY)]
                threads = [
                    threading.Thread(target=invocation, args=(batch, f"{rounds}.{index}"))
                    for index, batch in enumerate(batches)
                    if batch
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            if redrives < MAX_REDRIVES:
                redrives += 1
                redriven += queue.redrive()

        valid = {f"s3://{BUCKET}/{u.key}" for u in uploads if u.expected_skip is None}
        labeled = Counter(world.manifest_sources())
        missing, extra = len(valid - set(labeled)), len(set(labeled) - valid)
        assert set(labeled) == valid, f"seed {seed}: missing {missing}, extra {extra}"
        assert set(labeled.values()) == {1}, f"seed {seed}: an image is in two jobs"
        created = world.ground_truth.created_names
        assert len(created) == len(set(created)), f"seed {seed}: a job was created twice"
        assert sagemaker.killed and sagemaker.killed[0] in created, f"seed {seed}: the killed job was never finished"
        expected_skips = {(u.key, u.expected_skip) for u in uploads if u.expected_skip is not None}
        assert skip_log.skipped == expected_skips, f"seed {seed}: skips not accounted for"
        dead_bodies = [message.body for message, _reason in queue.dead]
        stuck = {
            m.message_id: (reason, why_retried[m.message_id])
            for m, reason in queue.dead
            if m.body not in poison.values()
        }
        assert sorted(dead_bodies) == sorted(poison.values()), f"seed {seed}: the DLQ holds more than poison: {stuck}"
        assert all(reason.startswith("not an S3 event notification") for _m, reason in queue.dead)
        assert s3.failures > 0 and dynamodb.failures > 0, f"seed {seed}: no S3 or no DynamoDB fault was injected"
        print(
            f"seed {seed}: {len(uploads)} uploads, {rounds} rounds, {len(created)} jobs, "
            f"{s3.failures} S3 and {dynamodb.failures} DynamoDB faults, {redriven} message(s) redriven"
        )
