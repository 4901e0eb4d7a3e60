"""The launcher Lambda end to end: real uploads to a moto bucket whose notifications go to a moto
queue, the queue's messages handed to the handler as the Lambda SQS poller would."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from labeling_pipeline import handler
from labeling_pipeline.backends.ground_truth import LIMITS
from labeling_pipeline.launcher import job_images
from labeling_pipeline.names import EnvironmentVariable as Env
from tests.support import BACKEND_RESOURCES, BUCKET, REGION, TABLE, World, lambda_sqs_record, settings_json


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

    def poll(self, max_messages: int = 10) -> list[dict[str, Any]]:
        """Receive like the Lambda poller and shape the messages as SQS event records."""
        records: list[dict[str, Any]] = []
        while len(records) < max_messages:
            response = self.world.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, max_messages - len(records)),
                VisibilityTimeout=30,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            records += [lambda_sqs_record(message, self.queue_arn) for message in messages]
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


@pytest.fixture
def pipeline(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    queue_url = world.sqs.create_queue(QueueName="launcher-queue")["QueueUrl"]
    queue_arn = world.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    dlq_url = world.sqs.create_queue(QueueName="launcher-dlq")["QueueUrl"]
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
    monkeypatch.setenv(Env.PIPELINE_SETTINGS, settings_json(maxImagesPerJob=4))
    monkeypatch.setenv(Env.BACKEND_RESOURCES, BACKEND_RESOURCES)

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    handler._environment = handler.build_environment(make_client)
    assert handler._environment.limits == LIMITS  # the backend's, from the registry
    yield Pipeline(world, queue_url, queue_arn, dlq_url)
    handler._environment = None


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


def test_throttled_batch_is_reported_and_retried(pipeline: Pipeline) -> None:
    world = pipeline.world
    world.ground_truth.fault = lambda op, _r: "ThrottlingException" if op == "CreateLabelingJob" else None
    world.upload("images/retry/a.jpg")
    records = pipeline.poll()
    response = pipeline.invoke(records)
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [
        record["messageId"] for record in records if "s3:TestEvent" not in record["body"]
    ]
    world.ground_truth.fault = None
    response = pipeline.invoke(records)
    assert response["batchItemFailures"] == []
    assert world.manifest_sources() == [f"s3://{BUCKET}/images/retry/a.jpg"]


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
