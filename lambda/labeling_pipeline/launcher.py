"""Turn a set of new image versions into labeling jobs, each image in exactly one job.

The protocol (see docs/how-it-works.md, "Exactly once"):
1. Split the images into chunks of at most `max_images_per_job`; name each chunk's job from a digest
   of its images, and write the chunk as the job's candidate list (`jobs/<job>/candidates.json`).
2. Claim every candidate in the ledger with conditional writes, 100 to a transaction; the first job to
   claim an image owns it, and a repeated claim writes nothing and returns the owner.
3. For every job that owns one of the chunk's images (ours or another invocation's) and that the ledger
   does not show as created (one consistent BatchGetItem per chunk), *finish* it: read its
   candidates, claim any still unclaimed on its behalf, hand the images it owns to the labeling
   backend (which writes its task inputs and starts the job; an existing job with the same input counts
   as success), and mark it created. Every step is idempotent and any invocation can finish any job, so a crash,
   a retry, a duplicate or a concurrent batch ends with the same jobs and no image in two of them.
   A backend whose start is not idempotent (Label Studio's import makes a task each time) starts a job only
   under the job's start lease in the ledger: one invocation at a time, and a crashed one's lease lapses.
   A start whose outcome is unknown (the service may still be importing) keeps the lease until it lapses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeling_pipeline.backends import (
    BackendError,
    JobRequest,
    LabelingBackend,
    StartOutcomeUnknown,
    TransientBackendError,
)
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_naming import chunks, job_name
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import CANDIDATES_FILE, JOBS_PREFIX, OUTPUT_PREFIX
from labeling_pipeline.prelabel.proposals import Proposal, read_proposals
from labeling_pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class ImageOutcome:
    job_name: str | None
    error: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def job_prefix(name: str) -> str:
    """Where a job's task definition lives: its candidates and the backend's task inputs."""
    return f"{JOBS_PREFIX}{name}/"


def candidates_key(name: str) -> str:
    return job_prefix(name) + CANDIDATES_FILE


def read_candidates(s3_client: Any, bucket: str, name: str) -> list[ImageRef]:
    """The job's candidate list, as step 1 wrote it (before any of them was claimed)."""
    body = s3_client.get_object(Bucket=bucket, Key=candidates_key(name))["Body"].read()
    return [ImageRef(*entry) for entry in json.loads(body)]


def job_images(s3_client: Any, bucket: str, ledger: Ledger, name: str) -> dict[ImageRef, str | None]:
    """A job's images, each with its ledger status (None until the job ended): its candidates that the
    ledger gives it. One S3 GetObject and one consistent BatchGetItem per 100 candidates, so the cost
    follows the job's size and never the ledger's, and the answer sees every write made before it (no
    index lag). How the job end (`JobFinisher`) and `bbox-labeling relabel` find a job's images. Raises
    botocore's ClientError (NoSuchKey) when the bucket holds no candidate list for `name`."""
    return ledger.members(name, read_candidates(s3_client, bucket, name))


# A start lease outlives the launcher's timeout (stacks/constructs/launch_pipeline.py, 300 s), so it lapses
# only for an invocation that is gone.
START_LEASE_SECONDS = 360
# How long a launcher waits for another invocation that holds a job's start lease before it lets SQS retry.
START_WAIT_SECONDS = 20.0


class JobStartBusy(TransientBackendError):
    """Another invocation is starting the job; the message comes back after its visibility timeout."""


PERMANENT_AWS_ERRORS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "NoSuchBucket",
        "ResourceNotFoundException",
        "ValidationException",
    }
)


def _classify(error: Exception) -> tuple[str, bool]:
    if isinstance(error, BackendError):
        return str(error), error.retryable
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        # S3 and DynamoDB: throttling, 5xx and network trouble pass with time; these need a human.
        return f"{code}: {error}", code not in PERMANENT_AWS_ERRORS
    if isinstance(error, BotoCoreError):
        return str(error), True
    return f"{type(error).__name__}: {error}", True


