"""The pre-label stage end to end: real uploads to a moto bucket whose notifications (URL-encoded keys) go to a moto
upload queue; the stage writes proposals from a real ONNX model (test_detector's red-box graph) or a stubbed
SageMaker AI endpoint, and forwards every message to a moto launch queue. Whatever the model does, no message is
lost: each ends forwarded, or reported for retry."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from labeling_pipeline.backends.ground_truth import LIMITS
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box
from labeling_pipeline.names import PROPOSALS_PREFIX
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel import handler
from labeling_pipeline.prelabel.holdout import held_out
from labeling_pipeline.prelabel.predictors import (
    ENDPOINT_CLIENT_CONFIG,
    EndpointPredictor,
    OnnxPredictor,
    Prediction,
    PredictionError,
    Predictor,
)
from labeling_pipeline.prelabel.proposals import Proposal, decode, proposal_key, read_proposals
from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.prelabel.stage import PrelabelStage, StageCounts
from tests.lambda_code.prelabel.test_predictors import (
    ENDPOINT,
    MODEL_BUCKET,
    MODEL_KEY,
    assert_same_boxes,
    dog,
    half,
    png_bytes,
    prelabel_settings,
    red_box_onnx,
)
from tests.support import BUCKET, REGION, lambda_sqs_record, settings_json

VERSION = "red-box-v1"


# --- the world ------------------------------------------------------------------------------------------------------


@dataclass
class World:
    s3: Any
    sqs: Any
    upload_url: str
    upload_arn: str
    launch_url: str

    def upload(self, key: str, body: bytes) -> ImageRef:
        etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
        return ImageRef(BUCKET, key, f"etag-{etag}")

    def poll(self) -> list[dict[str, Any]]:
        """The upload queue's messages as Lambda's poller hands them over (S3's test event among them)."""
        records: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.upload_url, MaxNumberOfMessages=10, VisibilityTimeout=300
            ).get("Messages", [])
            if not messages:
                return records
            records += [lambda_sqs_record(message, self.upload_arn) for message in messages]

    def forwarded(self) -> list[str]:
        bodies: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.launch_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.launch_url, ReceiptHandle=message["ReceiptHandle"])

    def proposal_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=PROPOSALS_PREFIX).get("Contents", [])
        return sorted(item["Key"] for item in listed)

    def proposal_bytes(self, image: ImageRef) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=proposal_key(VERSION, image))["Body"].read()
        return body

    def stage(
        self,
        predictor: Predictor | None = None,
        settings: PrelabelSettings | None = None,
        *,
        factory: Callable[[], Predictor] | None = None,
        **options: Any,
    ) -> PrelabelStage:
        options.setdefault("s3_client", self.s3)
        options.setdefault("sqs_client", self.sqs)
        options.setdefault("launch_queue_url", self.launch_url)
        chosen = predictor or CountingPredictor()
        return PrelabelStage(
            bucket=BUCKET,
            settings=settings or prelabel_settings(),
            predictor_factory=factory or (lambda: chosen),
            limits=LIMITS,
            **options,
        )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        upload_url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        upload_arn = sqs.get_queue_attributes(QueueUrl=upload_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        launch_url = sqs.create_queue(QueueName="launches")["QueueUrl"]
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": upload_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
                    }
                ]
            },
        )
        yield World(s3, sqs, upload_url, upload_arn, launch_url)


class CountingPredictor:
    """The red-box ONNX model, counting its calls; `script` makes a call (1-based) do something else first."""

    def __init__(self, script: dict[int, Callable[[], None]] | None = None) -> None:
        self.inner = OnnxPredictor.from_model(red_box_onnx(), prelabel_settings())
        self.script = script or {}
        self.calls = 0

    def predict(self, image_bytes: bytes) -> Prediction:
        self.calls += 1
        if (action := self.script.get(self.calls)) is not None:
            action()
        return self.inner.predict(image_bytes)


