"""The review step (``labeling.review``): a second look, by a reviewer, at the images of a job whose annotators
disagree. Label Studio Community has no reviewer role (Enterprise has), so the pipeline builds one:

- When every labeling task of a job has its answers, the job-end function consolidates each image's answers
  (consolidation.py) and picks the images to review (`review_reason`): agreement below ``agreementBelow``, a box
  whose label was a tie, or the hash-drawn ``sampleShare``. It makes one review task per picked image, exactly once
  (service.py: listed, imported, duplicates deleted, under the job's lease), in the deployment's review project
  (titled ``<projectTitle> (review)``, project.ensure_review_project), with the consolidated boxes as the task's
  prediction, so that the reviewer starts from them.
- Reviewers are the workers named by ``bbox-labeling workers add --reviewer``; Label Studio's gate
  (label_studio_plugin/labeling_gate/review.py) lets only them into a review project, and never serves a reviewer
  a review task of an image they annotated: the task's ``annotatorIds`` lists the annotators' user ids.
- The job ends when its review tasks are answered. A reviewed image's exports are the reviewer's boxes
  (LabeledImage.settled_boxes); a review skipped leaves the consolidated boxes. The job's summary says what the
  reviewers changed (box_changes.py: accepted, moved, relabeled, deleted, added) and how often each annotator's
  boxes survived the review.

In ``output/<job>/tasks.jsonl`` a reviewed image's line is its labeling task with its review task under
REVIEW_KEY, so that the file alone gives the same export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION
from labeling_pipeline.backends.label_studio.predictions import prediction_of, rectangle_regions
from labeling_pipeline.backends.label_studio.results import REVIEW_KEY, TaskData
from labeling_pipeline.backends.label_studio.settings import ReviewSettings
from labeling_pipeline.consolidation import Consolidated, consolidate_image
from labeling_pipeline.labels import LabeledImage

__all__ = ["REVIEW_KEY", "ReviewCandidate", "ReviewData", "ReviewReason", "candidate", "review_reason", "review_task"]


class ReviewData:
    """The fields of a review task's data beside TaskData's image, job and imageVersion."""

    ANNOTATOR_IDS = "annotatorIds"  # ",3,7,": the user ids of the image's annotators (the gate's contract)
    REASON = "reviewReason"  # ReviewReason
    LABELING_TASK = "labelingTask"  # the id of the image's labeling task


class ReviewReason:
    LOW_AGREEMENT = "low-agreement"
    LABEL_TIE = "label-tie"
    SAMPLED = "sampled"


def annotator_ids(annotators: Iterable[str]) -> str:
    """ ",3,7,": searchable for one id as a substring (",3,"), on SQLite and PostgreSQL alike."""
    return "," + "".join(f"{annotator}," for annotator in sorted(annotators, key=_numeric))


def _numeric(annotator: str) -> tuple[int, str]:
    return (int(annotator), "") if annotator.isdigit() else (-1, annotator)


def sampled(source_ref: str, version: str, share: float) -> bool:
    """Whether the image version falls in the share: the same answer on every attempt and in every function."""
    if share >= 1.0:
        return True
    digest = hashlib.sha256(f"{source_ref}\n{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def review_reason(
    image: LabeledImage, consolidated: Consolidated | None, version: str, settings: ReviewSettings
) -> str | None:
    """Why the image goes to a reviewer; None when it does not. An image nobody labeled (skipped by all) does not:
    it is relabeled instead."""
    if image.failed:
        return None
    if consolidated is not None and consolidated.agreement is not None:
        if consolidated.agreement < settings.agreement_below:
            return ReviewReason.LOW_AGREEMENT
        if consolidated.label_ties:
            return ReviewReason.LABEL_TIE
    if settings.sample_share > 0 and sampled(image.source_ref, version, settings.sample_share):
        return ReviewReason.SAMPLED
    return None


@dataclass(frozen=True)
class ReviewCandidate:
    """An image of the job and what its review task would show."""

    task_id: int  # its labeling task
    image: LabeledImage  # the annotators' answers, read
    shown: LabeledImage  # with the consolidated boxes (the answers as they are with one annotator)
    version: str
    reason: str | None


def candidate(task: Mapping[str, Any], image: LabeledImage, settings: ReviewSettings) -> ReviewCandidate:
    version = str((task.get("data") or {}).get(TaskData.VERSION))
    consolidated = None
    shown = image
    if len(image.annotators) > 1 and not image.failed:
        shown, consolidated = consolidate_image(image, image.annotators)
    return ReviewCandidate(
        int(task["id"]), image, shown, version, review_reason(image, consolidated, version, settings)
    )


def review_region_id(source_ref: str, version: str, index: int) -> str:
    return hashlib.sha256(f"{CONSOLIDATED_VERSION}\n{source_ref}\n{version}\n{index}".encode()).hexdigest()[:10]


def review_task(job_name: str, found: ReviewCandidate, labels: Iterable[str]) -> dict[str, Any]:
    """The review task of one image: its data (the gate's contract) and the consolidated boxes as its prediction.
    An image of unknown size (answered with no box) gets an empty prediction: there is nothing to show."""
    assert found.reason is not None
    shown = found.shown
    data = {
        TaskData.IMAGE: shown.source_ref,
        TaskData.JOB: job_name,
        TaskData.VERSION: found.version,
        ReviewData.ANNOTATOR_IDS: annotator_ids(found.image.annotators),
        ReviewData.REASON: found.reason,
        ReviewData.LABELING_TASK: found.task_id,
    }
    regions = []
    if shown.width > 0 and shown.height > 0:
        regions = rectangle_regions(
            shown.boxes,
            shown.width,
            shown.height,
            set(labels) | {box.label for box in shown.boxes},
            lambda index: review_region_id(shown.source_ref, found.version, index),
        )
    return {"data": data, "predictions": [prediction_of(regions, CONSOLIDATED_VERSION)]}
