"""The launcher Lambda end to end: real uploads to a moto bucket whose notifications go to a moto
queue (its redrive policy and visibility timeout as deployed), the queue's messages handed to the handler as
the Lambda SQS poller would. The back-off's tests move moto's clock and the handler's instead of waiting."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, cast
from urllib.parse import unquote_plus

import boto3
import moto.core.utils
import pytest
import urllib3
from botocore.exceptions import ClientError

from labeling_pipeline import handler
from labeling_pipeline.backends import JobRequest, LabelingBackend, PermanentBackendError, StartOutcomeUnknown
from labeling_pipeline.backends.ground_truth import LIMITS
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioRefused, LabelStudioUnavailable
from labeling_pipeline.backoff import (
    FIRST_WAIT_SECONDS,
    MAX_DELAY_SECONDS,
    MAX_WAIT_SECONDS,
    OUTAGE_BUDGET_SECONDS,
    OUTAGE_SINCE,
    RETRY_AT,
    Backoff,
    ServiceFailedEarlier,
    wait_seconds,
)
from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import job_images
from labeling_pipeline.names import EnvironmentVariable as Env
from stacks.constructs.launch_pipeline import LAUNCHER_TIMEOUT, MAX_RECEIVE_COUNT
from tests.support import BACKEND_RESOURCES, BUCKET, REGION, TABLE, World, lambda_sqs_record, settings_json

# The upload queue as deployed (stacks/constructs/launch_pipeline.py).
VISIBILITY_TIMEOUT = 6 * int(LAUNCHER_TIMEOUT.to_seconds())


@dataclass
class FakeContext:
    function_name: str = "launcher"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:launcher"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


@dataclass
class Pipeline:
    world: World
    queue_url: str
    queue_arn: str
    dlq_url: str
    make_client: Callable[..., Any]

    def poll(self, max_messages: int = 10, visibility_timeout: int | None = 30) -> list[dict[str, Any]]:
        """Receive like the Lambda poller and shape the messages as SQS event records (with their receive count
        and message attributes). visibility_timeout None: the queue's own, as the poller has it."""
        records: list[dict[str, Any]] = []
        while len(records) < max_messages:
            response = self.world.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, max_messages - len(records)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                **({} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}),
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            records += [lambda_record(message, self.queue_arn) for message in messages]
        return records

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the handler; delete what succeeded, as the event source mapping does."""
        response = handler.lambda_handler({"Records": records}, FakeContext())
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for record in records:
            if record["messageId"] not in failed:
                self.world.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        return response

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.world.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return list(messages)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received message as Lambda's event source mapping hands it over: its receive count, and its message
    attributes in Lambda's spelling (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html)."""
    return {
        **lambda_sqs_record(message, queue_arn),
        "attributes": message.get("Attributes") or {"ApproximateReceiveCount": "1"},
        "messageAttributes": {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
    }


@pytest.fixture
def pipeline(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    dlq_url = world.sqs.create_queue(QueueName="launcher-dlq")["QueueUrl"]
    dlq_arn = world.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = world.sqs.create_queue(
        QueueName="launcher-queue",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "MessageRetentionPeriod": str(14 * 24 * 3600),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    queue_arn = world.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    world.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
                }
            ]
        },
    )
    monkeypatch.setenv(Env.BUCKET_NAME, BUCKET)
    monkeypatch.setenv(Env.LEDGER_TABLE_NAME, TABLE)
    monkeypatch.setenv(Env.DEAD_LETTER_QUEUE_URL, dlq_url)
    monkeypatch.setenv(Env.LAUNCH_QUEUE_URL, queue_url)
    monkeypatch.setenv(Env.PIPELINE_SETTINGS, settings_json(maxImagesPerJob=4))
    monkeypatch.setenv(Env.BACKEND_RESOURCES, BACKEND_RESOURCES)

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    handler._environment = handler.build_environment(make_client)
    assert handler._environment.limits == LIMITS  # the backend's, from the registry
    yield Pipeline(world, queue_url, queue_arn, dlq_url, make_client)
    handler._environment = None


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One clock for moto (its SQS reads delays, visibility and retention from moto.core.utils.utcnow) and for the
    handler's back-off, standing still until the test moves it."""
    clock = Clock(float(int(time.time())))
    monkeypatch.setattr(moto.core.utils, "utcnow", lambda: datetime.fromtimestamp(clock.now, UTC).replace(tzinfo=None))
    handler._environment = handler.build_environment(pipeline.make_client, clock=clock)
    return clock