def bodies(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(record["body"] for record in records)


def s3_event(key: str, size: int, etag: str, version_id: str | None = None, bucket: str = BUCKET) -> str:
    """An ObjectCreated:Put notification as S3 sends it (notification-content-structure.html), with what moto's
    leaves out: the version id, the sequencer, who made the request."""
    obj: dict[str, Any] = {"key": quote_plus(key), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}
    if version_id is not None:
        obj["versionId"] = version_id
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2026-11-25T12:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "203.0.113.10"},
                    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8x"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "uploads",
                        "bucket": {
                            "name": bucket,
                            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                            "arn": f"arn:aws:s3:::{bucket}",
                        },
                        "object": obj,
                    },
                }
            ]
        }
    )


def record(body: str, receives: int = 1) -> dict[str, Any]:
    message_id = hashlib.md5(f"{body}{receives}".encode()).hexdigest()
    return {
        "messageId": f"{message_id[:8]}-{message_id[8:12]}-{message_id[12:16]}-{message_id[16:20]}-{message_id[20:]}",
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives)},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "awsRegion": REGION,
    }


# --- proposals ------------------------------------------------------------------------------------------------------

# Rectangles whose edges fall on whole input pixels at 640 (scale 0.8), so the boxes come back exactly.
RECTANGLES = {
    "images/walk/dog 1.png": (100, 150, 300, 400),
    "images/walk/chat+été.png": (200, 100, 500, 300),
    "images/deep/日本 語/cat+plus 2.PNG": (0, 0, 400, 300),
}


def test_proposals_land_at_the_image_versions_key_with_the_models_boxes(world: World) -> None:
    images = {key: world.upload(key, png_bytes(box)) for key, box in RECTANGLES.items()}
    records = world.poll()
    raw = "".join(record["body"] for record in records)
    assert "dog+1.png" in raw and "chat%2B%C3%A9t%C3%A9.png" in raw  # S3 URL-encodes keys
    assert any("s3:TestEvent" in record["body"] for record in records)
    predictor = CountingPredictor()
    stage = world.stage(predictor)

    verdict = stage.handle(records)

    assert verdict == dict.fromkeys((record["messageId"] for record in records), None)
    found, unreadable = read_proposals(world.s3, BUCKET, VERSION, images.values())
    assert unreadable == {} and set(found) == set(images.values())
    for key, (left, top, right, bottom) in RECTANGLES.items():
        proposal = found[images[key]]
        assert (proposal.image_width, proposal.image_height, proposal.held_out) == (800, 600, False)
        assert_same_boxes(proposal.boxes, [dog(left, top, right, bottom)])
        assert proposal.dropped == {"lowScore": 49, "outsideImage": 0, "unmappedClass": 0}
        head = world.s3.head_object(Bucket=BUCKET, Key=proposal_key(VERSION, images[key]))
        assert head["ContentType"] == "application/json"
    assert Counter(world.forwarded()) == bodies(records)  # unchanged, the test event included
    assert stage.counts == StageCounts(predicted=3, forwarded=len(records))
    assert predictor.calls == 3


def test_a_share_is_held_out_without_asking_the_model(world: World) -> None:
    images = [
        world.upload(f"images/batch/photo {index:02}.png", png_bytes((8, 8, 24, 16), (32, 24))) for index in range(30)
    ]
    kept_back = {image for image in images if held_out(image.source_ref, image.version, 50)}
    assert 0 < len(kept_back) < len(images)  # the hash splits these keys both ways
    predictor = CountingPredictor()
    stage = world.stage(predictor, prelabel_settings(holdOutPercent=50))

    stage.handle(world.poll())

    found, _ = read_proposals(world.s3, BUCKET, VERSION, images)
    assert set(found) == set(images)
    assert {image for image, proposal in found.items() if proposal.held_out} == kept_back
    for image in kept_back:  # the size from the file's header, no boxes
        assert found[image] == Proposal(VERSION, image, 32, 24, (), held_out=True)
    for image in set(images) - kept_back:
        assert_same_boxes(found[image].boxes, [dog(8, 8, 24, 16)])
    assert predictor.calls == len(images) - len(kept_back)
    assert (stage.counts.held_out, stage.counts.predicted) == (len(kept_back), len(images) - len(kept_back))


