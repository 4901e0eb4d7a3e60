"""Find the deployed pipeline from its CloudFormation outputs (never from hard-coded names)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

NO_REGION = (
    "No AWS region set: export AWS_REGION (or AWS_DEFAULT_REGION) or pass --region, with the region you deployed to."
)
NO_CREDENTIALS = "No AWS credentials found: run `aws configure` or `aws sso login`, or export AWS_PROFILE."


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def resolve_region(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """--region, else AWS_REGION, else None so that boto3 takes AWS_DEFAULT_REGION or the profile's region.

    boto3 (1.43) does not read AWS_REGION; the CDK CLI does, first, and so does scripts/deploy_preflight.py
    (``os.environ.get("AWS_REGION") or session.region_name``): the CLI finds the stacks where `make deploy`
    put them."""
    return flag or environ.get("AWS_REGION") or None


@dataclass(frozen=True)
class StackInfo:
    project: str
    region: str
    bucket: str
    ledger_table: str
    upload_queue_url: str
    dead_letter_queue_url: str
    ground_truth_role_arn: str
    workteam_arn: str
    labels: list[str]
    label_attribute: str
    user_pool_id: str | None
    worker_group: str | None


def _outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError as error:
        raise CliError(NO_CREDENTIALS) from error
    except NoRegionError as error:
        raise CliError(NO_REGION) from error
    except ClientError as error:
        if "does not exist" in str(error):
            raise CliError(
                f"Stack {stack_name} was not found in this account in region {cloudformation.meta.region_name}: "
                "deploy with `make deploy`, or pass --project/--region for another deployment."
            ) from error
        raise CliError(f"Cannot read stack {stack_name}: {error}") from error
    except BotoCoreError as error:
        raise CliError(f"Cannot reach CloudFormation: {error}") from error
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def load_stack(session: Any, project: str) -> StackInfo:
    if not session.region_name:
        raise CliError(NO_REGION)
    if session.get_credentials() is None:
        raise CliError(NO_CREDENTIALS)
    cloudformation = session.client("cloudformation")
    pipeline = _outputs(cloudformation, f"{project}-pipeline")
    workforce: dict[str, str] = {}
    try:
        workforce = _outputs(cloudformation, f"{project}-workforce")
    except CliError:
        workforce = {}
    try:
        return StackInfo(
            project=project,
            region=session.region_name,
            bucket=pipeline["BucketName"],
            ledger_table=pipeline["LedgerTableName"],
            upload_queue_url=pipeline["UploadQueueUrl"],
            dead_letter_queue_url=pipeline["DeadLetterQueueUrl"],
            ground_truth_role_arn=pipeline["GroundTruthRoleArn"],
            # Describing jobs does not need it; it lives in the workforce stack's outputs.
            workteam_arn=workforce.get("WorkteamArn", ""),
            labels=list(json.loads(pipeline["Labels"])),
            label_attribute=pipeline["LabelAttributeName"],
            user_pool_id=workforce.get("UserPoolId"),
            worker_group=workforce.get("WorkerGroupName"),
        )
    except KeyError as error:
        raise CliError(
            f"Stack {project}-pipeline has no output {error.args[0]}: redeploy it with this version (`make deploy`)."
        ) from error
