"""Every Amazon SageMaker Ground Truth call of the pipeline lives here.

Ground Truth has been closed to new AWS customers since 2026-07-30 (existing customers keep it):
https://docs.aws.amazon.com/sagemaker/latest/dg/sms.html . A refusal is turned into
`BackendUnavailableError` with a message that says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeling_pipeline.backends import (
    BackendUnavailableError,
    JobDescription,
    JobEvent,
    JobRequest,
    PermanentBackendError,
    ResultsNotFound,
    TransientBackendError,
)
from labeling_pipeline.backends.ground_truth.results import read_output_manifest
from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from labeling_pipeline.backends.ground_truth.task_inputs import (
    LABEL_CONFIG_FILE,
    MANIFEST_FILE,
    TEMPLATE_FILE,
    label_category_config,
    manifest_text,
    worker_template,
)
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.names import JobState
from labeling_pipeline.settings import PipelineSettings

# Built-in bounding-box Lambdas, one AWS account per region, kept in regions.json (read
# by the CDK app too, to refuse an unsupported region at synth). Source: botocore's SageMaker model,
# the documentation of HumanTaskConfig.PreHumanTaskLambdaArn (PRE-BoundingBox) and
# AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn (ACS-BoundingBox), the same text as
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_HumanTaskConfig.html .
# tests/lambda_code/ground_truth/test_service.py checks the file against the installed botocore model.
REGIONS_FILE = Path(__file__).with_name("regions.json")
BUILT_IN_LAMBDA_ACCOUNTS: dict[str, str] = json.loads(REGIONS_FILE.read_text())["builtInLambdaAccounts"]

# DescribeLabelingJob's LabelingJobStatus, in the pipeline's words.
STATES = {
    "Initializing": JobState.STARTING,
    "InProgress": JobState.IN_PROGRESS,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Stopping": JobState.STOPPING,
    "Stopped": JobState.STOPPED,
}
# botocore's iter_lines reads 1 KiB at a time by default; 64 KiB chunks halve its per-line cost.
MANIFEST_CHUNK_BYTES = 1 << 16

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


@dataclass(frozen=True)
class TaskFiles:
    """Where one job's task inputs are, as s3:// URIs."""

    manifest_uri: str
    label_config_uri: str
    template_uri: str
    output_uri: str