def drain(pipeline: Pipeline, rounds: int = 20) -> None:
    for _ in range(rounds):
        records = pipeline.poll()
        if not records:
            return
        pipeline.invoke(records)


def test_uploads_become_jobs_with_decoded_keys(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    world = pipeline.world
    keys = [
        "images/walk/dog 1.jpg",
        "images/walk/chat-été.JPG",
        "images/deep/nested/folder/cat+plus.png",
        "images/walk/photo.jpeg",
        "images/walk/notes.txt",
        "images/walk/empty.png",
        "images/walk/",
    ]
    for key in keys:
        world.upload(key, b"" if "empty" in key or key.endswith("/") else b"\x89PNG image bytes")
    world.upload("exports/not-input.jpg")  # outside the prefix: S3 sends no event at all

    drain(pipeline)

    labeled = Counter(world.manifest_sources())
    assert labeled == Counter(f"s3://{BUCKET}/{key}" for key in keys[:4])
    assert len(world.ground_truth.created_names) == 1
    skipped = {
        (record.__dict__["key"], record.__dict__["reason"])
        for record in caplog.records
        if record.getMessage() == "skipped object"
    }
    assert skipped == {
        ("images/walk/notes.txt", "NotAnImage"),
        ("images/walk/empty.png", "EmptyObject"),
        ("images/walk/", "FolderMarker"),
    }
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    totals = Counter[str]()
    for blob in metrics:
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            totals[definition["Name"]] += int(
                sum(blob[definition["Name"]])
                if isinstance(blob[definition["Name"]], list)
                else blob[definition["Name"]]
            )
    assert totals["ObjectsSkipped"] == 3 and totals["SkippedNotAnImage"] == 1
    assert totals["LabelingJobsCreated"] == 1


def test_more_images_than_one_job_holds_are_split(pipeline: Pipeline) -> None:
    world = pipeline.world
    for index in range(10):
        world.upload(f"images/batch/{index}.jpg")
    drain(pipeline)
    assert len(world.manifest_sources()) == 10
    assert len(set(world.manifest_sources())) == 10
    sizes = [job["LabelCounters"]["Unlabeled"] for job in world.ground_truth.jobs.values()]
    assert sum(sizes) == 10 and max(sizes) == 4  # maxImagesPerJob is 4 in this pipeline


def test_duplicate_delivery_of_the_same_messages(pipeline: Pipeline) -> None:
    world = pipeline.world
    for index in range(3):
        world.upload(f"images/dup/{index}.png")
    records = pipeline.poll()
    pipeline.invoke(records)
    pipeline.invoke(records)  # SQS at-least-once: the same messages again
    pipeline.invoke(records[:1])
    assert len(world.ground_truth.created_names) == 1
    assert sorted(Counter(world.manifest_sources()).values()) == [1, 1, 1]


def test_throttled_job_backs_off_and_its_retry_creates_it_once(pipeline: Pipeline, clock: Clock) -> None:
    world = pipeline.world
    world.ground_truth.fault = lambda op, _r: "ThrottlingException" if op == "CreateLabelingJob" else None
    world.upload("images/retry/a.jpg")
    records = [record for record in pipeline.poll(visibility_timeout=None) if "s3:TestEvent" not in record["body"]]
    response = pipeline.invoke(records)
    # Not a failure of the message: it is back in the queue, delayed, and the one received is deleted.
    assert response["batchItemFailures"] == []
    assert world.ground_truth.created_names == []
    clock.advance(FIRST_WAIT_SECONDS - 1)
    assert pipeline.poll(visibility_timeout=None) == []
    clock.advance(1)
    [again] = pipeline.poll(visibility_timeout=None)
    assert again["body"] == records[0]["body"] and again["messageId"] != records[0]["messageId"]
    assert again["attributes"]["ApproximateReceiveCount"] == "1"
    since = int(clock.now) - FIRST_WAIT_SECONDS
    assert {name: value["stringValue"] for name, value in again["messageAttributes"].items()} == {
        OUTAGE_SINCE: str(since),
        RETRY_AT: str(int(clock.now)),
    }
    world.ground_truth.fault = None
    assert pipeline.invoke([again])["batchItemFailures"] == []
    assert world.manifest_sources() == [f"s3://{BUCKET}/images/retry/a.jpg"]
    assert len(world.ground_truth.created_names) == 1


def failing_task_files(make_client: Callable[..., Any], marker: bytes) -> Callable[..., Any]:
    """make_client whose S3 clients fail (InternalError, after botocore's retries) every write under jobs/ of a
    body holding `marker`: a job that keeps failing for its own reason, not for the labeling service's."""

    def fail(params: dict[str, Any], **_: Any) -> None:
        body = params.get("Body")
        if params["Key"].startswith("jobs/") and isinstance(body, bytes) and marker in body:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "PutObject")

    def make(service: str, **kwargs: Any) -> Any:
        client = make_client(service, **kwargs)
        if service == "s3":
            client.meta.events.register("before-parameter-build.s3.PutObject", fail)
        return client

    return make


