from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from labeling_pipeline.ledger import Ledger
from tests.fakes.ground_truth import FakeGroundTruth
from tests.support import BUCKET, REGION, TABLE, World


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
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
        yield World(
            s3=s3,
            sqs=boto3.client("sqs", region_name=REGION),
            dynamodb=dynamodb,
            sagemaker=sagemaker,
            ground_truth=fake,
            ledger=Ledger(dynamodb, TABLE),
        )
