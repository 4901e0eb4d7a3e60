"""Job-events Lambda: the labeling backend's job-end signal -> export or relabel marking.

Three ways in: the backend's signal as an event (Ground Truth: EventBridge), the backend's webhook through
the function's URL (Label Studio: answered with an HTTP status, the secret checked by the backend), and an
EventBridge schedule, the reconciler, which asks the backend about every open job (a signal can be lost).
The backend parses its own signal (`BackendParts.parse_job_event`); the job end itself is the same for
every backend (job_results.JobFinisher).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeling_pipeline.backends import LabelingBackend, NotAJobEvent, UnauthenticatedJobEvent
from labeling_pipeline.backends.registry import parts
from labeling_pipeline.job_results import JobFinisher, Outcome
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.runtime import backend_resources, pipeline_settings
from labeling_pipeline.settings import DEFAULT_METRIC_NAMESPACE

logger = Logger(service="labeling-job-events")
metrics = Metrics(namespace=os.environ.get(Env.METRIC_NAMESPACE, DEFAULT_METRIC_NAMESPACE))


def build_finisher(make_client: Callable[..., Any] = boto3.client) -> tuple[JobFinisher, LabelingBackend]:
    region = os.environ["AWS_REGION"]
    settings = pipeline_settings()
    backend = parts(settings.backend).build(settings, backend_resources(), make_client, region)
    finisher = JobFinisher(
        s3_client=make_client("s3", region_name=region),
        sns_client=make_client("sns", region_name=region),
        ledger=Ledger(make_client("dynamodb", region_name=region), os.environ[Env.LEDGER_TABLE_NAME]),
        backend=backend,
        bucket=os.environ[Env.BUCKET_NAME],
        topic_arn=os.environ[Env.RESULTS_TOPIC_ARN],
        labels=settings.labels,
        prelabel=settings.prelabel,
        lease_seconds=int(os.environ.get(Env.JOB_LEASE_SECONDS, "660")),
    )
    return finisher, backend


_finisher: JobFinisher | None = None
_backend: LabelingBackend | None = None

# The scheduled reconciler asks about the jobs created in this window that have not ended.
RECONCILE_WINDOW = timedelta(days=30)
# A signal that some answer changed without naming the job (Label Studio's deletion webhook) rechecks these.
RECENT_JOBS_RECHECKED = 20


def is_schedule(event: dict[str, Any]) -> bool:
    """An EventBridge schedule's event: the reconciler's tick."""
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def is_http_request(event: dict[str, Any]) -> bool:
    """A request through the function's URL (a backend's webhook): answered with an HTTP status."""
    return isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]


def _http(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _parts() -> tuple[JobFinisher, LabelingBackend]:
    global _finisher, _backend
    if _finisher is None or _backend is None:
        _finisher, _backend = build_finisher()
    return _finisher, _backend


def _record(outcome: Outcome, reported: str) -> None:
    if outcome.action == "failed":
        logger.error(
            "job event failed",
            extra={"job_name": outcome.job_name, "reported_status": reported, "reason": outcome.error},
        )
        metrics.add_metric(name="JobEventsFailed", unit=MetricUnit.Count, value=1)
        return
    logger.info(
        "job event handled",
        extra={
            "job_name": outcome.job_name,
            "reported_status": reported,
            "action": outcome.action,
            "image_count": (outcome.summary or {}).get("images", (outcome.summary or {}).get("imagesToRelabel")),
        },
    )
    metric = {
        "exported": "JobsCompleted",
        "re-exported": "JobsExportedAgain",
        "relabel-marked": "JobsFailedOrStopped",
        "step-taken": "JobStepsTaken",
    }
    metrics.add_metric(name=metric.get(outcome.action, "JobEventsSkipped"), unit=MetricUnit.Count, value=1)


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    settings = pipeline_settings()
    if is_schedule(event):
        finisher, _backend_unused = _parts()
        outcomes = finisher.reconcile(datetime.now(UTC) - RECONCILE_WINDOW)
        for outcome in outcomes:
            _record(outcome, "reconciler")
        finished = [o.job_name for o in outcomes if o.action in ("exported", "relabel-marked")]
        failed = [o.job_name for o in outcomes if o.action == "failed"]
        metrics.add_metric(name="OpenJobsReconciled", unit=MetricUnit.Count, value=len(outcomes))
        logger.info(
            "reconciled open jobs",
            extra={"jobs_checked": len(outcomes), "jobs_finished": finished, "jobs_failed": failed},
        )
        return {"action": "reconciled", "checked": len(outcomes), "finished": finished, "failed": failed}
    try:
        job_event = parts(settings.backend).parse_job_event(event)
    except NotAJobEvent as error:
        logger.warning("ignored event", extra={"reason": str(error)})
        metrics.add_metric(name="JobEventsIgnored", unit=MetricUnit.Count, value=1)
        return {"action": "ignored", "reason": str(error)}
    finisher, backend = _parts()
    backend.authenticate(job_event)
    reported = job_event.reported_state
    try:
        if job_event.job_name is None:
            outcomes = finisher.recheck_recent(RECENT_JOBS_RECHECKED)
        else:
            outcomes = [finisher.handle(job_event.job_name, results_changed=job_event.results_changed)]
    except Exception:
        # Lambda retries the event, then sends it to the failed-events queue; this line says which job.
        logger.exception("job event failed", extra={"job_name": job_event.job_name, "reported_status": reported})
        raise
    for outcome in outcomes:
        _record(outcome, reported)
    if len(outcomes) == 1:
        return {"action": outcomes[0].action, "job": outcomes[0].job_name}
    return {"action": "rechecked", "jobs": {o.job_name: o.action for o in outcomes}}


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not is_http_request(event):
        return handle_event(event)
    # A webhook: the sender (Label Studio waits 1 s, never retries) hears 403 for a wrong secret, 200 once
    # handled; a failure answers 500 and the scheduled reconciler finishes the job later.
    try:
        return _http(200, handle_event(event))
    except UnauthenticatedJobEvent as error:
        logger.warning("refused job event", extra={"reason": str(error)})
        metrics.add_metric(name="JobEventsRefused", unit=MetricUnit.Count, value=1)
        return _http(403, {"action": "refused"})
    except Exception:
        logger.exception("webhook failed")
        metrics.add_metric(name="JobEventsFailed", unit=MetricUnit.Count, value=1)
        return _http(500, {"action": "failed"})