def build_create_labeling_job_request(
    name: str,
    files: TaskFiles,
    settings: PipelineSettings,
    *,
    region: str,
    workteam_arn: str,
    role_arn: str,
    output_kms_key_id: str | None = None,
) -> dict[str, Any]:
    """The CreateLabelingJob request for one job.

    `output_kms_key_id` (the stack's customer-managed key, labeling.kmsKey) becomes
    OutputConfig.KmsKeyId: Ground Truth then encrypts its output with that key instead of the account's
    AWS-managed S3 key; the key policy must let the execution role use it
    (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html).
    """
    if not isinstance(settings, GroundTruthSettings):
        raise TypeError("Ground Truth jobs need the Ground Truth settings (labeling.backend: ground-truth)")
    pre_arn, acs_arn = built_in_lambda_arns(region)
    output_config: dict[str, str] = {"S3OutputPath": files.output_uri}
    if output_kms_key_id:
        output_config["KmsKeyId"] = output_kms_key_id
    return {
        "LabelingJobName": name,
        "LabelAttributeName": settings.label_attribute_name,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": files.manifest_uri}}},
        "OutputConfig": output_config,
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": files.label_config_uri,
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": files.template_uri},
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
    idempotent_start = True  # CreateLabelingJob refuses a second job of the same name

    def authenticate(self, event: JobEvent) -> None:
        """EventBridge delivers only the account's own SageMaker events (the rule's pattern)."""

    def __init__(
        self,
        sagemaker_client: Any,
        s3_client: Any,
        settings: PipelineSettings,
        *,
        region: str,
        workteam_arn: str,
        role_arn: str,
        output_kms_key_id: str | None = None,
    ) -> None:
        built_in_lambda_arns(region)  # fail at start-up, not per job, in an unsupported region
        self._client = sagemaker_client
        self._s3 = s3_client
        self._settings = settings
        self._region = region
        self._workteam_arn = workteam_arn
        self._role_arn = role_arn
        self._output_kms_key_id = output_kms_key_id

    def create_job(self, request: JobRequest) -> str:
        """Write the manifest (the images the job owns), the label categories and the worker template under
        the job's task prefix, then CreateLabelingJob. Returns the manifest's URI."""
        bucket, prefix = request.bucket, request.task_prefix
        self._put(bucket, prefix + MANIFEST_FILE, manifest_text(request.images), "application/x-ndjson")
        labels = json.dumps(label_category_config(self._settings.labels), ensure_ascii=False, separators=(",", ":"))
        self._put(bucket, prefix + LABEL_CONFIG_FILE, labels, "application/json")
        self._put(bucket, prefix + TEMPLATE_FILE, worker_template(self._settings), "text/html")
        files = TaskFiles(
            manifest_uri=f"s3://{bucket}/{prefix}{MANIFEST_FILE}",
            label_config_uri=f"s3://{bucket}/{prefix}{LABEL_CONFIG_FILE}",
            template_uri=f"s3://{bucket}/{prefix}{TEMPLATE_FILE}",
            output_uri=f"s3://{bucket}/{request.output_prefix}",
        )
        self._create(request.name, files)
        return files.manifest_uri

    def _put(self, bucket: str, key: str, text: str, content_type: str) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def _create(self, name: str, files: TaskFiles) -> None:
        request = build_create_labeling_job_request(
            name,
            files,
            self._settings,
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
                self._confirm_same_job(name, files.manifest_uri)
                return
            if code in RETRYABLE_CODES:
                raise TransientBackendError(f"CreateLabelingJob {name}: {code}: {message}") from error
            if _is_refusal(code, message):
                raise BackendUnavailableError(
                    f"Amazon SageMaker Ground Truth refused to create labeling job {name} ({code}: "
                    f"{message}). Ground Truth is closed to new AWS customers since 2026-07-30; only accounts "
                    "that already used it can create jobs. Check that this account is one of them and that "
                    "the launcher role may call sagemaker:CreateLabelingJob."
                ) from error
            raise PermanentBackendError(f"CreateLabelingJob {name} rejected: {code}: {message}") from error
        except BotoCoreError as error:
            raise TransientBackendError(f"CreateLabelingJob {name}: {error}") from error

    def _confirm_same_job(self, name: str, manifest_uri: str) -> None:
        """A job of this name exists: ours from an earlier try if it reads our manifest."""
        try:
            described = self._client.describe_labeling_job(LabelingJobName=name)
        except (ClientError, BotoCoreError) as error:
            raise TransientBackendError(f"DescribeLabelingJob {name}: {error}") from error
        existing = described["InputConfig"]["DataSource"].get("S3DataSource", {}).get("ManifestS3Uri")
        if existing != manifest_uri:
            raise PermanentBackendError(
                f"a labeling job named {name} already exists with another manifest ({existing}); "
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
        status = described["LabelingJobStatus"]
        return JobDescription(
            name=described["LabelingJobName"],
            state=STATES[status],
            backend_status=status,
            results_uri=described.get("LabelingJobOutput", {}).get("OutputDatasetS3Uri"),
            failure_reason=described.get("FailureReason"),
            labeled=int(counters.get("TotalLabeled", 0)),
            failed_objects=int(counters.get("FailedNonRetryableError", 0)),
            unlabeled=int(counters.get("Unlabeled", 0)),
        )

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        """The job's output manifest, streamed from S3 line by line."""
        if not description.results_uri:
            raise ResultsNotFound(f"job {description.name} has no output manifest")
        bucket, key = split_s3_uri(description.results_uri)
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as error:
            # Not written yet; without s3:ListBucket a missing object reads as AccessDenied.
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "AccessDenied", "404", "403"):
                raise ResultsNotFound(
                    f"job {description.name}: no output manifest at {description.results_uri}"
                ) from error
            raise
        attribute = getattr(self._settings, "label_attribute_name", None)
        return read_output_manifest(body.iter_lines(chunk_size=MANIFEST_CHUNK_BYTES), attribute, stats)
