"""Shared test support for the launcher: moto for S3, SQS and DynamoDB; the botocore-model fake for Ground Truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from labeling_pipeline.backends.ground_truth import GroundTruthBackend
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.task_config import TaskSettings
from sandbox.fake_ground_truth import ACCOUNT, FakeGroundTruth

REGION = "us-east-1"
BUCKET = "labeling-bucket-example"
TABLE = "labeling-ledger"
WORKTEAM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelers"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution"
FIXED_NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def settings_json(**overrides: Any) -> str:
    """The launcher's TASK_SETTINGS, as the stack passes it, with overrides."""
    raw = {
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


def make_settings(**overrides: Any) -> TaskSettings:
    return TaskSettings.from_json(settings_json(**overrides))


@dataclass
class World:
    s3: Any
    sqs: Any
    dynamodb: Any
    sagemaker: Any
    ground_truth: FakeGroundTruth
    ledger: Ledger

    def launcher(self, settings: TaskSettings | None = None, backend: Any = None) -> Launcher:
        return Launcher(
            s3_client=self.s3,
            ledger=self.ledger,
            backend=backend
            or GroundTruthBackend(self.sagemaker, region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN),
            bucket=BUCKET,
            settings=settings or make_settings(),
            clock=lambda: FIXED_NOW,
        )

    def upload(self, key: str, body: bytes = b"\xff\xd8\xff\xe0 fake jpeg") -> dict[str, Any]:
        return dict(self.s3.put_object(Bucket=BUCKET, Key=key, Body=body))

    def manifest_sources(self) -> list[str]:
        """Every source-ref in every created job's manifest (duplicates kept, so they can be counted)."""
        return self.ground_truth.input_source_refs()


def build_world(*, versioned: bool = False) -> World:
    """Inside mock_aws: the bucket, the ledger table and a SageMaker client wired to the fake."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
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
        "BUCKET_NAME": BUCKET,
        "LEDGER_TABLE_NAME": TABLE,
        "WORKTEAM_ARN": WORKTEAM_ARN,
        "GROUND_TRUTH_ROLE_ARN": ROLE_ARN,
        "RESULTS_TOPIC_ARN": topic_arn,
        "TASK_SETTINGS": json.dumps({"labels": ["Dog", "Cat"], "labelAttributeName": "labels"}),
    }
