"""Names that the stacks, the Lambda code and the CLI must agree on, defined once.

The stacks import this module from the Lambda asset (it has no dependencies), so a prefix, an output or a
status cannot be spelled two ways.
"""

from __future__ import annotations

from enum import StrEnum

# Bucket layout.
INPUT_PREFIX = "images/"  # uploads: every object created here is considered for labeling
JOBS_PREFIX = "jobs/"  # each job's task definition (candidates and the backend's task inputs)
OUTPUT_PREFIX = "output/"  # what the labeling backend writes back
EXPORTS_PREFIX = "exports/"  # training formats, written when a job ends
PROPOSALS_PREFIX = "prelabels/"  # a detector's proposals, one file per model version and image version

# The launcher's list of a job's candidate images, under jobs/<job>/.
CANDIDATES_FILE = "candidates.json"
# Under exports/<job>/ with labeling.prelabel: whether the proposals helped, and the proposals as COCO results.
PRELABEL_REPORT_FILE = "prelabel-report.json"
PREDICTIONS_FILE = "predictions.coco-results.json"


class JobState(StrEnum):
    """A labeling job's state in the pipeline's own words; each backend maps its states onto these."""

    STARTING = "Starting"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


ENDED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.STOPPED})


class LedgerJobStatus(StrEnum):
    """A job item's status in the ledger."""

    STARTING = "STARTING"  # a launcher holds the start lease (backends whose start is not idempotent)
    CREATED = "CREATED"
    FINISHING = "FINISHING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


FINISHED_LEDGER_STATUSES = (LedgerJobStatus.COMPLETED, LedgerJobStatus.FAILED, LedgerJobStatus.STOPPED)
# A job in any of these was created (its backend has it), whatever happened to it since.
CREATED_LEDGER_STATUSES = (LedgerJobStatus.CREATED, LedgerJobStatus.FINISHING, *FINISHED_LEDGER_STATUSES)


class ImageStatus(StrEnum):
    """An image item's status in the ledger once its job has ended (and once `bbox-labeling relabel` copied it)."""

    LABELED = "LABELED"
    NEEDS_RELABEL = "NEEDS_RELABEL"
    RELABEL_REQUESTED = "RELABEL_REQUESTED"


class EnvironmentVariable(StrEnum):
    """What the stacks put in the Lambda functions' environment."""

    BUCKET_NAME = "BUCKET_NAME"
    LEDGER_TABLE_NAME = "LEDGER_TABLE_NAME"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
    RESULTS_TOPIC_ARN = "RESULTS_TOPIC_ARN"
    PIPELINE_SETTINGS = "PIPELINE_SETTINGS"  # the validated settings, one JSON value (settings.py)
    BACKEND_RESOURCES = "BACKEND_RESOURCES"  # the backend's deployed resources, one JSON object
    JOB_LEASE_SECONDS = "JOB_LEASE_SECONDS"
    METRIC_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    # The launcher's own upload queue: where the pre-label stage forwards every upload event, and where the launcher
    # sends a message back, delayed, while the labeling service is down (backoff.py).
    LAUNCH_QUEUE_URL = "LAUNCH_QUEUE_URL"


class StackOutput(StrEnum):
    """CloudFormation outputs of the pipeline stack that the CLI reads."""

    BUCKET_NAME = "BucketName"
    UPLOAD_COMMAND = "UploadCommand"
    UPLOAD_QUEUE_URL = "UploadQueueUrl"
    DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
    LEDGER_TABLE_NAME = "LedgerTableName"
    RESULTS_TOPIC_ARN = "ResultsTopicArn"
    FAILED_JOB_EVENTS_QUEUE_URL = "FailedJobEventsQueueUrl"
    KMS_KEY_ARN = "KmsKeyArn"
    LABELING_BACKEND = "LabelingBackend"
    PIPELINE_SETTINGS = "PipelineSettings"
    BACKEND_RESOURCES = "BackendResources"