def test_a_retry_does_not_predict_again_and_a_new_prediction_writes_the_same_bytes(world: World) -> None:
    images = [world.upload(key, png_bytes(box)) for key, box in RECTANGLES.items()]
    records = world.poll()
    predictor = CountingPredictor()
    world.stage(predictor).handle(records)
    first = {image: world.proposal_bytes(image) for image in images}
    etags = {image: world.s3.head_object(Bucket=BUCKET, Key=proposal_key(VERSION, image))["ETag"] for image in images}

    again = world.stage(predictor)
    assert again.handle(records) == dict.fromkeys((record["messageId"] for record in records), None)

    assert predictor.calls == len(images)  # none more
    assert again.counts == StageCounts(already_there=len(images), forwarded=len(records))
    assert {image: world.proposal_bytes(image) for image in images} == first
    assert {
        image: world.s3.head_object(Bucket=BUCKET, Key=proposal_key(VERSION, image))["ETag"] for image in images
    } == etags

    for image in images:  # lost, say: another container predicts them again
        world.s3.delete_object(Bucket=BUCKET, Key=proposal_key(VERSION, image))
    world.stage(CountingPredictor()).handle(records)
    assert {image: world.proposal_bytes(image) for image in images} == first


def test_a_failing_and_a_hanging_model_cost_proposals_never_images(world: World) -> None:
    for index in range(9):
        world.upload(f"images/flaky/{index}.png", png_bytes((100, 150, 300, 400)))
    records = world.poll()
    release = threading.Event()

    def broken_model() -> None:
        raise PredictionError("the model said no")

    def numpy_trouble() -> None:
        raise FloatingPointError("overflow encountered in exp")

    def hang() -> None:
        release.wait(30)

    predictor = CountingPredictor({3: broken_model, 6: numpy_trouble, 7: hang})
    stage = world.stage(predictor, deadline=time.monotonic() + 2.5, reserve_seconds=0.5)
    started = time.monotonic()
    try:
        verdict = stage.handle(records)
    finally:
        release.set()
    took = time.monotonic() - started

    assert took < 2.5  # the hung call was left behind
    assert verdict == dict.fromkeys((record["messageId"] for record in records), None)
    # calls 1, 2, 4, 5 predicted; 3 and 6 raised; 7 timed out; the last two images were not tried.
    assert stage.counts == StageCounts(predicted=4, failed=3, skipped_for_time=2, forwarded=len(records))
    assert predictor.calls == 7
    assert len(world.proposal_keys()) == 4
    assert Counter(world.forwarded()) == bodies(records)


def test_a_model_that_cannot_be_loaded_is_tried_once_per_batch(world: World) -> None:
    for index in range(4):
        world.upload(f"images/nomodel/{index}.png", png_bytes((100, 150, 300, 400)))
    records = world.poll()
    attempts = []

    def no_model() -> Predictor:
        attempts.append(1)
        raise PredictionError(f"cannot read the model s3://{MODEL_BUCKET}/{MODEL_KEY}: NoSuchKey")

    stage = world.stage(factory=no_model)
    assert stage.handle(records) == dict.fromkeys((record["messageId"] for record in records), None)
    assert len(attempts) == 1
    assert stage.counts == StageCounts(failed=4, forwarded=len(records))
    assert world.proposal_keys() == []


def test_objects_that_are_not_images_and_messages_that_are_not_events_go_on_untouched(world: World) -> None:
    world.upload("images/notes.txt", b"shopping list")
    world.upload("images/empty.png", b"")
    world.upload("images/folder/", b"")
    world.upload("images/fake.png", b"a text file named like a picture")
    world.upload("images/cut.png", half(png_bytes((100, 150, 300, 400))))
    odd = world.upload("images/odd %41+&?#=;~.png", png_bytes((100, 150, 300, 400)))
    elsewhere = s3_event("images/other-bucket.png", 1000, "0123456789abcdef0123456789abcdef", bucket="someone-else")
    records = [*world.poll(), record("not JSON at all"), record('{"Records": "nope"}'), record(elsewhere)]
    predictor = CountingPredictor()
    stage = world.stage(predictor)

    verdict = stage.handle(records)

    assert verdict == dict.fromkeys((record["messageId"] for record in records), None)
    assert world.proposal_keys() == [proposal_key(VERSION, odd)]
    assert_same_boxes(decode(world.proposal_bytes(odd)).boxes, [dog(100, 150, 300, 400)])
    assert predictor.calls == 3  # fake.png, cut.png and the odd key
    assert stage.counts == StageCounts(predicted=1, failed=2, forwarded=len(records))
    assert Counter(world.forwarded()) == bodies(records)


