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
import os
import random
import threading
from collections import Counter, defaultdict
from typing import Any

import pytest
from moto import mock_aws

from labeling_pipeline import handler
from labeling_pipeline.backends.ground_truth import LIMITS, GroundTruthBackend
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from tests.chaos.simulation import (
    DeadLetterClient,
    Flaky,
    InvocationFaults,
    Killed,
    Message,
    SimulatedQueue,
    SkipLog,
    drain,
    make_uploads,
)
from tests.support import BUCKET, REGION, ROLE_ARN, TABLE, WORKTEAM_ARN, build_world, make_settings

SEEDS = [int(seed) for seed in os.environ.get("CHAOS_SEEDS", "1,2,3,4,5,6,7,8,9,10").split(",")]
UPLOADS = int(os.environ.get("CHAOS_UPLOADS", "5000"))
CONCURRENCY = 4


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


@pytest.mark.parametrize("seed", SEEDS)
def test_launcher_survives_chaos(seed: int, skip_log: SkipLog) -> None:
    rng = random.Random(seed)
    uploads = make_uploads(rng, UPLOADS, LIMITS)
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

        rounds, redriven = drain(queue, rng, invocation, seed, concurrency=CONCURRENCY)

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
