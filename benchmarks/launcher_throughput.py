"""Launcher cost per batch: AWS API calls and handler CPU, against the naive approach; and cold start.

Run: .venv/bin/python benchmarks/launcher_throughput.py [image counts, default 10,100,1000,10000] [--no-cold-start]

For each count, one SQS batch of that many real-shaped S3 ObjectCreated notifications (one image per
message, as S3 sends them; versioned bucket) goes through the real `handler.decide_messages` with the
default settings (maxImagesPerJob 1000), against in-process fakes of S3, DynamoDB, SageMaker and SQS that
answer at once and record every call. The fakes behave as the services do for the calls used
(conditional transactions with cancellation reasons, consistent reads, unique job names), so the same
run with the images already claimed (a redelivered batch) takes the other path and is measured too.

Handler CPU is `time.process_time` of the whole call minus the CPU spent inside the fakes, i.e. the
launcher's own work beyond the calls; botocore's request signing, serialization and response parsing
are part of "the calls" and not counted (they are per call, so they scale with the call counts shown;
a separate line measures botocore's CPU for one claim call before and after this change).
The full Lambda entry point (`lambda_handler`: Powertools batch processing, metrics flush) is measured
the same way in the last column.

The naive approach, measured in the same run: every upload lists the whole images/ prefix
(ListObjectsV2, 1,000 keys a page), rebuilds one manifest from the listing and writes it. It creates no
job and keeps no ledger, so it does strictly less than the launcher: its ratios are lower bounds. At
10,000 images it is run for the first 200 uploads and scaled (every upload does the same work, since
the prefix holds the whole batch); the line says so.

Cold start: import time of `labeling_pipeline.handler` in fresh interpreters, from the asset as CDK stages
it (the lambda/ folder without __pycache__ and *.pyc, so the package is compiled at import, as on Lambda's
read-only /var/task); median of 11, interleaved with the same imports of boto3 and Powertools alone
(Powertools from the venv stands in for the layer, boto3 for the runtime's copy). Then the first
invocation's client set-up, and the asset's size zipped with deflate, as the CDK CLI zips it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_DIR = ROOT / "lambda"
sys.path[:0] = [str(LAMBDA_DIR), str(ROOT)]

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "labeling-bucket-example"
TABLE = "labeling-ledger"
LAMBDA_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "labeling-launcher",
    "POWERTOOLS_METRICS_NAMESPACE": "GroundTruthLabeling",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
os.environ.update(LAMBDA_ENV)

from botocore.exceptions import ClientError  # noqa: E402

from labeling_pipeline import handler  # noqa: E402
from labeling_pipeline.backends.ground_truth import LIMITS, GroundTruthBackend, Resources  # noqa: E402
from labeling_pipeline.launcher import Launcher  # noqa: E402
from labeling_pipeline.ledger import Ledger  # noqa: E402
from labeling_pipeline.names import EnvironmentVariable as Env  # noqa: E402
from labeling_pipeline.runtime import pipeline_settings  # noqa: E402
from tests.support import settings_json  # noqa: E402

# The pipeline settings as the stack passes them (the tests' defaults; the job size is what matters), parsed
# as the functions parse them.
SETTINGS_JSON = settings_json(maxImagesPerJob=1000)
SETTINGS = pipeline_settings({Env.PIPELINE_SETTINGS: SETTINGS_JSON})
WORKTEAM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelers"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution"
NAIVE_SAMPLE = 200  # uploads measured for the naive approach above this many images


# --- fakes that record calls and answer at once ---------------------------------------------------
@dataclass
class Recorder:
    calls: Counter[str] = field(default_factory=Counter)
    cpu_inside: float = 0.0

    def wrap(self, service: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            self.calls[f"{service}:{function.__name__}"] += 1
            start = time.process_time()
            try:
                return function(**kwargs)
            finally:
                self.cpu_inside += time.process_time() - start

        return call


def client_error(code: str, message: str, operation: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, operation)


class Fake:
    """The methods named in `api` become recorded API calls."""

    service = ""
    api: tuple[str, ...] = ()

    def __init__(self, recorder: Recorder) -> None:
        for name in self.api:
            setattr(self, name, recorder.wrap(self.service, getattr(self, name)))


class FakeS3(Fake):
    service = "s3"
    api = ("put_object", "get_object", "list_objects_v2")

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.objects: dict[str, bytes] = {}
        self._listing: list[dict[str, Any]] | None = None

    def add_uploads(self, keys: list[str]) -> None:
        for key in keys:
            self.objects[key] = b"\xff\xd8\xff\xe0 jpeg"
        self._listing = None

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str = "") -> dict[str, Any]:
        self.objects[Key] = bytes(Body)
        if Key.startswith("images/"):
            self._listing = None
        return {"ETag": '"etag"'}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject")
        return {"Body": io.BytesIO(self.objects[Key]), "ContentLength": len(self.objects[Key])}

    def list_objects_v2(
        self, *, Bucket: str, Prefix: str, ContinuationToken: str | None = None, MaxKeys: int = 1000
    ) -> dict[str, Any]:
        if self._listing is None:  # built once per change, as the service's index is
            self._listing = [
                {
                    "Key": key,
                    "Size": 1_000_000,
                    "ETag": '"0f343b0931126a20f133d67c2b018a3b"',
                    "LastModified": "2026-11-25T12:00:00.000Z",
                    "StorageClass": "STANDARD",
                }
                for key in sorted(self.objects)
                if key.startswith("images/")
            ]
        listing = (
            [entry for entry in self._listing if entry["Key"].startswith(Prefix)]
            if Prefix != "images/"
            else self._listing
        )
        start = int(ContinuationToken or 0)
        page = listing[start : start + MaxKeys]
        response: dict[str, Any] = {
            "Contents": page,
            "KeyCount": len(page),
            "IsTruncated": start + MaxKeys < len(listing),
        }
        if response["IsTruncated"]:
            response["NextContinuationToken"] = str(start + MaxKeys)
        return response


class FakeDynamoDB(Fake):
    """The ledger table: conditions `attribute_not_exists(pk)` and `... OR job_name = :job`."""

    service = "dynamodb"
    api = ("transact_write_items", "batch_get_item", "get_item", "put_item")

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.items: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _passes(current: dict[str, Any] | None, condition: str | None, values: dict[str, Any]) -> bool:
        if condition is None or current is None:
            return condition is None or condition.startswith("attribute_not_exists(pk)")
        if condition == "attribute_not_exists(pk)":
            return False
        if condition == "attribute_not_exists(pk) OR job_name = :job":
            return current.get("job_name") == values[":job"]
        raise NotImplementedError(condition)

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        if not 1 <= len(TransactItems) <= 100:
            raise client_error("ValidationException", "1 to 100 actions", "TransactWriteItems")
        puts = [action["Put"] for action in TransactItems]
        keys = [put["Item"]["pk"]["S"] for put in puts]
        if len(set(keys)) != len(keys):
            raise client_error("ValidationException", "multiple operations on one item", "TransactWriteItems")
        reasons: list[dict[str, Any]] = []
        for key, put in zip(keys, puts, strict=True):
            current = self.items.get(key)
            if self._passes(current, put.get("ConditionExpression"), put.get("ExpressionAttributeValues", {})):
                reasons.append({"Code": "None"})
            else:
                reason: dict[str, Any] = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                if put.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
                    reason["Item"] = current
                reasons.append(reason)
        if any(reason["Code"] != "None" for reason in reasons):
            raise client_error(
                "TransactionCanceledException",
                "Transaction cancelled",
                "TransactWriteItems",
                CancellationReasons=reasons,
            )
        for key, put in zip(keys, puts, strict=True):
            self.items[key] = put["Item"]
        return {}

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        request = RequestItems[TABLE]
        if len(request["Keys"]) > 100:
            raise client_error("ValidationException", "at most 100 keys", "BatchGetItem")
        found = [self.items[key["pk"]["S"]] for key in request["Keys"] if key["pk"]["S"] in self.items]
        return {"Responses": {TABLE: found}, "UnprocessedKeys": {}}

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        item = self.items.get(Key["pk"]["S"])
        return {"Item": item} if item is not None else {}

    def put_item(self, *, TableName: str, Item: dict[str, Any], **condition: Any) -> dict[str, Any]:
        key = Item["pk"]["S"]
        expression = condition.get("ConditionExpression")
        if not self._passes(self.items.get(key), expression, condition.get("ExpressionAttributeValues", {})):
            raise client_error(
                "ConditionalCheckFailedException", "The conditional request failed", "PutItem", Item=self.items[key]
            )
        self.items[key] = Item
        return {}


class FakeSageMaker(Fake):
    service = "sagemaker"
    api = ("create_labeling_job", "describe_labeling_job")

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.jobs: dict[str, dict[str, Any]] = {}

    def create_labeling_job(self, **request: Any) -> dict[str, Any]:
        name = request["LabelingJobName"].lower()
        if name in self.jobs:
            raise client_error("ResourceInUse", "exists", "CreateLabelingJob")
        self.jobs[name] = {**request, "LabelingJobStatus": "InProgress"}
        return {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{name}"}

    def describe_labeling_job(self, *, LabelingJobName: str) -> dict[str, Any]:
        job = self.jobs.get(LabelingJobName.lower())
        if job is None:
            raise client_error("ResourceNotFound", "not found", "DescribeLabelingJob")
        return job


class FakeSQS(Fake):
    service = "sqs"
    api = ("send_message",)

    def send_message(self, **_request: Any) -> dict[str, Any]:
        return {"MessageId": "m"}


@dataclass
class World:
    recorder: Recorder
    s3: FakeS3
    dynamodb: FakeDynamoDB
    sagemaker: FakeSageMaker
    sqs: FakeSQS

    @classmethod
    def make(cls) -> World:
        recorder = Recorder()
        return cls(recorder, FakeS3(recorder), FakeDynamoDB(recorder), FakeSageMaker(recorder), FakeSQS(recorder))

    def environment(self) -> handler.Environment:
        backend = GroundTruthBackend(
            self.sagemaker, self.s3, SETTINGS, region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
        )
        launcher = Launcher(
            s3_client=self.s3,
            ledger=Ledger(self.dynamodb, TABLE),
            backend=backend,
            bucket=BUCKET,
            settings=SETTINGS,
        )
        return handler.Environment(
            BUCKET, "https://sqs.us-east-1.amazonaws.com/1/dlq", self.s3, self.sqs, LIMITS, launcher
        )

    def reset_counts(self) -> None:
        self.recorder.calls.clear()
        self.recorder.cpu_inside = 0.0


# --- events ---------------------------------------------------------------------------------------
def upload_keys(count: int) -> list[str]:
    return [f"images/survey 2026/site-{index % 37:02d}/IMG_{index:06d}.jpg" for index in range(count)]


def sqs_event(keys: list[str]) -> dict[str, Any]:
    """The Lambda SQS event for one batch: one S3 notification (one record) per message."""
    records = []
    for index, key in enumerate(keys):
        s3_record = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": REGION,
            "eventTime": "2026-11-25T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "192.0.2.1"},
            "responseElements": {"x-amz-request-id": f"{index:016X}", "x-amz-id-2": "example"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "images",
                "bucket": {
                    "name": BUCKET,
                    "ownerIdentity": {"principalId": "EXAMPLE"},
                    "arn": f"arn:aws:s3:::{BUCKET}",
                },
                "object": {
                    "key": quote_plus(key, safe="/"),
                    "size": 1_000_000 + index,
                    "eTag": f"{index:032x}",
                    "versionId": f"v{index:031d}",
                    "sequencer": f"{index:018X}",
                },
            },
        }
        records.append(
            {
                "messageId": f"00000000-0000-0000-0000-{index:012d}",
                "receiptHandle": f"handle-{index}",
                "body": json.dumps({"Records": [s3_record]}),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795000000000"},
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:launcher-queue",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


# --- the naive approach ---------------------------------------------------------------------------
def naive_handler(s3: Any, event: dict[str, Any]) -> None:
    """On every upload: list the whole images/ prefix and rebuild the one manifest from it."""
    for record in event["Records"]:
        for s3_record in json.loads(record["body"])["Records"]:
            key = unquote_plus(s3_record["s3"]["object"]["key"])
            if not key.lower().endswith(LIMITS.image_suffixes):
                continue
            lines: list[str] = []
            request: dict[str, Any] = {"Bucket": BUCKET, "Prefix": "images/"}
            while True:
                page = s3.list_objects_v2(**request)
                for entry in page.get("Contents", []):
                    if entry["Key"].lower().endswith(LIMITS.image_suffixes) and entry["Size"] > 0:
                        lines.append(json.dumps({"source-ref": f"s3://{BUCKET}/{entry['Key']}"}))
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
            s3.put_object(Bucket=BUCKET, Key="manifests/all.manifest", Body="\n".join(lines).encode())


# --- measuring ------------------------------------------------------------------------------------
@dataclass
class Figures:
    calls: Counter[str]
    cpu_ms: float  # beyond the calls
    jobs: int = 0
    note: str = ""
    launch_ms: float | None = None  # of which in Launcher.launch

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Logs and metrics are still formatted (as in Lambda), but written to /dev/null."""
    streams = [h for h in logging.getLogger(handler.logger.name).handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        previous = [h.setStream(sink) for h in streams]
        try:
            yield
        finally:
            for h, stream in zip(streams, previous, strict=True):
                h.setStream(stream)


def measured(world: World, action: Callable[[], Any]) -> float:
    world.reset_counts()
    start = time.process_time()
    action()
    total = time.process_time() - start
    return (total - world.recorder.cpu_inside) * 1000


def repeats_for(count: int) -> int:
    return 9 if count <= 100 else 5 if count <= 1000 else 3


def time_launch(world: World, launcher: Launcher, spent: list[float]) -> None:
    """Record the CPU of each Launcher.launch call beyond the calls it makes."""
    launch = launcher.launch

    def timed(images: list[Any]) -> Any:
        start, inside = time.process_time(), world.recorder.cpu_inside
        try:
            return launch(images)
        finally:
            spent.append((time.process_time() - start - (world.recorder.cpu_inside - inside)) * 1000)

    launcher.launch = timed  # type: ignore[method-assign]


def launcher_run(count: int) -> tuple[Figures, Figures, float]:
    """(first delivery, the same batch delivered again, lambda_handler CPU ms of a first delivery)."""
    keys = upload_keys(count)
    event = sqs_event(keys)
    first_cpu, again_cpu, entry_cpu = [], [], []
    first_launch: list[float] = []
    again_launch: list[float] = []
    first = again = None
    for _ in range(repeats_for(count)):
        world = World.make()
        world.s3.add_uploads(keys)
        env = world.environment()
        assert env.launcher is not None
        time_launch(world, env.launcher, first_launch)
        with quiet():
            first_cpu.append(measured(world, partial(handler.decide_messages, env, event)))
        verdict_calls = Counter(world.recorder.calls)
        jobs = len(world.sagemaker.jobs)
        time_launch(world, env.launcher, again_launch)
        with quiet():
            again_cpu.append(measured(world, partial(handler.decide_messages, env, event)))
        first = Figures(verdict_calls, 0, jobs)
        again = Figures(Counter(world.recorder.calls), 0, len(world.sagemaker.jobs) - jobs)
        handler.metrics.clear_metrics()

        fresh = World.make()
        fresh.s3.add_uploads(keys)
        handler._environment = fresh.environment()
        with quiet():
            entry_cpu.append(measured(fresh, lambda: handler.lambda_handler(event, LambdaContext())))
        handler._environment = None
    assert first is not None and again is not None
    first.cpu_ms, again.cpu_ms = statistics.median(first_cpu), statistics.median(again_cpu)
    first.launch_ms, again.launch_ms = statistics.median(first_launch), statistics.median(again_launch)
    return first, again, statistics.median(entry_cpu)


@dataclass
class LambdaContext:
    function_name: str = "launcher"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:launcher"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/launcher"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def naive_run(count: int) -> Figures:
    keys = upload_keys(count)
    sample = min(count, NAIVE_SAMPLE) if count > 1000 else count
    event = sqs_event(keys[:sample])
    cpu = []
    calls: Counter[str] = Counter()
    for _ in range(repeats_for(count)):
        world = World.make()
        world.s3.add_uploads(keys)
        cpu.append(measured(world, partial(naive_handler, world.s3, event)))
        calls = Counter(world.recorder.calls)
    scale = count / sample
    expected = count * (math.ceil(count / 1000) + 1)
    scaled = Counter({name: round(value * scale) for name, value in calls.items()})
    assert sum(scaled.values()) == expected, (scaled, expected)
    note = f"measured on {sample} of {count} uploads, scaled x{scale:g}" if sample < count else ""
    return Figures(scaled, statistics.median(cpu) * scale, 0, note)


def print_throughput(counts: list[int]) -> None:
    print("Launcher: one SQS batch of N uploads through handler.decide_messages (maxImagesPerJob 1000)")
    print("CPU ms = handler CPU beyond the calls (process_time minus CPU inside the fakes), median of runs;")
    print("launch() = the part in Launcher.launch (launcher.py, ledger.py, job_naming.py, and the backend's")
    print("create_job, which writes the task inputs: backends/ground_truth/service.py, task_inputs.py); the rest is")
    print("handler.py + s3_events.py (parse, filter, sort, verdicts); lambda_handler adds Powertools batch handling.\n")
    header = (
        f"{'images':>7} {'path':<10} {'jobs':>4}  {'API calls by operation':<74} {'total':>6} "
        f"{'CPU ms':>8} {'ms/1k':>6} {'launch()':>8} {'lambda_handler':>14}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for count in counts:
        first, again, entry = launcher_run(count)
        naive = naive_run(count)
        results.append((count, first, naive))
        rows: list[tuple[str, Figures, float | None]] = [
            ("launcher", first, entry),
            ("redelivery", again, None),
            ("naive", naive, None),
        ]
        for label, figures, entry_ms in rows:
            by_operation = ", ".join(f"{name.split(':')[1]} {value:,}" for name, value in sorted(figures.calls.items()))
            launch = f"{figures.launch_ms:8.1f}" if figures.launch_ms is not None else " " * 8
            entry_text = f"{entry_ms:14.1f}" if entry_ms is not None else " " * 14
            print(
                f"{count:>7,} {label:<10} {figures.jobs if label != 'naive' else '-':>4}  {by_operation:<74} "
                f"{figures.total_calls:>6,} {figures.cpu_ms:>8.1f} {figures.cpu_ms / count * 1000:>6.1f} "
                f"{launch} {entry_text}" + (f"  ({figures.note})" if figures.note else "")
            )
    print("\nNaive / launcher (first delivery), same run:")
    for count, first, naive in results:
        print(
            f"  {count:>6,} images: API calls {naive.total_calls:,} / {first.total_calls:,} = "
            f"{naive.total_calls / first.total_calls:,.1f}x;  CPU {naive.cpu_ms:,.1f} / {first.cpu_ms:,.1f} ms = "
            f"{naive.cpu_ms / first.cpu_ms:,.1f}x"
        )


# --- what one call costs the client --------------------------------------------------------------
def print_call_cost(calls: int = 200) -> None:
    """botocore's own CPU for a claim (serialize, sign, parse), the HTTP answered in-process."""
    import boto3
    from botocore.awsrequest import AWSResponse

    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")

    def answer(request: Any, **_: Any) -> AWSResponse:
        response = AWSResponse(request.url, 200, {"x-amzn-requestid": "1"}, None)
        response._content = b"{}"
        return response

    client.meta.events.register_first("before-send.dynamodb", answer)

    def item(index: int) -> dict[str, Any]:
        key = f"images/survey 2026/site-{index % 37:02d}/IMG_{index:06d}.jpg"
        return {
            "pk": {"S": f"image#{BUCKET}/{key}#v{index:031d}"},
            "job_name": {"S": "bbox-20261125-0123456789ab"},
            "source_ref": {"S": f"s3://{BUCKET}/{key}"},
            "claimed_at": {"S": "2026-11-25T12:00:00.000000+00:00"},
        }

    def one_put(index: int) -> None:  # the claim before this change
        client.put_item(
            TableName=TABLE,
            Item=item(index),
            ConditionExpression="attribute_not_exists(pk) OR job_name = :job",
            ExpressionAttributeValues={":job": {"S": "bbox-20261125-0123456789ab"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def one_transaction(index: int) -> None:  # 100 claims now
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item(index * 100 + offset),
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
                for offset in range(100)
            ]
        )

    print("\nWhat the claims cost the client (botocore serialize + sign + parse, HTTP answered in-process):")
    for label, call, per_1000 in (
        ("PutItem, 1 claim (before)", one_put, 1000),
        ("TransactWriteItems, 100 claims (now)", one_transaction, 10),
    ):
        call(0)
        samples = []
        for index in range(calls if per_1000 == 1000 else calls // 4):
            start = time.process_time()
            call(index)
            samples.append((time.process_time() - start) * 1000)
        median = statistics.median(samples)
        print(f"  {label:<38} {median:6.2f} ms CPU a call -> {median * per_1000:6.0f} ms per 1,000 images")


# --- cold start -----------------------------------------------------------------------------------
# The third-party imports of the modules `import labeling_pipeline.handler` loads (handler, launcher, ledger,
# s3_events, runtime, settings, backends; the backend's own package is loaded by the first invocation).
THIRD_PARTY = """import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AfterValidator, BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError, create_model
from pydantic.alias_generators import to_camel
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext"""
PROBES = {
    "import boto3 alone": "import boto3",
    "import boto3 + the Powertools parts the handler uses": THIRD_PARTY,
    "import labeling_pipeline.handler (cold start import)": "import labeling_pipeline.handler",
}
PROBE = """
import time
wall, cpu = time.perf_counter(), time.process_time()
{statement}
print(time.perf_counter() - wall, time.process_time() - cpu)
"""
CLIENTS = """
import time
import boto3
import labeling_pipeline.handler as handler
made = {{}}
def make_client(service, **kwargs):
    start = time.perf_counter()
    client = boto3.client(service, **kwargs)
    made[service] = time.perf_counter() - start
    return client
wall, cpu = time.perf_counter(), time.process_time()
handler.build_environment(make_client)
print(time.perf_counter() - wall, time.process_time() - cpu, *(made[s] for s in {services!r}))
"""
SERVICES = ("s3", "sqs", "sagemaker", "dynamodb")


def asset_files() -> list[Path]:
    """The lambda/ folder as CDK stages it: `exclude=["**/__pycache__", "**/*.pyc"]`."""
    return sorted(
        path
        for path in LAMBDA_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def probe_environment(asset: Path) -> dict[str, str]:
    return {
        **os.environ,
        **LAMBDA_ENV,
        # The staged asset holds no bytecode and /var/task is read-only: Lambda compiles the package's
        # modules at every cold start, so the probes do too.
        "PYTHONPATH": str(asset),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        Env.BUCKET_NAME: BUCKET,
        Env.LEDGER_TABLE_NAME: TABLE,
        Env.DEAD_LETTER_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/dlq",
        Env.PIPELINE_SETTINGS: SETTINGS_JSON,
        Env.BACKEND_RESOURCES: json.dumps({Resources.WORKTEAM_ARN: WORKTEAM_ARN, Resources.ROLE_ARN: ROLE_ARN}),
    }


def run_probe(code: str, asset: Path) -> list[float]:
    result = subprocess.run(
        [sys.executable, "-c", code], env=probe_environment(asset), check=True, capture_output=True, text=True
    )
    return [float(value) * 1000 for value in result.stdout.split()]


def package_size(files: list[Path]) -> tuple[int, int]:
    """(bytes of source, bytes zipped) of the staged asset, zipped as the CDK CLI does (deflate)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # zlib level 6, as yazl
        for path in files:
            archive.write(path, path.relative_to(LAMBDA_DIR).as_posix())
    return sum(path.stat().st_size for path in files), len(buffer.getvalue())


def print_cold_start(runs: int = 11) -> None:
    print(f"\nCold start (Python {sys.version.split()[0]}; a fresh interpreter per run, the staged asset without")
    print(f"bytecode; probes interleaved; median of {runs}; wall and CPU ms):")
    files = asset_files()
    with tempfile.TemporaryDirectory() as staging:
        asset = Path(staging)
        for path in files:
            target = asset / path.relative_to(LAMBDA_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        codes = {label: PROBE.format(statement=statement) for label, statement in PROBES.items()}
        codes["first invocation: settings, backend, 4 boto3 clients"] = CLIENTS.format(services=SERVICES)
        for code in codes.values():
            run_probe(code, asset)  # warm the file cache
        samples: dict[str, list[list[float]]] = {label: [] for label in codes}
        for _ in range(runs):
            for label, code in codes.items():
                samples[label].append(run_probe(code, asset))
    medians = {
        label: [statistics.median(column) for column in zip(*values, strict=True)] for label, values in samples.items()
    }
    for label, columns in medians.items():
        line = f"  {label:<55} {columns[0]:7.1f} wall {columns[1]:7.1f} CPU"
        if len(columns) > 2:
            line += "   (" + ", ".join(f"{s} {v:.0f}" for s, v in zip(SERVICES, columns[2:], strict=True)) + ")"
        print(line)
    handler_cpu = medians["import labeling_pipeline.handler (cold start import)"][1]
    third_party_cpu = medians["import boto3 + the Powertools parts the handler uses"][1]
    print(f"  of which the package's own modules (compiled from source): ~{handler_cpu - third_party_cpu:.0f} ms CPU")
    source_bytes, zipped_bytes = package_size(files)
    print(f"  deployment package: {len(files)} files, {source_bytes:,} bytes; zipped {zipped_bytes:,} bytes")


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("--")]
    counts = [int(value) for value in arguments[0].split(",")] if arguments else [10, 100, 1000, 10000]
    print_throughput(counts)
    print_call_cost()
    if "--no-cold-start" not in sys.argv:
        print_cold_start()


if __name__ == "__main__":
    main()