class Launcher:
    def __init__(
        self,
        *,
        s3_client: Any,
        ledger: Ledger,
        backend: LabelingBackend,
        bucket: str,
        settings: PipelineSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._s3 = s3_client
        self._sleep = sleep
        self._ledger = ledger
        self._backend = backend
        self._bucket = bucket
        self._settings = settings
        self._clock = clock
        self.jobs_created: list[tuple[str, int]] = []
        # Proposals files that could not be read (image, why): the image is labeled without proposals.
        self.unreadable_proposals: list[tuple[ImageRef, str]] = []

    def launch(self, images: list[ImageRef]) -> dict[ImageRef, ImageOutcome]:
        outcomes: dict[ImageRef, ImageOutcome] = {}
        for chunk in chunks(images, self._settings.max_images_per_job):
            name = job_name(self._settings.job_name_prefix, self._clock(), chunk)
            try:
                self._put_json(candidates_key(name), [[i.bucket, i.key, i.version] for i in chunk])
                owners = self._ledger.claim_many(chunk, name)
                by_owner: dict[str, list[ImageRef]] = {}
                for image in chunk:
                    by_owner.setdefault(owners[image], []).append(image)
                created = self._ledger.created_jobs(by_owner)
            except Exception as error:
                message, retryable = _classify(error)
                outcomes.update(dict.fromkeys(chunk, ImageOutcome(None, message, retryable)))
                continue
            for owner in sorted(by_owner):
                owned = by_owner[owner]
                try:
                    if owner not in created:
                        self.finish(owner, known_owners=owners if owner == name else None, checked=True)
                    outcomes.update(dict.fromkeys(owned, ImageOutcome(owner)))
                except Exception as error:
                    message, retryable = _classify(error)
                    outcomes.update(dict.fromkeys(owned, ImageOutcome(owner, message, retryable)))
        return outcomes

    def finish(self, name: str, known_owners: dict[ImageRef, str] | None = None, *, checked: bool = False) -> int:
        """Bring job `name` to CREATED; return its image count (0 when it was already created).
        `checked`: the caller has just read that the job is not created."""
        if not checked and self._ledger.job_created(name):
            return 0
        if known_owners is not None:
            owners: dict[ImageRef, str | None] = dict(known_owners)
        else:
            owners = self._ledger.owners(read_candidates(self._s3, self._bucket, name))
            unclaimed = [image for image, owner in owners.items() if owner is None]
            if unclaimed:
                owners.update(self._ledger.claim_many(unclaimed, name))
        members = tuple(sorted(image for image, owner in owners.items() if owner == name))
        if not members:
            return 0
        leased = not self._backend.idempotent_start
        if leased and not self._take_start_lease(name):
            return 0
        try:
            request = JobRequest(
                name=name,
                images=members,
                bucket=self._bucket,
                task_prefix=job_prefix(name),
                output_prefix=OUTPUT_PREFIX,
                proposals=self._proposals(members),
            )
        except BaseException:
            if leased:
                self._ledger.release_job_start(name)
            raise
        try:
            input_uri = self._backend.create_job(request)
            self._ledger.mark_job_created(name, len(members), input_uri)
        except StartOutcomeUnknown:
            raise  # the lease lapses on its own, after whatever the service is still doing has landed
        except BaseException:
            if leased:
                self._ledger.release_job_start(name)
            raise
        self.jobs_created.append((name, len(members)))
        return len(members)

    def _proposals(self, members: tuple[ImageRef, ...]) -> dict[ImageRef, Proposal]:
        """The detector's proposals for the job's images, read when its job starts (not when the images were
        claimed), so that a job another invocation finishes gets them too."""
        if self._settings.prelabel is None:
            return {}
        found, unreadable = read_proposals(self._s3, self._bucket, self._settings.prelabel.model_version, members)
        self.unreadable_proposals.extend(sorted(unreadable.items()))
        return found

    def _take_start_lease(self, name: str) -> bool:
        """True with the lease held; False when another invocation created the job meanwhile; JobStartBusy
        when it still holds the lease after START_WAIT_SECONDS."""
        waited = 0.0
        while not self._ledger.try_lease_job_start(name, self._clock(), START_LEASE_SECONDS):
            if self._ledger.job_created(name):
                return False
            if waited >= START_WAIT_SECONDS:
                raise JobStartBusy(f"job {name} is being started by another invocation")
            self._sleep(0.5)
            waited += 0.5
        return True

    def _put_text(self, key: str, text: str, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def _put_json(self, key: str, value: Any) -> None:
        # Compact: json's C encoder only runs without `indent` (2.4x faster on a 1,000-image candidate list).
        self._put_text(key, json.dumps(value, ensure_ascii=False, separators=(",", ":")), "application/json")
