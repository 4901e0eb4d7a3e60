"""How one pipeline job becomes one or two Ground Truth jobs when a detector proposed boxes (labeling.prelabel).

Which images are shown proposals (the safe side of what AWS documents):
- An image whose proposals have at least one box to show goes into a bounding-box *adjustment* job
  (PRE-/ACS-AdjustmentBoundingBox), its boxes in the manifest line (task_inputs.proposal_label).
- Every other image (held out on purpose, no proposals file, or a file whose boxes were all left out) goes into a
  plain bounding-box job, as without pre-labels. Not into the adjustment job: its input manifest "must contain the
  label attribute name (LabelAttributeName) of the labels that you want adjusted"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-verify-adjust-prereq.html) and objects without one
  "individually fail" (https://github.com/awsdocs/amazon-sagemaker-developer-guide/blob/master/doc_source/sms-data-verify-start-api.md,
  "Cautions and Considerations"); and nothing documents that the adjustment task accepts a prior label with an empty
  box list, which only an account could show. A held-out image is also labeled exactly as without pre-labels, which
  is what the report compares against.
- A job with both kinds is two Ground Truth jobs: the adjustment job under the pipeline job's own name, the plain one
  under `unassisted_job_name` (the same length, so it stays within the 63 characters the name allows, starts with
  the same prefix, so the stack's job-end rule and grants match it, and maps back with `pipeline_job_name`). The
  adjustment job carries the plain one's name in a tag (DescribeLabelingJob returns `Tags`), and the backend describes
  and reads the two as one job. A job with only one kind is one Ground Truth job under its own name, as before.

Which images are shown proposals is decided once per job, in `PLAN_FILE` under the job's task prefix, written only
if absent (S3's If-None-Match): a retry, or another launcher finishing the same job, may see a proposals file that
the first did not, and must still put each image in the same Ground Truth job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labeling_pipeline.backends import JobDescription
from labeling_pipeline.images import ImageRef

PLAN_FILE = "ground-truth-parts.json"
PLAN_FORMAT_VERSION = 1
# The plain job's task inputs, beside the adjustment job's under jobs/<job>/.
UNASSISTED_FOLDER = "unassisted/"
# Tag on the adjustment job naming its plain sibling. Tag keys allow letters, digits, spaces and _.:/=+-@
# (botocore's model, shape TagKey).
UNASSISTED_PART_TAG = "unassisted-part"
# Pipeline job names are <prefix>-<yyyymmdd>-<12 hex> (job_naming.job_name): the plain sibling replaces the last
# hyphen with this letter, which no pipeline job name has there.
UNASSISTED_MARKER = "u"
_UNASSISTED_NAME = re.compile(rf"^(?P<head>.+-\d{{8}}){UNASSISTED_MARKER}(?P<digest>[0-9a-f]{{12}})$")

# LabelingJobStatus values after which a job changes no more, and those before, least advanced first.
_ENDED = ("Completed", "Failed", "Stopped")
_RUNNING = ("Initializing", "InProgress", "Stopping")


def unassisted_job_name(name: str) -> str:
    head, _, digest = name.rpartition("-")
    return f"{head}{UNASSISTED_MARKER}{digest}"


def pipeline_job_name(ground_truth_name: str) -> str:
    """The pipeline job a Ground Truth job belongs to: itself, or the job whose plain part it is."""
    found = _UNASSISTED_NAME.match(ground_truth_name)
    return f"{found['head']}-{found['digest']}" if found else ground_truth_name


@dataclass(frozen=True)
class JobPlan:
    model_version: str
    # The creation-date of the proposals in the manifest: fixed with the plan, so every try writes the same bytes.
    created_at: str
    assisted: tuple[ImageRef, ...]  # the images shown proposals, in the adjustment job


def encode_plan(plan: JobPlan) -> bytes:
    document = {
        "formatVersion": PLAN_FORMAT_VERSION,
        "modelVersion": plan.model_version,
        "createdAt": plan.created_at,
        "assisted": [[image.bucket, image.key, image.version] for image in plan.assisted],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_plan(body: bytes, where: str) -> JobPlan:
    """Raises ValueError naming `where` for anything but a plan this module wrote."""
    try:
        document: dict[str, Any] = json.loads(body)
        if document.get("formatVersion") != PLAN_FORMAT_VERSION:
            raise ValueError(f"formatVersion {document.get('formatVersion')!r}")
        return JobPlan(
            model_version=str(document["modelVersion"]),
            created_at=str(document["createdAt"]),
            assisted=tuple(ImageRef(str(b), str(k), str(v)) for b, k, v in document["assisted"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{where} is not a job plan ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class SplitJobDescription(JobDescription):
    """A pipeline job made of two Ground Truth jobs, described as one; `parts` holds each (the adjustment job
    first), for reading their results."""

    parts: tuple[JobDescription, ...] = ()


def combined_status(statuses: Sequence[str]) -> str:
    """One LabelingJobStatus for several jobs: the least advanced of those still running; once all have ended,
    Completed if all completed, Failed if any failed, else Stopped."""
    for status in _RUNNING:
        if status in statuses:
            return status
    unknown = [status for status in statuses if status not in _ENDED]
    if unknown:
        return unknown[0]
    if all(status == "Completed" for status in statuses):
        return "Completed"
    return "Failed" if "Failed" in statuses else "Stopped"
