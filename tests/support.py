"""Shared test support for the launcher: moto for S3, SQS and DynamoDB; the botocore-model fake for Ground Truth."""

from __future__ import annotations

import json
import tarfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from labeling_pipeline.backends.ground_truth import GroundTruthBackend, Resources
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.ledger_schema import create_table_arguments
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.settings import PipelineSettings
from sandbox.emulator import ACCOUNT
from sandbox.fake_ground_truth import FakeGroundTruth

REGION = "us-east-1"
BUCKET = "labeling-bucket-example"
TABLE = "labeling-ledger"
WORKTEAM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelers"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution"
FIXED_NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def settings_json(**overrides: Any) -> str:
    """The functions' PIPELINE_SETTINGS, as the stack passes it, with overrides."""
    raw = {
        "backend": "ground-truth",
        "labels": ["Dog", "Cat"],
        "taskTitle": "Draw a box around each animal",
        "taskDescription": "Draw tight boxes around dogs and cats.",
        "taskKeywords": ["Images", "Bounding Box"],
        "shortInstructions": "One box per animal.",
        "fullInstructions": "Draw one tight box per <animal> & pick its label.",
        "workersPerImage": 1,
        "taskTimeLimitSeconds": 600,
        "taskAvailabilitySeconds": 864000,
        "maxConcurrentTaskCount": 1000,
        "labelAttributeName": "labels",
        "jobNamePrefix": "bbox",
        "maxImagesPerJob": 1000,
    }
    raw.update(overrides)
    return json.dumps(raw)


def make_settings(**overrides: Any) -> PipelineSettings:
    return settings_model("ground-truth").model_validate_json(settings_json(**overrides))


BACKEND_RESOURCES = json.dumps({Resources.WORKTEAM_ARN: WORKTEAM_ARN, Resources.ROLE_ARN: ROLE_ARN})


@dataclass
class World:
    s3: Any
    sqs: Any
    dynamodb: Any
    sagemaker: Any
    ground_truth: FakeGroundTruth
    ledger: Ledger

    def backend(self, settings: PipelineSettings | None = None, **options: Any) -> GroundTruthBackend:
        return GroundTruthBackend(
            self.sagemaker,
            self.s3,
            settings or make_settings(),
            region=REGION,
            workteam_arn=WORKTEAM_ARN,
            role_arn=ROLE_ARN,
            **options,
        )

    def launcher(self, settings: PipelineSettings | None = None, backend: Any = None) -> Launcher:
        settings = settings or make_settings()
        return Launcher(
            s3_client=self.s3,
            ledger=self.ledger,
            backend=backend or self.backend(settings),
            bucket=BUCKET,
            settings=settings,
            clock=lambda: FIXED_NOW,
        )

    def upload(self, key: str, body: bytes = b"\xff\xd8\xff\xe0 fake jpeg") -> dict[str, Any]:
        return dict(self.s3.put_object(Bucket=BUCKET, Key=key, Body=body))

    def manifest_sources(self) -> list[str]:
        """Every source-ref in every created job's manifest (duplicates kept, so they can be counted)."""
        return self.ground_truth.input_source_refs()


class Serialized:
    """A moto client whose calls run one at a time, under `lock` (shared with other clients of the same
    service, or its own). DynamoDB's transactions and conditional writes are atomic and isolated; moto's are
    not across threads (it deep-copies the table while other threads write to it, and rolls a cancelled
    transaction back by restoring that copy). Serializing the calls keeps a test to executions DynamoDB can
    produce."""

    def __init__(self, client: Any, lock: threading.Lock | None = None) -> None:
        self._client = client
        self._lock = lock or threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


def build_world(*, versioned: bool = False) -> World:
    """Inside mock_aws: the bucket, the ledger table and a SageMaker client wired to the fake."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    # The stack's table: its key and its one index (tests/stacks/test_pipeline_stack.py compares them).
    dynamodb.create_table(TableName=TABLE, **create_table_arguments())
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    fake = FakeGroundTruth(region=REGION, s3_client=s3)
    fake.attach(sagemaker)
    return World(
        s3=s3,
        sqs=boto3.client("sqs", region_name=REGION),
        dynamodb=dynamodb,
        sagemaker=sagemaker,
        ground_truth=fake,
        ledger=Ledger(dynamodb, TABLE),
    )


def lambda_sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function (first receive)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def job_events_environment(topic_arn: str) -> dict[str, str]:
    """The job-events function's environment as the stack sets it, against the test world's resources."""
    return {
        Env.BUCKET_NAME: BUCKET,
        Env.LEDGER_TABLE_NAME: TABLE,
        Env.RESULTS_TOPIC_ARN: topic_arn,
        Env.PIPELINE_SETTINGS: settings_json(),
        Env.BACKEND_RESOURCES: BACKEND_RESOURCES,
    }


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack an export archive as a user would. tarfile's extraction filters arrived in Python 3.11.4 (Debian
    12 has 3.11.2): where there is one, the safe "data" filter; the archives are the project's own."""
    with tarfile.open(archive) as opened:
        if hasattr(tarfile, "data_filter"):
            opened.extractall(target, filter="data")
        else:
            opened.extractall(target)


def job_state_change_event(job_name: str, status: str = "Completed") -> dict[str, Any]:
    """Ground Truth's "Labeling Job State Change" as EventBridge delivers it to a Lambda target
    (sms-monitor-cloud-watch.html): the job ARN in lower case."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "SageMaker Ground Truth Labeling Job State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-25T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{job_name.lower()}"],
        "detail": {"LabelingJobStatus": status},
    }
