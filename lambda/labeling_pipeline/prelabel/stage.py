"""The pre-label stage: between the upload queue and the launcher, a detector's proposals for each new image.

For each SQS message of S3 upload events, each image the backend can take (`skip_reason`) gets, at
`proposal_key`, a proposals file: none at all when one is already there (a retry, a duplicate event), an empty
held-out one for the `holdOutPercent` share (`held_out`), or the predictor's boxes. Then every message goes on to
the launch queue with its body unchanged; messages that are not S3 events, S3's test event and objects the backend
cannot take go on too, for the launcher to dead-letter, ignore or skip as it does without this stage.

A model that is down, slow or broken costs pre-labels, never images: any failure to read an image or to predict
is logged and counted, and the image goes on without proposals. So does every image left once the Lambda's
remaining time drops under the reserve kept for forwarding. A message comes back (batchItemFailures) only when
it was not forwarded, or when the proposals of an image it holds could not be written for a reason that passes
with time (then it is not forwarded yet, so the launcher sees it once its proposals are there). From the
`GIVE_UP_AT_RECEIVE`-th receive on, such a message goes on without them rather than come back again: the queue
dead-letters a message after its last receive, and that would cost the image.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from labeling_pipeline.image_header import HEADER_BYTES
from labeling_pipeline.images import ImageLimits, ImageRef, UploadedObject, skip_reason
from labeling_pipeline.prelabel.holdout import held_out
from labeling_pipeline.prelabel.predictors import Prediction, PredictionError, Predictor, header_size
from labeling_pipeline.prelabel.proposals import Proposal, encode, proposal_key
from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.s3_events import NotAnS3Event, parse_message

LOG_SERVICE = "labeling-prelabel"
logger = Logger(service=LOG_SERVICE, child=True)

SQS_BATCH_LIMIT = 10  # entries per SendMessageBatch
# Time kept back from predicting, for writing the last proposals and forwarding the batch.
DEFAULT_RESERVE_SECONDS = 10.0
# The upload queue's maxReceiveCount is 5 (stacks/constructs/launch_pipeline.py): a message whose proposals still
# cannot be written on its third receive goes on without them, with receives to spare for a forward that fails.
GIVE_UP_AT_RECEIVE = 3
MAX_REASON_LENGTH = 500

# S3 and SQS answers that pass with time. Anything else (AccessDenied, a KMS key that is disabled, NoSuchBucket)
# will fail the same way on every retry, until the message is dead-lettered and its image lost with it.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "OperationAborted",
        "RequestTimeout",
        "RequestThrottled",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "KMS.ThrottlingException",
    }
)
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def is_transient(error: Exception) -> bool:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
    # No answer at all (refused, reset, timed out): the request may go through next time.
    return isinstance(error, BotocoreConnectionError | HTTPClientError)


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return f"{code}: {error}"[:MAX_REASON_LENGTH]
    return f"{type(error).__name__}: {error}"[:MAX_REASON_LENGTH]


@dataclass
class StageCounts:
    """One batch, for the function's metrics. Each image the backend can take, once per batch, is in exactly one
    of the first six; messages in one of the last two."""

    predicted: int = 0  # proposals written from a prediction
    held_out: int = 0  # held-out files written
    already_there: int = 0  # a proposals file was there: not predicted again
    failed: int = 0  # no proposals: the image, the model, the endpoint or a permanent write failure
    skipped_for_time: int = 0  # no proposals: the Lambda's time ran short
    write_retried: int = 0  # proposals not written for now: the message comes back
    forwarded: int = 0  # messages sent on to the launch queue
    retried: int = 0  # messages reported in batchItemFailures


class _OutOfTime(Exception):
    pass


class PrelabelStage:
    """One batch's work. `predictor_factory` is called on the first image to predict, in the prediction thread
    (so the deadline bounds loading a model too); the caller keeps what it builds from one batch to the next.
    `deadline` is a `clock()` reading (time.monotonic by default) past which the Lambda is gone; None for none."""

    def __init__(
        self,
        *,
        s3_client: Any,
        sqs_client: Any,
        bucket: str,
        launch_queue_url: str,
        settings: PrelabelSettings,
        predictor_factory: Callable[[], Predictor],
        limits: ImageLimits,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        reserve_seconds: float = DEFAULT_RESERVE_SECONDS,
        give_up_at_receive: int = GIVE_UP_AT_RECEIVE,
    ) -> None:
        self._s3 = s3_client
        self._sqs = sqs_client
        self._bucket = bucket
        self._launch_queue_url = launch_queue_url
        self._settings = settings
        self._factory = predictor_factory
        self._limits = limits
        self._deadline = deadline
        self._clock = clock
        self._reserve = reserve_seconds
        self._give_up_at_receive = give_up_at_receive
        self.counts = StageCounts()
        self._predictor: Predictor | None = None
        self._factory_error: Exception | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._out_of_time = False

    # --- the batch ----------------------------------------------------------------------------------------------

    def handle(self, records: list[dict[str, Any]]) -> dict[str, str | None]:
        """Per message id, None when it is done (forwarded), or why it must come back."""
        self.counts = StageCounts()
        verdict: dict[str, str | None] = {}
        to_forward: list[dict[str, Any]] = []
        decided: dict[ImageRef, str | None] = {}  # an image named by two messages of the batch is done once
        try:
            for record in records:
                reason = self._message(record, decided)
                if reason is None:
                    to_forward.append(record)
                else:
                    verdict[record["messageId"]] = reason
        finally:
            if self._executor is not None:
                # Without waiting: a prediction that overran the deadline may still be running; it ends on its own.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
        if self.counts.skipped_for_time:
            logger.warning(
                "time ran short: images forwarded without proposals",
                extra={"image_count": self.counts.skipped_for_time},
            )
        verdict.update(self._forward(to_forward))
        self.counts.retried = sum(reason is not None for reason in verdict.values())
        return verdict

    def _message(self, record: dict[str, Any], decided: dict[ImageRef, str | None]) -> str | None:
        message_id = record["messageId"]
        try:
            parsed = parse_message(message_id, record.get("body", ""))
        except NotAnS3Event:
            return None  # the launcher dead-letters it, with the reason
        receives = _receive_count(record)
        reasons = []
        for uploaded in parsed.objects:
            if skip_reason(uploaded, self._bucket, self._limits) is not None:
                continue  # the launcher logs and counts the skip
            image = uploaded.image_ref()
            if image not in decided:
                decided[image] = self._image(uploaded, image, receives)
            if decided[image] is not None:
                reasons.append(decided[image])
        return reasons[0] if reasons else None

    # --- one image ----------------------------------------------------------------------------------------------

    def _image(self, uploaded: UploadedObject, image: ImageRef, receives: int) -> str | None:
        """None when the image may go on (with or without proposals), or why its message must come back."""
        if self._short_of_time():
            self.counts.skipped_for_time += 1
            return None
        key = proposal_key(self._settings.model_version, image)
        try:
            if self._exists(key):
                self.counts.already_there += 1
                return None
            if held_out(image.source_ref, image.version, self._settings.hold_out_percent):
                width, height = self._header_size(uploaded)
                proposal = Proposal(self._settings.model_version, image, width, height, held_out=True)
                return self._write(key, proposal, image, receives)
            data = self._read(uploaded)
            prediction = self._predict(data)
        except _OutOfTime:
            self.counts.skipped_for_time += 1
            return None
        except Exception as error:
            # Whatever went wrong (the image, the model, the endpoint, numpy), the image goes on without proposals.
            self.counts.failed += 1
            logger.warning(
                "no proposals for this image",
                extra={"image": image.image_id, "reason": _describe(error), "error_type": type(error).__name__},
            )
            return None
        proposal = Proposal(
            self._settings.model_version,
            image,
            prediction.image_width,
            prediction.image_height,
            prediction.boxes,
            dropped=dict(prediction.dropped),
        )
        return self._write(key, proposal, image, receives)

    def _exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in MISSING_CODES:
                # A 403 here is a role without s3:ListBucket (S3 then hides a missing key's 404). Predicting again
                # writes the same bytes, so go on as if it were missing.
                logger.info("proposals file not checked", extra={"key": key, "reason": _describe(error)})
            return False
        except BotoCoreError as error:
            logger.info("proposals file not checked", extra={"key": key, "reason": _describe(error)})
            return False
        return True

    def _object_arguments(self, uploaded: UploadedObject) -> dict[str, Any]:
        """GetObject's arguments for exactly the version the event names: its version id, or, in a bucket without
        versioning, its ETag, so that an image overwritten since is not predicted under the old upload's name."""
        arguments: dict[str, Any] = {"Bucket": uploaded.bucket, "Key": uploaded.key}
        if uploaded.version_id:
            arguments["VersionId"] = uploaded.version_id
        elif uploaded.etag:
            arguments["IfMatch"] = f'"{uploaded.etag}"'
        return arguments

    def _header_size(self, uploaded: UploadedObject) -> tuple[int, int]:
        try:
            response = self._s3.get_object(**self._object_arguments(uploaded), Range=f"bytes=0-{HEADER_BYTES - 1}")
            return header_size(response["Body"].read())
        except (ClientError, BotoCoreError) as error:
            # A held-out file's size is for the report only: without it, the image is still kept back.
            logger.info("held-out image's size unknown", extra={"key": uploaded.key, "reason": _describe(error)})
            return 0, 0

    def _read(self, uploaded: UploadedObject) -> bytes:
        data: bytes = self._s3.get_object(**self._object_arguments(uploaded))["Body"].read()
        return data

    def _predict(self, data: bytes) -> Prediction:
        """The prediction, made in a worker thread so that one which overruns the deadline is left behind."""
        budget = self._budget()
        if budget <= 0:
            raise _OutOfTime()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prelabel-predict")
        future: Future[Prediction] = self._executor.submit(self._run_prediction, data)
        try:
            return future.result(timeout=None if budget == float("inf") else budget)
        except FutureTimeout:
            # The thread is still busy with it: nothing more can be predicted in this batch.
            self._out_of_time = True
            raise TimeoutError(f"the prediction did not finish in the {budget:.1f} s left before the reserve") from None

    def _run_prediction(self, data: bytes) -> Prediction:
        if self._factory_error is not None:
            # Once per batch: a model that cannot be loaded is not downloaded again for each image.
            raise PredictionError(f"no predictor: {_describe(self._factory_error)}")
        if self._predictor is None:
            try:
                self._predictor = self._factory()
            except Exception as error:
                self._factory_error = error
                logger.error("no predictor: images go on without proposals", extra={"reason": _describe(error)})
                raise
        return self._predictor.predict(data)

    def _write(self, key: str, proposal: Proposal, image: ImageRef, receives: int) -> str | None:
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=encode(proposal), ContentType="application/json")
        except (ClientError, BotoCoreError) as error:
            reason = f"proposals not written to {key}: {_describe(error)}"
            if is_transient(error) and receives < self._give_up_at_receive:
                self.counts.write_retried += 1
                logger.warning("proposals not written: message will be retried", extra={"reason": reason})
                return reason[:MAX_REASON_LENGTH]
            self.counts.failed += 1
            logger.error(
                "proposals not written: image forwarded without them",
                extra={"image": image.image_id, "reason": reason, "receive_count": receives},
            )
            return None
        if proposal.held_out:
            self.counts.held_out += 1
        else:
            self.counts.predicted += 1
        return None

    # --- time ---------------------------------------------------------------------------------------------------

    def _budget(self) -> float:
        if self._out_of_time:
            return 0.0
        if self._deadline is None:
            return float("inf")
        return self._deadline - self._clock() - self._reserve

    def _short_of_time(self) -> bool:
        if self._budget() <= 0:
            self._out_of_time = True
        return self._out_of_time

    # --- forwarding ---------------------------------------------------------------------------------------------

    def _forward(self, records: list[dict[str, Any]]) -> dict[str, str | None]:
        verdict: dict[str, str | None] = {}
        for start in range(0, len(records), SQS_BATCH_LIMIT):
            chunk = records[start : start + SQS_BATCH_LIMIT]
            # Ids by position: a message id is a UUID today, but an entry id must match [A-Za-z0-9_-]{1,80}.
            entries = [{"Id": f"m{index}", "MessageBody": record["body"]} for index, record in enumerate(chunk)]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._launch_queue_url, Entries=entries)
            except ClientError as error:
                if str(error.response.get("Error", {}).get("Code", "")).endswith("BatchRequestTooLong"):
                    # Ten bodies together over SQS's size limit: one at a time, each under it.
                    verdict.update(self._forward_one_by_one(chunk))
                    continue
                verdict.update(self._not_forwarded(chunk, error))
                continue
            except BotoCoreError as error:
                verdict.update(self._not_forwarded(chunk, error))
                continue
            failed = {entry["Id"]: entry for entry in response.get("Failed", [])}
            for index, record in enumerate(chunk):
                entry = failed.get(f"m{index}")
                if entry is None:
                    verdict[record["messageId"]] = None
                    self.counts.forwarded += 1
                else:
                    reason = f"not forwarded to the launch queue: {entry.get('Code', '')}: {entry.get('Message', '')}"
                    verdict[record["messageId"]] = reason[:MAX_REASON_LENGTH]
                    logger.error("message not forwarded", extra={"message_id": record["messageId"], "reason": reason})
        return verdict

    def _forward_one_by_one(self, records: list[dict[str, Any]]) -> dict[str, str | None]:
        verdict: dict[str, str | None] = {}
        for record in records:
            try:
                self._sqs.send_message(QueueUrl=self._launch_queue_url, MessageBody=record["body"])
            except (ClientError, BotoCoreError) as error:
                verdict.update(self._not_forwarded([record], error))
                continue
            verdict[record["messageId"]] = None
            self.counts.forwarded += 1
        return verdict

    def _not_forwarded(self, records: list[dict[str, Any]], error: Exception) -> dict[str, str | None]:
        reason = f"not forwarded to the launch queue: {_describe(error)}"[:MAX_REASON_LENGTH]
        message_ids = [record["messageId"] for record in records]
        logger.error("messages not forwarded", extra={"message_ids": message_ids, "reason": reason})
        return {record["messageId"]: reason for record in records}


def _receive_count(record: dict[str, Any]) -> int:
    try:
        return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    except (TypeError, ValueError, AttributeError):
        return 1