def test_a_day_long_outage_dead_letters_nothing_and_a_poison_message_still_goes_after_5_tries(
    pipeline: Pipeline, clock: Clock
) -> None:
    """Ground Truth answers ServiceUnavailable for a day and 10 minutes while three uploads and a poison one
    (whose task file S3 never takes) arrive; the clock moves 5 minutes at a time, the poller takes what is
    visible, one message a batch. No upload's message is ever received twice, the service is tried at the
    back-off's schedule, each upload's job is created once within the hour after the outage, and the poison
    message is tried 5 times, 30 minutes apart, then moved to the dead-letter queue by SQS, as before."""
    world = pipeline.world
    handler._environment = handler.build_environment(failing_task_files(pipeline.make_client, b"poison"), clock=clock)
    start = clock.now
    outage_end = start + 24 * 3600 + 600
    tried: defaultdict[str, list[float]] = defaultdict(list)  # CreateLabelingJob calls by job, when

    def outage(operation: str, request: dict[str, Any]) -> str | None:
        if operation != "CreateLabelingJob":
            return None
        tried[request["LabelingJobName"]].append(clock.now - start)
        return "ServiceUnavailable" if clock.now < outage_end else None

    world.ground_truth.fault = outage
    keys = [f"images/outage/{n}.jpg" for n in range(3)]
    for key in keys:
        world.upload(key)
    world.upload("images/outage/poison.jpg")
    receives: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)  # by key: when, receive count
    step = 300
    poison_failures = 0
    while clock.now < outage_end + 2 * 3600:
        for record in pipeline.poll(visibility_timeout=None):
            if "s3:TestEvent" in record["body"]:
                pipeline.invoke([record])
                continue
            key = unquote_plus(json.loads(record["body"])["Records"][0]["s3"]["object"]["key"])
            receives[key].append((clock.now - start, int(record["attributes"]["ApproximateReceiveCount"])))
            failed = pipeline.invoke([record])["batchItemFailures"]
            poison_failures += len(failed)
            assert not failed or key.endswith("poison.jpg"), (key, failed)
        clock.advance(step)

    # The uploads: never a second receive of one message; the service tried at 0, 15 and 30 minutes, then every
    # hour (messages received before their time in between are sent on untried); one job each, created at the
    # first try after the outage, within the hour.
    assert sorted(receives) == sorted([*keys, "images/outage/poison.jpg"])
    assert all(count == 1 for key in keys for _at, count in receives[key])
    assert len(tried) == 3
    for times in tried.values():
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert gaps[:3] == [FIRST_WAIT_SECONDS, FIRST_WAIT_SECONDS, 2 * FIRST_WAIT_SECONDS]
        assert set(gaps[3:]) == {MAX_WAIT_SECONDS}
        assert times[-2] < outage_end - start <= times[-1] < outage_end - start + MAX_WAIT_SECONDS
    assert sorted(world.manifest_sources()) == sorted(f"s3://{BUCKET}/{key}" for key in keys)
    assert sorted(world.ground_truth.created_names) == sorted(tried)
    # The poison message: its own failure, 5 tries 30 minutes apart (receive counts 1 to 5), then SQS moves it.
    poison = receives["images/outage/poison.jpg"]
    assert [count for _at, count in poison] == list(range(1, MAX_RECEIVE_COUNT + 1))
    # (moto makes a message visible again just after its visibility timeout: at the next step of the clock)
    assert {later - earlier for (earlier, _), (later, _) in pairwise(poison)} == {VISIBILITY_TIMEOUT + step}
    assert poison_failures == MAX_RECEIVE_COUNT
    [dead] = pipeline.dead_letters()
    assert "poison.jpg" in dead["Body"]
    assert (
        world.sqs.get_queue_attributes(QueueUrl=pipeline.queue_url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "0"
    )


def test_past_the_outage_budget_a_message_is_retried_as_before(pipeline: Pipeline, clock: Clock) -> None:
    world = pipeline.world
    world.ground_truth.fault = lambda op, _r: "ServiceUnavailable" if op == "CreateLabelingJob" else None
    world.upload("images/late/a.jpg")
    [record] = [r for r in pipeline.poll(visibility_timeout=None) if "s3:TestEvent" not in r["body"]]
    since = int(clock.now) - OUTAGE_BUDGET_SECONDS
    record["messageAttributes"] = {OUTAGE_SINCE: {"stringValue": str(since), "dataType": "Number"}}
    response = pipeline.invoke([record])
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [record["messageId"]]
    clock.advance(MAX_DELAY_SECONDS)
    assert pipeline.poll(visibility_timeout=None) == []  # nothing was sent back


class StubBackend:
    """A labeling backend whose create_job raises what it is given, per job (the launcher calls nothing else)."""

    idempotent_start = True

    def __init__(self, errors: dict[str, Exception]) -> None:
        self.errors = errors
        self.started: list[str] = []

    def create_job(self, request: JobRequest) -> str:
        self.started.append(request.name)
        if request.name in self.errors:
            raise self.errors[request.name]
        return f"s3://{BUCKET}/jobs/{request.name}/"


def _request(name: str) -> JobRequest:
    return JobRequest(name, (ImageRef(BUCKET, f"images/{name}.jpg", "v1"),), BUCKET, f"jobs/{name}/", "output/")


def test_what_counts_as_the_labeling_service_being_unavailable() -> None:
    # Label Studio down: the connection refused (a port nothing listens on), as LabelStudioApi raises it.
    refused_api = LabelStudioApi("http://127.0.0.1:9", "token", timeout=urllib3.Timeout(connect=1.0, read=1.0))
    with pytest.raises(LabelStudioUnavailable) as down:
        refused_api.request("GET", "/api/projects")
    not_outages: dict[str, Exception] = {
        "refused-token": LabelStudioRefused("refused the pipeline's API token", 401),
        "rejected": PermanentBackendError("rejected"),
        "s3": ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, "PutObject"),
    }
    outages: dict[str, Exception] = {
        "down": down.value,
        "answer-lost": StartOutcomeUnknown("Label Studio answered 502 (the import may have been done)"),
        "503": LabelStudioUnavailable("HTTP 503", maybe_done=False),
    }
    for name, error in {**not_outages, **outages}.items():
        backoff = Backoff("https://sqs.example.com/uploads")
        backend = StubBackend({name: error})
        with pytest.raises(type(error)):
            backoff.watch(cast(LabelingBackend, backend)).create_job(_request(name))
        assert backoff.outage([name]) == (name in outages), name
        # Once the service failed in a batch, its other jobs are not tried; a new batch tries again.
        later = backoff.watch(cast(LabelingBackend, backend))
        if name in outages:
            with pytest.raises(ServiceFailedEarlier):
                later.create_job(_request("next"))
            assert backend.started == [name] and backoff.outage([name, "next"])
            backoff.new_batch()
        later.create_job(_request("next"))
        assert backend.started == [name, "next"]
    assert not Backoff("u").outage([None])  # a failure before any job (the candidates, the claims)


