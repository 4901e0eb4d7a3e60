"""Every Amazon SageMaker Ground Truth call of the pipeline lives here.

Ground Truth has been closed to new AWS customers since 2026-07-30 (existing customers keep it):
https://docs.aws.amazon.com/sagemaker/latest/dg/sms.html . A refusal is turned into
`BackendUnavailableError` with a message that says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
from labeling_pipeline.backends.ground_truth.job_parts import (
    PLAN_FILE,
    UNASSISTED_FOLDER,
    UNASSISTED_PART_TAG,
    JobPlan,
    SplitJobDescription,
    combined_status,
    decode_plan,
    encode_plan,
    unassisted_job_name,
)
from labeling_pipeline.backends.ground_truth.results import ManifestError, read_output_manifest
from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from labeling_pipeline.backends.ground_truth.task_inputs import (
    LABEL_CONFIG_FILE,
    MANIFEST_FILE,
    TEMPLATE_FILE,
    adjustment_manifest_text,
    adjustment_worker_template,
    label_category_config,
    manifest_text,
    proposal_label,
    proposals_attribute,
    worker_template,
)
from labeling_pipeline.backends.ground_truth.worker_responses import (
    MISSING_CODES,
    WorkerResponses,
    WorkerResponseStats,
    dataset_object_ids,
    list_worker_responses,
    worker_response_prefix,
)
from labeling_pipeline.images import ImageRef, split_s3_uri
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.names import JobState
from labeling_pipeline.prelabel.proposals import read_proposals
from labeling_pipeline.settings import PipelineSettings

logger = logging.getLogger(__name__)

# Built-in bounding-box Lambdas, one AWS account per region, kept in regions.json (read
# by the CDK app too, to refuse an unsupported region at synth). Source: botocore's SageMaker model,
# the documentation of HumanTaskConfig.PreHumanTaskLambdaArn (PRE-BoundingBox) and
# AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn (ACS-BoundingBox), the same text as
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_HumanTaskConfig.html and
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AnnotationConsolidationConfig.html .
# The same text lists the bounding-box adjustment functions (PRE-AdjustmentBoundingBox,
# ACS-AdjustmentBoundingBox, "Bounding box adjustment") in the same twelve regions under the same accounts, so one
# table serves both. tests/lambda_code/ground_truth/ checks the file against the installed botocore model for both.
REGIONS_FILE = Path(__file__).with_name("regions.json")
BUILT_IN_LAMBDA_ACCOUNTS: dict[str, str] = json.loads(REGIONS_FILE.read_text())["builtInLambdaAccounts"]

BOUNDING_BOX_TASK = "BoundingBox"
ADJUSTMENT_TASK = "AdjustmentBoundingBox"
# The job-name of the proposals' metadata: no labeling job drew them (Ground Truth's own lines read
# "labeling-job/<name>"; nothing documents a check on a prior label's job-name).
PROPOSALS_SOURCE = "prelabel/{model_version}"

# DescribeLabelingJob's LabelingJobStatus, in the pipeline's words.
STATES = {
    "Initializing": JobState.STARTING,
    "InProgress": JobState.IN_PROGRESS,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Stopping": JobState.STOPPING,
    "Stopped": JobState.STOPPED,
}
NDJSON = "application/x-ndjson"
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


def built_in_lambda_arns(region: str, *, adjustment: bool = False) -> tuple[str, str]:
    """(PRE-BoundingBox, ACS-BoundingBox) for a region, or with `adjustment` (PRE-AdjustmentBoundingBox,
    ACS-AdjustmentBoundingBox); a clear error where there are none, never a made-up ARN."""
    account = BUILT_IN_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        supported = ", ".join(sorted(BUILT_IN_LAMBDA_ACCOUNTS))
        raise UnsupportedRegionError(
            f"Ground Truth's built-in bounding-box task is not offered in {region}; "
            f"deploy the stack in one of: {supported}"
        )
    task = ADJUSTMENT_TASK if adjustment else BOUNDING_BOX_TASK
    return (
        f"arn:aws:lambda:{region}:{account}:function:PRE-{task}",
        f"arn:aws:lambda:{region}:{account}:function:ACS-{task}",
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
    adjustment: bool = False,
    tags: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The CreateLabelingJob request for one job; with `adjustment`, a bounding-box adjustment job (its manifest
    holds the prior boxes, its template shows them), otherwise a bounding-box job.

    `output_kms_key_id` (the stack's customer-managed key, labeling.kmsKey) becomes
    OutputConfig.KmsKeyId: Ground Truth then encrypts its output with that key instead of the account's
    AWS-managed S3 key; the key policy must let the execution role use it
    (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html).
    """
    if not isinstance(settings, GroundTruthSettings):
        raise TypeError("Ground Truth jobs need the Ground Truth settings (labeling.backend: ground-truth)")
    pre_arn, acs_arn = built_in_lambda_arns(region, adjustment=adjustment)
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
        "Tags": [{"Key": "created-by", "Value": "gt-bbox-labeling"}] + [{"Key": k, "Value": v} for k, v in tags],
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
        # The last read_results' worker responses, per job part: what was read and skipped (also logged).
        self.worker_responses: list[tuple[str, WorkerResponseStats]] = []

    def create_job(self, request: JobRequest) -> str:
        """Write the job's task inputs under its task prefix (manifest of the images it owns, label categories,
        worker template), then CreateLabelingJob. Returns the manifest's URI.

        With labeling.prelabel, the images shown proposals are a bounding-box adjustment job and the others a plain
        bounding-box job beside it (job_parts.py says why and how); without, or when no image has a box to show,
        the job is a plain bounding-box job as ever."""
        bucket, prefix = request.bucket, request.task_prefix
        prelabel = self._settings.prelabel
        if prelabel is None:
            return self._start_plain(request.name, request, prefix, request.images)
        plan = self._plan(request, prelabel.model_version)
        assisted = self._assisted_labels(request, plan)
        unassisted = tuple(image for image in request.images if image not in assisted)
        if not assisted:
            return self._start_plain(request.name, request, prefix, unassisted)
        if not isinstance(self._settings, GroundTruthSettings):
            raise TypeError("Ground Truth jobs need the Ground Truth settings (labeling.backend: ground-truth)")
        attribute = proposals_attribute(self._settings.label_attribute_name)
        tags: list[tuple[str, str]] = []
        if unassisted:
            sibling = unassisted_job_name(request.name)
            # The plain part first: once the adjustment job exists, so does every part its tag names.
            self._start_plain(sibling, request, prefix + UNASSISTED_FOLDER, unassisted)
            tags.append((UNASSISTED_PART_TAG, sibling))
        manifest = adjustment_manifest_text(assisted.keys(), attribute, assisted)
        self._put(bucket, prefix + MANIFEST_FILE, manifest, NDJSON)
        self._put_label_config(bucket, prefix)
        self._put(bucket, prefix + TEMPLATE_FILE, adjustment_worker_template(self._settings, attribute), "text/html")
        files = self._files(request, prefix)
        self._create(request.name, files, adjustment=True, tags=tags)
        return files.manifest_uri

    def _start_plain(self, name: str, request: JobRequest, prefix: str, images: Sequence[ImageRef]) -> str:
        bucket = request.bucket
        self._put(bucket, prefix + MANIFEST_FILE, manifest_text(images), NDJSON)
        self._put_label_config(bucket, request.task_prefix)
        self._put(bucket, prefix + TEMPLATE_FILE, worker_template(self._settings), "text/html")
        files = self._files(request, prefix)
        self._create(name, files)
        return files.manifest_uri

    def _files(self, request: JobRequest, prefix: str) -> TaskFiles:
        bucket = request.bucket
        return TaskFiles(
            manifest_uri=f"s3://{bucket}/{prefix}{MANIFEST_FILE}",
            # One label category file for a job's parts: an adjustment job must keep the labels of the prior one.
            label_config_uri=f"s3://{bucket}/{request.task_prefix}{LABEL_CONFIG_FILE}",
            template_uri=f"s3://{bucket}/{prefix}{TEMPLATE_FILE}",
            output_uri=f"s3://{bucket}/{request.output_prefix}",
        )

    def _put_label_config(self, bucket: str, prefix: str) -> None:
        labels = json.dumps(label_category_config(self._settings.labels), ensure_ascii=False, separators=(",", ":"))
        self._put(bucket, prefix + LABEL_CONFIG_FILE, labels, "application/json")

    def _plan(self, request: JobRequest, model_version: str) -> JobPlan:
        """Which of the job's images are shown proposals: decided by the first try that writes the plan, read by
        every later one (job_parts.py)."""
        key = request.task_prefix + PLAN_FILE
        shown = tuple(
            sorted(
                image
                for image in request.images
                if (proposal := request.proposals.get(image)) is not None
                and not proposal.held_out
                and proposal.model_version == model_version
                and proposal_label(proposal, self._settings.labels, creation_date="", source="") is not None
            )
        )
        created_at = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        plan = JobPlan(model_version, created_at, shown)
        try:
            self._s3.put_object(
                Bucket=request.bucket,
                Key=key,
                Body=encode_plan(plan),
                ContentType="application/json",
                IfNoneMatch="*",
            )
            return plan
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalRequestConflict", "409"):
                raise TransientBackendError(f"job {request.name}: its plan is being written by another try") from error
            if code not in ("PreconditionFailed", "412"):
                raise
        body = self._s3.get_object(Bucket=request.bucket, Key=key)["Body"].read()
        try:
            return decode_plan(body, f"s3://{request.bucket}/{key}")
        except ValueError as error:
            raise PermanentBackendError(str(error)) from error

    def _assisted_labels(
        self, request: JobRequest, plan: JobPlan
    ) -> Mapping[ImageRef, tuple[dict[str, Any], dict[str, Any]]]:
        """Each planned image's proposals as its manifest line shows them. An image whose proposals the request
        lacks (the file was written after this try read them, or the plan was made with another model version) has
        them read here: every try writes the same lines."""
        members = set(request.images)
        planned = [image for image in plan.assisted if image in members]
        proposals = {
            image: proposal
            for image, proposal in request.proposals.items()
            if proposal.model_version == plan.model_version
        }
        missing = [image for image in planned if image not in proposals]
        if missing:
            found, _unreadable = read_proposals(self._s3, request.bucket, plan.model_version, missing)
            proposals.update(found)
        source = PROPOSALS_SOURCE.format(model_version=plan.model_version)
        labels: dict[ImageRef, tuple[dict[str, Any], dict[str, Any]]] = {}
        for image in planned:
            proposal = proposals.get(image)
            shown = (
                None
                if proposal is None or proposal.held_out
                else proposal_label(proposal, self._settings.labels, creation_date=plan.created_at, source=source)
            )
            if shown is None:
                raise PermanentBackendError(
                    f"job {request.name}: its plan shows proposals ({plan.model_version}) for {image.image_id}, "
                    "which has none to show now; the proposals file was removed or replaced"
                )
            labels[image] = shown
        return labels

    def _put(self, bucket: str, key: str, text: str, content_type: str) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def _create(
        self, name: str, files: TaskFiles, *, adjustment: bool = False, tags: Sequence[tuple[str, str]] = ()
    ) -> None:
        request = build_create_labeling_job_request(
            name,
            files,
            self._settings,
            region=self._region,
            workteam_arn=self._workteam_arn,
            role_arn=self._role_arn,
            output_kms_key_id=self._output_kms_key_id,
            adjustment=adjustment,
            tags=tags,
        )
        try:
            self._client.create_labeling_job(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "")
            if code == "ResourceInUse":
                self._confirm_same_job(name, files.manifest_uri, request["HumanTaskConfig"]["PreHumanTaskLambdaArn"])
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

    def _confirm_same_job(self, name: str, manifest_uri: str, pre_arn: str) -> None:
        """A job of this name exists: ours from an earlier try if it reads our manifest with the same task."""
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
        # Only a try made before the job had a plan can differ here; its images would be labeled twice.
        existing_task = described.get("HumanTaskConfig", {}).get("PreHumanTaskLambdaArn", pre_arn)
        if existing_task.rsplit(":", 1)[-1] != pre_arn.rsplit(":", 1)[-1]:
            raise PermanentBackendError(
                f"labeling job {name} already exists as a {existing_task.rsplit(':', 1)[-1]} job, not "
                f"{pre_arn.rsplit(':', 1)[-1]}: it was started before its images were split by their proposals; "
                "stop it and relabel its images (bbox-labeling relabel)"
            )

    def describe_job(self, name: str) -> JobDescription:
        """The job's state; a job in two parts (job_parts.py) is described as one, its counters summed."""
        described = self._describe(name)
        description = _description(described)
        tags = {tag.get("Key"): tag.get("Value") for tag in described.get("Tags") or []}
        sibling = tags.get(UNASSISTED_PART_TAG)
        if not sibling:
            return description
        parts = (description, _description(self._describe(sibling)))
        status = combined_status([part.backend_status for part in parts])
        reasons = [f"{part.name}: {part.failure_reason}" for part in parts if part.failure_reason]
        return SplitJobDescription(
            name=description.name,
            state=STATES[status],
            backend_status=status,
            results_uri=description.results_uri,
            failure_reason="; ".join(reasons) or None,
            labeled=sum(part.labeled for part in parts),
            failed_objects=sum(part.failed_objects for part in parts),
            unlabeled=sum(part.unlabeled for part in parts),
            parts=parts,
        )

    def _describe(self, name: str) -> dict[str, Any]:
        try:
            described: dict[str, Any] = self._client.describe_labeling_job(LabelingJobName=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in RETRYABLE_CODES:
                raise TransientBackendError(f"DescribeLabelingJob {name}: {code}") from error
            raise PermanentBackendError(f"DescribeLabelingJob {name}: {code}: {error}") from error
        except BotoCoreError as error:
            raise TransientBackendError(f"DescribeLabelingJob {name}: {error}") from error
        return described

    def take_step(self, description: JobDescription) -> str:
        """Ground Truth's jobs have no step of the pipeline's before they end (its review is its own jobs')."""
        raise PermanentBackendError(f"job {description.name}: Ground Truth has no step {description.pending_step!r}")

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        """The job's output manifest, streamed from S3 line by line; a job in two parts, both manifests. A part
        without results is skipped once the job has stopped or failed; a completed job waits for every part.

        With several workers per image (workersPerImage > 1), each image also gets its workers' own answers from the
        part's worker-response files (worker_responses.py): their boxes in `boxes`, each with its `annotator`, who
        answered in `annotators`, and Ground Truth's consolidated boxes in `settled_boxes` (settled_by
        SETTLED_BY_BACKEND), which the exports write. An image whose files are missing or malformed keeps Ground
        Truth's boxes as its only ones (logged and counted in `worker_responses`)."""
        parts = description.parts if isinstance(description, SplitJobDescription) else (description,)
        bodies = []
        for part in parts:
            try:
                bodies.append((part, self._open_results(part)))
            except ResultsNotFound:
                if description.state == JobState.COMPLETED or len(parts) == 1:
                    raise
        if not bodies:
            raise ResultsNotFound(f"job {description.name} has no output manifest")
        attribute = getattr(self._settings, "label_attribute_name", None)
        self.worker_responses = []
        overlays = [(part, body, self._worker_answers(part)) for part, body in bodies]
        if len(parts) == 1:
            [(_part, body, overlay)] = overlays
            images = read_output_manifest(body.iter_lines(chunk_size=MANIFEST_CHUNK_BYTES), attribute, stats)
            return images if overlay is None else overlay.over(images, stats)
        return _read_parts(overlays, attribute, stats)

    def _worker_answers(self, part: JobDescription) -> WorkerResponses | None:
        """The part's worker responses, when its job had several workers per image and they can be listed; None
        otherwise (its images are read as Ground Truth's boxes alone)."""
        if getattr(self._settings, "workers_per_image", 1) <= 1:
            return None
        described = self._describe(part.name)  # the job's own worker count and input manifest
        if int(described.get("HumanTaskConfig", {}).get("NumberOfHumanWorkersPerDataObject", 1)) <= 1:
            return None
        prefix = worker_response_prefix(part.results_uri or "")
        manifest_uri = described.get("InputConfig", {}).get("DataSource", {}).get("S3DataSource", {})
        manifest_uri = manifest_uri.get("ManifestS3Uri")
        stats = WorkerResponseStats()
        self.worker_responses.append((part.name, stats))
        if prefix is None or not isinstance(manifest_uri, str):
            stats.listing_error = f"no worker-response folder for results at {part.results_uri}"
            logger.warning("job %s: %s", part.name, stats.listing_error)
            return None
        bucket = split_s3_uri(part.results_uri or "")[0]
        try:
            listing = list_worker_responses(self._s3, bucket, prefix)
        except ClientError as error:
            # The job-events role lists output/ only when granted s3:ListBucket on it (s3:prefix output/*).
            return self._without_answers(part.name, stats, error, f"cannot list s3://{bucket}/{prefix}")
        if not listing:
            stats.listing_error = f"no worker-response file under s3://{bucket}/{prefix}"
            logger.warning("job %s: workers' own answers not read: %s", part.name, stats.listing_error)
            return None
        try:
            object_ids = dataset_object_ids(self._read_lines(manifest_uri))
        except ClientError as error:
            return self._without_answers(part.name, stats, error, f"cannot read the input manifest {manifest_uri}")
        return WorkerResponses(self._s3, bucket, prefix, object_ids, listing, part.name, stats)

    @staticmethod
    def _without_answers(name: str, stats: WorkerResponseStats, error: ClientError, what: str) -> None:
        """A folder or manifest not there for us: logged, and the part is read as Ground Truth's boxes alone. Any
        other error (throttled, the service failing) is raised: the job end is tried again."""
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code not in MISSING_CODES:
            raise error
        stats.listing_error = f"{what} ({code})"
        logger.warning("job %s: workers' own answers not read: %s", name, stats.listing_error)

    def _read_lines(self, uri: str) -> Iterator[bytes]:
        bucket, key = split_s3_uri(uri)
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        return iter(body.iter_lines(chunk_size=MANIFEST_CHUNK_BYTES))

    def _open_results(self, description: JobDescription) -> Any:
        if not description.results_uri:
            raise ResultsNotFound(f"job {description.name} has no output manifest")
        bucket, key = split_s3_uri(description.results_uri)
        try:
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as error:
            # Not written yet; without s3:ListBucket a missing object reads as AccessDenied.
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "AccessDenied", "404", "403"):
                raise ResultsNotFound(
                    f"job {description.name}: no output manifest at {description.results_uri}"
                ) from error
            raise


def _description(described: Mapping[str, Any]) -> JobDescription:
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


def _read_parts(
    parts: Sequence[tuple[JobDescription, Any, WorkerResponses | None]], attribute: str | None, stats: ReadStats
) -> Iterator[LabeledImage]:
    for part, body, overlay in parts:
        try:
            images = read_output_manifest(body.iter_lines(chunk_size=MANIFEST_CHUNK_BYTES), attribute, stats)
            yield from images if overlay is None else overlay.over(images, stats)
        except ManifestError as error:
            raise ManifestError(f"{part.name}'s output manifest: {error}") from error