def test_the_version_in_the_event_is_the_one_predicted(world: World) -> None:
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first, second = png_bytes((100, 150, 300, 400)), png_bytes((200, 100, 500, 300))
    versions = [world.s3.put_object(Bucket=BUCKET, Key="images/same name.png", Body=data) for data in (first, second)]
    records = [
        record(s3_event("images/same name.png", len(data), put["ETag"].strip('"'), put["VersionId"]))
        for data, put in zip((first, second), versions, strict=True)
    ]
    stage = world.stage()

    stage.handle(records)

    images = [ImageRef(BUCKET, "images/same name.png", put["VersionId"]) for put in versions]
    found, _ = read_proposals(world.s3, BUCKET, VERSION, images)
    assert_same_boxes(found[images[0]].boxes, [dog(100, 150, 300, 400)])
    assert_same_boxes(found[images[1]].boxes, [dog(200, 100, 500, 300)])


def test_an_upload_overwritten_since_its_event_is_not_predicted_under_its_name(world: World) -> None:
    old = world.upload("images/overwritten.png", png_bytes((100, 150, 300, 400)))
    new = world.upload("images/overwritten.png", png_bytes((200, 100, 500, 300)))
    records = world.poll()
    stage = world.stage()

    stage.handle(records)

    found, _ = read_proposals(world.s3, BUCKET, VERSION, [old, new])
    assert set(found) == {new}
    assert_same_boxes(found[new].boxes, [dog(200, 100, 500, 300)])
    assert stage.counts == StageCounts(predicted=1, failed=1, forwarded=len(records))


# --- forwarding -----------------------------------------------------------------------------------------------------


def test_a_failed_forward_is_retried_and_the_retry_does_not_predict_again(world: World) -> None:
    images = [world.upload(key, png_bytes(box)) for key, box in RECTANGLES.items()]
    records = world.poll()
    predictor = CountingPredictor()
    gone = world.launch_url.replace("launches", "no-such-queue")
    stage = world.stage(predictor, launch_queue_url=gone)

    verdict = stage.handle(records)

    assert set(verdict) == {record["messageId"] for record in records}
    assert all(
        reason is not None
        and reason.startswith("not forwarded to the launch queue: AWS.SimpleQueueService.NonExistent")
        for reason in verdict.values()
    ), verdict
    assert stage.counts == StageCounts(predicted=3, retried=len(records))
    assert world.forwarded() == []

    retry = world.stage(predictor)
    assert retry.handle(records) == dict.fromkeys(verdict, None)
    assert predictor.calls == len(images)
    assert retry.counts == StageCounts(already_there=3, forwarded=len(records))