def test_the_back_off_schedule() -> None:
    assert [wait_seconds(hours * 3600) for hours in (0, 0.25, 0.5, 1, 2, 30)] == [900, 900, 1800, 3600, 3600, 3600]
    now = 1_800_000_000.0
    backoff = Backoff("u", clock=lambda: now)

    def record(**attributes: float) -> dict[str, Any]:
        return {
            "body": "{}",
            "messageAttributes": {k: {"stringValue": str(int(v)), "dataType": "Number"} for k, v in attributes.items()},
        }

    first = backoff.defer(record())
    assert first is not None and (first.outage_since, first.retry_at, first.delay_seconds) == (now, now + 900, 900)
    hour_in = backoff.defer(record(OutageSince=now - 3600))
    assert hour_in is not None and (hour_in.retry_at, hour_in.delay_seconds) == (now + 3600, MAX_DELAY_SECONDS)
    assert backoff.defer(record(OutageSince=now - OUTAGE_BUDGET_SECONDS)) is None
    # Received before its time: sent on with what is left of the wait, 15 minutes at most; then tried.
    early = backoff.ahead(record(OutageSince=now - 3600, RetryAt=now + 2700))
    assert early is not None and (early.outage_since, early.retry_at, early.delay_seconds) == (
        now - 3600,
        now + 2700,
        900,
    )
    last = backoff.ahead(record(OutageSince=now - 3600, RetryAt=now + 899))
    assert last is not None and last.delay_seconds == 899
    assert backoff.ahead(record(OutageSince=now - 3600, RetryAt=now)) is None
    assert backoff.ahead(record()) is None
    assert backoff.ahead({"body": "{}", "messageAttributes": {RETRY_AT: {"stringValue": "soon"}}}) is None


