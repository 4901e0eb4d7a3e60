"""Launcher Lambda: SQS batch of S3 notifications -> labeling jobs, with partial batch failures.

Each message ends one of four ways:
- done: every image in it belongs to a created job, or was skipped (logged and counted);
- backed off: the labeling service was unavailable for its images (or it is a message of that back-off
  received before its time); the message is sent again to the upload queue, delayed, and the received one is
  done, so an outage costs it no receive (backoff.py says how and why);
- retried: another transient failure (S3 or DynamoDB throttled or failing, another invocation starting the
  job) touched one of its images; it is reported in `batchItemFailures` and SQS delivers it again (after
  `maxReceiveCount` tries it lands in the DLQ);
- dead-lettered now: it is not an S3 event, or the failure cannot pass with time (bad request, the
  labeling service refusing the account); it is sent to the DLQ with the reason and removed from the queue.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeling_pipeline.backends import BackendUnavailableError, Limits
from labeling_pipeline.backends.registry import parts
from labeling_pipeline.backoff import Backoff, Deferral
from labeling_pipeline.images import ImageRef, SkipReason, UploadedObject, skip_reason, superseded_versions
from labeling_pipeline.launcher import ImageOutcome, Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.runtime import backend_resources, pipeline_settings
from labeling_pipeline.s3_events import NotAnS3Event, parse_message
from labeling_pipeline.settings import DEFAULT_METRIC_NAMESPACE

logger = Logger(service="labeling-launcher")
metrics = Metrics(namespace=os.environ.get(Env.METRIC_NAMESPACE, DEFAULT_METRIC_NAMESPACE))

MAX_REASON_LENGTH = 1000


class MessageFailed(Exception):
    """Raised for a message that must come back (reported in batchItemFailures)."""


@dataclass
class Environment:
    bucket: str
    dead_letter_queue_url: str
    s3: Any
    sqs: Any
    limits: Limits
    launcher: Launcher | None
    backend_error: str | None = None
    # None: failures for an unavailable service are retried by SQS like any other (no queue to send to).
    backoff: Backoff | None = None


def build_environment(
    make_client: Callable[..., Any] = boto3.client, clock: Callable[[], float] = time.time
) -> Environment:
    """Clients, settings and the labeling backend from the Lambda environment, once per container."""
    region = os.environ["AWS_REGION"]
    bucket = os.environ[Env.BUCKET_NAME]
    dead_letter_queue_url = os.environ[Env.DEAD_LETTER_QUEUE_URL]
    s3 = make_client("s3", region_name=region)
    sqs = make_client("sqs", region_name=region)
    settings = pipeline_settings()
    backend_parts = parts(settings.backend)
    try:
        backend = backend_parts.build(settings, backend_resources(), make_client, region)
    except BackendUnavailableError as error:
        logger.error("labeling backend unavailable", extra={"reason": str(error)})
        return Environment(bucket, dead_letter_queue_url, s3, sqs, backend_parts.limits, None, str(error))
    ledger = Ledger(make_client("dynamodb", region_name=region), os.environ[Env.LEDGER_TABLE_NAME])
    # The launcher's own queue, where it sends a message back while the labeling service is down.
    queue_url = os.environ.get(Env.LAUNCH_QUEUE_URL)
    backoff = Backoff(queue_url, clock) if queue_url else None
    if backoff is not None:
        backend = backoff.watch(backend)
    launcher = Launcher(s3_client=s3, ledger=ledger, backend=backend, bucket=bucket, settings=settings)
    return Environment(bucket, dead_letter_queue_url, s3, sqs, backend_parts.limits, launcher, backoff=backoff)


_environment: Environment | None = None


def _env() -> Environment:
    global _environment
    if _environment is None:
        _environment = build_environment()
    return _environment


def _send_to_dlq(env: Environment, record: dict[str, Any], reason: str) -> bool:
    try:
        env.sqs.send_message(
            QueueUrl=env.dead_letter_queue_url,
            MessageBody=record["body"],
            MessageAttributes={
                "FailureReason": {"DataType": "String", "StringValue": reason[:MAX_REASON_LENGTH]},
                "SourceMessageId": {"DataType": "String", "StringValue": record["messageId"]},
            },
        )
    except Exception:
        logger.exception("could not send message to the dead-letter queue", extra={"message_id": record["messageId"]})
        return False
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=1)
    logger.error("message sent to the dead-letter queue", extra={"message_id": record["messageId"], "reason": reason})
    return True


def _send_on(env: Environment, backoff: Backoff, record: dict[str, Any], deferral: Deferral) -> bool:
    """Send a message back to the upload queue, delayed (the back-off); False when SQS did not take it."""
    try:
        sent_as = backoff.send(env.sqs, record, deferral)
    except Exception:
        logger.exception(
            "could not send the message back to the upload queue", extra={"message_id": record["messageId"]}
        )
        return False
    logger.debug(
        "message sent back to the upload queue",
        extra={
            "message_id": record["messageId"],
            "sent_as": sent_as,
            "retry_at": deferral.retry_at,
            "delay_seconds": deferral.delay_seconds,
        },
    )
    return True


def _log_skip(
    uploaded: UploadedObject, reason: SkipReason, message_id: str, superseded_by: ImageRef | None = None
) -> None:
    metrics.add_metric(name=f"Skipped{reason.value}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
    details: dict[str, Any] = {
        "bucket": uploaded.bucket,
        "key": uploaded.key,
        "size": uploaded.size,
        "reason": reason.value,
        "message_id": message_id,
    }
    if superseded_by is not None:
        details["version"] = uploaded.image_ref().version
        details["superseded_by_version"] = superseded_by.version
    logger.warning("skipped object", extra=details)


def decide_messages(env: Environment, event: dict[str, Any]) -> dict[str, str | None]:
    """Return, per message id, None when the message is done (or sent back to the queue by the back-off), or why
    it must be retried."""
    records: list[dict[str, Any]] = event.get("Records", [])
    images_by_message: dict[str, list[ImageRef]] = {}
    verdict: dict[str, str | None] = {}
    labelable: list[tuple[str, UploadedObject]] = []
    backoff = env.backoff if env.launcher is not None else None
    if backoff is not None:
        backoff.new_batch()
    for record in records:
        message_id = record["messageId"]
        if backoff is not None and (ahead := backoff.ahead(record)) is not None:
            # Backing off, received before its time: sent on untried.
            sent = _send_on(env, backoff, record, ahead)
            verdict[message_id] = None if sent else "waiting for the labeling service; could not be sent on"
            continue
        try:
            parsed = parse_message(message_id, record.get("body", ""))
        except NotAnS3Event as error:
            reason = f"not an S3 event notification: {error}"
            verdict[message_id] = None if _send_to_dlq(env, record, reason) else reason
            continue
        if parsed.is_test_event:
            logger.info("ignoring s3:TestEvent", extra={"message_id": message_id})
            verdict[message_id] = None
            continue
        images_by_message[message_id] = []
        for uploaded in parsed.objects:
            reason_skipped = skip_reason(uploaded, env.bucket, env.limits)
            if reason_skipped is None:
                labelable.append((message_id, uploaded))
            else:
                _log_skip(uploaded, reason_skipped, message_id)
    replaced = superseded_versions([uploaded for _message_id, uploaded in labelable])
    for position, (message_id, uploaded) in enumerate(labelable):
        if position in replaced:
            _log_skip(uploaded, SkipReason.SUPERSEDED, message_id, superseded_by=replaced[position].image_ref())
        else:
            images_by_message[message_id].append(uploaded.image_ref())

    all_images = sorted({image for images in images_by_message.values() for image in images})
    outcomes: dict[ImageRef, ImageOutcome]
    if not all_images:
        outcomes = {}
    elif env.launcher is None:
        outcomes = dict.fromkeys(all_images, ImageOutcome(None, env.backend_error, retryable=False))
    else:
        outcomes = env.launcher.launch(all_images)
    metrics.add_metric(name="ImagesAccepted", unit=MetricUnit.Count, value=len(all_images))

    failed_jobs = Counter((o.job_name, o.error, o.retryable) for o in outcomes.values() if not o.ok)
    for (job_name, failure_reason, retryable_failure), image_count in sorted(failed_jobs.items(), key=str):
        # One line per job that could not be finished, so a search on the job name finds why.
        logger.warning(
            "labeling job not created",
            extra={
                "job_name": job_name,
                "image_count": image_count,
                "reason": failure_reason,
                "retryable": retryable_failure,
            },
        )

    by_record = {record["messageId"]: record for record in records}
    for message_id, images in images_by_message.items():
        failures = [outcomes[image] for image in images if not outcomes[image].ok]
        retryable = [failure for failure in failures if failure.retryable]
        if retryable and backoff is not None and backoff.outage(failure.job_name for failure in retryable):
            deferral = backoff.defer(by_record[message_id])
            if deferral is not None and _send_on(env, backoff, by_record[message_id], deferral):
                verdict[message_id] = None
                metrics.add_metric(name="MessagesBackedOff", unit=MetricUnit.Count, value=1)
                logger.warning(
                    "labeling service unavailable: message backs off",
                    extra={
                        "message_id": message_id,
                        "job_name": retryable[0].job_name,
                        "image_count": len(images),
                        "reason": retryable[0].error,
                        "outage_since": deferral.outage_since,
                        "retry_at": deferral.retry_at,
                    },
                )
                continue
            if deferral is None:
                logger.error(
                    "labeling service unavailable past the back-off: message retried as usual",
                    extra={"message_id": message_id, "job_name": retryable[0].job_name},
                )
        if retryable:
            verdict[message_id] = retryable[0].error or "retryable failure"
            metrics.add_metric(name="MessagesRetried", unit=MetricUnit.Count, value=1)
            logger.warning(
                "message will be retried",
                extra={
                    "message_id": message_id,
                    "job_name": retryable[0].job_name,
                    "image_count": len(images),
                    "reason": verdict[message_id],
                },
            )
        elif failures:
            reason = failures[0].error or "permanent failure"
            verdict[message_id] = None if _send_to_dlq(env, by_record[message_id], reason) else reason
        else:
            verdict[message_id] = None
    if logger.log_level <= logging.DEBUG:
        for image, outcome in outcomes.items():
            if outcome.ok:
                logger.debug("image assigned", extra={"image": image.source_ref, "job_name": outcome.job_name})
    return verdict


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    env = _env()
    verdict = decide_messages(env, event)
    created = list(env.launcher.jobs_created) if env.launcher is not None else []
    for job, image_count in created:
        logger.info("labeling job created", extra={"job_name": job, "image_count": image_count})
    metrics.add_metric(name="LabelingJobsCreated", unit=MetricUnit.Count, value=len(created))
    if env.launcher is not None:
        env.launcher.jobs_created.clear()
        for image, why in env.launcher.unreadable_proposals:
            logger.warning("proposals not shown: unreadable", extra={"image": image.image_id, "reason": why})
        if env.launcher.unreadable_proposals:
            metrics.add_metric(
                name="ProposalsUnreadable", unit=MetricUnit.Count, value=len(env.launcher.unreadable_proposals)
            )
        env.launcher.unreadable_proposals.clear()
    logger.info(
        "batch handled",
        extra={
            "messages": len(verdict),
            "messages_retried": sum(reason is not None for reason in verdict.values()),
            "jobs_created": [job for job, _count in created],
            "image_count": sum(count for _job, count in created),
        },
    )

    def record_handler(record: SQSRecord) -> None:
        reason = verdict.get(record.message_id)
        if reason is not None:
            raise MessageFailed(reason)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
