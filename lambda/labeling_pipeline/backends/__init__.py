"""The labeling backend seam: the event path, the job end, the exports and the CLI speak only to this.

A backend is a package beside this module (``backends/<name>/``) that `registry` maps its configuration
name to. It owns its task inputs, its limits, its job-end signal, the reading of its results into the
neutral stream (`labeling_pipeline.labels`), its states mapped onto `JobState`, and its settings; its
infrastructure is in ``stacks/backends/<name>/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.names import ENDED_STATES, JobState
from labeling_pipeline.prelabel.proposals import Proposal
from labeling_pipeline.settings import PipelineSettings, SettingsModel

# What a backend builds its clients with: boto3.client's signature (service name, region_name=...).
MakeClient = Callable[..., Any]


@dataclass(frozen=True)
class JobRequest:
    """One job to start: the images it owns, in the pipeline's bucket."""

    name: str
    images: tuple[ImageRef, ...]
    bucket: str
    task_prefix: str  # jobs/<name>/: where the backend writes the job's task inputs
    output_prefix: str  # output/: where the backend's results go
    # A detector's proposals for the images that have them (labeling.prelabel): a backend shows them to people
    # to correct. A held-out image's proposal has no boxes and `held_out` set; an image without one gets none.
    proposals: Mapping[ImageRef, Proposal] = field(default_factory=dict)


@dataclass(frozen=True)
class JobDescription:
    """What the pipeline needs to know about a job that has ended (or not)."""

    name: str
    state: JobState
    backend_status: str  # the service's own word for the state, as the CLI shows it
    results_uri: str | None  # where the results are, once the job has any
    failure_reason: str | None
    labeled: int
    failed_objects: int
    unlabeled: int
    # A fingerprint of the job's answers, for a backend whose answers can change after the job ended (the
    # job is exported again when it changes); None when results are final once written.
    results_version: str | None = None
    # A step the backend must take before the job can end, which the job end takes under the job's lease
    # (`LabelingBackend.take_step`): Label Studio's review tasks, once the labeling tasks are answered.
    pending_step: str | None = None
    # What the step is waiting for, as the CLI shows it (e.g. "3 of 5 images reviewed").
    step_progress: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


@dataclass(frozen=True)
class JobEvent:
    """A backend's signal that a job changed state: which job, and the state (or action) it reported."""

    job_name: str | None  # None: one of the deployment's jobs changed, the signal does not say which
    reported_state: str
    results_changed: bool = False  # an answer was added, changed or removed: an ended job is exported again
    credential: str | None = None  # the secret a webhook presented, which the backend checks
    project: str | None = None  # the backend's project the signal is about, when it has projects


@dataclass(frozen=True)
class Limits:
    """What a backend can label: file name endings (lower case) and the largest file."""

    image_suffixes: tuple[str, ...]
    max_image_bytes: int


class BackendError(Exception):
    """A backend call failed; `retryable` tells the launcher whether to try again later."""

    retryable = False


class TransientBackendError(BackendError):
    retryable = True


class PermanentBackendError(BackendError):
    retryable = False


class StartOutcomeUnknown(TransientBackendError):
    """A job's start failed in a way that may have taken effect (a timeout or a 5xx after the request was
    sent), and the service may still be working on it. The launcher keeps the job's start lease until it
    lapses, so that no invocation starts the job again while that work can still land."""


class BackendUnavailableError(PermanentBackendError):
    """The service refuses this account or region outright (no retry will help)."""


class WorkerError(ValueError):
    """A worker could not be added, removed or listed; the message says why (the CLI prints it)."""


class WorkerDirectory(Protocol):
    """The people who label for a deployment, as `bbox-labeling workers` manages them."""

    def list(self) -> list[str]: ...

    def add(self, email: str, *, reviewer: bool = False) -> str:
        """Invite a worker; returns what the CLI prints (how the worker gets credentials). reviewer=True: the
        worker reviews (Label Studio's review project); an existing worker is made a reviewer. A backend without
        reviewers raises WorkerError."""

    def reset(self, email: str) -> str:
        """A worker who forgot their password gets a new way to choose one; returns what the CLI prints."""

    def remove(self, email: str, *, reviewer: bool = False) -> str:
        """Remove a worker; reviewer=True takes away only the reviewer role (the account stays)."""


class NotAJobEvent(ValueError):
    """An event that is not this backend's job-state signal."""


class ResultsNotFound(LookupError):
    """The job has no results to read (yet)."""


class UnauthenticatedJobEvent(PermissionError):
    """A job signal that does not carry the deployment's secret (answered 403, never acted on)."""


class LabelingBackend(Protocol):
    # True when starting a job that already exists is a no-op of the service itself (Ground Truth's job
    # names are unique); False makes the launcher hold a start lease on the job in the ledger.
    idempotent_start: bool

    def authenticate(self, event: JobEvent) -> None:
        """Raise UnauthenticatedJobEvent unless the signal comes from the deployment's own service."""

    def create_job(self, request: JobRequest) -> str:
        """Write the job's task inputs and start it; starting a job that already exists with the same input
        is a success. Returns the URI of the job's input, which the ledger records."""

    def describe_job(self, name: str) -> JobDescription:
        """The job's state, counters and (once it has results) where they are."""

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        """Stream the job's results as neutral labeled images; ResultsNotFound when there are none."""

    def take_step(self, description: JobDescription) -> str:
        """Take `description.pending_step` (the caller holds the job's lease); idempotent, as it is retried after
        any failure. Returns what was done, for the log."""


@dataclass(frozen=True)
class BackendParts:
    """What the registry knows of one backend."""

    name: str
    settings: type[SettingsModel]  # its own run-time settings, mixed into PipelineSettings
    limits: Limits
    # (settings, deployed resources, make_client, region) -> the backend
    build: Callable[[PipelineSettings, Mapping[str, str], MakeClient, str], LabelingBackend]
    parse_job_event: Callable[[dict[str, Any]], JobEvent]  # raises NotAJobEvent
    # A results file kept locally (the CLI's export and review of a file): (lines, settings or None when no
    # deployment is known, the CLI's --attribute, stats) -> the neutral stream; raises ResultsError.
    read_results_file: Callable[
        [Iterable[bytes | str], PipelineSettings | None, str | None, ReadStats | None], Iterator[LabeledImage]
    ]
    # The CLI's side: the stacks (besides <project>-pipeline) whose outputs add to the backend's resources,
    # and the worker directory built from those resources.
    supporting_stacks: Callable[[str], tuple[str, ...]]
    workers: Callable[[Mapping[str, str], MakeClient, str], WorkerDirectory]
    # `rotate-credentials`: (resources, make_client, region) -> what the CLI prints; None when the backend keeps
    # no credentials of the deployment's own (Ground Truth's workers are Cognito's).
    rotate_credentials: Callable[[Mapping[str, str], MakeClient, str], list[str]] | None = None