def test_poison_and_rejected_messages_go_to_the_dlq_with_a_reason(pipeline: Pipeline) -> None:
    world = pipeline.world
    world.ground_truth.refuse_account = True
    world.upload("images/refused/a.jpg")
    records = pipeline.poll()
    junk = dict(records[0], messageId="junk-1", body="this is not json")
    response = pipeline.invoke([*records, junk])
    assert response["batchItemFailures"] == []
    dead = pipeline.dead_letters()
    reasons = sorted(message["MessageAttributes"]["FailureReason"]["StringValue"] for message in dead)
    assert len(reasons) == 2
    assert "closed to new AWS customers" in reasons[0]
    assert reasons[1].startswith("not an S3 event notification")


def test_test_event_is_ignored(pipeline: Pipeline) -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-25T12:00:00Z",
        "Bucket": BUCKET,
        "RequestId": "1",
        "HostId": "2",
    }
    record = {
        "messageId": "t-1",
        "receiptHandle": "r",
        "body": json.dumps(test_event),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": pipeline.queue_arn,
        "awsRegion": REGION,
    }
    response = handler.lambda_handler({"Records": [record]}, FakeContext())
    assert response == {"batchItemFailures": []}
    assert pipeline.world.ground_truth.calls == []


def test_unsupported_region_dead_letters_with_the_reason(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-south-2")
    env = handler.build_environment(lambda service, **kw: boto3.client(service, **{**kw, "region_name": REGION}))
    assert env.launcher is None and env.backend_error and "eu-south-2" in env.backend_error
    assert env.limits == LIMITS  # uploads are still filtered (and the skips logged) without a backend
    handler._environment = env
    pipeline.world.upload("images/region/a.jpg")
    response = pipeline.invoke(pipeline.poll())
    assert response["batchItemFailures"] == []
    [dead] = pipeline.dead_letters()
    assert "not offered in eu-south-2" in dead["MessageAttributes"]["FailureReason"]["StringValue"]


def test_an_image_overwritten_within_a_batch_is_labeled_once_as_its_newest_version(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    world = pipeline.world
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = world.upload("images/redo/cat.jpg", b"\xff\xd8 first take")
    second = world.upload("images/redo/cat.jpg", b"\xff\xd8 second take")
    world.upload("images/redo/dog.jpg")

    def version(upload: dict[str, Any]) -> set[str]:
        # moto's notifications carry no versionId; then the ETag tells the uploads apart (images.py).
        return {upload["VersionId"], "etag-" + upload["ETag"].strip('"')}

    drain(pipeline)

    # A manifest names the key, not the version: one line for it, claimed by its newest version.
    assert sorted(world.manifest_sources()) == [
        f"s3://{BUCKET}/images/redo/cat.jpg",
        f"s3://{BUCKET}/images/redo/dog.jpg",
    ]
    [job] = world.ground_truth.created_names
    [claimed] = [
        image.version for image in job_images(world.s3, BUCKET, world.ledger, job) if image.key.endswith("cat.jpg")
    ]
    assert claimed in version(second)
    [skip] = [record.__dict__ for record in caplog.records if record.getMessage() == "skipped object"]
    assert (skip["key"], skip["reason"], skip["superseded_by_version"]) == (
        "images/redo/cat.jpg",
        "Superseded",
        claimed,
    )
    assert skip["version"] in version(first)
