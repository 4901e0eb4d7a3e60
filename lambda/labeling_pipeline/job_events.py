"""Job-events Lambda: the labeling backend's job-end signal -> export or relabel marking.

The backend parses its own signal (`BackendParts.parse_job_event`); the job end itself is the same for
every backend (job_results.JobFinisher).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeling_pipeline.backends import NotAJobEvent
from labeling_pipeline.backends.registry import parts
from labeling_pipeline.job_results import JobFinisher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.runtime import backend_resources, pipeline_settings
from labeling_pipeline.settings import DEFAULT_METRIC_NAMESPACE

logger = Logger(service="labeling-job-events")
metrics = Metrics(namespace=os.environ.get(Env.METRIC_NAMESPACE, DEFAULT_METRIC_NAMESPACE))


def build_finisher(make_client: Callable[..., Any] = boto3.client) -> JobFinisher:
    region = os.environ["AWS_REGION"]
    settings = pipeline_settings()
    return JobFinisher(
        s3_client=make_client("s3", region_name=region),
        sns_client=make_client("sns", region_name=region),
        ledger=Ledger(make_client("dynamodb", region_name=region), os.environ[Env.LEDGER_TABLE_NAME]),
        backend=parts(settings.backend).build(settings, backend_resources(), make_client, region),
        bucket=os.environ[Env.BUCKET_NAME],
        topic_arn=os.environ[Env.RESULTS_TOPIC_ARN],
        labels=settings.labels,
        lease_seconds=int(os.environ.get(Env.JOB_LEASE_SECONDS, "660")),
    )


_finisher: JobFinisher | None = None


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _finisher
    settings = pipeline_settings()
    try:
        job_event = parts(settings.backend).parse_job_event(event)
    except NotAJobEvent as error:
        logger.warning("ignored event", extra={"reason": str(error)})
        metrics.add_metric(name="JobEventsIgnored", unit=MetricUnit.Count, value=1)
        return {"action": "ignored", "reason": str(error)}
    job_name, reported = job_event.job_name, job_event.reported_state
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
