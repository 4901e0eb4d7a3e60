"""What the generic pipeline asks of a labeling backend's infrastructure (the stacks' side of the seam).

A backend's package under ``stacks/backends/<name>/`` implements `BackendInfrastructure`; the composition
point (``stacks/backends/__init__.py``) picks it by ``labeling.backend``. The pipeline stack hands the
backend its bucket and key, and gets back a `BackendWiring`: the resources the functions and the CLI are
told about, the IAM statements each function needs for the backend's API, and the job-end signal wired to
the job-events function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.encryption_key import LabelingKey
from stacks.deployment_settings import LabelingConfig


class BackendWiring(Protocol):
    @property
    def resources(self) -> Mapping[str, str]:
        """The backend's deployed resources (tokens allowed), as BACKEND_RESOURCES and a stack output."""

    @property
    def wildcard_reason(self) -> str:
        """Why the backend's statements name resources by wildcard, for cdk-nag (empty when they do not)."""

    @property
    def retry_reasons(self) -> str:
        """What puts an upload back for a retry with this backend, for the retry alarm's description."""

    def launcher_statements(self) -> list[iam.PolicyStatement]:
        """What the launcher needs to start jobs."""

    def job_events_statements(self) -> list[iam.PolicyStatement]:
        """What the job-events function needs to describe jobs (and read their results' location)."""

    def follow_job_ends(self, scope: Construct, function: lambda_.IFunction, dead_letter_queue: sqs.IQueue) -> None:
        """Deliver the backend's job-end signal to the job-events function (failures to the queue)."""


class BackendInfrastructure(Protocol):
    def check_region(self, region: str | None) -> None:
        """Refuse, at synth, a region where the backend cannot run (None: not known yet)."""

    def supporting_stacks(self, app: cdk.App, config: LabelingConfig, env: cdk.Environment) -> list[cdk.Stack]:
        """Stacks of the backend's own that the pipeline stack depends on."""

    def wire(
        self, stack: cdk.Stack, *, config: LabelingConfig, bucket: s3.IBucket, key: LabelingKey | None
    ) -> BackendWiring:
        """The backend's resources inside the pipeline stack."""
