"""Backing off while the labeling service is down, so that a long outage costs an upload none of its receives.

Without it, every failed try of an upload's message is one of its 5 receives (the upload queue's
maxReceiveCount), 30 minutes apart (the queue's visibility timeout): a Label Studio outage longer than about
2.5 hours (an upgrade, a restore) dead-lettered the uploads that arrived during it.

A try failed *because the service is unavailable* when the labeling backend's `create_job` raised a
`TransientBackendError`: Label Studio refusing connections, not answering in time, answering 5xx or 429
(`LabelStudioUnavailable`, and `StartOutcomeUnknown` for an import that may have been done), Ground Truth
throttled, failing with a 5xx or at its limit of running jobs. S3 and DynamoDB errors, the launcher's own
(another invocation holds the job's start lease) and anything a backend calls permanent are the message's own
trouble and keep the usual rule: retried by SQS, dead-lettered after 5 receives.

On such a failure the handler sends the message again to its own queue, delayed, with two message attributes
(when the outage began for it, when to try next), and lets the received one be deleted. The new message starts
at receive count 1, so while an outage lasts no message nears maxReceiveCount, and a poison message still
reaches the dead-letter queue after the same 5 receives as before. The wait grows with the outage (15 minutes,
then as long as the outage has lasted) up to an hour, so that once the service is back every upload's job
starts within the hour, and a service that stays down sees at most one try an hour from each batch. SendMessage
delays a message by 15 minutes at most, so a longer wait is a chain: a message received before its time is
sent on untried. Within one invocation, once the service failed, the other jobs of the batch are not tried
(a service that hangs would otherwise hold the invocation past its timeout, which costs every message of the
batch a receive). After OUTAGE_BUDGET_SECONDS the back-off stops and the usual tries follow, so an upload that
never gets through (a service that fails on this one upload only) still ends in the dead-letter queue, alarmed.

Why not extend the received message's visibility instead (ChangeMessageVisibility, 0 to 43,200 seconds, 12 hours
at most: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html)?
SQS keeps no counter on a message other than its receive count, which every receive raises, and a message's
attributes cannot be changed. maxReceiveCount would have to cover a day of back-off receives (7 with waits
doubling from 30 minutes to 12 hours), and then a poison message would get that many tries too; or the handler
would have to dead-letter a message itself after 5 receives, and an upload back from an outage would be
dead-lettered at its first ordinary failure. A new message carries its
own count, and the time of its outage in an attribute. A new message may also be one too many (sent, then the
received one not deleted): the ledger makes every image one job whatever the number of deliveries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labeling_pipeline.backends import JobDescription, JobEvent, JobRequest, LabelingBackend, TransientBackendError
from labeling_pipeline.labels import LabeledImage, ReadStats

# Message attributes of a message sent on by the back-off: epoch seconds.
OUTAGE_SINCE = "OutageSince"  # the first try of this upload that found the service unavailable
RETRY_AT = "RetryAt"  # not tried before then

# SendMessage's DelaySeconds: 0 to 900 (15 minutes)
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
MAX_DELAY_SECONDS = 900
FIRST_WAIT_SECONDS = MAX_DELAY_SECONDS  # one delayed message, no hop
MAX_WAIT_SECONDS = 3600  # how late a job may start once the service is back
# Long enough for a weekend (Friday evening to Monday morning is 63 hours); then 5 tries, 30 minutes apart.
OUTAGE_BUDGET_SECONDS = 3 * 24 * 3600


def wait_seconds(outage_seconds: float) -> int:
    """How long to wait before the next try, the outage having lasted `outage_seconds` so far."""
    return int(min(MAX_WAIT_SECONDS, max(FIRST_WAIT_SECONDS, outage_seconds)))


@dataclass(frozen=True)
class Deferral:
    """A message to send on: its attributes and its delay."""

    outage_since: int
    retry_at: int
    delay_seconds: int

    def message_attributes(self) -> dict[str, dict[str, str]]:
        return {
            OUTAGE_SINCE: {"DataType": "Number", "StringValue": str(self.outage_since)},
            RETRY_AT: {"DataType": "Number", "StringValue": str(self.retry_at)},
        }


def _attribute(record: dict[str, Any], name: str) -> int | None:
    """A Number message attribute of a record as Lambda hands it over ({"stringValue", "dataType"}; see the
    example event in https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html)."""
    value = ((record.get("messageAttributes") or {}).get(name) or {}).get("stringValue")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ServiceFailedEarlier(TransientBackendError):
    """The labeling service failed for another job of this batch: this one is not tried."""


@dataclass
class Backoff:
    """The back-off of one launcher: the queue it sends messages on to, the clock, and which jobs of the
    current batch found the service unavailable (filled by the backend that `watch` wraps)."""

    queue_url: str
    clock: Callable[[], float] = time.time
    unavailable: set[str] = field(default_factory=set)

    def watch(self, backend: LabelingBackend) -> LabelingBackend:
        return _Watched(backend, self.unavailable)

    def new_batch(self) -> None:
        self.unavailable.clear()

    def outage(self, job_names: Iterable[str | None]) -> bool:
        """True when every one of these failed jobs found the labeling service unavailable."""
        return all(name is not None and name in self.unavailable for name in job_names)

    def ahead(self, record: dict[str, Any]) -> Deferral | None:
        """A message received before its time: how to send it on, untried. None: its time has come."""
        retry_at = _attribute(record, RETRY_AT)
        now = self.clock()
        if retry_at is None or retry_at <= now:
            return None
        since = _attribute(record, OUTAGE_SINCE)
        delay = min(MAX_DELAY_SECONDS, math.ceil(retry_at - now))
        return Deferral(since if since is not None else int(now), retry_at, delay)

    def defer(self, record: dict[str, Any]) -> Deferral | None:
        """The next try of a message that found the service unavailable; None once the outage budget is spent."""
        now = int(self.clock())
        since = _attribute(record, OUTAGE_SINCE)
        since = now if since is None or since > now else since
        if now - since >= OUTAGE_BUDGET_SECONDS:
            return None
        wait = wait_seconds(now - since)
        return Deferral(since, now + wait, min(MAX_DELAY_SECONDS, wait))

    def send(self, sqs: Any, record: dict[str, Any], deferral: Deferral) -> str:
        """Send the message on; returns the new message's id."""
        response = sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=record["body"],
            DelaySeconds=deferral.delay_seconds,
            MessageAttributes=deferral.message_attributes(),
        )
        return str(response.get("MessageId", "")) if isinstance(response, dict) else ""


class _Watched:
    """The labeling backend, noting each job whose start found the service unavailable; after the first, the
    batch's other jobs are not tried."""

    def __init__(self, backend: LabelingBackend, unavailable: set[str]) -> None:
        self._backend = backend
        self._unavailable = unavailable
        self.idempotent_start = backend.idempotent_start

    def create_job(self, request: JobRequest) -> str:
        if self._unavailable:
            self._unavailable.add(request.name)
            raise ServiceFailedEarlier(f"job {request.name} not started: the labeling service failed in this batch")
        try:
            return self._backend.create_job(request)
        except TransientBackendError:
            self._unavailable.add(request.name)
            raise

    def authenticate(self, event: JobEvent) -> None:
        self._backend.authenticate(event)

    def describe_job(self, name: str) -> JobDescription:
        return self._backend.describe_job(name)

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        return self._backend.read_results(description, stats)

    def take_step(self, description: JobDescription) -> str:
        return self._backend.take_step(description)
