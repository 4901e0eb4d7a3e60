"""Ground Truth's job-end signal: the EventBridge "Labeling Job State Change" event.

Event: source ``aws.sagemaker``, detail-type ``SageMaker Ground Truth Labeling Job State Change``,
``resources`` = [job ARN], ``detail.LabelingJobStatus``
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-monitor-cloud-watch.html). The stack's rule
(stacks/backends/ground_truth/job_end_rule.py) matches the same names. The plain part of a job split by its
proposals (job_parts.py) reports under its own name, which maps back to its job's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from labeling_pipeline.backends import JobEvent, NotAJobEvent
from labeling_pipeline.backends.ground_truth.job_parts import pipeline_job_name

EVENT_SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"
# The states after which a job changes no more; the rule forwards only these.
ENDED_STATUSES = ("Completed", "Failed", "Stopped")
JOB_ARN_MARKER = ":labeling-job/"


def parse_job_event(event: dict[str, Any]) -> JobEvent:
    """(job name, reported status) from a labeling-job state-change event, or NotAJobEvent."""
    parsed = EventBridgeEvent(event)
    try:
        if parsed.source != EVENT_SOURCE or parsed.detail_type != DETAIL_TYPE:
            raise NotAJobEvent(f"not a labeling-job state change: {parsed.source} / {parsed.detail_type}")
        arns = [arn for arn in parsed.resources if JOB_ARN_MARKER in arn]
        status = parsed.detail.get("LabelingJobStatus")
    except (KeyError, TypeError, AttributeError) as error:
        raise NotAJobEvent(f"malformed event: {error!r}") from error
    if len(arns) != 1 or not isinstance(status, str):
        raise NotAJobEvent("event names no single labeling job or no status")
    return JobEvent(pipeline_job_name(arns[0].rsplit(JOB_ARN_MARKER, 1)[1]), status)
