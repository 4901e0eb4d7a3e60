"""The deployment's custom resource: creates the Label Studio project, its S3 storage and its webhook on
stack create, and brings them, and every other part the launcher has made since (parts.py), in step with the
configuration on every update (`project.ensure_project`, idempotent). Delete leaves the projects and their
tasks in Label Studio: the labels people drew outlive a stack.

Properties (all strings): ``Settings`` (the PIPELINE_SETTINGS JSON), ``Url``, ``Bucket``, ``Region``,
``ApiTokenSecretArn``, ``WebhookSecretArn``, ``WebhookUrl``, and the optional ``S3Endpoint`` (the storage's S3
endpoint for an S3 other than AWS's; the stack sets none, the local demo sets moto's); the physical id is
part 1's project id.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeling_pipeline.backends.label_studio import Resources, api, secret_reader
from labeling_pipeline.backends.label_studio.project import ensure_project
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.settings import validate_json

logger = Logger(service="labeling-label-studio-setup")


def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["RequestType"]
    if request == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    properties = event["ResourceProperties"]
    region = properties["Region"]
    settings = validate_json(settings_model("label-studio"), properties["Settings"])
    resources = {
        Resources.URL: properties["Url"],
        Resources.API_TOKEN_SECRET_ARN: properties["ApiTokenSecretArn"],
    }
    report = ensure_project(
        api(resources, boto3.client, region),
        settings,
        bucket=properties["Bucket"],
        region=region,
        webhook_url=properties.get("WebhookUrl"),
        webhook_secret=secret_reader(boto3.client, region, properties["WebhookSecretArn"])(),
        s3_endpoint=properties.get("S3Endpoint") or None,
    )
    logger.info("label studio project in step", extra={"project_id": report.project_id, "changed": report.changed})
    return {"PhysicalResourceId": str(report.project_id), "Data": {"ProjectId": str(report.project_id)}}
