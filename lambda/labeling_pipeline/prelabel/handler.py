"""Pre-label Lambda: SQS batch of S3 upload events -> proposals files -> the same messages on the launch queue.

Deployed only when `labeling.prelabel` is set, between the upload queue and the launcher (stage.py says what
happens to each message). The predictor (an ONNX model read from S3, or a SageMaker AI endpoint's client) is
built on the first image that needs it and kept for the container's life; one that cannot be built is tried
again after `PREDICTOR_RETRY_SECONDS`, not on every batch.
"""

from __future__ import annotations

import os
import threading
import time
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
from botocore.config import Config

from labeling_pipeline.backends.registry import parts
from labeling_pipeline.images import ImageLimits
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel.predictors import (
    ENDPOINT_CLIENT_CONFIG,
    EndpointPredictor,
    OnnxPredictor,
    PredictionError,
    Predictor,
)
from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.prelabel.stage import DEFAULT_RESERVE_SECONDS, LOG_SERVICE, PrelabelStage, StageCounts
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import DEFAULT_METRIC_NAMESPACE

logger = Logger(service=LOG_SERVICE)
metrics = Metrics(namespace=os.environ.get(Env.METRIC_NAMESPACE, DEFAULT_METRIC_NAMESPACE))

PREDICTOR_RETRY_SECONDS = 300.0
# S3 reads of images up to the backend's 40 MB limit and of the model: bounded, so that a stalled connection
# fails over to a retry instead of holding the batch until the Lambda's timeout.
S3_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 3})


class MessageFailed(Exception):
    """Raised for a message that must come back (reported in batchItemFailures)."""


class CachedPredictor:
    """Builds the predictor once per container, whichever thread asks first; a failed build is remembered for
    `retry_seconds`, so that a missing or broken model is not downloaded again for every batch."""

    def __init__(
        self,
        build: Callable[[], Predictor],
        retry_seconds: float = PREDICTOR_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._predictor: Predictor | None = None
        self._failure: tuple[float, str] | None = None

    def __call__(self) -> Predictor:
        with self._lock:
            if self._predictor is not None:
                return self._predictor
            if self._failure is not None and self._clock() - self._failure[0] < self._retry_seconds:
                raise PredictionError(f"the predictor could not be built: {self._failure[1]}")
            try:
                self._predictor = self._build()
            except Exception as error:
                self._failure = (self._clock(), f"{type(error).__name__}: {error}")
                raise
            self._failure = None
            return self._predictor


def predictor_builder(
    settings: PrelabelSettings, s3: Any, make_client: Callable[..., Any], region: str
) -> CachedPredictor:
    if settings.endpoint_name is not None:
        runtime = make_client("sagemaker-runtime", region_name=region, config=ENDPOINT_CLIENT_CONFIG)
        return CachedPredictor(lambda: EndpointPredictor.from_settings(settings, runtime))
    return CachedPredictor(lambda: OnnxPredictor.from_s3(s3, settings))


@dataclass
class Environment:
    bucket: str
    launch_queue_url: str
    s3: Any
    sqs: Any
    settings: PrelabelSettings
    limits: ImageLimits
    predictor: CachedPredictor


def build_environment(make_client: Callable[..., Any] = boto3.client) -> Environment:
    """Clients, settings and the (not yet built) predictor from the Lambda environment, once per container."""
    region = os.environ["AWS_REGION"]
    settings = pipeline_settings()
    if settings.prelabel is None:
        raise RuntimeError(
            f"{Env.PIPELINE_SETTINGS} has no labeling.prelabel: this function is deployed only when it is set"
        )
    s3 = make_client("s3", region_name=region, config=S3_CLIENT_CONFIG)
    sqs = make_client("sqs", region_name=region)
    return Environment(
        bucket=os.environ[Env.BUCKET_NAME],
        launch_queue_url=os.environ[Env.LAUNCH_QUEUE_URL],
        s3=s3,
        sqs=sqs,
        settings=settings.prelabel,
        limits=parts(settings.backend).limits,
        predictor=predictor_builder(settings.prelabel, s3, make_client, region),
    )


_environment: Environment | None = None


def _env() -> Environment:
    global _environment
    if _environment is None:
        _environment = build_environment()
    return _environment


def stage_for(env: Environment, remaining_seconds: float) -> PrelabelStage:
    return PrelabelStage(
        s3_client=env.s3,
        sqs_client=env.sqs,
        bucket=env.bucket,
        launch_queue_url=env.launch_queue_url,
        settings=env.settings,
        predictor_factory=env.predictor,
        limits=env.limits,
        deadline=time.monotonic() + remaining_seconds,
        # A short timeout still predicts: at most a quarter of it is kept back.
        reserve_seconds=min(DEFAULT_RESERVE_SECONDS, remaining_seconds / 4),
    )


def _add_metrics(counts: StageCounts) -> None:
    for name, value in (
        ("ImagesPrelabeled", counts.predicted),
        ("PrelabelFailures", counts.failed),
        ("ImagesHeldOut", counts.held_out),
        ("PrelabelSkippedForTime", counts.skipped_for_time),
        ("ProposalsAlreadyThere", counts.already_there),
        ("MessagesForwarded", counts.forwarded),
        ("MessagesRetried", counts.retried),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    env = _env()
    stage = stage_for(env, context.get_remaining_time_in_millis() / 1000)
    verdict = stage.handle(event.get("Records", []))
    _add_metrics(stage.counts)
    logger.info("batch handled", extra={"messages": len(verdict), **vars(stage.counts)})

    def record_handler(record: SQSRecord) -> None:
        reason = verdict.get(record.message_id)
        if reason is not None:
            raise MessageFailed(reason)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
