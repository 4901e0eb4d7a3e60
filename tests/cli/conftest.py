"""A deployed pipeline, offline: moto resources, a CloudFormation stack whose outputs name them, and the
Ground Truth fake on every SageMaker client the CLI makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sandbox.fake_ground_truth import FakeGroundTruth
from tests.support import (
    BACKEND_RESOURCES,
    BUCKET,
    REGION,
    ROLE_ARN,
    TABLE,
    WORKTEAM_ARN,
    World,
    build_world,
    settings_json,
)

PROJECT = "gt-labeling"


@dataclass
class Deployed:
    world: World
    session: Any
    user_pool_id: str
    queue_url: str
    dlq_url: str


class FakeSession:
    """A boto3 session whose SageMaker clients go to the Ground Truth fake."""

    def __init__(self, fake: FakeGroundTruth) -> None:
        self._session = boto3.Session(region_name=REGION)
        self._fake = fake
        self.region_name = REGION

    def get_credentials(self) -> Any:
        return self._session.get_credentials()

    def client(self, service: str, **kwargs: Any) -> Any:
        client = self._session.client(service, **kwargs)
        return self._fake.attach(client) if service == "sagemaker" else client


def _stack(cloudformation: Any, name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    with mock_aws():
        world = build_world(versioned=True)
        sqs = world.sqs
        queue_url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="uploads-dlq")["QueueUrl"]
        cognito = boto3.client("cognito-idp", region_name=REGION)
        pool_id = cognito.create_user_pool(PoolName="workers")["UserPool"]["Id"]
        cognito.create_group(UserPoolId=pool_id, GroupName="labelers")
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        _stack(
            cloudformation,
            f"{PROJECT}-pipeline",
            {
                "BucketName": BUCKET,
                "LedgerTableName": TABLE,
                "UploadQueueUrl": queue_url,
                "DeadLetterQueueUrl": dlq_url,
                "GroundTruthRoleArn": ROLE_ARN,
                # As the stack writes them: the functions' settings and the backend's resources.
                "LabelingBackend": "ground-truth",
                "PipelineSettings": settings_json(),
                "BackendResources": BACKEND_RESOURCES,
            },
        )
        _stack(
            cloudformation,
            f"{PROJECT}-workforce",
            {"UserPoolId": pool_id, "WorkerGroupName": "labelers", "WorkteamArn": WORKTEAM_ARN},
        )
        yield Deployed(world, FakeSession(world.ground_truth), pool_id, queue_url, dlq_url)
