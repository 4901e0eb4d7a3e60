"""Pure builders for what defines a labeling job: manifest, label categories, worker UI, name.

Formats from the Ground Truth developer guide:
- input manifest, one JSON object per line with "source-ref":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-input-data-input-manifest.html
- label category configuration file, "document-version": "2018-11-28":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-label-cat-config-attributes.html
- bounding-box worker template (crowd-bounding-box):
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-bounding-box.html
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from labeling_pipeline.images import ImageRef, members_digest

LABEL_CONFIG_DOCUMENT_VERSION = "2018-11-28"


@dataclass(frozen=True)
class TaskSettings:
    """Run-time task settings (validated at synth, passed to the Lambda as JSON)."""

    labels: tuple[str, ...]
    task_title: str
    task_description: str
    task_keywords: tuple[str, ...]
    short_instructions: str
    full_instructions: str
    workers_per_image: int
    task_time_limit_seconds: int
    task_availability_seconds: int
    max_concurrent_task_count: int
    label_attribute_name: str
    job_name_prefix: str
    max_images_per_job: int

    @classmethod
    def from_json(cls, text: str) -> TaskSettings:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            labels=tuple(raw["labels"]),
            task_title=raw["taskTitle"],
            task_description=raw["taskDescription"],
            task_keywords=tuple(raw["taskKeywords"]),
            short_instructions=raw["shortInstructions"],
            full_instructions=raw["fullInstructions"],
            workers_per_image=int(raw["workersPerImage"]),
            task_time_limit_seconds=int(raw["taskTimeLimitSeconds"]),
            task_availability_seconds=int(raw["taskAvailabilitySeconds"]),
            max_concurrent_task_count=int(raw["maxConcurrentTaskCount"]),
            label_attribute_name=raw["labelAttributeName"],
            job_name_prefix=raw["jobNamePrefix"],
            max_images_per_job=int(raw["maxImagesPerJob"]),
        )


_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def manifest_text(images: Iterable[ImageRef]) -> str:
    """JSON lines, one {"source-ref": "s3://bucket/key"} per image, in a stable order."""
    # Byte for byte json.dumps({"source-ref": ...}, ensure_ascii=False), with one encoder for all lines.
    return "".join(f'{{"source-ref": {_encode_string(image.source_ref)}}}\n' for image in sorted(images))


def label_category_config(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "document-version": LABEL_CONFIG_DOCUMENT_VERSION,
        "labels": [{"label": label} for label in labels],
    }


def _inert_text(text: str) -> str:
    """Configuration text as HTML that neither the browser nor Ground Truth's Liquid engine interprets:
    braces become entities, so "{{" or "{%" in an instruction cannot start a Liquid tag."""
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")


def worker_template(settings: TaskSettings) -> str:
    """The crowd-bounding-box UI; instructions, title and labels come from Ground Truth's task input."""
    short = _inert_text(settings.short_instructions)
    full = _inert_text(settings.full_instructions)
    header = _inert_text(settings.task_title)
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>

<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{{{ task.input.taskObject | grant_read_access }}}}"
    header="{header}"
    labels="{{{{ task.input.labels | to_json | escape }}}}"
  >
    <full-instructions header="Bounding box instructions">
      <p>{full}</p>
    </full-instructions>
    <short-instructions>
      <p>{short}</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


def job_name(prefix: str, when: datetime, members: list[ImageRef]) -> str:
    """<prefix>-<yyyymmdd>-<digest>: readable, valid for the API, and fixed by the job's members,
    so that a retried CreateLabelingJob for the same images reuses the same name."""
    # Lower case: the service compares names case-insensitively and job ARNs (and so events) carry them
    # in lower case.
    return f"{prefix.lower()}-{when:%Y%m%d}-{members_digest(members)}"


def chunks(images: Sequence[ImageRef], size: int) -> list[list[ImageRef]]:
    ordered = sorted(set(images))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]
