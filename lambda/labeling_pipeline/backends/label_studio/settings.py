"""Label Studio's own run-time settings and its limits on the shared ones.

Limits from Label Studio 1.23.2's source (label_studio/projects/models.py, with PROJECT_TITLE_MIN_LEN and
PROJECT_TITLE_MAX_LEN in label_studio/core/settings/base.py): a project title is 3 to 50 characters. A
presigned URL lives at most 7 days (S3's SigV4 limit), and Label Studio's storage form takes the lifetime in
minutes (``presign_ttl``).

Tasks per project: Label Studio slows down as a project nears 100,000 tasks (upstream issue #9637), so the
deployment's work is spread over projects of at most ``projectTaskLimit`` tasks each (parts.py). The
default, half of that, leaves room for what concurrent launchers can add past the limit in the moment
before they see each other's tasks (service.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, model_validator

from labeling_pipeline.consolidation import LOW_AGREEMENT
from labeling_pipeline.settings import OneLine, SettingsModel, between, length, rule

MIN_PROJECT_TITLE = 3
MAX_PROJECT_TITLE = 50
MAX_PRESIGN_MINUTES = 7 * 24 * 60
# Small enough for a test to fill a few projects; no larger than where Label Studio is known to slow down.
MIN_PROJECT_TASK_LIMIT = 10
MAX_PROJECT_TASK_LIMIT = 100_000
DEFAULT_PROJECT_TASK_LIMIT = 50_000
# The review project's title ends so (parts.review_title); the gate (label_studio_plugin/labeling_gate/review.py)
# knows a review project by it, so no other project of the deployment may end so.
REVIEW_SUFFIX = " (review)"


def _unit(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"must be between 0 and 1, got {value}"


Fraction = Annotated[float, Field(strict=True), rule(_unit)]


class ReviewSettings(SettingsModel):
    """`labeling.review`: which images of a job go to a reviewer once its annotators have answered (review.py).
    An image goes when its annotators' agreement is below `agreementBelow` or a box's label was a tie, or when it
    falls in the `sampleShare` drawn by a hash of the image and its version (the same images on every attempt).
    `sampleShare` 1 reviews every image."""

    agreement_below: Fraction = LOW_AGREEMENT
    sample_share: Fraction = 0.0


class LabelStudioSettings(SettingsModel):
    # The project the pipeline creates and keeps in step: its first part, and the base of the other parts'
    # titles (two deployments that share a Label Studio server need two titles).
    project_title: Annotated[OneLine, length(MIN_PROJECT_TITLE, MAX_PROJECT_TITLE)] = "Bounding boxes"
    # How long an image link handed to a worker's browser stays valid.
    presign_minutes: Annotated[StrictInt, between(1, MAX_PRESIGN_MINUTES)] = 60
    # The most tasks the pipeline puts in one project: a job that would take a project past it starts the
    # next part (a project of its own). At least maxImagesPerJob, so that a job always fits in one project.
    project_task_limit: Annotated[StrictInt, between(MIN_PROJECT_TASK_LIMIT, MAX_PROJECT_TASK_LIMIT)] = (
        DEFAULT_PROJECT_TASK_LIMIT
    )

    # Off unless configured: a second look at the images the annotators disagree on (review.py).
    review: ReviewSettings | None = None

    @model_validator(mode="after")
    def _label_studio_limits(self) -> LabelStudioSettings:
        max_images_per_job = getattr(self, "max_images_per_job", None)  # a shared setting (PipelineSettings)
        if isinstance(max_images_per_job, int) and self.project_task_limit < max_images_per_job:
            raise ValueError(
                f"projectTaskLimit: must be at least maxImagesPerJob ({max_images_per_job}), so that a job's "
                f"tasks fit in one Label Studio project; got {self.project_task_limit}"
            )
        if self.project_title.endswith(REVIEW_SUFFIX):
            raise ValueError(
                f"projectTitle: must not end with {REVIEW_SUFFIX.strip()!r}, which marks the review project "
                f"(Label Studio would let only reviewers in); got {self.project_title!r}"
            )
        workers_per_image = getattr(self, "workers_per_image", None)
        if self.review is not None and workers_per_image == 1 and self.review.sample_share == 0:
            raise ValueError(
                "review: with workersPerImage 1 no image has an agreement to fall short; review a share of the "
                "images (review.sampleShare, 1 for all) or set workersPerImage to 2 or more"
            )
        return self
