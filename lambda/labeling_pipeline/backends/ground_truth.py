"""Every Amazon SageMaker Ground Truth call of the pipeline lives here.

Ground Truth has been closed to new AWS customers since 2026-07-30 (existing customers keep it):
https://docs.aws.amazon.com/sagemaker/latest/dg/sms.html . A refusal is turned into
`BackendUnavailableError` with a message that says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeling_pipeline.backends import (
    BackendUnavailableError,
    JobDescription,
    JobSpec,
    PermanentBackendError,
    TransientBackendError,
)

# Built-in bounding-box Lambdas, one AWS account per region, kept in ground_truth_regions.json (read
# by the CDK app too, to refuse an unsupported region at synth). Source: botocore's SageMaker model,
# the documentation of HumanTaskConfig.PreHumanTaskLambdaArn (PRE-BoundingBox) and
# AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn (ACS-BoundingBox), the same text as
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_HumanTaskConfig.html .
# tests/lambda_code/test_ground_truth_backend.py checks the file against the installed botocore model.
REGIONS_FILE = Path(__file__).with_name("ground_truth_regions.json")
BUILT_IN_LAMBDA_ACCOUNTS: dict[str, str] = json.loads(REGIONS_FILE.read_text())["builtInLambdaAccounts"]

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        # Too many jobs running at once: a later try can pass.
        "ResourceLimitExceeded",
    }
)
# Words AWS uses when an account may not use a service (checked against the message, lower-cased).
REFUSAL_HINTS = (
    "not available to new customers",
    "no longer available",
    "not authorized to use",
    "subscription",
)


class UnsupportedRegionError(BackendUnavailableError):
    pass


def built_in_lambda_arns(region: str) -> tuple[str, str]:
    """(PRE-BoundingBox, ACS-BoundingBox) for a region, or a clear error; never a made-up ARN."""
    account = BUILT_IN_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        supported = ", ".join(sorted(BUILT_IN_LAMBDA_ACCOUNTS))
        raise UnsupportedRegionError(
            f"Ground Truth's built-in bounding-box task is not offered in {region}; "
            f"deploy the stack in one of: {supported}"
        )
    return (
        f"arn:aws:lambda:{region}:{account}:function:PRE-BoundingBox",
        f"arn:aws:lambda:{region}:{account}:function:ACS-BoundingBox",
    )


def build_create_labeling_job_request(
    spec: JobSpec, *, region: str, workteam_arn: str, role_arn: str, output_kms_key_id: str | None = None
) -> dict[str, Any]:
    """The CreateLabelingJob request for one job.

    `output_kms_key_id` (the stack's customer-managed key, labeling.kmsKey) becomes
    OutputConfig.KmsKeyId: Ground Truth then encrypts its output with that key instead of the account's
    AWS-managed S3 key; the key policy must let the execution role use it
    (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html).
    """
    pre_arn, acs_arn = built_in_lambda_arns(region)
    settings = spec.settings
    output_config: dict[str, str] = {"S3OutputPath": spec.output_uri}
    if output_kms_key_id:
        output_config["KmsKeyId"] = output_kms_key_id
    return {
        "LabelingJobName": spec.name,
        "LabelAttributeName": settings.label_attribute_name,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": spec.manifest_uri}}},
        "OutputConfig": output_config,
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": spec.label_config_uri,
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": spec.template_uri},
            "PreHumanTaskLambdaArn": pre_arn,
            "TaskKeywords": list(settings.task_keywords),
            "TaskTitle": settings.task_title,
            "TaskDescription": settings.task_description,
            "NumberOfHumanWorkersPerDataObject": settings.workers_per_image,
            "TaskTimeLimitInSeconds": settings.task_time_limit_seconds,
            "TaskAvailabilityLifetimeInSeconds": settings.task_availability_seconds,
            "MaxConcurrentTaskCount": settings.max_concurrent_task_count,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs_arn},
        },
        "Tags": [{"Key": "created-by", "Value": "gt-bbox-labeling"}],
    }


def _is_refusal(code: str, message: str) -> bool:
    lowered = message.lower()
    return code in ("AccessDeniedException", "AccessDenied", "SubscriptionRequiredException") or any(
        hint in lowered for hint in REFUSAL_HINTS
    )


class GroundTruthBackend:
    def __init__(
        self,
        sagemaker_client: Any,
        *,
        region: str,
        workteam_arn: str,
        role_arn: str,
        output_kms_key_id: str | None = None,
    ) -> None:
        built_in_lambda_arns(region)  # fail at start-up, not per job, in an unsupported region
        self._client = sagemaker_client
        self._region = region
        self._workteam_arn = workteam_arn
        self._role_arn = role_arn
        self._output_kms_key_id = output_kms_key_id

    def create_job(self, spec: JobSpec) -> None:
        request = build_create_labeling_job_request(
            spec,
            region=self._region,
            workteam_arn=self._workteam_arn,
            role_arn=self._role_arn,
            output_kms_key_id=self._output_kms_key_id,
        )
        try:
            self._client.create_labeling_job(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "")
            if code == "ResourceInUse":
                self._confirm_same_job(spec)
                return
            if code in RETRYABLE_CODES:
                raise TransientBackendError(f"CreateLabelingJob {spec.name}: {code}: {message}") from error
            if _is_refusal(code, message):
                raise BackendUnavailableError(
                    f"Amazon SageMaker Ground Truth refused to create labeling job {spec.name} ({code}: "
                    f"{message}). Ground Truth is closed to new AWS customers since 2026-07-30; only accounts "
                    "that already used it can create jobs. Check that this account is one of them and that "
                    "the launcher role may call sagemaker:CreateLabelingJob."
                ) from error
            raise PermanentBackendError(f"CreateLabelingJob {spec.name} rejected: {code}: {message}") from error
        except BotoCoreError as error:
            raise TransientBackendError(f"CreateLabelingJob {spec.name}: {error}") from error

    def _confirm_same_job(self, spec: JobSpec) -> None:
        """A job of this name exists: ours from an earlier try if it reads our manifest."""
        try:
            described = self._client.describe_labeling_job(LabelingJobName=spec.name)
        except (ClientError, BotoCoreError) as error:
            raise TransientBackendError(f"DescribeLabelingJob {spec.name}: {error}") from error
        existing = described["InputConfig"]["DataSource"].get("S3DataSource", {}).get("ManifestS3Uri")
        if existing != spec.manifest_uri:
            raise PermanentBackendError(
                f"a labeling job named {spec.name} already exists with another manifest ({existing}); "
                "job names can never be reused: change labeling.jobNamePrefix"
            )

    def describe_job(self, name: str) -> JobDescription:
        try:
            described = self._client.describe_labeling_job(LabelingJobName=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in RETRYABLE_CODES:
                raise TransientBackendError(f"DescribeLabelingJob {name}: {code}") from error
            raise PermanentBackendError(f"DescribeLabelingJob {name}: {code}: {error}") from error
        except BotoCoreError as error:
            raise TransientBackendError(f"DescribeLabelingJob {name}: {error}") from error
        counters = described.get("LabelCounters", {})
        return JobDescription(
            name=described["LabelingJobName"],
            status=described["LabelingJobStatus"],
            output_manifest_uri=described.get("LabelingJobOutput", {}).get("OutputDatasetS3Uri"),
            failure_reason=described.get("FailureReason"),
            labeled=int(counters.get("TotalLabeled", 0)),
            failed_objects=int(counters.get("FailedNonRetryableError", 0)),
            unlabeled=int(counters.get("Unlabeled", 0)),
        )
