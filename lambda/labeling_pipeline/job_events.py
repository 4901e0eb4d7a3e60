"""Job-events Lambda: SageMaker labeling-job state changes (EventBridge) -> export or relabel marking.

Event: source ``aws.sagemaker``, detail-type ``SageMaker Ground Truth Labeling Job State Change``,
``resources`` = [job ARN], ``detail.LabelingJobStatus``
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-monitor-cloud-watch.html).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeling_pipeline.backends.ground_truth import GroundTruthBackend
from labeling_pipeline.job_results import JobFinisher
from labeling_pipeline.ledger import Ledger

logger = Logger(service="labeling-job-events")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "GroundTruthLabeling"))

EVENT_SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"


class NotAJobEvent(ValueError):
    pass


def job_name_from_event(event: dict[str, Any]) -> tuple[str, str]:
    """(job name, reported status) from a labeling-job state-change event, or NotAJobEvent."""
    parsed = EventBridgeEvent(event)
    try:
        if parsed.source != EVENT_SOURCE or parsed.detail_type != DETAIL_TYPE:
            raise NotAJobEvent(f"not a labeling-job state change: {parsed.source} / {parsed.detail_type}")
        arns = [arn for arn in parsed.resources if ":labeling-job/" in arn]
        status = parsed.detail.get("LabelingJobStatus")
    except (KeyError, TypeError, AttributeError) as error:
        raise NotAJobEvent(f"malformed event: {error!r}") from error
    if len(arns) != 1 or not isinstance(status, str):
        raise NotAJobEvent("event names no single labeling job or no status")
    return arns[0].rsplit(":labeling-job/", 1)[1], status


def build_finisher(make_client: Callable[..., Any] = boto3.client) -> JobFinisher:
    region = os.environ["AWS_REGION"]
    settings = json.loads(os.environ["TASK_SETTINGS"])
    return JobFinisher(
        s3_client=make_client("s3", region_name=region),
        sns_client=make_client("sns", region_name=region),
        ledger=Ledger(make_client("dynamodb", region_name=region), os.environ["LEDGER_TABLE_NAME"]),
        backend=GroundTruthBackend(
            make_client("sagemaker", region_name=region),
            region=region,
            workteam_arn=os.environ["WORKTEAM_ARN"],
            role_arn=os.environ["GROUND_TRUTH_ROLE_ARN"],
        ),
        bucket=os.environ["BUCKET_NAME"],
        topic_arn=os.environ["RESULTS_TOPIC_ARN"],
        labels=settings["labels"],
        label_attribute=settings["labelAttributeName"],
        lease_seconds=int(os.environ.get("JOB_LEASE_SECONDS", "660")),
    )


_finisher: JobFinisher | None = None


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _finisher
    try:
        job_name, reported = job_name_from_event(event)
    except NotAJobEvent as error:
        logger.warning("ignored event", extra={"reason": str(error)})
        metrics.add_metric(name="JobEventsIgnored", unit=MetricUnit.Count, value=1)
        return {"action": "ignored", "reason": str(error)}
    if _finisher is None:
        _finisher = build_finisher()
    try:
        outcome = _finisher.handle(job_name)
    except Exception:
        # Lambda retries the event, then sends it to the failed-events queue; this line says which job.
        logger.exception("job event failed", extra={"job_name": job_name, "reported_status": reported})
        raise
    logger.info(
        "job event handled",
        extra={
            "job_name": job_name,
            "reported_status": reported,
            "action": outcome.action,
            "image_count": (outcome.summary or {}).get("images", (outcome.summary or {}).get("imagesToRelabel")),
        },
    )
    metric = {"exported": "JobsCompleted", "relabel-marked": "JobsFailedOrStopped"}.get(
        outcome.action, "JobEventsSkipped"
    )
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return {"action": outcome.action, "job": job_name}
