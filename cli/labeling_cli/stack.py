"""Find the deployed pipeline from its CloudFormation outputs (never from hard-coded names)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from labeling_pipeline.backends.registry import UnknownBackend, parts, settings_model
from labeling_pipeline.names import StackOutput
from labeling_pipeline.settings import PipelineSettings, SettingsError, validate_json

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
    settings: PipelineSettings  # what the deployment's functions run with, labeling.backend included
    backend_resources: dict[str, str]  # the functions' BACKEND_RESOURCES plus the backend's stacks' outputs

    @property
    def labels(self) -> list[str]:
        return list(self.settings.labels)


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
    try:
        settings_text = pipeline[StackOutput.PIPELINE_SETTINGS]
        settings = validate_json(settings_model(str(json.loads(settings_text)["backend"])), settings_text)
        # The functions' resources, then the pipeline stack's own outputs (a backend's server, for instance).
        resources = {**pipeline, **json.loads(pipeline[StackOutput.BACKEND_RESOURCES])}
        resources = {str(k): str(v) for k, v in resources.items()}
        # The backend's own stacks add their outputs (a missing one leaves only what needs it unusable).
        for name in parts(settings.backend).supporting_stacks(project):
            try:
                resources.update(_outputs(cloudformation, name))
            except CliError:
                continue
        return StackInfo(
            project=project,
            region=session.region_name,
            bucket=pipeline[StackOutput.BUCKET_NAME],
            ledger_table=pipeline[StackOutput.LEDGER_TABLE_NAME],
            upload_queue_url=pipeline[StackOutput.UPLOAD_QUEUE_URL],
            dead_letter_queue_url=pipeline[StackOutput.DEAD_LETTER_QUEUE_URL],
            settings=settings,
            backend_resources=resources,
        )
    except (SettingsError, UnknownBackend) as error:
        raise CliError(
            f"Stack {project}-pipeline was deployed with settings this version cannot read ({error}): "
            "redeploy it with this version (`make deploy`)."
        ) from error
    except KeyError as error:
        raise CliError(
            f"Stack {project}-pipeline has no output {error.args[0]}: redeploy it with this version (`make deploy`)."
        ) from error
