"""The labeling backend seam: the event path speaks only to `LabelingBackend`.

Ground Truth is the one backend today (`ground_truth.py`); another service can be added beside
it without touching the launcher or the handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from labeling_pipeline.task_config import TaskSettings


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to start one job; the files already exist in S3."""

    name: str
    manifest_uri: str
    label_config_uri: str
    template_uri: str
    output_uri: str
    image_count: int
    settings: TaskSettings


class BackendError(Exception):
    """A backend call failed; `retryable` tells the launcher whether to try again later."""

    retryable = False


class TransientBackendError(BackendError):
    retryable = True


class PermanentBackendError(BackendError):
    retryable = False


class BackendUnavailableError(PermanentBackendError):
    """The service refuses this account or region outright (no retry will help)."""


@dataclass(frozen=True)
class JobDescription:
    """What the pipeline needs to know about a job that has ended (or not)."""

    name: str
    status: str  # Initializing | InProgress | Completed | Failed | Stopping | Stopped
    output_manifest_uri: str | None
    failure_reason: str | None
    labeled: int
    failed_objects: int
    unlabeled: int


TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


class LabelingBackend(Protocol):
    def create_job(self, spec: JobSpec) -> None:
        """Start the job; starting a job that already exists with the same input is a success."""

    def describe_job(self, name: str) -> JobDescription:
        """The job's state, counters and (once completed) where its output manifest is."""