def test_entries_the_queue_refuses_come_back_alone(world: World) -> None:
    records = [record(f"message {index}") for index in range(12)]  # not S3 events: forwarded as they are
    sqs = boto3.client("sqs", region_name=REGION)
    with Stubber(sqs) as stubber:
        for chunk, refused in ((records[:10], {3}), (records[10:], set())):
            stubber.add_response(
                "send_message_batch",
                {
                    "Successful": [
                        {"Id": f"m{index}", "MessageId": f"id-{index}", "MD5OfMessageBody": "0" * 32}
                        for index in range(len(chunk))
                        if index not in refused
                    ],
                    "Failed": [
                        {"Id": f"m{index}", "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                        for index in sorted(refused)
                    ],
                },
                {
                    "QueueUrl": world.launch_url,
                    "Entries": [{"Id": f"m{index}", "MessageBody": item["body"]} for index, item in enumerate(chunk)],
                },
            )
        stage = world.stage(sqs_client=sqs)
        verdict = stage.handle(records)
        stubber.assert_no_pending_responses()

    assert verdict[records[3]["messageId"]] == "not forwarded to the launch queue: InternalError: try again"
    assert [message for message, reason in verdict.items() if reason is not None] == [records[3]["messageId"]]
    assert stage.counts == StageCounts(forwarded=11, retried=1)


def test_bodies_too_large_together_go_one_by_one(world: World) -> None:
    records = [record(f"{index} " + "x" * 200_000) for index in range(10)]  # 2 MB together, 200 kB each
    stage = world.stage()
    assert stage.handle(records) == dict.fromkeys((item["messageId"] for item in records), None)
    assert Counter(world.forwarded()) == bodies(records)


# --- writing proposals ----------------------------------------------------------------------------------------------


class FailingProposalWrites:
    """The moto S3 client, except that writing a proposals file fails as S3 would answer."""

    def __init__(self, client: Any, code: str, status: int) -> None:
        self._client, self._code, self._status = client, code, status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **arguments: Any) -> Any:
        if arguments["Key"].startswith(PROPOSALS_PREFIX):
            raise ClientError(
                {"Error": {"Code": self._code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": self._status}},
                "PutObject",
            )
        return self._client.put_object(**arguments)


def test_a_proposals_write_that_may_pass_brings_the_message_back_until_its_third_receive(world: World) -> None:
    image = world.upload("images/slow down.png", png_bytes((100, 150, 300, 400)))
    body = next(item["body"] for item in world.poll() if "Records" in item["body"])
    throttled = FailingProposalWrites(world.s3, "SlowDown", 503)

    first = world.stage(s3_client=throttled)
    verdict = first.handle([record(body, receives=1)])
    reason = verdict[record(body, receives=1)["messageId"]]
    assert reason is not None and reason.startswith(
        f"proposals not written to {proposal_key(VERSION, image)}: SlowDown"
    )
    assert first.counts == StageCounts(write_retried=1, retried=1)
    assert world.forwarded() == []  # not before its proposals are there

    third = world.stage(s3_client=throttled)
    assert third.handle([record(body, receives=3)]) == {record(body, receives=3)["messageId"]: None}
    assert third.counts == StageCounts(failed=1, forwarded=1)
    assert world.forwarded() == [body]


def test_a_proposals_write_that_cannot_pass_lets_the_image_go_on(world: World) -> None:
    world.upload("images/denied.png", png_bytes((100, 150, 300, 400)))
    records = world.poll()
    stage = world.stage(s3_client=FailingProposalWrites(world.s3, "AccessDenied", 403))
    assert stage.handle(records) == dict.fromkeys((item["messageId"] for item in records), None)
    assert stage.counts == StageCounts(failed=1, forwarded=len(records))


# --- a SageMaker AI endpoint ----------------------------------------------------------------------------------------


def test_endpoint_answers_of_both_shapes_and_a_malformed_one(world: World) -> None:
    data = {
        "images/endpoint/own.png": png_bytes((100, 150, 300, 400)),
        "images/endpoint/jumpstart.png": png_bytes((200, 100, 500, 300)),
        "images/endpoint/garbled.png": png_bytes((0, 0, 400, 300)),
    }
    images = {key: world.upload(key, body) for key, body in data.items()}
    records = [item for item in world.poll() if "Records" in item["body"]]
    answers = {
        "images/endpoint/own.png": {"boxes": [[100, 150, 300, 400]], "scores": [0.9], "labels": [0]},
        "images/endpoint/jumpstart.png": {
            "normalized_boxes": [[0.25, 0.5, 0.5, 1.0]],
            "classes": [1.0],
            "scores": [0.8],
        },
        "images/endpoint/garbled.png": {"predictions": "<none>"},
    }
    runtime = boto3.client("sagemaker-runtime", region_name=REGION, config=ENDPOINT_CLIENT_CONFIG)
    with Stubber(runtime) as stubber:
        for item in records:  # the stage asks in the order of the batch
            key = next(key for key in data if quote_plus(key) in item["body"])
            body = json.dumps(answers[key]).encode()
            stubber.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
                {"EndpointName": ENDPOINT, "ContentType": "image/png", "Accept": "application/json", "Body": data[key]},
            )
        settings = prelabel_settings(modelUri=None, endpointName=ENDPOINT)
        stage = world.stage(EndpointPredictor.from_settings(settings, runtime), settings)
        verdict = stage.handle(records)
        stubber.assert_no_pending_responses()

    assert verdict == dict.fromkeys((item["messageId"] for item in records), None)
    found, _ = read_proposals(world.s3, BUCKET, VERSION, images.values())
    assert set(found) == {images["images/endpoint/own.png"], images["images/endpoint/jumpstart.png"]}
    assert_same_boxes(found[images["images/endpoint/own.png"]].boxes, [dog(100, 150, 300, 400)])
    assert_same_boxes(found[images["images/endpoint/jumpstart.png"]].boxes, [Box("Cat", 200, 300, 200, 300, 0.8)])
    assert stage.counts == StageCounts(predicted=2, failed=1, forwarded=3)
    assert Counter(world.forwarded()) == bodies(records)


# --- the Lambda handler -----------------------------------------------------------------------------------------------


@dataclass
class FakeContext:
    function_name: str = "prelabel"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:prelabel"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


PRELABEL = {"modelUri": f"s3://{MODEL_BUCKET}/{MODEL_KEY}", "classMap": {"0": "Dog"}, "modelVersion": VERSION}


def test_the_handler_prelabels_forwards_and_counts(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.s3.create_bucket(Bucket=MODEL_BUCKET)
    world.s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=red_box_onnx())
    image = world.upload("images/handler/dog 1.png", png_bytes((100, 150, 300, 400)))
    records = world.poll()
    monkeypatch.setenv(Env.BUCKET_NAME, BUCKET)
    monkeypatch.setenv(Env.LAUNCH_QUEUE_URL, world.launch_url)
    monkeypatch.setenv(Env.PIPELINE_SETTINGS, settings_json(prelabel={**PRELABEL, "holdOutPercent": 0}))
    monkeypatch.setattr(handler, "_environment", None)

    response = handler.lambda_handler({"Records": records}, FakeContext())

    assert response == {"batchItemFailures": []}
    assert_same_boxes(decode(world.proposal_bytes(image)).boxes, [dog(100, 150, 300, 400)])
    assert Counter(world.forwarded()) == bodies(records)
    totals = Counter[str]()
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                totals[definition["Name"]] += int(sum(value) if isinstance(value, list) else value)
    assert totals == {
        "ImagesPrelabeled": 1,
        "MessagesForwarded": len(records),
        "ImagesHeldOut": 0,
        "PrelabelFailures": 0,
        "PrelabelSkippedForTime": 0,
        "ProposalsAlreadyThere": 0,
        "MessagesRetried": 0,
    }


def test_the_handler_needs_prelabel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.BUCKET_NAME, BUCKET)
    monkeypatch.setenv(Env.LAUNCH_QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/123456789012/launches")
    monkeypatch.setenv(Env.PIPELINE_SETTINGS, settings_json())
    with pytest.raises(RuntimeError, match=r"PIPELINE_SETTINGS has no labeling\.prelabel"):
        handler.build_environment()


def test_a_predictor_that_cannot_be_built_is_not_built_again_for_a_while() -> None:
    now = [0.0]
    built: list[int] = []

    def build() -> Predictor:
        built.append(1)
        if len(built) == 1:
            raise PredictionError("cannot read the model: NoSuchKey")
        return CountingPredictor()

    cached = handler.CachedPredictor(build, retry_seconds=300, clock=lambda: now[0])
    with pytest.raises(PredictionError, match="NoSuchKey"):
        cached()
    now[0] = 299.0
    with pytest.raises(PredictionError, match=r"the predictor could not be built: PredictionError: .*NoSuchKey"):
        cached()
    assert len(built) == 1
    now[0] = 301.0
    assert cached() is cached()
    assert len(built) == 2
